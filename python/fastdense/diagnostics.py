r"""Why a net does not learn: per-layer statistics and findings in words.

:func:`diagnose` runs one forward and backward pass of a model on a batch, outside the model
(its weights, gradient arrays, optimizer state and training buffers are left untouched), and
returns a :class:`Report` with, for every Dense layer,

* statistics of the pre-activations ``z = h @ W + b``, the activations (``relu(z)`` or ``z``)
  and the weight gradients ``dL/dW``: mean, std, min, max, fraction of exact zeros, fraction
  of non-finite values;
* the fraction of *dead* units (ReLU units whose output is 0 for every sample of the batch);
* the gradient norm, the weight norm and the update/weight ratio ``lr * |dW| / |W|`` of one
  plain SGD step (the ~1e-3 rule of thumb);

and a list of :class:`Finding` objects that name the failure and the remedy. The report
prints as a text table (:meth:`Report.table`), converts to plain JSON-able dicts
(:meth:`Report.to_dict`, no pandas) and draws one histogram per layer and quantity into one PNG
(:meth:`Report.plot_histograms`, needs matplotlib: ``pip install fastdense[plot]``).

Findings and their thresholds
-----------------------------

``symmetric``
    All units of a hidden layer are identical: equal incoming weights and biases *and* equal
    outgoing weights (relative tolerance ``SYMMETRY_RTOL = 1e-6``). Identical units get
    identical gradients, so training can never tell them apart; the layer acts as one unit.
    Only hidden layers count: the output units of a zero-initialised softmax regression are
    identical too, but the labels give each one a different gradient.
``dead``
    At least ``DEAD_FRACTION = 0.5`` of a ReLU layer's units output 0 for every sample. A dead
    unit passes no gradient to the weights below it (ReLU'(z) = 0 for z <= 0), and ReLU(0) = 0
    with zero weights kills every unit. With a variance-scaling init and zero bias each unit
    is active on about half of the samples, so only a few percent of units are dead over a
    batch of image rows (their pixels are correlated); half the layer is far outside that.
    Batches under ``MIN_DEAD_BATCH = 16`` rows only report a layer where *every* unit is dead,
    because with m samples about 2^-m of healthy units look dead by chance.
``vanishing_gradients``
    The first layer's weight-gradient norm is below ``VANISHING_GRAD_RATIO = 1e-2`` times the
    last layer's: the update signal fades on its way down, so the early layers do not learn.
    Healthy inits give ratios of order 1 (He on a 784-128-...-10 net: about 3).
    Also reported, given a learning rate ``lr > 0``, when both (i) the RMS of the error signal
    ``dL/dz`` at the first layer is below ``VANISHING_GRAD_RATIO`` times the one at the
    output and (ii) one plain SGD step would change the first layer by less than
    ``UPDATE_RATIO_LOW = 1e-5`` of its weights (``lr * |dW| / |W|``; about 1e-3 is the usual
    healthy value, and 1e-5 means ~1e5 steps to move the weights by their own size). This
    catches nets where *every* layer's weight gradient is tiny, so the first/last ratio looks
    normal: N(0, 1e-3) weights in a 1-16-16-1 ReLU net give about 3e-6 at lr 1e-3 where the
    1-16-1 net gets 1e-3; N(0, 0.01^2) weights in a deep 128-unit MLP give 1e-6 at lr 0.05
    where He init gets 6e-3. (i) keeps a converged net, whose gradients are small because
    its error is, and a healthy net with a tiny learning rate out of it; (ii) keeps out the
    1-16-1 net, whose tiny first-layer gradient is large next to its tiny weights.
``exploding_activations`` / ``vanishing_activations``
    The *signal* of a layer is the root mean square over its units of each unit's standard
    deviation over the batch: the part of the pre-activation that depends on the input. Its
    geometric-mean growth per layer, from the first to the last Dense layer, is above
    ``GROWTH_HIGH = 2`` or below ``GROWTH_LOW = 0.5``. Variance scaling keeps it near 1 (He
    on ReLU layers) or 1/sqrt(2) (Glorot on ReLU layers); N(0, 1) weights on 128-unit ReLU
    layers multiply it by about 8 per layer, N(0, 0.01^2) by about 0.08, and a factor that
    compounds over L layers is what breaks deep nets. Measured only with at least
    ``MIN_GROWTH_LAYERS = 3`` Dense layers (two ratios): one layer changing the scale is set
    by its fan-in and is corrected by the next layer's weights, not a trend.
``uniform_softmax``
    The mean top-class probability is at most ``UNIFORM_TOP_PROB = 1.1`` times ``1/C``: the
    predictions do not depend on the input and the loss sits at ln C (2.3026 for 10 classes).
    Normal before training; after training it means the net did not learn.
``saturated_softmax``
    At least ``SATURATED_FRACTION = 0.5`` of the samples get a top-class probability above
    ``SATURATED_PROB = 0.999`` while the loss is above ln C: over-confident and wrong, the
    sign of huge logits.
``non_finite``
    NaN or infinity in the loss, a pre-activation, an activation or a gradient (the first
    layer where it appears is named).

:func:`check_initialization` keeps the findings that matter before training (symmetric, dead,
non-finite, vanishing or exploding); ``Sequential.fit`` warns with
:class:`InitializationWarning` when it finds one.

Example:
    >>> import numpy as np, fastdense
    >>> from fastdense import diagnostics
    >>> model = fastdense.MLP([784, 100, 10], kernel_init="zeros", seed=0)
    >>> x = np.random.default_rng(0).random((64, 784), dtype=np.float32)
    >>> report = diagnostics.diagnose(model, x, np.arange(64) % 10, lr=0.5)
    >>> sorted({f.kind for f in report.findings})
    ['dead', 'symmetric', 'uniform_softmax']
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from typing import List, Optional

import numpy as np

from fastdense import _core
from fastdense import losses as _losses

__all__ = [
    "DEAD_FRACTION",
    "GROWTH_HIGH",
    "GROWTH_LOW",
    "INIT_KINDS",
    "UPDATE_RATIO_LOW",
    "VANISHING_GRAD_RATIO",
    "Finding",
    "InitializationWarning",
    "LayerStats",
    "Report",
    "Summary",
    "check_initialization",
    "diagnose",
    "warn_initialization",
]

# Thresholds; the module docstring gives the reasoning for each.
SYMMETRY_RTOL = 1e-6
DEAD_FRACTION = 0.5
MIN_DEAD_BATCH = 16
VANISHING_GRAD_RATIO = 1e-2
UPDATE_RATIO_LOW = 1e-5
GROWTH_HIGH = 2.0
GROWTH_LOW = 0.5
MIN_GROWTH_LAYERS = 3
UNIFORM_TOP_PROB = 1.1
SATURATED_PROB = 0.999
SATURATED_FRACTION = 0.5

#: Finding kinds that :func:`check_initialization` reports (relevant before any training).
INIT_KINDS = ("non_finite", "symmetric", "dead", "vanishing_gradients", "vanishing_activations",
              "exploding_activations")

_REMEDIES = {
    "symmetric": "break the symmetry with a random init: kernel_init='he_normal' for ReLU "
                 "layers (zeros or a constant kernel never learn in a hidden layer)",
    "dead": "use he_normal for ReLU layers with a zero or small positive bias (e.g. "
            "bias_init=Constant(0.01)); if units died during training, lower the learning rate",
    "vanishing_gradients": "use variance scaling: he_normal for ReLU layers and "
                           "glorot_uniform for the output layer, not a tiny fixed-scale init "
                           "such as N(0, 1e-3)",
    "vanishing_activations": "raise the init scale: use variance scaling (he_normal, std "
                             "sqrt(2 / fan_in), for ReLU layers; glorot_uniform for the output)",
    "exploding_activations": "lower the init scale / use variance scaling: he_normal (std "
                             "sqrt(2 / fan_in)) for ReLU layers, glorot_uniform for the output",
    "uniform_softmax": "expected before training; if it persists after training the net is "
                       "not learning: fix the other findings (vanishing signal, dead or "
                       "symmetric layers), e.g. he_normal for ReLU layers",
    "saturated_softmax": "lower the init scale (he_normal / glorot_uniform instead of N(0, 1)) "
                         "and, if it appears during training, the learning rate",
    "non_finite": "lower the learning rate, clip gradients (SGD(clipnorm=1.0)), use a "
                  "variance-scaling init (he_normal), and check the inputs for NaN",
}


class InitializationWarning(UserWarning):
    """Warned by ``Sequential.fit`` when the model cannot learn as initialised (a dead or
    symmetric layer, a vanishing or exploding signal, non-finite values)."""


# ------------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class Finding:
    """One diagnosed problem.

    Attributes:
        kind: ``"symmetric"``, ``"dead"``, ``"vanishing_gradients"``,
            ``"vanishing_activations"``, ``"exploding_activations"``, ``"uniform_softmax"``,
            ``"saturated_softmax"`` or ``"non_finite"``.
        layer: index of the Dense layer it concerns (0-based, as in :attr:`Report.layers`), or
            ``None`` for the whole model.
        message: what was measured, with the numbers.
        remedy: what to do about it.
    """

    kind: str
    layer: Optional[int]
    message: str
    remedy: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self):
        return f"{self.kind}: {self.message} -> {self.remedy}"


@dataclasses.dataclass(frozen=True)
class Summary:
    """Statistics of one array (computed in float64 over its finite values).

    ``mean``, ``std``, ``min``, ``max`` are ``None`` when the array has no finite value.
    """

    mean: Optional[float]
    std: Optional[float]
    min: Optional[float]
    max: Optional[float]
    zero_fraction: float
    nonfinite_fraction: float

    @classmethod
    def of(cls, a: np.ndarray) -> "Summary":
        a = np.asarray(a)
        finite = np.isfinite(a)
        nonfinite = 1.0 - float(finite.mean())
        zero = float(np.count_nonzero(a == 0)) / a.size
        v = a[finite] if nonfinite else a.reshape(-1)
        if v.size == 0:
            return cls(None, None, None, None, zero, nonfinite)
        v = v.astype(np.float64)
        return cls(float(v.mean()), float(v.std()), float(v.min()), float(v.max()), zero,
                   nonfinite)


@dataclasses.dataclass(frozen=True)
class LayerStats:
    """What :func:`diagnose` measured in one Dense layer (``z = h @ W + b``, ``a = relu(z)``).

    Attributes:
        index, name: position in the model (0-based) and ``"dense_<index>"``.
        in_features, out_features, relu: the layer's shape and activation.
        preact, act, grad: :class:`Summary` of ``z``, ``a`` and ``dL/dW``.
        dead_fraction, dead_units: units with ``a == 0`` on every sample (ReLU layers; 0 for
            linear ones).
        signal: RMS over units of each unit's std over the batch (the input-dependent part of
            ``z``; the growth findings compare it between layers).
        delta_rms: RMS of ``dL/dz``, the gradient that reaches this layer.
        grad_norm: ``sqrt(|dW|^2 + |db|^2)``; weight_grad_norm: ``|dW|``; weight_norm: ``|W|``
            (Frobenius norms).
        update_ratio: ``lr * |dW| / |W|`` for one plain SGD step (``None`` without an ``lr``,
            ``inf`` when ``W`` is all zeros and the gradient is not).
        identical_units: every unit has the same incoming and outgoing weights (hidden layers).
    """

    index: int
    name: str
    in_features: int
    out_features: int
    relu: bool
    preact: Summary
    act: Summary
    grad: Optional[Summary]
    dead_fraction: float
    dead_units: int
    signal: Optional[float]
    delta_rms: Optional[float]
    grad_norm: Optional[float]
    weight_grad_norm: Optional[float]
    weight_norm: float
    update_ratio: Optional[float]
    identical_units: bool


class Report:
    """The result of :func:`diagnose`: per-layer statistics and findings.

    Attributes:
        layers: list of :class:`LayerStats`, first Dense layer first.
        findings: list of :class:`Finding`.
        loss: the batch loss (NaN if it could not be computed).
        batch_size, num_classes, lr: what was measured (``num_classes`` is ``None`` for
            regression targets).
        grad_ratio: first / last layer weight-gradient norm (``None`` for one layer).
        growth: geometric-mean growth per layer of the signal (``None`` under
            ``MIN_GROWTH_LAYERS`` Dense layers).
        top_prob: mean top-class softmax probability (classification).
    """

    def __init__(self, layers, findings, loss, batch_size, num_classes, lr, grad_ratio, growth,
                 top_prob, arrays, top_rows=None):
        self.layers: List[LayerStats] = layers
        self.findings: List[Finding] = findings
        self.loss = loss
        self.batch_size = batch_size
        self.num_classes = num_classes
        self.lr = lr
        self.grad_ratio = grad_ratio
        self.growth = growth
        self.top_prob = top_prob
        self._arrays = arrays  # per layer {"preact", "act", "grad"}: for the histograms
        self._top_prob_rows = top_rows  # each sample's top-class probability

    @property
    def kinds(self) -> List[str]:
        """The distinct finding kinds, in the order found."""
        return list(dict.fromkeys(f.kind for f in self.findings))

    def to_dict(self) -> dict:
        """Everything but the raw arrays as plain Python types; ``json.dumps`` accepts it with
        ``allow_nan=False`` (non-finite numbers become ``None``)."""
        d = {
            "loss": self.loss,
            "batch_size": self.batch_size,
            "num_classes": self.num_classes,
            "lr": self.lr,
            "grad_ratio": self.grad_ratio,
            "growth": self.growth,
            "top_prob": self.top_prob,
            "layers": [dataclasses.asdict(s) for s in self.layers],
            "findings": [f.to_dict() for f in self.findings],
        }
        return _json_clean(d)

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def table(self) -> str:
        """A text table, one row per layer, followed by the findings and their remedies."""
        head = ("layer", "shape", "z mean", "z std", "z min", "z max", "a zero", "dead",
                "|dW|", "|W|", "lr|dW|/|W|")
        rows = []
        for s in self.layers:
            shape = f"{s.in_features}x{s.out_features}" + ("+relu" if s.relu else "")
            rows.append((
                s.name, shape, _g(s.preact.mean), _g(s.preact.std), _g(s.preact.min),
                _g(s.preact.max), f"{s.act.zero_fraction:.0%}",
                f"{s.dead_fraction:.0%}" if s.relu else "-",
                _g(s.weight_grad_norm), _g(s.weight_norm), _g(s.update_ratio),
            ))
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        fmt = lambda r: "  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        lines = [fmt(head), "  ".join("-" * w for w in widths)]
        lines += [fmt(r) for r in rows]
        extra = [f"loss {self.loss:.4g}"]
        if self.num_classes:
            extra.append(f"ln C {math.log(self.num_classes):.4f}")
            if self.top_prob is not None:
                extra.append(f"mean top prob {self.top_prob:.3f}")
        if self.grad_ratio is not None:
            extra.append(f"|dW first|/|dW last| {_g(self.grad_ratio)}")
        if self.growth is not None:
            extra.append(f"signal growth/layer {_g(self.growth)}")
        lines.append(f"batch {self.batch_size}: " + ", ".join(extra))
        if self.findings:
            lines.append("findings:")
            for f in self.findings:
                lines.append(f"  [{f.kind}] {f.message}")
                lines.append(f"      remedy: {f.remedy}")
        else:
            lines.append("findings: none")
        return "\n".join(lines)

    __str__ = table

    def __repr__(self):
        return f"Report(layers={len(self.layers)}, loss={_g(self.loss)}, kinds={self.kinds})"

    def plot_histograms(self, path, title=None, bins=50):
        """Write one PNG with a histogram per layer (rows) of the pre-activations, the
        activations and the weight gradients (columns), like TensorBoard's per-layer
        histograms.

        Args:
            path: the PNG file to write.
            title: figure title. Default: the findings' kinds.
            bins: bins per histogram. Default: 50.

        Raises:
            ImportError: matplotlib is not installed (``pip install fastdense[plot]``).

        >>> report.plot_histograms("layers.png")  # doctest: +SKIP
        """
        Figure, FigureCanvas = _matplotlib()
        n = len(self.layers)
        fig = Figure(figsize=(10, 1.9 * n + 0.8))
        FigureCanvas(fig)
        axes = fig.subplots(n, 3, squeeze=False)
        cols = (("preact", "pre-activation z"), ("act", "activation"), ("grad", "gradient dL/dW"))
        for i, s in enumerate(self.layers):
            for j, (key, label) in enumerate(cols):
                ax = axes[i][j]
                a = self._arrays[i].get(key)
                if key == "act" and not s.relu:
                    label = "output (= z)" if i == n - 1 else "activation (linear)"
                draw_histogram(ax, a, bins=bins)
                ax.set_title(f"{s.name} {label}", fontsize=8)
                ax.tick_params(labelsize=6)
        if title is None:
            title = "findings: " + (", ".join(self.kinds) or "none")
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        return path


def draw_histogram(ax, a, bins=50, label=None, color=None):
    """Histogram of the finite values of ``a`` on a matplotlib axis, log-scaled counts; a note
    instead when there is nothing finite, and a unit-wide range around a constant array (a
    zero-width range would make every bin empty)."""
    if a is None:
        ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes,
                fontsize=8)
        return
    v = np.asarray(a, np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes,
                fontsize=8)
        return
    lo, hi = float(v.min()), float(v.max())
    if hi - lo <= 1e-12 * max(1.0, abs(lo)):
        span = max(abs(lo), 1.0) * 0.5
        lo, hi = lo - span, hi + span
    ax.hist(v, bins=bins, range=(lo, hi), color=color, label=label, alpha=0.8 if label else 1.0,
            log=True)
    zero = np.count_nonzero(v == 0) / v.size
    note = f"std {_g(float(v.std()))}" + (f"\n{zero:.0%} zeros" if zero > 0.01 else "")
    ax.text(0.98, 0.95, note, ha="right", va="top", transform=ax.transAxes, fontsize=7)


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting needs matplotlib, an optional extra: pip install fastdense[plot]"
        ) from e
    # Figure + Agg canvas, not pyplot: no global backend or figure state is touched.
    return Figure, FigureCanvasAgg


def _g(v):
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    v = float(v)
    if v == 0:
        return "0"
    return f"{v:.3g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"


def _json_clean(o):
    if isinstance(o, dict):
        return {k: _json_clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        o = float(o)
        return o if math.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


# ---------------------------------------------------------------------------- computation


def _targets(model, y, n):
    """(labels or None, dense float targets or None, number of classes or None), checked like
    ``Sequential._check_y`` but without touching the model's state."""
    y = np.asarray(y)
    if len(y) != n:
        raise ValueError(f"x has {n} samples but y has {len(y)}")
    c = model.output_dim
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        if y.min() < 0 or y.max() >= c:
            raise ValueError(f"labels must be in [0, {c}) for a model with {c} outputs")
        return np.ascontiguousarray(y, dtype=np.int64), None, c
    if y.ndim == 1 and c == 1:
        y = y.reshape(-1, 1)
    if y.ndim == 2 and y.shape[1] == c and np.issubdtype(y.dtype, np.number):
        return None, np.ascontiguousarray(y, dtype=np.float32), None
    raise ValueError(
        f"expected y as integer labels of shape ({n},) or targets of shape ({n}, {c}), "
        f"got {y.dtype} {y.shape}"
    )


