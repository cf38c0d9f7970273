r"""Losses with their gradients: softmax cross-entropy from logits, and mean squared error.

Every loss object has ``loss(outputs, targets)`` (the value) and
``loss.value_and_grad(outputs, targets, grad_out=None)`` (the value and
:math:`\partial\,\text{loss} / \partial\,\text{outputs}`, written into ``grad_out`` when it is
given, so a training loop can reuse one buffer). Values are Python floats for the ``"mean"``
and ``"sum"`` reductions and float32 arrays for ``"none"``; gradients are float32 arrays shaped
like ``outputs`` (for ``"none"``, the gradient of the sum of the unreduced losses).

Cross-entropy with integer labels and no label smoothing, the common training case, runs as
one fused call into the C++ core; the other cases use a numerically stable numpy
log-softmax.

Example:
    >>> import numpy as np
    >>> from fastdense import losses
    >>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    >>> loss = losses.get("sparse_categorical_crossentropy")
    >>> value, grad = loss.value_and_grad(logits, np.array([0, 2]))
    >>> round(value, 6), grad.shape, grad.dtype
    (0.669079, (2, 3), dtype('float32'))
"""

import numbers
import warnings

import numpy as np

from fastdense import _core

__all__ = [
    "Loss",
    "SoftmaxCrossEntropy",
    "CrossEntropy",
    "MeanSquaredError",
    "softmax_cross_entropy",
    "mean_squared_error",
    "get",
]

_F32 = np.float32
_F64 = np.float64
_REDUCTIONS = ("mean", "sum", "none")
# Keras spells "mean" as "sum_over_batch_size"; accepted so Keras configs load.
_REDUCTION_ALIASES = {"sum_over_batch_size": "mean"}
# Row sums this close to 1 (with all entries in [0, 1]) look like probabilities.
_PROB_SUM_TOL = 1e-3


# ---------------------------------------------------------------------------- validation


def _check_reduction(reduction):
    if isinstance(reduction, str):
        reduction = _REDUCTION_ALIASES.get(reduction, reduction)
        if reduction in _REDUCTIONS:
            return reduction
    raise ValueError(
        f"Argument `reduction` must be one of {list(_REDUCTIONS)}. "
        f"Received: reduction={reduction!r}"
    )


def _check_label_smoothing(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            "Argument `label_smoothing` must be a float in [0, 1). "
            f"Received: label_smoothing={value!r} (of type {type(value).__name__})"
        )
    v = float(value)
    if not (0.0 <= v < 1.0):  # also rejects NaN
        raise ValueError(
            f"Argument `label_smoothing` must be in [0, 1). Received: label_smoothing={value!r}"
        )
    return v


def _check_finite(x, who, name):
    finite = np.isfinite(x)
    if not finite.all():
        idx = np.unravel_index(int(np.argmax(~finite)), x.shape)
        where = "[" + ", ".join(str(int(i)) for i in idx) + "]"
        raise ValueError(
            f"{who}: argument `{name}` contains non-finite values; the first is "
            f"{name}{where} = {float(x[idx])!r}"
        )


