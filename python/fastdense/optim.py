r"""Optimizers: stochastic gradient descent on the C++ core, with learning-rate schedules.

:class:`SGD` updates a list of float32 arrays in place with PyTorch's rule. One training step
makes one call into the compiled core for all the arrays (two when gradient-norm clipping is
on: one to measure the norms, one to update), and allocates nothing but a few short Python
lists; momentum buffers are allocated once, on the first step that needs them.

Learning-rate schedules are small callables ``schedule(step) -> lr`` of the 0-based step
count; pass one as ``lr``. The CamelCase class names (``CosineDecay``) and the snake_case
names (``cosine_decay``) are the same classes.

Example:
    >>> import numpy as np
    >>> from fastdense import optim
    >>> w = np.ones(3, np.float32)
    >>> opt = optim.SGD([w], lr=optim.step_decay(0.1, factor=0.5, every=10), momentum=0.9)
    >>> opt.step([np.full(3, 2.0, np.float32)])
    >>> w.tolist(), opt.iterations
    ([0.800000011920929, 0.800000011920929, 0.800000011920929], 1)
"""

import math
import numbers

import numpy as np

from fastdense import _core
from fastdense import _memory

__all__ = [
    "SGD",
    "StepDecay",
    "ExponentialDecay",
    "CosineDecay",
    "step_decay",
    "exponential_decay",
    "cosine_decay",
]

# Added to gradient norms before dividing, as torch.nn.utils.clip_grad_norm_ and Keras do, so
# that an all-zero gradient gives a coefficient of 1 rather than a division by zero.
_NORM_EPS = 1e-6


# ------------------------------------------------------------------------- argument checks


