r"""Weight initializers with the semantics Keras and PyTorch users expect.

Pure numpy; randomness comes only from :class:`numpy.random.Generator`.

Weights are stored ``(in_features, out_features)``, so PyTorch's
``Linear.weight`` corresponds to our ``W.T``. Fans follow Keras: for a 2-D
shape ``(in, out)`` ``fan_in = in`` and ``fan_out = out``; see
:func:`compute_fans` for other ranks.

Two families live here:

* Keras-style initializer objects (:class:`Initializer` subclasses). The
  CamelCase class names (``HeNormal``) and the snake_case names
  (``he_normal``) are the *same classes*, so ``he_normal()`` and
  ``HeNormal()`` build identical objects. Calling an object with a shape
  returns a new array. ``xavier_*`` / ``kaiming_*`` (no trailing underscore)
  are aliases of ``glorot_*`` / ``he_*`` and therefore have Keras semantics:
  the normal variants are *truncated*.
* PyTorch-style functions with a trailing underscore (``kaiming_normal_``,
  ``xavier_uniform_``, ``trunc_normal_``) that fill a numpy array in place
  and return it, using PyTorch's formulas (untruncated normals, ``gain``).

Initializer objects hold no random state: every call draws from the ``rng``
it is given. A model should hand each layer its own generator (see
:func:`spawn_generators`); passing the same seed to two calls deliberately
gives identical arrays.

Example:
    >>> import numpy as np
    >>> from fastdense import init
    >>> rngs = init.spawn_generators(0, 2)
    >>> w1 = init.get("he_normal")((784, 100), rng=rngs[0])
    >>> w2 = init.HeNormal()((784, 100), rng=rngs[1])
    >>> w1.dtype, w1.shape, bool(np.array_equal(w1, w2))
    (dtype('float32'), (784, 100), False)
"""


import inspect
import math
import numbers

import numpy as np

__all__ = [
    "Initializer",
    "Zeros",
    "Ones",
    "Constant",
    "RandomUniform",
    "RandomNormal",
    "TruncatedNormal",
    "VarianceScaling",
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "LecunUniform",
    "LecunNormal",
    "Orthogonal",
    "Identity",
    "TorchLinearDefault",
    "zeros",
    "ones",
    "constant",
    "random_uniform",
    "random_normal",
    "truncated_normal",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "identity",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "torch_linear_default",
    "torch_linear_bias",
    "calculate_gain",
    "compute_fans",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "trunc_normal_",
    "spawn_generators",
    "get",
]

# Standard deviation of a unit normal truncated to [-2, 2]; dividing by it
# makes a 2-sigma truncated normal keep the requested variance (Keras).
_TRUNCATION_STD = 0.87962566103423978

_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


# ---------------------------------------------------------------------------
# Argument checking