def _float_array(x, who, name, min_ndim=1):
    """``x`` as a C-contiguous float32 array (no copy when it already is one), checked to be a
    non-empty floating array of finite values."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{who}: argument `{name}` must be a numpy array. Received: {type(x).__name__}"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"{who}: argument `{name}` must have a floating dtype. Received: dtype {x.dtype}"
        )
    if x.ndim < min_ndim:
        raise ValueError(
            f"{who}: argument `{name}` must have at least {min_ndim} dimension(s). "
            f"Received: shape {x.shape}"
        )
    if x.size == 0:
        raise ValueError(
            f"{who}: argument `{name}` is empty (shape {x.shape}); an empty batch has no loss"
        )
    x = np.ascontiguousarray(x, dtype=_F32)
    _check_finite(x, who, name)
    return x


def _grad_buffer(grad_out, shape, who, inputs):
    """A new float32 array of ``shape``, or ``grad_out`` after checking it can be written."""
    if grad_out is None:
        return np.empty(shape, _F32)
    if not isinstance(grad_out, np.ndarray) or grad_out.dtype != _F32:
        got = grad_out.dtype if isinstance(grad_out, np.ndarray) else type(grad_out).__name__
        raise TypeError(
            f"{who}: argument `grad_out` must be a float32 numpy array. Received: {got}"
        )
    if grad_out.shape != tuple(shape):
        raise ValueError(
            f"{who}: argument `grad_out` must have the shape of `outputs` {tuple(shape)}. "
            f"Received: shape {grad_out.shape}"
        )
    if not grad_out.flags.c_contiguous or not grad_out.flags.writeable:
        raise ValueError(f"{who}: argument `grad_out` must be C-contiguous and writeable")
    for name, arr in inputs:
        # Contiguous buffers: overlapping address ranges means shared memory.
        if np.may_share_memory(grad_out, arr):
            raise ValueError(
                f"{who}: argument `grad_out` shares memory with `{name}`; pass a separate buffer"
            )
    return grad_out


def _reduce(row_losses64, reduction):
    """Reduces float64 per-sample losses; "none" returns them as float32."""
    if reduction == "mean":
        return float(row_losses64.mean())
    if reduction == "sum":
        return float(row_losses64.sum())
    return row_losses64.astype(_F32)


# ---------------------------------------------------------------------------------- losses


class Loss:
    """Base class: subclasses implement :meth:`value_and_grad` (and may override
    :meth:`__call__` with a cheaper value-only path).

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``. Default: ``"mean"``
    """

    name = None  # the registry name, recorded by get_config

    def __init__(self, reduction="mean"):
        self.reduction = _check_reduction(reduction)

    def __call__(self, outputs, targets):
        return self.value_and_grad(outputs, targets)[0]

    def value_and_grad(self, outputs, targets, grad_out=None):
        raise NotImplementedError

    def get_config(self):
        """JSON-serialisable constructor arguments plus ``"name"``; :func:`get` rebuilds."""
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("name", None)
        return cls(**config)

    def __repr__(self):
        conf = self.get_config()
        conf.pop("name")
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in conf.items()) + ")"


class SoftmaxCrossEntropy(Loss):
    r"""Cross-entropy between ``softmax(outputs)`` and the targets, from raw logits.

    For logits :math:`z_i \in \mathbb{R}^C` and a target distribution :math:`t_i`,

    .. math::
        \ell_i = -\sum_j t_{ij} \log \operatorname{softmax}(z_i)_j
               = \Big(\sum_j t_{ij}\Big) \operatorname{logsumexp}(z_i) - \sum_j t_{ij} z_{ij},
        \qquad \frac{\partial \ell_i}{\partial z_{ij}}
               = \operatorname{softmax}(z_i)_j \sum_k t_{ik} - t_{ij}

    where the targets are either integer class labels :math:`y_i` (:math:`t_i` one-hot, as
    Keras's ``sparse_categorical_crossentropy`` and PyTorch's ``cross_entropy`` with class
    indices) or float one-hot/probability rows, and with label smoothing :math:`\varepsilon`
    they become :math:`t_i (1 - \varepsilon) + \varepsilon / C` (Keras and PyTorch agree).
    The log-softmax is computed stably (shifted by the row maximum, never ``log(softmax)``),
    so logits of any finite size work.

    ``outputs`` must be logits, not probabilities: if every row is in [0, 1] and sums to 1, a
    ``UserWarning`` says so (once per loss object).

    Args:
        label_smoothing: :math:`\varepsilon` in [0, 1). Default: 0.0
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` (per-sample losses,
            shape ``(M,)``). Default: ``"mean"``

    Examples:
        >>> import numpy as np
        >>> loss = SoftmaxCrossEntropy(label_smoothing=0.1)
        >>> logits = np.zeros((4, 10), np.float32)
        >>> round(loss(logits, np.array([1, 2, 3, 4])), 5)  # log(10) for uniform logits
        2.30259
    """

    name = "softmax_cross_entropy"

    def __init__(self, label_smoothing=0.0, reduction="mean"):
        super().__init__(reduction)
        self.label_smoothing = _check_label_smoothing(label_smoothing)
        self._warned_probabilities = False

    def get_config(self):
        return {"name": self.name, "label_smoothing": self.label_smoothing,
                "reduction": self.reduction}

    # -- input checks ------------------------------------------------------------------------

    def _prepare(self, outputs, targets):
        """Returns (logits float32 (M, C), labels or None, dense targets float32 or None)."""
        who = type(self).__name__
        z = _float_array(outputs, who, "outputs", min_ndim=2)
        if z.ndim != 2:
            raise ValueError(
                f"{who}: argument `outputs` must be logits of shape (M, C). "
                f"Received: shape {z.shape}"
            )
        M, C = z.shape
        self._maybe_warn_probabilities(z)
        if not isinstance(targets, np.ndarray):
            raise TypeError(
                f"{who}: argument `targets` must be a numpy array of integer labels (M,) or "
                f"of float targets (M, C). Received: {type(targets).__name__}"
            )
        t = targets
        is_int = np.issubdtype(t.dtype, np.integer)
        if is_int and (t.ndim == 1 or (t.shape == (M, 1) and C != 1)):
            labels = t.reshape(-1)
            if labels.shape[0] != M:
                raise ValueError(
                    f"{who}: argument `targets` must hold one label per row of `outputs` "
                    f"(shape {z.shape}), i.e. shape ({M},). Received: shape {t.shape}"
                )
            lo, hi = labels.min(), labels.max()
            if lo < 0 or hi >= C:
                bad = (labels < 0) | (labels >= C)
                i = int(np.argmax(bad))
                raise ValueError(
                    f"{who}: `targets[{i}]` = {int(labels[i])} is out of range [0, {C}) for "
                    f"{C} classes"
                )
            if labels.dtype not in (np.int32, np.int64):
                labels = labels.astype(np.int64)  # e.g. uint8 labels; the kernel reads i32/i64
            return z, np.ascontiguousarray(labels), None
        if t.ndim == 1:
            raise TypeError(
                f"{who}: argument `targets` of shape {t.shape} must hold integer class labels. "
                f"Received: dtype {t.dtype} (use .astype(numpy.int64), or pass (M, C) "
                "one-hot/probability targets)"
            )
        if not (np.issubdtype(t.dtype, np.number) or t.dtype == np.bool_):
            raise TypeError(
                f"{who}: argument `targets` must be numeric. Received: dtype {t.dtype}"
            )
        if t.shape != z.shape:
            raise ValueError(
                f"{who}: argument `targets` must be integer labels of shape ({M},) or "
                f"one-hot/probability targets of the shape of `outputs` {z.shape}. "
                f"Received: shape {t.shape}"
            )
        t = np.ascontiguousarray(t, dtype=_F32)
        _check_finite(t, who, "targets")
        return z, None, t

    def _maybe_warn_probabilities(self, z):
        if self._warned_probabilities or z.shape[1] < 2:
            return
        if z.min() < 0.0 or z.max() > 1.0:  # the cheap test that almost always decides
            return
        row_sums = z.sum(axis=1, dtype=_F64)
        if np.all(np.abs(row_sums - 1.0) <= _PROB_SUM_TOL):
            self._warned_probabilities = True
            warnings.warn(
                f"{type(self).__name__} expects raw logits (unnormalised scores), but every row "
                "of `outputs` is in [0, 1] and sums to 1, so they look like probabilities. The "
                "loss applies softmax itself; applying it twice gives wrong values and "
                "vanishing gradients. Remove the final softmax from the model.",
                UserWarning,
                stacklevel=4,
            )

    # -- computation -------------------------------------------------------------------------

    def __call__(self, outputs, targets):
        """The loss value: a float, or float32 per-sample losses (M,) for reduction "none"."""
        z, labels, t = self._prepare(outputs, targets)
        if labels is not None and self.label_smoothing == 0.0:
            mean, losses = _core.softmax_xent_forward(z, labels)
            return self._reduce_kernel(mean, losses)
        return _reduce(self._numpy(z, labels, t, None), self.reduction)

    def value_and_grad(self, outputs, targets, grad_out=None):
        """The loss value and its gradient with respect to ``outputs`` (float32, (M, C)).

        Args:
            outputs: logits (M, C), floating (converted to float32).
            targets: integer labels (M,) or float targets (M, C).
            grad_out: optional float32 C-contiguous (M, C) buffer the gradient is written to
                (and returned). Default: ``None``
        """
        z, labels, t = self._prepare(outputs, targets)
        M = z.shape[0]
        if labels is not None and self.label_smoothing == 0.0:
            g = _grad_buffer(grad_out, z.shape, type(self).__name__,
                             [("outputs", z), ("targets", labels)])
            scale = 1.0 / M if self.reduction == "mean" else 1.0
            mean, losses, g = _core.softmax_xent_backward(z, labels, dlogits=g, grad_scale=scale)
            return self._reduce_kernel(mean, losses), g
        inputs = [("outputs", z)] + ([("targets", t)] if t is not None else [])
        g = _grad_buffer(grad_out, z.shape, type(self).__name__, inputs)
        rows = self._numpy(z, labels, t, g)
        return _reduce(rows, self.reduction), g

    def _reduce_kernel(self, mean, losses):
        if self.reduction == "mean":
            return float(mean)  # the kernel's mean is already summed in double
        if self.reduction == "sum":
            return float(losses.sum(dtype=_F64))
        return losses

    def _numpy(self, z, labels, t, grad):
        """Per-sample losses (float64, (M,)); writes the gradient into ``grad`` unless None.

        Float32 elementwise work with float64 row sums: the shifted logits s = z - max are
        exact enough in float32, while sums over C terms and the log-sum-exp are where
        cancellation and rounding accumulate.
        """
        M, C = z.shape
        eps = self.label_smoothing
        s = z - z.max(axis=1, keepdims=True)  # <= 0, with a 0 in every row
        e = np.exp(s)  # in (0, 1]; underflow to 0 is harmless
        sumexp = e.sum(axis=1, dtype=_F64)  # >= 1
        lse = np.log(sumexp)  # logsumexp(z) - max(z)
        if labels is not None:
            # t = (1 - eps) onehot + eps / C sums to 1, so l = lse - sum_j t_j s_j.
            rows_idx = np.arange(M)
            ts = (1.0 - eps) * s[rows_idx, labels].astype(_F64)
            if eps:
                ts += (eps / C) * s.sum(axis=1, dtype=_F64)
            losses = lse - ts
            tsum = None
        else:
            # t = (1 - eps) T + eps / C need not sum to 1 (PyTorch and Keras do not require it).
            tsum = t.sum(axis=1, dtype=_F64)
            ts = (t * s).sum(axis=1, dtype=_F64)
            if eps:
                tsum = (1.0 - eps) * tsum + eps
                ts = (1.0 - eps) * ts + (eps / C) * s.sum(axis=1, dtype=_F64)
            losses = lse * tsum - ts
        if grad is not None:
            scale = 1.0 / M if self.reduction == "mean" else 1.0
            if tsum is None:
                # (softmax - t) * scale, with the softmax's 1/sumexp folded into the scale.
                np.multiply(e, (scale / sumexp).astype(_F32)[:, None], out=grad)
                grad[rows_idx, labels] -= _F32((1.0 - eps) * scale)
                if eps:
                    grad -= _F32(eps / C * scale)
            else:
                np.multiply(e, (scale * tsum / sumexp).astype(_F32)[:, None], out=grad)
                if eps:
                    grad -= t * _F32((1.0 - eps) * scale) + _F32(eps / C * scale)
                else:
                    grad -= t * _F32(scale) if scale != 1.0 else t
        return losses


CrossEntropy = SoftmaxCrossEntropy


class MeanSquaredError(Loss):
    r"""Squared error between outputs and targets of the same shape.

    .. math::
        \ell = \frac{1}{N} \sum_k (y_k - t_k)^2, \qquad
        \frac{\partial \ell}{\partial y_k} = \frac{2 (y_k - t_k)}{N}

    with :math:`N` the number of elements (``"mean"``, as Keras's and PyTorch's ``"mean"``:
    the mean over all elements, not per sample then over the batch, which is the same value);
    ``"sum"`` drops the :math:`1/N`; ``"none"`` returns the elementwise squared errors, shaped
    like ``outputs``, as PyTorch's ``mse_loss`` does.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``. Default: ``"mean"``

    Examples:
        >>> import numpy as np
        >>> y = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
        >>> MeanSquaredError()(y, np.zeros((2, 2)))
        7.5
    """

    name = "mean_squared_error"

    def _diff(self, outputs, targets, out):
        who = type(self).__name__
        y = _float_array(outputs, who, "outputs")
        if not isinstance(targets, np.ndarray):
            raise TypeError(
                f"{who}: argument `targets` must be a numpy array. "
                f"Received: {type(targets).__name__}"
            )
        if not (np.issubdtype(targets.dtype, np.number) or targets.dtype == np.bool_):
            raise TypeError(
                f"{who}: argument `targets` must be numeric. Received: dtype {targets.dtype}"
            )
        if targets.shape != y.shape:
            raise ValueError(
                f"{who}: argument `targets` must have the shape of `outputs` {y.shape}. "
                f"Received: shape {targets.shape} (no broadcasting; reshape it explicitly)"
            )
        if np.issubdtype(targets.dtype, np.inexact):
            _check_finite(targets, who, "targets")
        d = _grad_buffer(out, y.shape, who, [("outputs", y), ("targets", targets)])
        # Subtracting in float32 (targets cast first) is what a float32 model would do.
        np.subtract(y, targets.astype(_F32, copy=False), out=d)
        return d

    def __call__(self, outputs, targets):
        """The loss value: a float, or float32 squared errors for reduction "none"."""
        d = self._diff(outputs, targets, None)
        if self.reduction == "none":
            return np.multiply(d, d, out=d)
        ssq = _core.sum_squares([d])[0]  # double accumulation
        return ssq / d.size if self.reduction == "mean" else ssq

    def value_and_grad(self, outputs, targets, grad_out=None):
        """The loss value and its gradient with respect to ``outputs`` (float32).

        Args:
            outputs: predictions, any floating array (converted to float32).
            targets: numbers of the same shape.
            grad_out: optional float32 C-contiguous buffer of that shape for the gradient.
                Default: ``None``
        """
        d = self._diff(outputs, targets, grad_out)
        if self.reduction == "none":
            value = d * d
        else:
            ssq = _core.sum_squares([d])[0]
            value = ssq / d.size if self.reduction == "mean" else ssq
        d *= _F32(2.0 / d.size) if self.reduction == "mean" else _F32(2.0)
        return value, d


# -------------------------------------------------------------------------- functional forms


def softmax_cross_entropy(logits, targets, label_smoothing=0.0, reduction="mean"):
    """Softmax cross-entropy from logits; see :class:`SoftmaxCrossEntropy`.

    Args:
        logits: (M, C) floating array.
        targets: integer labels (M,) or float targets (M, C).
        label_smoothing: in [0, 1). Default: 0.0
        reduction: ``"mean"``, ``"sum"`` or ``"none"``. Default: ``"mean"``

    Examples:
        >>> import numpy as np
        >>> round(softmax_cross_entropy(np.zeros((2, 4), np.float32), np.array([0, 3])), 6)
        1.386294
    """
    return SoftmaxCrossEntropy(label_smoothing, reduction)(logits, targets)


def mean_squared_error(outputs, targets, reduction="mean"):
    """Mean squared error; see :class:`MeanSquaredError`.

    Args:
        outputs: floating array.
        targets: array of the same shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``. Default: ``"mean"``

    Examples:
        >>> import numpy as np
        >>> mean_squared_error(np.ones(4, np.float32), np.zeros(4))
        1.0
    """
    return MeanSquaredError(reduction)(outputs, targets)


# --------------------------------------------------------------------------------- registry

_REGISTRY = {
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "cross_entropy": SoftmaxCrossEntropy,
    "sparse_categorical_crossentropy": SoftmaxCrossEntropy,
    "categorical_crossentropy": SoftmaxCrossEntropy,
    "SoftmaxCrossEntropy": SoftmaxCrossEntropy,
    "CrossEntropy": SoftmaxCrossEntropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "MeanSquaredError": MeanSquaredError,
}
_FUNCTIONS = {softmax_cross_entropy: SoftmaxCrossEntropy, mean_squared_error: MeanSquaredError}


def get(identifier):
    """Resolves a loss from a name, a config dict, a loss object or class, or a callable.

    Names: ``"softmax_cross_entropy"``, ``"cross_entropy"``,
    ``"sparse_categorical_crossentropy"``, ``"categorical_crossentropy"`` (all softmax
    cross-entropy **from logits**; integer or one-hot targets are both accepted), ``"mse"``,
    ``"mean_squared_error"``, and the class names. A dict is a :meth:`Loss.get_config` output.
    A loss object, or any object with a ``value_and_grad(outputs, targets, grad_out=None)``
    method, is returned as is; this module's functional forms map to their classes. A plain
    callable without ``value_and_grad`` is rejected: training needs the gradient, and there is
    no automatic differentiation here.

    Args:
        identifier: what to resolve.

    Examples:
        >>> get("mse")
        MeanSquaredError(reduction='mean')
        >>> get({"name": "cross_entropy", "label_smoothing": 0.1})
        SoftmaxCrossEntropy(label_smoothing=0.1, reduction='mean')
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        if identifier not in _REGISTRY:
            raise ValueError(
                f"Unknown loss {identifier!r}. Valid names: {sorted(_REGISTRY)}"
            )
        return _REGISTRY[identifier]()
    if isinstance(identifier, dict):
        name = identifier.get("name")
        if name not in _REGISTRY:
            raise ValueError(
                f"Unknown loss name {name!r} in config {identifier!r}. "
                f"Valid names: {sorted(_REGISTRY)}"
            )
        return _REGISTRY[name].from_config(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    try:
        if identifier in _FUNCTIONS:
            return _FUNCTIONS[identifier]()
    except TypeError:  # unhashable
        pass
    if callable(getattr(identifier, "value_and_grad", None)):
        return identifier
    if callable(identifier):
        raise TypeError(
            f"Cannot use {identifier!r} as a loss: it has no "
            "`value_and_grad(outputs, targets, grad_out=None)` method, which training needs "
            "(fastdense has no automatic differentiation). Subclass fastdense.losses.Loss."
        )
    raise TypeError(
        "Argument `identifier` must be a loss name, config dict, Loss object or class. "
        f"Received: {identifier!r} (of type {type(identifier).__name__})"
    )