def _loss_and_grad(loss, logits, labels, targets):
    """(mean loss, dL/dlogits) without side effects on the loss object where avoidable."""
    fused = (isinstance(loss, _losses.SoftmaxCrossEntropy) and loss.label_smoothing == 0
             and labels is not None)
    if fused:
        m = logits.shape[0]
        scale = 1.0 if loss.reduction == "sum" else 1.0 / m
        mean, _, dz = _core.softmax_xent_backward(logits, labels, grad_scale=scale)
        return float(mean), dz
    value, dz = loss.value_and_grad(logits, labels if labels is not None else targets)
    value = np.asarray(value, np.float64)
    return float(value.mean()), np.ascontiguousarray(dz, dtype=np.float32)


def _identical_units(W, b, W_next):
    """Whether every unit of a hidden layer equals unit 0 (incoming and outgoing weights)."""
    if W.shape[1] < 2:
        return False
    parts = [W.T]
    if b is not None:
        parts.append(b[:, None])
    parts.append(W_next)  # rows of the next kernel: each unit's outgoing weights
    units = np.concatenate([p.astype(np.float64) for p in parts], axis=1)
    scale = float(np.max(np.abs(units))) if np.all(np.isfinite(units)) else math.inf
    if not math.isfinite(scale):
        return False
    return bool(np.max(np.abs(units - units[:1])) <= SYMMETRY_RTOL * scale)