def _fmt(value):
    # str() for numbers so numpy scalars print as "-1.0", not "np.float64(-1.0)".
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return str(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _real(name, value, *, positive=False, nonneg=False, finite=True):
    if positive:
        rule = "positive float"
    elif nonneg:
        rule = "non-negative float"
    else:
        rule = "finite float" if finite else "float"
    message = f"Argument `{name}` must be {rule}. Received: {name}={_fmt(value)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message)
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(message)
    if (positive and not value > 0) or (nonneg and not value >= 0):
        raise ValueError(message)
    return value


def _choice(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(
            f"Argument `{name}` must be one of {options}. "
            f"Received: {name}={_fmt(value)}"
        )
    return value


def _normalize_shape(shape):
    message = (
        "Argument `shape` must be a tuple of non-negative integers. "
        f"Received: shape={_fmt(shape)}"
    )
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(message) from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(message)
        if d < 0:
            raise ValueError(message)
    return tuple(int(d) for d in dims)


def _float_dtype(dtype):
    if dtype is None:
        return np.dtype(np.float32)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise TypeError(
            "Argument `dtype` must be a floating-point dtype. "
            f"Received: dtype={_fmt(dtype) if dt is None else dt}"
        )
    return dt


def _as_generator(rng):
    """Turn ``rng`` (None, int seed, SeedSequence or Generator) into a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(
                "Argument `rng` must be a non-negative int seed. "
                f"Received: rng={_fmt(rng)}"
            )
        return np.random.default_rng(int(rng))
    # RandomState and other legacy sources are refused so that every stream
    # in the package comes from SeedSequence-spawnable Generators.
    raise TypeError(
        "Argument `rng` must be None, an int seed, a numpy.random.SeedSequence "
        f"or a numpy.random.Generator. Received: rng={_fmt(rng)}"
    )


def _check_array(array):
    if not isinstance(array, np.ndarray):
        raise TypeError(
            "Argument `array` must be a numpy.ndarray with a floating-point "
            f"dtype. Received: array of type {type(array).__name__}"
        )
    if array.dtype.kind != "f":
        raise TypeError(
            "Argument `array` must be a numpy.ndarray with a floating-point "
            f"dtype. Received: array with dtype={array.dtype}"
        )
    if not array.flags.writeable:
        raise ValueError("Argument `array` must be writeable. Received: a read-only array")
    return array


# ---------------------------------------------------------------------------
# Sampling helpers


def compute_fans(shape):
    """Return ``(fan_in, fan_out)`` for a weight shape, following Keras.

    ``()`` gives ``(1, 1)``; ``(n,)`` gives ``(n, n)``; ``(in, out)`` gives
    ``(in, out)``; for higher ranks the leading dimensions form the receptive
    field: ``fan_in = shape[-2] * prod(shape[:-2])`` and
    ``fan_out = shape[-1] * prod(shape[:-2])``.

    Args:
        shape: tuple of non-negative ints.

    Examples:
        >>> compute_fans((784, 100))
        (784, 100)
        >>> compute_fans((3, 3, 16, 32))
        (144, 288)
    """
    shape = _normalize_shape(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


# Wichura (1988), Algorithm AS241, as used by CPython's statistics.NormalDist;
# coefficients are highest degree first for np.polyval.
_AS241_CENTRAL = (
    (2.5090809287301226727e3, 3.3430575583588128105e4, 6.7265770927008700853e4,
     4.5921953931549871457e4, 1.3731693765509461125e4, 1.9715909503065514427e3,
     1.3314166789178437745e2, 3.3871328727963666080e0),
    (5.2264952788528545610e3, 2.8729085735721942674e4, 3.9307895800092710610e4,
     2.1213794301586595867e4, 5.3941960214247511077e3, 6.8718700749205790830e2,
     4.2313330701600911252e1, 1.0),
)
_AS241_INTERMEDIATE = (
    (7.7454501427834140764e-4, 2.2723844989269184583e-2, 2.4178072517745061177e-1,
     1.2704582524523683826e0, 3.6478483247632045840e0, 5.7694972214606914055e0,
     4.6303378461565452959e0, 1.4234371107496835773e0),
    (1.0507500716444168432e-9, 5.4759380849953449460e-4, 1.5198666563616457197e-2,
     1.4810397642748007459e-1, 6.8976733498510000455e-1, 1.6763848301838038494e0,
     2.0531916266377588219e0, 1.0),
)
_AS241_TAIL = (
    (2.0103343992922881327e-7, 2.7115555687434875782e-5, 1.2426609473880784386e-3,
     2.6532189526576123093e-2, 2.9656057182850489123e-1, 1.7848265399172913358e0,
     5.4637849111641143699e0, 6.6579046435011037772e0),
    (2.0442631033899397856e-15, 1.4215117583164458887e-7, 1.8463183175100546818e-5,
     7.8686913114561325910e-4, 1.4875361290850614853e-2, 1.3692988092273580531e-1,
     5.9983220655588793769e-1, 1.0),
)


def _ndtri(p):
    """Inverse of the standard normal CDF, vectorised (AS241, ~1e-16 relative)."""
    p = np.asarray(p, dtype=np.float64)
    x = np.empty_like(p)
    q = p - 0.5
    central = np.abs(q) <= 0.425
    qc = q[central]
    r = 0.180625 - qc * qc
    num, den = _AS241_CENTRAL
    x[central] = qc * np.polyval(num, r) / np.polyval(den, r)

    tails = ~central
    qt = q[tails]
    # Work with the smaller tail probability; clamping at `tiny` keeps log()
    # finite (and warning-free) when a uniform draw lands exactly on 0 or 1.
    r = np.where(qt <= 0.0, p[tails], 1.0 - p[tails])
    r = np.sqrt(-np.log(np.maximum(r, np.finfo(np.float64).tiny)))
    near = r <= 5.0
    xt = np.empty_like(r)
    num, den = _AS241_INTERMEDIATE
    xt[near] = np.polyval(num, r[near] - 1.6) / np.polyval(den, r[near] - 1.6)
    num, den = _AS241_TAIL
    xt[~near] = np.polyval(num, r[~near] - 5.0) / np.polyval(den, r[~near] - 5.0)
    x[tails] = np.where(qt < 0.0, -xt, xt)
    return x


def _norm_cdf(z):
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _truncated_standard_normal(gen, shape, lo, hi):
    """Unit normal restricted to [lo, hi] (standard units), float64.

    Inverse-CDF sampling rather than rejection: the cost does not depend on
    how much probability mass the interval holds, so intervals far in a tail
    (allowed by ``trunc_normal_``) cost the same as [-2, 2].
    """
    # Map intervals on the upper side to the lower side, where the CDF values
    # are small and therefore represented with full relative precision.
    flip = lo > 0.0
    if flip:
        lo, hi = -hi, -lo
    u = gen.uniform(_norm_cdf(lo), _norm_cdf(hi), size=shape)
    z = np.clip(_ndtri(u), lo, hi)
    return -z if flip else z


# ---------------------------------------------------------------------------
# Initializer objects


class Initializer:
    """Base class: ``init(shape, rng=None, dtype=np.float32) -> np.ndarray``.

    Subclasses implement ``_sample(shape, gen)`` returning a float64 array and
    ``_args()`` returning their constructor arguments. Objects are stateless,
    so one object may initialise many layers; the caller supplies a distinct
    generator per layer (see :func:`spawn_generators`).
    """

    #: Canonical snake_case name used by :meth:`get_config` and :func:`get`.
    name = "initializer"

    def __call__(self, shape, rng=None, dtype=np.float32):
        """Return a new array of ``shape`` and ``dtype``.

        Args:
            shape: tuple of non-negative ints (an int means a 1-D shape).
            rng: None (fresh entropy), an int seed, a
                :class:`numpy.random.SeedSequence` or a
                :class:`numpy.random.Generator`. Default: ``None``
            dtype: floating-point dtype of the result. Default: ``np.float32``
        """
        shape = _normalize_shape(shape)
        dtype = _float_dtype(dtype)
        gen = _as_generator(rng)
        values = self._sample(shape, gen)
        return np.asarray(values, dtype=np.float64).astype(dtype, copy=False)

    def _sample(self, shape, gen):
        raise NotImplementedError

    def _args(self):
        return {}

    def get_config(self):
        """Return a JSON-serialisable dict ``{"name": ..., **arguments}``."""
        return {"name": self.name, **self._args()}

    @classmethod
    def from_config(cls, config):
        """Rebuild an initializer from :meth:`get_config` output.

        Called on :class:`Initializer` itself, the class is chosen by
        ``config["name"]``; called on a subclass, the name (if present) must
        refer to that class or one of its subclasses.
        """
        if not isinstance(config, dict):
            raise TypeError(
                "Argument `config` must be a dict. "
                f"Received: config={_fmt(config)}"
            )
        kwargs = dict(config)
        name = kwargs.pop("name", None)
        if name is None:
            if cls is Initializer:
                raise ValueError(
                    "Argument `config` must contain a 'name' key. "
                    f"Received: config={_fmt(config)}"
                )
            target = cls
        else:
            target = _lookup(name)
            if not issubclass(target, cls):
                raise ValueError(
                    f"Config name {name!r} does not describe a {cls.__name__}. "
                    f"Received: config={_fmt(config)}"
                )
        params = inspect.signature(target.__init__).parameters
        unknown = sorted(k for k in kwargs if k not in params or k == "self")
        if unknown:
            valid = [k for k in params if k != "self"]
            raise ValueError(
                f"Unknown argument(s) {unknown} for initializer {target.name!r}. "
                f"Valid arguments: {valid}"
            )
        return target(**kwargs)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        if type(self) is not type(other):
            return NotImplemented
        return self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self), tuple(sorted(self._args().items()))))


class Zeros(Initializer):
    """Fill with zeros.

    Examples:
        >>> Zeros()((2, 3))
        array([[0., 0., 0.],
               [0., 0., 0.]], dtype=float32)
    """

    name = "zeros"

    def _sample(self, shape, gen):
        return np.zeros(shape)


class Ones(Initializer):
    """Fill with ones.

    Examples:
        >>> Ones()((2,))
        array([1., 1.], dtype=float32)
    """

    name = "ones"

    def _sample(self, shape, gen):
        return np.ones(shape)


class Constant(Initializer):
    """Fill with a constant scalar.

    Args:
        value: the fill value. Default: ``0.0``

    Examples:
        >>> Constant(0.1)((3,))
        array([0.1, 0.1, 0.1], dtype=float32)
    """

    name = "constant"

    def __init__(self, value=0.0):
        self.value = _real("value", value)

    def _args(self):
        return {"value": self.value}

    def _sample(self, shape, gen):
        return np.full(shape, self.value)


class RandomUniform(Initializer):
    r"""Fill with values drawn from :math:`\mathcal{U}(\text{minval}, \text{maxval})`.

    Args:
        minval: lower bound (inclusive). Default: ``-0.05``
        maxval: upper bound (exclusive). Default: ``0.05``

    Examples:
        >>> w = RandomUniform(-0.1, 0.1)((64, 32), rng=0)
        >>> bool(w.min() >= -0.1 and w.max() < 0.1)
        True
    """

    name = "random_uniform"

    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval = _real("minval", minval)
        self.maxval = _real("maxval", maxval)
        if not self.minval < self.maxval:
            raise ValueError(
                "Argument `minval` must be less than `maxval`. "
                f"Received: minval={_fmt(minval)}, maxval={_fmt(maxval)}"
            )

    def _args(self):
        return {"minval": self.minval, "maxval": self.maxval}

    def _sample(self, shape, gen):
        return gen.uniform(self.minval, self.maxval, size=shape)


class RandomNormal(Initializer):
    r"""Fill with values drawn from :math:`\mathcal{N}(\text{mean}, \text{stddev}^2)`.

    Args:
        mean: mean of the distribution. Default: ``0.0``
        stddev: standard deviation, non-negative. Default: ``0.05``

    Examples:
        >>> RandomNormal(stddev=0.01)((128, 64), rng=0).shape
        (128, 64)
    """

    name = "random_normal"

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean = _real("mean", mean)
        self.stddev = _real("stddev", stddev, nonneg=True)

    def _args(self):
        return {"mean": self.mean, "stddev": self.stddev}

    def _sample(self, shape, gen):
        return gen.normal(self.mean, self.stddev, size=shape)


class TruncatedNormal(Initializer):
    r"""Fill with a normal distribution truncated at two standard deviations.

    Values further than ``2 * stddev`` from ``mean`` are discarded and
    re-drawn (Keras semantics), so the sample standard deviation is about
    ``0.88 * stddev``. ``stddev`` is the parameter of the underlying normal.

    Args:
        mean: mean of the distribution. Default: ``0.0``
        stddev: standard deviation before truncation. Default: ``0.05``

    Examples:
        >>> w = TruncatedNormal(stddev=0.1)((256, 128), rng=0)
        >>> bool(np.abs(w).max() <= 0.2)
        True
    """

    name = "truncated_normal"

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean = _real("mean", mean)
        self.stddev = _real("stddev", stddev, nonneg=True)

    def _args(self):
        return {"mean": self.mean, "stddev": self.stddev}

    def _sample(self, shape, gen):
        z = _truncated_standard_normal(gen, shape, -2.0, 2.0)
        return self.mean + self.stddev * z


class VarianceScaling(Initializer):
    r"""Scale the distribution to the fan of the weight shape (Keras).

    With ``n`` the fan chosen by ``mode`` (``fan_in``, ``fan_out`` or their
    average ``fan_avg``):

    * ``"truncated_normal"``: normal with
      :math:`\sigma = \sqrt{\text{scale}/n} / 0.87962566103423978`, truncated
      at :math:`2\sigma`, so the resulting standard deviation is
      :math:`\sqrt{\text{scale}/n}`.
    * ``"untruncated_normal"``: normal with :math:`\sigma = \sqrt{\text{scale}/n}`.
    * ``"uniform"``: :math:`\mathcal{U}(-l, l)` with
      :math:`l = \sqrt{3\,\text{scale}/n}`.

    ``distribution="normal"`` is accepted as the legacy Keras spelling of
    ``"truncated_normal"``.

    Args:
        scale: positive scaling factor. Default: ``1.0``
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``. Default: ``"fan_in"``
        distribution: ``"truncated_normal"``, ``"untruncated_normal"`` or
            ``"uniform"``. Default: ``"truncated_normal"``

    Examples:
        >>> init = VarianceScaling(scale=2.0, mode="fan_in", distribution="uniform")
        >>> w = init((784, 100), rng=0)
        >>> bool(np.abs(w).max() <= np.sqrt(6 / 784))
        True
    """

    name = "variance_scaling"

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        self.scale = _real("scale", scale, positive=True)
        self.mode = _choice("mode", mode, _MODES)
        if isinstance(distribution, str) and distribution.lower() == "normal":
            distribution = "truncated_normal"
        if isinstance(distribution, str):
            distribution = distribution.lower()
        self.distribution = _choice("distribution", distribution, _DISTRIBUTIONS)

    def _args(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}

    def _sample(self, shape, gen):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        # Keras clamps the fan at 1 so zero-sized shapes do not divide by zero.
        variance = self.scale / max(1.0, n)
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(variance) / _TRUNCATION_STD
            return stddev * _truncated_standard_normal(gen, shape, -2.0, 2.0)
        if self.distribution == "untruncated_normal":
            return gen.normal(0.0, math.sqrt(variance), size=shape)
        limit = math.sqrt(3.0 * variance)
        return gen.uniform(-limit, limit, size=shape)


class _VarianceScalingPreset(VarianceScaling):
    # Presets take no arguments: their config is just the name, as in Keras.
    _preset = {}

    def __init__(self):
        super().__init__(**self._preset)

    def _args(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


class GlorotUniform(_VarianceScalingPreset):
    r"""Glorot (Xavier) uniform: :math:`\mathcal{U}(-l, l)`, :math:`l = \sqrt{6/(\text{fan\_in}+\text{fan\_out})}`.

    ``VarianceScaling(scale=1.0, mode="fan_avg", distribution="uniform")``.
    Described in `Understanding the difficulty of training deep feedforward
    neural networks` - Glorot, X. & Bengio, Y. (2010).

    Examples:
        >>> w = GlorotUniform()((300, 100), rng=0)
        >>> bool(np.abs(w).max() <= np.sqrt(6 / 400))
        True
    """

    name = "glorot_uniform"
    _preset = {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}


class GlorotNormal(_VarianceScalingPreset):
    r"""Glorot (Xavier) normal, truncated at 2σ, std :math:`\sqrt{2/(\text{fan\_in}+\text{fan\_out})}`.

    ``VarianceScaling(scale=1.0, mode="fan_avg", distribution="truncated_normal")``.
    Described in `Understanding the difficulty of training deep feedforward
    neural networks` - Glorot, X. & Bengio, Y. (2010).

    Examples:
        >>> GlorotNormal()((300, 100), rng=0).shape
        (300, 100)
    """

    name = "glorot_normal"
    _preset = {"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal"}


class HeUniform(_VarianceScalingPreset):
    r"""He (Kaiming) uniform: :math:`\mathcal{U}(-l, l)`, :math:`l = \sqrt{6/\text{fan\_in}}`.

    ``VarianceScaling(scale=2.0, mode="fan_in", distribution="uniform")``.
    Described in `Delving deep into rectifiers: Surpassing human-level
    performance on ImageNet classification` - He, K. et al. (2015).

    Examples:
        >>> w = HeUniform()((784, 100), rng=0)
        >>> bool(np.abs(w).max() <= np.sqrt(6 / 784))
        True
    """

    name = "he_uniform"
    _preset = {"scale": 2.0, "mode": "fan_in", "distribution": "uniform"}


class HeNormal(_VarianceScalingPreset):
    r"""He (Kaiming) normal, truncated at 2σ, std :math:`\sqrt{2/\text{fan\_in}}`.

    ``VarianceScaling(scale=2.0, mode="fan_in", distribution="truncated_normal")``.
    Unlike PyTorch's ``kaiming_normal_`` the normal is truncated (its σ is
    enlarged so the final std is still :math:`\sqrt{2/\text{fan\_in}}`).
    Described in `Delving deep into rectifiers: Surpassing human-level
    performance on ImageNet classification` - He, K. et al. (2015).

    Examples:
        >>> HeNormal()((784, 100), rng=0).shape
        (784, 100)
    """

    name = "he_normal"
    _preset = {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}


class LecunUniform(_VarianceScalingPreset):
    r"""LeCun uniform: :math:`\mathcal{U}(-l, l)`, :math:`l = \sqrt{3/\text{fan\_in}}`.

    ``VarianceScaling(scale=1.0, mode="fan_in", distribution="uniform")``.
    Described in `Efficient BackProp` - LeCun, Y. et al. (1998).

    Examples:
        >>> w = LecunUniform()((784, 100), rng=0)
        >>> bool(np.abs(w).max() <= np.sqrt(3 / 784))
        True
    """

    name = "lecun_uniform"
    _preset = {"scale": 1.0, "mode": "fan_in", "distribution": "uniform"}


class LecunNormal(_VarianceScalingPreset):
    r"""LeCun normal, truncated at 2σ, std :math:`\sqrt{1/\text{fan\_in}}`.

    ``VarianceScaling(scale=1.0, mode="fan_in", distribution="truncated_normal")``.
    Described in `Efficient BackProp` - LeCun, Y. et al. (1998).

    Examples:
        >>> LecunNormal()((784, 100), rng=0).shape
        (784, 100)
    """

    name = "lecun_normal"
    _preset = {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}


class Orthogonal(Initializer):
    r"""Fill with a (semi-)orthogonal matrix scaled by ``gain``.

    The shape is flattened to ``(prod(shape[:-1]), shape[-1])``; a normal
    matrix of shape ``(max, min)`` is QR-decomposed, ``Q``'s columns are
    multiplied by ``sign(diag(R))`` (making the result uniformly distributed
    over orthogonal matrices) and ``Q`` is transposed when there are fewer
    rows than columns. Hence :math:`W^\top W = \text{gain}^2 I` when
    ``rows >= cols``, else :math:`W W^\top = \text{gain}^2 I`.
    Described in `Exact solutions to the nonlinear dynamics of learning in
    deep linear neural networks` - Saxe, A. et al. (2013).

    Args:
        gain: multiplicative factor. Default: ``1.0``

    Examples:
        >>> w = Orthogonal()((64, 32), rng=0)
        >>> bool(np.allclose(w.T @ w, np.eye(32), atol=1e-5))
        True
    """

    name = "orthogonal"

    def __init__(self, gain=1.0):
        self.gain = _real("gain", gain)

    def _args(self):
        return {"gain": self.gain}

    def _sample(self, shape, gen):
        if len(shape) < 2:
            raise ValueError(
                "Argument `shape` must have rank >= 2 for the orthogonal "
                f"initializer. Received: shape={shape} of rank {len(shape)}"
            )
        rows, cols = math.prod(shape[:-1]), shape[-1]
        if rows == 0 or cols == 0:
            return np.zeros(shape)
        a = gen.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        # sign(0) would zero a column; a zero diagonal has probability 0 but
        # mapping it to +1 keeps Q orthogonal regardless.
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)


class Identity(Initializer):
    r"""Fill a 2-D array with ``gain`` times the identity (rectangular allowed).

    Args:
        gain: multiplicative factor. Default: ``1.0``

    Examples:
        >>> Identity(gain=2.0)((2, 3))
        array([[2., 0., 0.],
               [0., 2., 0.]], dtype=float32)
    """

    name = "identity"

    def __init__(self, gain=1.0):
        self.gain = _real("gain", gain)

    def _args(self):
        return {"gain": self.gain}

    def _sample(self, shape, gen):
        if len(shape) != 2:
            raise ValueError(
                "Argument `shape` must be 2-D for the identity initializer. "
                f"Received: shape={shape} of rank {len(shape)}"
            )
        return self.gain * np.eye(*shape)


class TorchLinearDefault(Initializer):
    r"""PyTorch's default ``nn.Linear`` init: :math:`\mathcal{U}(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})`.

    PyTorch initialises the weight with ``kaiming_uniform_(a=sqrt(5))``,
    whose bound simplifies to :math:`1/\sqrt{\text{fan\_in}}`, and the bias
    with the same bound. For a weight, leave ``fan_in`` as ``None`` and it is
    taken from the shape (``shape[0]`` for ``(in, out)``); for the bias, whose
    shape ``(out,)`` does not contain the fan, pass the layer's ``fan_in``
    (or use :func:`torch_linear_bias`).

    Args:
        fan_in: fan used for the bound, or ``None`` to compute it from the
            shape. Default: ``None``

    Examples:
        >>> w = TorchLinearDefault()((784, 100), rng=0)
        >>> b = TorchLinearDefault(fan_in=784)((100,), rng=1)
        >>> bool(np.abs(w).max() <= 1 / 28 and np.abs(b).max() <= 1 / 28)
        True
    """

    name = "torch_linear_default"

    def __init__(self, fan_in=None):
        if fan_in is not None:
            if isinstance(fan_in, bool) or not isinstance(fan_in, numbers.Integral) or fan_in < 0:
                raise ValueError(
                    "Argument `fan_in` must be None or a non-negative integer. "
                    f"Received: fan_in={_fmt(fan_in)}"
                )
            fan_in = int(fan_in)
        self.fan_in = fan_in

    def _args(self):
        return {"fan_in": self.fan_in}

    def _sample(self, shape, gen):
        fan_in = compute_fans(shape)[0] if self.fan_in is None else self.fan_in
        # PyTorch uses bound 0 for an empty fan rather than dividing by zero.
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        return gen.uniform(-bound, bound, size=shape)


def torch_linear_bias(fan_in):
    """Return the initializer PyTorch's ``nn.Linear`` uses for its bias.

    Equivalent to ``TorchLinearDefault(fan_in=fan_in)``: uniform in
    :math:`\\pm 1/\\sqrt{\\text{fan\\_in}}`.

    Args:
        fan_in: the layer's number of input features.

    Examples:
        >>> b = torch_linear_bias(784)((100,), rng=0)
        >>> bool(np.abs(b).max() <= 1 / 28)
        True
    """
    if fan_in is None:
        raise ValueError("Argument `fan_in` must be a non-negative integer. Received: fan_in=None")
    return TorchLinearDefault(fan_in=fan_in)


# snake_case names are the classes themselves (as in Keras), so
# `he_normal()` and `HeNormal()` are the same thing.
zeros = Zeros
ones = Ones
constant = Constant
random_uniform = RandomUniform
random_normal = RandomNormal
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
he_uniform = HeUniform
he_normal = HeNormal
lecun_uniform = LecunUniform
lecun_normal = LecunNormal
orthogonal = Orthogonal
identity = Identity
torch_linear_default = TorchLinearDefault
xavier_uniform = GlorotUniform
xavier_normal = GlorotNormal
kaiming_uniform = HeUniform
kaiming_normal = HeNormal


# ---------------------------------------------------------------------------
# PyTorch-style in-place functions

_LINEAR_FNS = (
    "linear", "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
)
_NONLINEARITIES = _LINEAR_FNS + ("sigmoid", "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity, param=None):
    r"""Return the recommended gain value for the given nonlinearity function.

    ================= ====================================================
    nonlinearity      gain
    ================= ====================================================
    Linear / Identity :math:`1`
    Conv{1,2,3}D      :math:`1`
    Sigmoid           :math:`1`
    Tanh              :math:`\frac{5}{3}`
    ReLU              :math:`\sqrt{2}`
    Leaky Relu        :math:`\sqrt{\frac{2}{1 + \text{negative\_slope}^2}}`
    SELU              :math:`\frac{3}{4}`
    ================= ====================================================

    Args:
        nonlinearity: the non-linear function name, as in PyTorch.
        param: optional parameter for the non-linear function (the negative
            slope of ``leaky_relu``, default ``0.01``). Default: ``None``

    Examples:
        >>> calculate_gain("leaky_relu", 0.2)  # leaky_relu with negative_slope=0.2
        1.3867504905630728
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            negative_slope = float(param)
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        # Empirical value chosen by PyTorch for self-normalising networks.
        return 3.0 / 4
    raise ValueError(
        f"Unsupported nonlinearity {nonlinearity}. "
        f"Expected one of: {', '.join(_NONLINEARITIES)}"
    )


def _fill(array, values):
    array[...] = values
    return array


def xavier_uniform_(array, gain=1.0, rng=None):
    r"""Fill the input array with values from a Xavier uniform distribution.

    The method is described in `Understanding the difficulty of training deep
    feedforward neural networks` - Glorot, X. & Bengio, Y. (2010). Values are
    sampled from :math:`\mathcal{U}(-a, a)` where

    .. math::
        a = \text{gain} \times \sqrt{\frac{6}{\text{fan\_in} + \text{fan\_out}}}

    Args:
        array: writeable floating-point numpy array, filled in place.
        gain: an optional scaling factor. Default: ``1.0``
        rng: None, an int seed, a SeedSequence or a Generator. Default: ``None``

    Returns:
        ``array``.

    Examples:
        >>> w = np.empty((3, 5), dtype=np.float32)
        >>> xavier_uniform_(w, gain=calculate_gain("relu"), rng=0) is w
        True
    """
    _check_array(array)
    gain = _real("gain", gain)
    gen = _as_generator(rng)
    if array.size == 0:
        return array
    fan_in, fan_out = compute_fans(array.shape)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return _fill(array, gen.uniform(-a, a, size=array.shape))


def xavier_normal_(array, gain=1.0, rng=None):
    r"""Fill the input array with values from a Xavier normal distribution.

    The method is described in `Understanding the difficulty of training deep
    feedforward neural networks` - Glorot, X. & Bengio, Y. (2010). Values are
    sampled from the (untruncated) :math:`\mathcal{N}(0, \text{std}^2)` where

    .. math::
        \text{std} = \text{gain} \times \sqrt{\frac{2}{\text{fan\_in} + \text{fan\_out}}}

    Args:
        array: writeable floating-point numpy array, filled in place.
        gain: an optional scaling factor. Default: ``1.0``
        rng: None, an int seed, a SeedSequence or a Generator. Default: ``None``

    Returns:
        ``array``.

    Examples:
        >>> w = np.empty((3, 5), dtype=np.float32)
        >>> xavier_normal_(w, rng=0).shape
        (3, 5)
    """
    _check_array(array)
    gain = _real("gain", gain)
    gen = _as_generator(rng)
    if array.size == 0:
        return array
    fan_in, fan_out = compute_fans(array.shape)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _fill(array, gen.normal(0.0, abs(std), size=array.shape))


def _kaiming_std(array, a, mode, nonlinearity):
    mode = _choice("mode", mode, ("fan_in", "fan_out"))
    gain = calculate_gain(nonlinearity, a)
    fan_in, fan_out = compute_fans(array.shape)
    fan = fan_in if mode == "fan_in" else fan_out
    # An empty array is returned untouched, so its zero fan is never used.
    return gain / math.sqrt(fan) if fan > 0 else 0.0


def kaiming_uniform_(array, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    r"""Fill the input array with values from a Kaiming uniform distribution.

    The method is described in `Delving deep into rectifiers: Surpassing
    human-level performance on ImageNet classification` - He, K. et al.
    (2015). Values are sampled from :math:`\mathcal{U}(-\text{bound}, \text{bound})`
    where

    .. math::
        \text{bound} = \text{gain} \times \sqrt{\frac{3}{\text{fan\_mode}}}

    Args:
        array: writeable floating-point numpy array, filled in place.
        a: the negative slope of the rectifier used after this layer (only
            used with ``"leaky_relu"``). Default: ``0.0``
        mode: ``"fan_in"`` preserves the variance of the forward pass,
            ``"fan_out"`` that of the backward pass. Default: ``"fan_in"``
        nonlinearity: the non-linear function name (see :func:`calculate_gain`),
            recommended ``"relu"`` or ``"leaky_relu"``. Default: ``"leaky_relu"``
        rng: None, an int seed, a SeedSequence or a Generator. Default: ``None``

    Returns:
        ``array``.

    Examples:
        >>> w = np.empty((784, 100), dtype=np.float32)
        >>> _ = kaiming_uniform_(w, mode="fan_in", nonlinearity="relu", rng=0)
        >>> bool(np.abs(w).max() <= np.sqrt(6 / 784))
        True
    """
    _check_array(array)
    std = _kaiming_std(array, a, mode, nonlinearity)
    gen = _as_generator(rng)
    if array.size == 0:
        return array
    bound = math.sqrt(3.0) * std
    return _fill(array, gen.uniform(-bound, bound, size=array.shape))


def kaiming_normal_(array, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    r"""Fill the input array with values from a Kaiming normal distribution.

    The method is described in `Delving deep into rectifiers: Surpassing
    human-level performance on ImageNet classification` - He, K. et al.
    (2015). Values are sampled from the (untruncated)
    :math:`\mathcal{N}(0, \text{std}^2)` where

    .. math::
        \text{std} = \frac{\text{gain}}{\sqrt{\text{fan\_mode}}}

    Args:
        array: writeable floating-point numpy array, filled in place.
        a: the negative slope of the rectifier used after this layer (only
            used with ``"leaky_relu"``). Default: ``0.0``
        mode: ``"fan_in"`` preserves the variance of the forward pass,
            ``"fan_out"`` that of the backward pass. Default: ``"fan_in"``
        nonlinearity: the non-linear function name (see :func:`calculate_gain`),
            recommended ``"relu"`` or ``"leaky_relu"``. Default: ``"leaky_relu"``
        rng: None, an int seed, a SeedSequence or a Generator. Default: ``None``

    Returns:
        ``array``.

    Examples:
        >>> w = np.empty((784, 100), dtype=np.float32)
        >>> kaiming_normal_(w, mode="fan_out", nonlinearity="relu", rng=0).shape
        (784, 100)
    """
    _check_array(array)
    std = _kaiming_std(array, a, mode, nonlinearity)
    gen = _as_generator(rng)
    if array.size == 0:
        return array
    return _fill(array, gen.normal(0.0, std, size=array.shape))


def trunc_normal_(array, mean=0.0, std=1.0, a=-2.0, b=2.0, rng=None):
    r"""Fill the input array with values from a truncated normal distribution.

    Values are effectively drawn from :math:`\mathcal{N}(\text{mean}, \text{std}^2)`
    restricted to :math:`[a, b]`. As in PyTorch, ``a`` and ``b`` are absolute
    bounds, not multiples of ``std``. Sampling uses the inverse CDF, so
    bounds far from the mean stay exact and fast.

    Args:
        array: writeable floating-point numpy array, filled in place.
        mean: the mean of the normal distribution. Default: ``0.0``
        std: the standard deviation of the normal distribution. Default: ``1.0``
        a: the minimum cutoff value (may be ``-inf``). Default: ``-2.0``
        b: the maximum cutoff value (may be ``inf``). Default: ``2.0``
        rng: None, an int seed, a SeedSequence or a Generator. Default: ``None``

    Returns:
        ``array``.

    Examples:
        >>> w = np.empty((3, 5), dtype=np.float32)
        >>> _ = trunc_normal_(w, std=0.02, a=-0.04, b=0.04, rng=0)
        >>> bool(w.min() >= -0.04 and w.max() <= 0.04)
        True
    """
    _check_array(array)
    mean = _real("mean", mean)
    std = _real("std", std, nonneg=True)
    a = _real("a", a, finite=False)
    b = _real("b", b, finite=False)
    if not a < b:
        raise ValueError(
            f"Argument `a` must be less than `b`. Received: a={_fmt(a)}, b={_fmt(b)}"
        )
    gen = _as_generator(rng)
    if array.size == 0:
        return array
    if std == 0.0:
        return _fill(array, min(max(mean, a), b))
    z = _truncated_standard_normal(gen, array.shape, (a - mean) / std, (b - mean) / std)
    # Clip again in value space: mean + std * z can round just past a bound.
    return _fill(array, np.clip(mean + std * z, a, b))


# ---------------------------------------------------------------------------
# Seeding and name resolution


def spawn_generators(seed, n):
    """Return ``n`` independent Generators derived from one seed.

    Uses ``np.random.SeedSequence(seed).spawn(n)``, so a model seed gives
    every layer its own, reproducible, non-overlapping stream. The same int
    seed always yields the same generators. A ``SeedSequence`` argument is
    spawned from directly, which advances its spawn counter: a second call
    with the same object yields new, different generators.

    Args:
        seed: None (fresh entropy), a non-negative int, or a SeedSequence.
        n: number of generators, a non-negative int.

    Examples:
        >>> g1, g2 = spawn_generators(42, 2)
        >>> init = GlorotUniform()
        >>> bool(np.array_equal(init((4, 4), rng=g1), init((4, 4), rng=g2)))
        False
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(
            f"Argument `n` must be a non-negative integer. Received: n={_fmt(n)}"
        )
    if isinstance(seed, np.random.SeedSequence):
        seq = seed
    elif seed is None:
        seq = np.random.SeedSequence()
    elif isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(
                "Argument `seed` must be None, a non-negative int or a "
                f"numpy.random.SeedSequence. Received: seed={_fmt(seed)}"
            )
        seq = np.random.SeedSequence(int(seed))
    else:
        raise TypeError(
            "Argument `seed` must be None, a non-negative int or a "
            f"numpy.random.SeedSequence. Received: seed={_fmt(seed)}"
        )
    return [np.random.default_rng(child) for child in seq.spawn(int(n))]


_CLASSES = (
    Zeros, Ones, Constant, RandomUniform, RandomNormal, TruncatedNormal,
    VarianceScaling, GlorotUniform, GlorotNormal, HeUniform, HeNormal,
    LecunUniform, LecunNormal, Orthogonal, Identity, TorchLinearDefault,
)
_ALIASES = {
    "xavier_uniform": GlorotUniform,
    "xavier_normal": GlorotNormal,
    "kaiming_uniform": HeUniform,
    "kaiming_normal": HeNormal,
    # Short names Keras also accepts.
    "uniform": RandomUniform,
    "normal": RandomNormal,
    "zero": Zeros,
    "one": Ones,
}
_NAMES = {cls.name: cls for cls in _CLASSES}
_NAMES.update(_ALIASES)


def _key(name):
    # "HeNormal", "he_normal" and "HE_NORMAL" all reduce to "henormal".
    return name.strip().replace("_", "").lower()


_LOOKUP = {_key(name): cls for name, cls in _NAMES.items()}


def _lookup(name):
    if not isinstance(name, str):
        raise TypeError(
            f"Initializer name must be a string. Received: name={_fmt(name)}"
        )
    cls = _LOOKUP.get(_key(name))
    if cls is None:
        raise ValueError(
            f"Unknown initializer: {name!r}. Valid names (case-insensitive; "
            f"CamelCase class names such as 'HeNormal' also work): "
            f"{', '.join(sorted(_NAMES))}"
        )
    return cls


def get(identifier):
    """Resolve an initializer from a name, config dict, object or callable.

    Args:
        identifier: one of

            * a name such as ``"he_normal"``, ``"HeNormal"`` or
              ``"kaiming_normal"`` (case-insensitive, underscores optional);
            * a dict ``{"name": ..., **kwargs}`` as returned by
              :meth:`Initializer.get_config`;
            * an :class:`Initializer` instance (returned unchanged) or
              subclass (instantiated with defaults);
            * any other callable ``f(shape, rng=None, dtype=np.float32)``
              (returned unchanged);
            * ``None`` (returned unchanged, as in Keras).

    Examples:
        >>> get("HeNormal")
        HeNormal()
        >>> get({"name": "constant", "value": 0.1})
        Constant(value=0.1)
    """
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str):
        return _lookup(identifier)()
    if isinstance(identifier, dict):
        if "name" not in identifier:
            raise ValueError(
                "Initializer config must contain a 'name' key. "
                f"Received: identifier={_fmt(identifier)}"
            )
        return Initializer.from_config(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(
        f"Could not interpret initializer identifier: {_fmt(identifier)}"
    )