def _number(name, value):
    """``value`` as a float; TypeError naming ``name`` unless it is a real number (not bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a number. Received: {name}={value!r} "
            f"(of type {type(value).__name__})"
        )
    return float(value)


def _finite(name, value):
    v = _number(name, value)
    if not math.isfinite(v):
        raise ValueError(f"Argument `{name}` must be a finite number. Received: {name}={value!r}")
    return v


def _at_least(name, value, low):
    v = _finite(name, value)
    if v < low:
        raise ValueError(f"Argument `{name}` must be >= {low:g}. Received: {name}={value!r}")
    return v


def _positive(name, value):
    v = _finite(name, value)
    if v <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")
    return v


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r} "
            f"(of type {type(value).__name__})"
        )
    if value < 1:
        raise ValueError(f"Argument `{name}` must be >= 1. Received: {name}={value!r}")
    return int(value)


# ------------------------------------------------------------------------------ schedules


class _Schedule:
    """Base of the built-in schedules: a callable of the step with a JSON-able config."""

    name = None  # the registry name, recorded by SGD.get_config

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self), tuple(sorted(self.get_config().items()))))


class StepDecay(_Schedule):
    r"""Multiplies the learning rate by ``factor`` every ``every`` steps (PyTorch's ``StepLR``).

    .. math::
        \text{lr}(t) = \text{initial} \cdot \text{factor}^{\lfloor t / \text{every} \rfloor}

    Args:
        initial: the learning rate at step 0 (>= 0).
        factor: the multiplier applied every ``every`` steps (> 0). Default: 0.1
        every: the number of steps between decays (>= 1). Default: 1000

    Examples:
        >>> s = step_decay(0.1, factor=0.5, every=10)
        >>> s(0), s(9), s(10), s(25)
        (0.1, 0.1, 0.05, 0.025)
    """

    name = "step_decay"

    def __init__(self, initial, factor=0.1, every=1000):
        self.initial = _at_least("initial", initial, 0)
        self.factor = _positive("factor", factor)
        self.every = _positive_int("every", every)

    def __call__(self, step):
        return self.initial * self.factor ** (int(step) // self.every)

    def get_config(self):
        return {"initial": self.initial, "factor": self.factor, "every": self.every}


class ExponentialDecay(_Schedule):
    r"""Decays the learning rate by ``rate`` every ``steps`` steps, smoothly (Keras's
    ``ExponentialDecay``).

    .. math::
        \text{lr}(t) = \text{initial} \cdot \text{rate}^{t / \text{steps}}

    with the exponent rounded down when ``staircase`` is true.

    Args:
        initial: the learning rate at step 0 (>= 0).
        rate: the decay over ``steps`` steps (> 0). Default: 0.96
        steps: the number of steps over which the rate is applied once (>= 1). Default: 1000
        staircase: decay in discrete jumps. Default: ``False``

    Examples:
        >>> s = exponential_decay(1.0, rate=0.5, steps=100)
        >>> s(0), s(100), round(s(50), 6)
        (1.0, 0.5, 0.707107)
    """

    name = "exponential_decay"

    def __init__(self, initial, rate=0.96, steps=1000, staircase=False):
        self.initial = _at_least("initial", initial, 0)
        self.rate = _positive("rate", rate)
        self.steps = _positive_int("steps", steps)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = int(step) / self.steps
        return self.initial * self.rate ** (math.floor(p) if self.staircase else p)

    def get_config(self):
        return {
            "initial": self.initial,
            "rate": self.rate,
            "steps": self.steps,
            "staircase": self.staircase,
        }


class CosineDecay(_Schedule):
    r"""Half a cosine from ``initial`` down to ``final`` over ``total_steps``, then ``final``
    (PyTorch's ``CosineAnnealingLR`` without restarts; Keras's ``CosineDecay`` with
    ``alpha = final / initial``).

    .. math::
        \text{lr}(t) = \text{final} + \tfrac12 (\text{initial} - \text{final})
                       \left(1 + \cos\left(\pi \min(t, T) / T\right)\right)

    Args:
        initial: the learning rate at step 0 (>= 0).
        total_steps: T, the step at which ``final`` is reached (>= 1).
        final: the learning rate from step T on (>= 0). Default: 0.0

    Examples:
        >>> s = cosine_decay(0.1, total_steps=100)
        >>> s(0), round(s(50), 6), s(100), s(1000)
        (0.1, 0.05, 0.0, 0.0)
    """

    name = "cosine_decay"

    def __init__(self, initial, total_steps, final=0.0):
        self.initial = _at_least("initial", initial, 0)
        self.total_steps = _positive_int("total_steps", total_steps)
        self.final = _at_least("final", final, 0)

    def __call__(self, step):
        t = min(int(step), self.total_steps)
        if t >= self.total_steps:
            return self.final  # exactly, not final + a rounding residue of cos(pi)
        cos = 0.5 * (1.0 + math.cos(math.pi * t / self.total_steps))
        return self.final + (self.initial - self.final) * cos

    def get_config(self):
        return {"initial": self.initial, "total_steps": self.total_steps, "final": self.final}


step_decay = StepDecay
exponential_decay = ExponentialDecay
cosine_decay = CosineDecay

_SCHEDULES = {cls.name: cls for cls in (StepDecay, ExponentialDecay, CosineDecay)}


def _schedule_from_config(config):
    name = config.get("schedule")
    if name not in _SCHEDULES:
        raise ValueError(
            f"Unknown learning-rate schedule {name!r}; expected one of {sorted(_SCHEDULES)}"
        )
    return _SCHEDULES[name](**config.get("config", {}))


# ----------------------------------------------------------------------------------- SGD


class SGD:
    r"""Stochastic gradient descent with momentum, Nesterov momentum, weight decay and gradient
    clipping, updating float32 arrays in place with PyTorch's rule.

    For each parameter :math:`\theta` with gradient :math:`g` at step :math:`t` (0-based), with
    learning rate :math:`\gamma_t`, momentum :math:`\mu`, dampening :math:`\tau` and weight decay
    :math:`\lambda`:

    .. math::
        \begin{aligned}
            & g \leftarrow s \cdot g, \quad \text{then clamped to } [-c, c]
                \text{ if clipvalue} = c                                          \\
            & g \leftarrow g + \lambda \theta                                     \\
            & \textbf{if } \mu \neq 0:                                            \\
            & \quad b_t \leftarrow g \text{ if } t = 0
                \text{ else } \mu b_{t-1} + (1 - \tau) g                          \\
            & \quad g \leftarrow g + \mu b_t \text{ if nesterov else } b_t        \\
            & \theta \leftarrow \theta - \gamma_t g
        \end{aligned}

    where :math:`s` is 1 unless norm clipping is on: with ``clipnorm`` :math:`c` each tensor
    gets :math:`s_i = \min(1, c / (\lVert g_i \rVert + 10^{-6}))`, and with
    ``global_clipnorm`` :math:`c` every tensor gets
    :math:`s = \min(1, c / (\lVert (g_1, \dots, g_n) \rVert + 10^{-6}))`, the norm of all
    gradients together (``torch.nn.utils.clip_grad_norm_``). The scale is applied inside the
    update; the gradient arrays passed to :meth:`step` are never modified. A non-finite norm
    makes the coefficient NaN or 0, as in PyTorch, so the update is not silently skipped.

    This is exactly ``torch.optim.SGD`` (plus clipping), and it differs from two other common
    formulations:

    * Keras/TensorFlow's ``SGD`` keeps a velocity with the learning rate inside it,
      :math:`v \leftarrow \mu v - \gamma g,\ \theta \leftarrow \theta + v`. With a constant
      learning rate the two agree (:math:`v = -\gamma b`); when the learning rate changes they
      do not, because here the new rate also scales the accumulated momentum. Keras has no
      dampening and applies weight decay to the weights directly rather than to the gradient.
    * Sutskever et al. (2013) define Nesterov momentum by evaluating the gradient at the
      look-ahead point :math:`\theta + \mu v`. PyTorch's (and this) ``nesterov=True`` is the
      reformulation in terms of the current parameters, :math:`g + \mu b_t`, which gives the
      same trajectory up to the change of variables, not the same stored quantities.

    Reference: I. Sutskever, J. Martens, G. Dahl and G. Hinton, "On the importance of
    initialization and momentum in deep learning", ICML 2013.

    Args:
        params: the float32, C-contiguous, writeable numpy arrays to update in place (for
            example a model's weights and biases), in a fixed order.
        lr: the learning rate :math:`\gamma`, a float >= 0 or a callable ``lr(step) -> float``
            of the 0-based step count (see :class:`StepDecay`, :class:`ExponentialDecay`,
            :class:`CosineDecay`). Default: 0.01
        momentum: :math:`\mu` (>= 0). Default: 0.0
        dampening: :math:`\tau`. Default: 0.0
        weight_decay: :math:`\lambda`, L2 penalty added to the gradient (>= 0). Default: 0.0
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening = 0).
            Default: ``False``
        clipvalue: clamp each gradient element to ``[-clipvalue, clipvalue]`` (> 0).
            Default: ``None``
        clipnorm: rescale each gradient tensor whose L2 norm exceeds this (> 0).
            Default: ``None``
        global_clipnorm: rescale all gradients together when their joint L2 norm exceeds this
            (> 0). Default: ``None``. At most one of the three clipping options may be set.

    Examples:
        >>> import numpy as np
        >>> w, b = np.ones((2, 2), np.float32), np.zeros(2, np.float32)
        >>> opt = SGD([w, b], lr=0.1, momentum=0.9, nesterov=True, global_clipnorm=1.0)
        >>> opt.step([np.ones((2, 2), np.float32), np.zeros(2, np.float32)])
        >>> float(w[0, 0])  # the gradient (norm 2) was scaled by 1/2, then g + 0.9 g
        0.9050000309944153
    """

    def __init__(
        self,
        params,
        lr=0.01,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        clipvalue=None,
        clipnorm=None,
        global_clipnorm=None,
    ):
        self.params = self._check_params(params)
        self.lr = lr  # validated by the property setter
        self._momentum = _at_least("momentum", momentum, 0)
        self._dampening = _finite("dampening", dampening)
        self._weight_decay = _at_least("weight_decay", weight_decay, 0)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(
                f"Argument `nesterov` must be a bool. Received: nesterov={nesterov!r} "
                f"(of type {type(nesterov).__name__})"
            )
        self._nesterov = bool(nesterov)
        if self._nesterov and (self._momentum <= 0 or self._dampening != 0):
            raise ValueError(
                "Nesterov momentum requires momentum > 0 and dampening = 0. "
                f"Received: momentum={momentum!r}, dampening={dampening!r}"
            )
        clips = {"clipvalue": clipvalue, "clipnorm": clipnorm, "global_clipnorm": global_clipnorm}
        if sum(v is not None for v in clips.values()) > 1:
            raise ValueError(
                "At most one of `clipvalue`, `clipnorm` and `global_clipnorm` can be set. "
                "Received: " + ", ".join(f"{k}={v!r}" for k, v in clips.items())
            )
        self._clipvalue = None if clipvalue is None else _positive("clipvalue", clipvalue)
        self._clipnorm = None if clipnorm is None else _positive("clipnorm", clipnorm)
        self._global_clipnorm = (
            None if global_clipnorm is None else _positive("global_clipnorm", global_clipnorm)
        )
        self.iterations = 0
        # Bumped whenever hyperparameters are replaced, so a model's fused C++ step, which
        # copies them, knows to rebind.
        self._config_version = 0
        self._bufs = None  # momentum buffers, allocated by the first step that needs them
        self._bufs_ready = False  # False until a step has written them (PyTorch's buf is None)

    # -- parameters and hyperparameters -----------------------------------------------------

    @staticmethod
    def _check_params(params):
        if isinstance(params, np.ndarray) or not isinstance(params, (list, tuple)):
            raise TypeError(
                "Argument `params` must be a list of float32 numpy arrays. "
                f"Received: {type(params).__name__}"
            )
        if not params:
            raise ValueError("Argument `params` is an empty list; there is nothing to optimize")
        spans = []
        for i, p in enumerate(params):
            name = f"params[{i}]"
            if not isinstance(p, np.ndarray):
                raise TypeError(
                    f"Argument `{name}` must be a float32 numpy array. "
                    f"Received: {type(p).__name__}"
                )
            if p.dtype != np.float32:
                raise TypeError(
                    f"Argument `{name}` must have dtype float32. Received: dtype {p.dtype}"
                )
            if not p.flags.c_contiguous:
                raise ValueError(f"Argument `{name}` of shape {p.shape} must be C-contiguous")
            if not p.flags.writeable:
                raise ValueError(f"Argument `{name}` is read-only; it is updated in place")
            if p.size == 0:
                raise ValueError(f"Argument `{name}` is empty (shape {p.shape})")
            start = p.__array_interface__["data"][0]
            spans.append((start, start + p.nbytes, i))
        # Contiguous arrays occupy one address interval each, so sorted neighbours overlapping
        # is exactly "two entries share memory" (they would be updated twice per step).
        spans.sort()
        for (_, end_a, i), (start_b, _, j) in zip(spans, spans[1:]):
            if start_b < end_a:
                a, b = sorted((i, j))
                raise ValueError(
                    f"Arguments `params[{a}]` and `params[{b}]` share memory; each array must "
                    "appear once"
                )
        return list(params)

    @property
    def lr(self):
        """The learning rate as given: a float or a callable ``lr(step) -> float``."""
        return self._lr

    @lr.setter
    def lr(self, value):
        if callable(value):
            self._lr = value
        else:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    "Argument `lr` must be a float or a callable `lr(step) -> float`. "
                    f"Received: lr={value!r} (of type {type(value).__name__})"
                )
            self._lr = _at_least("lr", value, 0)

    @property
    def current_lr(self):
        """The learning rate the next :meth:`step` uses (``lr(iterations)`` for a schedule)."""
        if not callable(self._lr):
            return self._lr
        value = self._lr(self.iterations)
        try:
            return _at_least("lr", value, 0)
        except (TypeError, ValueError) as e:
            raise type(e)(f"The learning-rate schedule returned an invalid value at step "
                          f"{self.iterations}: {e}") from None

    momentum = property(lambda self: self._momentum, doc="Momentum factor μ.")
    dampening = property(lambda self: self._dampening, doc="Dampening τ.")
    weight_decay = property(lambda self: self._weight_decay, doc="L2 penalty λ.")
    nesterov = property(lambda self: self._nesterov, doc="Whether Nesterov momentum is on.")
    clipvalue = property(lambda self: self._clipvalue, doc="Elementwise clip value or None.")
    clipnorm = property(lambda self: self._clipnorm, doc="Per-tensor clip norm or None.")
    global_clipnorm = property(lambda self: self._global_clipnorm,
                               doc="Global clip norm or None.")

    # -- the update --------------------------------------------------------------------------

    def _grad_scales(self, grads):
        """Per-array clipping coefficients, or None when norm clipping is off."""
        if self._clipnorm is None and self._global_clipnorm is None:
            return None
        sq = _core.sum_squares(grads)  # one call, double accumulation
        if self._clipnorm is not None:
            c = self._clipnorm
            return [_clamp_one(c / (math.sqrt(s) + _NORM_EPS)) for s in sq]
        coef = _clamp_one(self._global_clipnorm / (math.sqrt(math.fsum(sq)) + _NORM_EPS))
        return [coef] * len(sq)

    def step(self, grads):
        """Applies one update to ``params`` in place.

        Args:
            grads: float32 C-contiguous arrays, one per parameter, in the order of ``params``
                and of the same shapes. They are read, never modified.
        """
        if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
            raise TypeError(
                "Argument `grads` must be a list of float32 numpy arrays, one per parameter. "
                f"Received: {type(grads).__name__}"
            )
        if len(grads) != len(self.params):
            raise ValueError(
                f"Argument `grads` must have one array per parameter ({len(self.params)}). "
                f"Received: {len(grads)} arrays"
            )
        lr = self.current_lr
        scales = self._grad_scales(grads)
        bufs = self._momentum_buffers() if self._momentum != 0 else None
        _core.sgd_update(
            self.params,
            grads,
            bufs,
            lr=lr,
            momentum=self._momentum,
            dampening=self._dampening,
            weight_decay=self._weight_decay,
            nesterov=self._nesterov,
            first_step=not self._bufs_ready,
            grad_scales=scales,
            clip_value=self._clipvalue,
        )
        if bufs is not None:
            self._bufs_ready = True
        self.iterations += 1

    def _momentum_buffers(self):
        """The momentum buffers, allocated on first use (also by a model's fused step)."""
        if self._bufs is None:
            # np.empty is enough: the first momentum step writes buf = g before reading it.
            self._bufs = [_memory.empty(p.shape, p.dtype) for p in self.params]
            self._bufs_ready = False
        return self._bufs

    # -- save and restore --------------------------------------------------------------------

    def get_config(self):
        """JSON-serialisable hyperparameters.

        A float ``lr`` is stored as is; one of this module's schedules as
        ``{"schedule": name, "config": {...}}``; any other callable as
        ``{"callable": qualified name, "note": ...}``, which :meth:`from_config` cannot rebuild
        without being given the callable again.
        """
        return {
            "name": "SGD",
            "lr": _lr_config(self._lr),
            "momentum": self._momentum,
            "dampening": self._dampening,
            "weight_decay": self._weight_decay,
            "nesterov": self._nesterov,
            "clipvalue": self._clipvalue,
            "clipnorm": self._clipnorm,
            "global_clipnorm": self._global_clipnorm,
        }

    @classmethod
    def from_config(cls, params, config, lr=None):
        """Builds an SGD over ``params`` from :meth:`get_config`'s output.

        Args:
            params: the arrays to optimize.
            config: a dict from :meth:`get_config`.
            lr: overrides the recorded learning rate; required when the config records a
                custom callable. Default: ``None``
        """
        config = dict(config)
        name = config.pop("name", "SGD")
        if name != "SGD":
            raise ValueError(f"Expected an SGD config. Received: name={name!r}")
        recorded = config.pop("lr", 0.01)
        config["lr"] = _lr_from_config(recorded) if lr is None else lr
        return cls(params, **config)

    def state_dict(self):
        """The optimizer's state: step count, momentum buffers (copies) and hyperparameters.

        Returns:
            ``{"iterations": int, "momentum_buffers": list of float32 arrays or None,
            "config": get_config()}``. The arrays are copies, so later steps do not change it.
        """
        bufs = None
        if self._bufs is not None and self._bufs_ready:
            bufs = [b.copy() for b in self._bufs]
        return {"iterations": self.iterations, "momentum_buffers": bufs,
                "config": self.get_config()}

    def load_state_dict(self, state):
        """Restores :meth:`state_dict`'s output; the next step continues bitwise identically.

        Hyperparameters in ``state["config"]`` replace the current ones, except a learning rate
        recorded as a custom callable, which keeps the callable this optimizer already has.
        Everything is checked before anything is changed.

        Raises:
            ValueError: if the number of buffers or any buffer's shape does not match
                ``params``, or the state is malformed.
        """
        if not isinstance(state, dict) or "iterations" not in state:
            raise ValueError(
                "Argument `state` must be a dict from SGD.state_dict() with keys "
                f"'iterations', 'momentum_buffers' and 'config'. Received: {type(state).__name__}"
                + (f" with keys {sorted(state)}" if isinstance(state, dict) else "")
            )
        iterations = state["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or \
                iterations < 0:
            raise ValueError(
                f"`state['iterations']` must be an integer >= 0. Received: {iterations!r}"
            )
        bufs = state.get("momentum_buffers")
        if bufs is not None:
            if len(bufs) != len(self.params):
                raise ValueError(
                    f"`state['momentum_buffers']` has {len(bufs)} arrays but this optimizer "
                    f"has {len(self.params)} parameters"
                )
            bufs = [np.asarray(b) for b in bufs]
            for i, (b, p) in enumerate(zip(bufs, self.params)):
                if b.shape != p.shape:
                    raise ValueError(
                        f"`state['momentum_buffers'][{i}]` has shape {b.shape}, but "
                        f"`params[{i}]` has shape {p.shape}"
                    )
        restored = None
        if "config" in state:
            config = dict(state["config"])
            lr_conf = config.get("lr")
            keep_lr = isinstance(lr_conf, dict) and "callable" in lr_conf
            # Validate by building a throwaway optimizer over the same params.
            restored = SGD.from_config(self.params, config, lr=self._lr if keep_lr else None)
        # Commit.
        if restored is not None:
            for attr in ("_lr", "_momentum", "_dampening", "_weight_decay", "_nesterov",
                         "_clipvalue", "_clipnorm", "_global_clipnorm"):
                setattr(self, attr, getattr(restored, attr))
        self.iterations = int(iterations)
        self._config_version += 1
        if bufs is None:
            # No saved buffers (no momentum step yet): the next momentum step starts them
            # from the gradient, as PyTorch does when its buffer is None.
            self._bufs_ready = False
        else:
            if self._bufs is None:
                self._bufs = [_memory.empty(p.shape, p.dtype) for p in self.params]
            for dst, src in zip(self._bufs, bufs):
                np.copyto(dst, src, casting="same_kind")
            self._bufs_ready = True

    def __repr__(self):
        conf = self.get_config()
        conf.pop("name")
        args = ", ".join(f"{k}={v!r}" for k, v in conf.items() if v is not None)
        return f"SGD({len(self.params)} arrays, {args})"


def _clamp_one(x):
    # min(1.0, x) would turn NaN into 1.0 (NaN compares false); like torch's clamp, keep NaN.
    return 1.0 if x >= 1.0 else x


def _lr_config(lr):
    if isinstance(lr, _Schedule) and type(lr) in _SCHEDULES.values():
        return {"schedule": lr.name, "config": lr.get_config()}
    if callable(lr):
        name = getattr(lr, "__qualname__", None) or type(lr).__qualname__
        module = getattr(lr, "__module__", None) or type(lr).__module__
        return {
            "callable": f"{module}.{name}",
            "note": "custom learning-rate callable; not serialised, pass it again as `lr`",
        }
    return lr


def _lr_from_config(conf):
    if isinstance(conf, dict):
        if "schedule" in conf:
            return _schedule_from_config(conf)
        raise ValueError(
            f"The config records a custom learning-rate callable ({conf.get('callable')!r}) "
            "that cannot be rebuilt; pass it again as `lr`"
        )
    return conf