def _norm(a):
    return math.sqrt(_core.sum_squares([np.ascontiguousarray(a, dtype=np.float32)])[0])


def diagnose(model, x, y, lr=None, loss=None) -> Report:
    r"""Measure every Dense layer of ``model`` on one batch and say what is wrong.

    Runs its own forward pass (pre-activations from ``_core.matmul_forward`` without the fused
    ReLU, then ``_core.relu_forward``) and backward pass (``softmax_xent_backward`` or the
    loss's ``value_and_grad``, ``matmul_backward_weight``, ``matmul_backward_input``,
    ``relu_backward``) into fresh arrays: the model's weights, gradients, optimizer state and
    training buffers are not modified. The thresholds are in the module docstring.

    Args:
        model: a :class:`fastdense.Sequential` (built, or built here from ``x``'s width).
        x: inputs ``(m, input_dim)``; a few hundred rows are plenty.
        y: integer labels ``(m,)`` or float targets ``(m, outputs)``.
        lr: learning rate for the update/weight ratio. Default: the model's optimizer's
            current rate if it is compiled, else ``None`` (ratio not computed).
        loss: a loss name or object. Default: the model's loss, else softmax cross-entropy
            for integer labels and mean squared error for float targets.

    Returns:
        a :class:`Report`.

    Example:
        >>> import numpy as np, fastdense
        >>> model = fastdense.MLP([20, 64, 64, 64, 10], kernel_init="he_normal", seed=0)
        >>> x = np.random.default_rng(0).standard_normal((128, 20)).astype(np.float32)
        >>> report = diagnose(model, x, np.arange(128) % 10, lr=0.05)
        >>> report.findings
        []
        >>> print(report.table())  # doctest: +SKIP
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch x of shape (m, features), got {x.shape}")
    if not model.built:
        model.build(x.shape[1])
    if x.shape[1] != model.input_dim:
        raise ValueError(f"expected x of shape (m, {model.input_dim}), got {x.shape}")
    m = x.shape[0]
    labels, targets, num_classes = _targets(model, y, m)
    if loss is None:
        loss = model.loss or _losses.get(
            "softmax_cross_entropy" if labels is not None else "mean_squared_error")
    else:
        loss = _losses.get(loss)
    if lr is None and getattr(model, "optimizer", None) is not None:
        lr = float(model.optimizer.current_lr)
    stages = model._stages
    L = len(stages)

    with np.errstate(all="ignore"):
        # Forward: z and a per layer, into new arrays.
        hs, zs = [x], []
        for s in stages:
            d = s.dense
            z = _core.matmul_forward(hs[-1], d.W, d.b)
            zs.append(z)
            hs.append(_core.relu_forward(z) if s.relu else z)
        logits = zs[-1]
        finite_fwd = all(bool(np.isfinite(z).all()) for z in zs)

        # Backward, unless the forward pass already broke down (the losses reject NaN/inf).
        dzs: List[Optional[np.ndarray]] = [None] * L
        dWs: List[Optional[np.ndarray]] = [None] * L
        dbs: List[Optional[np.ndarray]] = [None] * L
        value = math.nan
        if finite_fwd:
            value, dz = _loss_and_grad(loss, logits, labels, targets)
            for i in range(L - 1, -1, -1):
                d = stages[i].dense
                dzs[i] = dz
                dWs[i], dbs[i] = _core.matmul_backward_weight(hs[i], dz, bias=d.use_bias)
                if i > 0:
                    dh = _core.matmul_backward_input(dz, d.W)
                    dz = _core.relu_backward(dh, hs[i]) if stages[i - 1].relu else dh

        layers, arrays = [], []
        for i, s in enumerate(stages):
            d = s.dense
            z, a = zs[i], hs[i + 1]
            if s.relu:
                dead_units = int(np.count_nonzero(~(a > 0).any(axis=0)))
            else:
                dead_units = 0
            signal = float(np.sqrt(np.mean(z.astype(np.float64).std(axis=0) ** 2)))
            dW = dWs[i]
            wgn = gn = delta = None
            if dW is not None:
                wgn = _norm(dW)
                gn = math.sqrt(wgn ** 2 + (_norm(dbs[i]) ** 2 if dbs[i] is not None else 0.0))
                delta = math.sqrt(_core.sum_squares([dzs[i]])[0] / dzs[i].size)
            wn = _norm(d.W)
            ratio = None
            if lr is not None and wgn is not None:
                ratio = lr * wgn / wn if wn > 0 else (math.inf if wgn > 0 else 0.0)
            identical = False
            if i < L - 1:
                identical = _identical_units(d.W, d.b, stages[i + 1].dense.W)
            layers.append(LayerStats(
                index=i, name=f"dense_{i}", in_features=d.input_dim, out_features=d.units,
                relu=bool(s.relu), preact=Summary.of(z), act=Summary.of(a),
                grad=Summary.of(dW) if dW is not None else None,
                dead_fraction=dead_units / d.units, dead_units=dead_units,
                signal=signal if math.isfinite(signal) else None, delta_rms=delta,
                grad_norm=gn, weight_grad_norm=wgn, weight_norm=wn, update_ratio=ratio,
                identical_units=identical,
            ))
            arrays.append({"preact": z, "act": a, "grad": dW})

        top_prob = top_rows = None
        probs = None
        if num_classes is not None and finite_fwd:
            zz = logits.astype(np.float64)
            zz -= zz.max(axis=1, keepdims=True)
            probs = np.exp(zz)
            probs /= probs.sum(axis=1, keepdims=True)
            top_rows = probs.max(axis=1)
            top_prob = float(top_rows.mean())

        grad_ratio = None
        if L >= 2 and layers[0].weight_grad_norm is not None:
            first, last = layers[0].weight_grad_norm, layers[-1].weight_grad_norm
            if last > 0:
                grad_ratio = first / last
        growth = None
        if L >= MIN_GROWTH_LAYERS:
            s0, s1 = layers[0].signal, layers[-1].signal
            if s0 is not None and s1 is not None and s0 > 0:
                growth = (s1 / s0) ** (1.0 / (L - 1))

    findings = _findings(layers, value, num_classes, top_prob, probs, grad_ratio, growth, m,
                         lr)
    return Report(layers, findings, value, m, num_classes, lr, grad_ratio, growth, top_prob,
                  arrays, top_rows)


def _describe(s: LayerStats) -> str:
    return f"{s.name} ({s.in_features}->{s.out_features}{', ReLU' if s.relu else ''})"


def _findings(layers, value, num_classes, top_prob, probs, grad_ratio, growth, m, lr):
    out: List[Finding] = []

    def add(kind, layer, message):
        out.append(Finding(kind, layer, message, _REMEDIES[kind]))

    # Non-finite values: name the first place they appear, forward then backward.
    where = None
    for s in layers:
        if s.preact.nonfinite_fraction or s.act.nonfinite_fraction:
            where = (s.index, f"{s.preact.nonfinite_fraction:.0%} of the pre-activations of "
                              f"{_describe(s)} are NaN or infinite")
            break
    if where is None and not math.isfinite(value):
        where = (None, f"the loss is {value}")
    if where is None:
        for s in reversed(layers):
            if s.grad is not None and s.grad.nonfinite_fraction:
                where = (s.index, f"{s.grad.nonfinite_fraction:.0%} of the weight gradients of "
                                  f"{_describe(s)} are NaN or infinite")
                break
    if where is not None:
        add("non_finite", where[0], where[1] + "; nothing computed from them is meaningful")

    for s in layers:
        if s.identical_units:
            add("symmetric", s.index,
                f"all {s.out_features} units of {_describe(s)} are identical (same incoming and "
                f"outgoing weights), so they get identical gradients and stay identical: the "
                f"layer acts as one unit")
    for s in layers:
        if not s.relu:
            continue
        if s.dead_units == s.out_features or (m >= MIN_DEAD_BATCH and
                                              s.dead_fraction >= DEAD_FRACTION):
            what = ("the layer is dead" if s.dead_units == s.out_features
                    else "most of the layer is dead")
            add("dead", s.index,
                f"{s.dead_units} of {s.out_features} ReLU units of {_describe(s)} output 0 for "
                f"all {m} samples ({what}); ReLU passes no gradient where z <= 0, so their "
                f"incoming weights never change")

    first = layers[0]
    delta_ratio = None
    if first.delta_rms is not None and layers[-1].delta_rms:
        delta_ratio = first.delta_rms / layers[-1].delta_rms
    if grad_ratio is not None and grad_ratio < VANISHING_GRAD_RATIO:
        add("vanishing_gradients", 0,
            f"the first layer's weight gradient |dW| = {_g(first.weight_grad_norm)} is "
            f"{_g(grad_ratio)} times the last layer's ({_g(layers[-1].weight_grad_norm)}); "
            f"the early layers barely learn")
    elif (len(layers) >= 2 and first.update_ratio is not None and first.weight_norm > 0
          and 0 < lr and 0 < first.update_ratio < UPDATE_RATIO_LOW
          and delta_ratio is not None and delta_ratio < VANISHING_GRAD_RATIO):
        add("vanishing_gradients", 0,
            f"the error signal dL/dz reaching {_describe(first)} is {_g(delta_ratio)} times "
            f"the one at the output, and one SGD step (lr {_g(lr)}) changes the layer by "
            f"{_g(first.update_ratio)} of its weights (about 1e-3 is healthy): the early "
            f"layers barely learn")
    if growth is not None and growth > GROWTH_HIGH:
        add("exploding_activations", None,
            f"the input-dependent signal grows {_g(growth)}x per layer (std over the batch "
            f"{_g(layers[0].signal)} in {layers[0].name} to {_g(layers[-1].signal)} in "
            f"{layers[-1].name}); the logits reach {_g(layers[-1].preact.max)}")
    if growth is not None and growth < GROWTH_LOW:
        add("vanishing_activations", None,
            f"the input-dependent signal shrinks to {_g(growth)}x per layer (std over the batch "
            f"{_g(layers[0].signal)} in {layers[0].name} to {_g(layers[-1].signal)} in "
            f"{layers[-1].name}): the output barely depends on the input")

    if num_classes and top_prob is not None and math.isfinite(value):
        ln_c = math.log(num_classes)
        if top_prob <= UNIFORM_TOP_PROB / num_classes:
            add("uniform_softmax", len(layers) - 1,
                f"the softmax is uniform: mean top probability {top_prob:.4f} for "
                f"{num_classes} classes, loss {value:.4f} vs ln {num_classes} = {ln_c:.4f}")
        else:
            sat = float((probs.max(axis=1) > SATURATED_PROB).mean())
            if sat >= SATURATED_FRACTION and value > ln_c:
                add("saturated_softmax", len(layers) - 1,
                    f"the softmax is saturated: {sat:.0%} of the samples get a top probability "
                    f"above {SATURATED_PROB} yet the loss is {_g(value)} > ln {num_classes} = "
                    f"{ln_c:.4f} (over-confident and wrong; logits up to "
                    f"{_g(layers[-1].preact.max)})")
    return out


def check_initialization(model, x, y, loss=None) -> List[Finding]:
    """The findings that say a model cannot learn as initialised.

    Runs :func:`diagnose` and keeps the kinds in :data:`INIT_KINDS`: non-finite values,
    symmetric or dead layers, vanishing gradients, vanishing or exploding activations (a
    uniform softmax is the normal starting point, so it is left out).

    Args:
        model: a :class:`fastdense.Sequential`.
        x: a batch of inputs (a few hundred rows are plenty).
        y: its labels or targets.
        loss: as in :func:`diagnose`.

    Returns:
        a list of :class:`Finding`, empty when nothing is wrong.

    Example:
        >>> import numpy as np, fastdense
        >>> model = fastdense.MLP([784, 100, 10], kernel_init="zeros")
        >>> x = np.random.default_rng(0).random((64, 784), dtype=np.float32)
        >>> [f.kind for f in check_initialization(model, x, np.arange(64) % 10)]
        ['symmetric', 'dead']
    """
    return [f for f in diagnose(model, x, y, loss=loss).findings if f.kind in INIT_KINDS]


def warn_initialization(model, x, y, *, max_rows=256, stacklevel=3) -> List[Finding]:
    """Run :func:`check_initialization` on the first ``max_rows`` rows and warn once, with one
    :class:`InitializationWarning` that lists every finding and its remedy. Meant for
    ``Sequential.fit``; returns the findings.

    Args:
        model: the model about to be trained.
        x, y: the training data (checked and converted already).
        max_rows: rows to diagnose. Default: 256.
        stacklevel: passed to :func:`warnings.warn`; 3 points at the caller of ``fit``.

    Example:
        >>> import numpy as np, fastdense
        >>> model = fastdense.MLP([784, 100, 10], kernel_init="zeros")
        >>> x = np.random.default_rng(0).random((64, 784), dtype=np.float32)
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     kinds = [f.kind for f in warn_initialization(model, x, np.arange(64) % 10)]
        >>> len(w), w[0].category.__name__
        (1, 'InitializationWarning')
    """
    found = check_initialization(model, x[:max_rows], y[:max_rows], loss=model.loss)
    if found:
        lines = [f"this model cannot learn as initialised ({', '.join(f.kind for f in found)}):"]
        for f in found:
            lines.append(f"  - {f.message}; remedy: {f.remedy}")
        lines.append("(fastdense.diagnostics.diagnose(model, x, y) shows the numbers; "
                     "fit(..., diagnose=False) skips this check)")
        warnings.warn("\n".join(lines), InitializationWarning, stacklevel=stacklevel)
    return found
