"""Tests for fastdense.init (pure numpy weight initializers).

Statistical checks use draws of >= 1e6 values with fixed seeds. Tolerances
are six standard errors: for N samples the sample mean has standard error
sigma/sqrt(N) and the sample std about sigma/sqrt(2N) (an upper bound for
the uniform and truncated-normal cases, whose kurtosis is below the
normal's), so a tolerance of 6 SE would fail by chance with probability
~1e-9 even if the seeds were changed.
"""

import doctest
import json
import math

import numpy as np
import pytest

from fastdense import init

BIG = (1000, 1000)
TRUNC_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]


def _norm_pdf(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _norm_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


def truncnorm_moments(lo, hi):
    """Closed-form mean and std of N(0, 1) restricted to [lo, hi]."""
    z = _norm_cdf(hi) - _norm_cdf(lo)
    pl, ph = _norm_pdf(lo), _norm_pdf(hi)
    mean = (pl - ph) / z
    # x * pdf(x) -> 0 at infinite bounds (avoid inf * 0 = nan).
    lpl = lo * pl if math.isfinite(lo) else 0.0
    hph = hi * ph if math.isfinite(hi) else 0.0
    var = 1 + (lpl - hph) / z - mean**2
    return mean, math.sqrt(var)


def assert_mean_std(w, mean, std):
    x = np.asarray(w, dtype=np.float64)
    n = x.size
    assert abs(x.mean() - mean) <= 6 * std / math.sqrt(n), (x.mean(), mean)
    assert abs(x.std() - std) <= 6 * std / math.sqrt(2 * n), (x.std(), std)


def assert_reaches(w, lo, hi, rel=1e-3):
    """All values in [lo, hi] (float32 rounding allowed) and both ends reached."""
    x = np.asarray(w, dtype=np.float64)
    span = hi - lo
    assert x.min() >= lo - 1e-6 * abs(lo) and x.max() <= hi + 1e-6 * abs(hi)
    assert x.min() <= lo + rel * span and x.max() >= hi - rel * span


# --------------------------------------------------------------------- fans


@pytest.mark.parametrize(
    "shape, fans",
    [((), (1, 1)), ((7,), (7, 7)), ((784, 100), (784, 100)),
     ((3, 3, 16, 32), (144, 288)), ((5, 4, 6), (20, 30))],
)
def test_compute_fans(shape, fans):
    assert init.compute_fans(shape) == fans


# ----------------------------------------------------- deterministic inits


def test_constant_family():
    assert np.array_equal(init.zeros()((2, 3)), np.zeros((2, 3)))
    assert np.array_equal(init.Ones()((4,)), np.ones(4))
    w = init.constant(0.1)((3, 2))
    assert w.dtype == np.float32 and np.all(w == np.float32(0.1))
    assert init.constant(0.1)((2,), dtype=np.float64).dtype == np.float64


def test_identity():
    assert np.array_equal(init.identity()((3, 3)), np.eye(3))
    w = init.Identity(gain=2.5)((2, 4))
    assert w.dtype == np.float32 and np.array_equal(w, 2.5 * np.eye(2, 4))
    assert np.array_equal(init.identity()((4, 2)), np.eye(4, 2))


def test_int_shape_and_empty_shapes():
    assert init.ones()(3).shape == (3,)
    for cls in (init.HeNormal, init.GlorotUniform, init.Orthogonal, init.TruncatedNormal):
        assert cls()((0, 5), rng=0).shape == (0, 5)
    assert init.kaiming_normal_(np.empty((0, 3), np.float32)).shape == (0, 3)
    assert init.trunc_normal_(np.empty((0,), np.float32)).shape == (0,)


# --------------------------------------------------------- basic random


def test_random_uniform():
    w = init.random_uniform()(BIG, rng=0)
    assert w.dtype == np.float32
    assert_reaches(w, -0.05, 0.05)
    assert_mean_std(w, 0.0, 0.1 / math.sqrt(12))
    w = init.RandomUniform(minval=1.0, maxval=3.0)(BIG, rng=1)
    assert_reaches(w, 1.0, 3.0)
    assert_mean_std(w, 2.0, 2.0 / math.sqrt(12))


def test_random_normal():
    assert_mean_std(init.random_normal()(BIG, rng=0), 0.0, 0.05)
    assert_mean_std(init.RandomNormal(mean=1.0, stddev=2.0)(BIG, rng=1), 1.0, 2.0)


def test_truncated_normal():
    w = init.TruncatedNormal(mean=0.5, stddev=0.2)(BIG, rng=0)
    assert_reaches(w, 0.5 - 0.4, 0.5 + 0.4)
    assert_mean_std(w, 0.5, 0.2 * TRUNC_STD)
    assert truncnorm_moments(-2, 2)[1] == pytest.approx(TRUNC_STD, rel=1e-12)


def test_float64_output():
    w = init.HeNormal()(BIG, rng=0, dtype=np.float64)
    assert w.dtype == np.float64
    assert_mean_std(w, 0.0, math.sqrt(2 / 1000))


# ---------------------------------------------------- variance scaling


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
def test_variance_scaling(mode, distribution):
    shape = (500, 2500)
    n = {"fan_in": 500, "fan_out": 2500, "fan_avg": 1500}[mode]
    std = math.sqrt(3.0 / n)
    w = init.VarianceScaling(scale=3.0, mode=mode, distribution=distribution)(shape, rng=0)
    assert_mean_std(w, 0.0, std)
    if distribution == "uniform":
        limit = math.sqrt(3 * 3.0 / n)
        assert_reaches(w, -limit, limit)
    elif distribution == "truncated_normal":
        sigma = std / TRUNC_STD
        assert_reaches(w, -2 * sigma, 2 * sigma)
    else:
        assert np.abs(w).max() > 4 * std  # untruncated: tails beyond 2 sigma exist


def test_variance_scaling_legacy_normal_and_conv_fans():
    assert init.VarianceScaling(distribution="normal").distribution == "truncated_normal"
    w = init.VarianceScaling(scale=2.0, distribution="untruncated_normal")((3, 3, 64, 512), rng=0)
    assert_mean_std(w, 0.0, math.sqrt(2.0 / (9 * 64)))


PRESETS = [
    (init.glorot_uniform, 1.0, "fan_avg", "uniform"),
    (init.glorot_normal, 1.0, "fan_avg", "truncated_normal"),
    (init.he_uniform, 2.0, "fan_in", "uniform"),
    (init.he_normal, 2.0, "fan_in", "truncated_normal"),
    (init.lecun_uniform, 1.0, "fan_in", "uniform"),
    (init.lecun_normal, 1.0, "fan_in", "truncated_normal"),
]


@pytest.mark.parametrize("cls, scale, mode, distribution", PRESETS)
def test_presets(cls, scale, mode, distribution):
    obj = cls()
    assert isinstance(obj, init.VarianceScaling)
    assert (obj.scale, obj.mode, obj.distribution) == (scale, mode, distribution)
    fan_in, fan_out = 784, 2000
    n = fan_in if mode == "fan_in" else (fan_in + fan_out) / 2
    std = math.sqrt(scale / n)
    w = obj((fan_in, fan_out), rng=0)
    assert w.dtype == np.float32
    assert_mean_std(w, 0.0, std)
    bound = math.sqrt(3) * std if distribution == "uniform" else 2 * std / TRUNC_STD
    assert_reaches(w, -bound, bound)


def test_he_normal_784_100():
    # sigma = sqrt(2/784)/0.8796 truncated at 2 sigma has std sqrt(2/784).
    ws = [init.he_normal()((784, 100), rng=g) for g in init.spawn_generators(0, 20)]
    w = np.stack(ws)
    assert_mean_std(w, 0.0, math.sqrt(2 / 784))
    sigma = math.sqrt(2 / 784) / TRUNC_STD
    assert np.abs(w).max() <= 2 * sigma * (1 + 1e-6)


def test_keras_aliases():
    assert init.xavier_uniform is init.GlorotUniform is init.glorot_uniform
    assert init.xavier_normal is init.GlorotNormal
    assert init.kaiming_uniform is init.HeUniform
    assert init.kaiming_normal is init.HeNormal is init.he_normal


# ------------------------------------------------------------ orthogonal


@pytest.mark.parametrize("shape", [(300, 100), (100, 300), (64, 64), (3, 3, 8, 16)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal(shape, gain):
    w = init.Orthogonal(gain=gain)(shape, rng=0)
    assert w.shape == shape and w.dtype == np.float32
    m = w.reshape(-1, shape[-1]).astype(np.float64)
    prod = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(prod, gain**2 * np.eye(prod.shape[0]), atol=1e-5 * gain**2)


def test_orthogonal_is_random():
    a = init.orthogonal()((50, 50), rng=0)
    assert np.array_equal(a, init.orthogonal()((50, 50), rng=0))
    assert not np.allclose(a, init.orthogonal()((50, 50), rng=1))


# ------------------------------------------------------ PyTorch functions


def test_calculate_gain():
    for name in ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                 "conv_transpose2d", "conv_transpose3d", "sigmoid"]:
        assert init.calculate_gain(name) == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("leaky_relu", 1) == pytest.approx(1.0)
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="Unsupported nonlinearity gelu"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="negative_slope abc not a valid number"):
        init.calculate_gain("leaky_relu", "abc")
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        init.calculate_gain("leaky_relu", True)


def test_xavier_():
    w = np.empty((800, 1200), dtype=np.float32)
    assert init.xavier_uniform_(w, gain=2.0, rng=0) is w
    std = 2.0 * math.sqrt(2 / 2000)
    assert_mean_std(w, 0.0, std)
    assert_reaches(w, -math.sqrt(3) * std, math.sqrt(3) * std)
    assert init.xavier_normal_(w, gain=2.0, rng=1) is w
    assert_mean_std(w, 0.0, std)
    assert np.abs(w).max() > 4 * std  # untruncated


def test_kaiming_():
    w = np.empty((800, 1250), dtype=np.float32)
    init.kaiming_normal_(w, rng=0)  # defaults: a=0, fan_in, leaky_relu -> sqrt(2)
    assert_mean_std(w, 0.0, math.sqrt(2) / math.sqrt(800))
    assert np.abs(w).max() > 4 * math.sqrt(2 / 800)  # untruncated
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", rng=1)
    assert_mean_std(w, 0.0, math.sqrt(2 / 1250))
    assert init.kaiming_uniform_(w, a=0.2, rng=2) is w
    std = math.sqrt(2 / 1.04) / math.sqrt(800)
    assert_mean_std(w, 0.0, std)
    assert_reaches(w, -math.sqrt(3) * std, math.sqrt(3) * std)
    # PyTorch's Linear weight init: a=sqrt(5) gives bound 1/sqrt(fan_in).
    init.kaiming_uniform_(w, a=math.sqrt(5), rng=3)
    assert_reaches(w, -1 / math.sqrt(800), 1 / math.sqrt(800))


def test_inplace_float64_and_views():
    w = np.zeros((1000, 1000))
    init.kaiming_uniform_(w, nonlinearity="relu", rng=0)
    assert w.dtype == np.float64
    assert_mean_std(w, 0.0, math.sqrt(2 / 1000))
    base = np.zeros((4, 6), dtype=np.float32)
    init.xavier_uniform_(base[:, ::2], rng=0)
    assert np.all(base[:, 1::2] == 0) and np.all(base[:, ::2] != 0)


@pytest.mark.parametrize("mean, std, a, b", [
    (0.0, 1.0, -2.0, 2.0),
    (5.0, 2.0, 4.0, 9.0),       # absolute, asymmetric bounds
    (0.0, 1.0, 3.0, 4.0),       # interval entirely in the upper tail
    (0.0, 0.02, -0.04, 0.04),   # ViT-style init
    (1.0, 1.0, -math.inf, 1.0),  # half-normal
])
def test_trunc_normal_(mean, std, a, b):
    w = np.empty(BIG, dtype=np.float32)
    assert init.trunc_normal_(w, mean=mean, std=std, a=a, b=b, rng=0) is w
    assert w.min() >= a and w.max() <= b
    zm, zs = truncnorm_moments((a - mean) / std, (b - mean) / std)
    assert_mean_std(w, mean + std * zm, std * zs)
    if math.isfinite(a):
        assert_reaches(w, a, b, rel=1e-2)


def test_trunc_normal_far_tail_and_zero_std():
    w = np.empty(10_000, dtype=np.float64)
    init.trunc_normal_(w, a=-12.0, b=-11.0, rng=0)
    assert w.min() >= -12.0 and w.max() <= -11.0
    assert w.mean() == pytest.approx(truncnorm_moments(-12.0, -11.0)[0], abs=1e-2)
    init.trunc_normal_(w, mean=3.0, std=0.0, a=-1.0, b=1.0)
    assert np.all(w == 1.0)


def test_torch_linear_default():
    w = init.torch_linear_default()((784, 1500), rng=0)
    bound = 1 / math.sqrt(784)
    assert_reaches(w, -bound, bound)
    assert_mean_std(w, 0.0, bound / math.sqrt(3))
    bias_init = init.torch_linear_bias(784)
    assert bias_init == init.TorchLinearDefault(fan_in=784)
    b = bias_init((1_000_000,), rng=1)
    assert_reaches(b, -bound, bound)
    assert init.get(bias_init.get_config()) == bias_init


# ------------------------------------------------------------ randomness


def test_seed_repeatability():
    he = init.he_normal()
    assert np.array_equal(he((50, 40), rng=3), he((50, 40), rng=3))
    assert not np.array_equal(he((50, 40), rng=3), he((50, 40), rng=4))
    ss = np.random.SeedSequence(11)
    assert np.array_equal(he((5, 4), rng=ss), he((5, 4), rng=np.random.SeedSequence(11)))
    assert not np.array_equal(he((50, 40)), he((50, 40)))  # rng=None: fresh entropy
    g = np.random.default_rng(0)
    assert not np.array_equal(he((50, 40), rng=g), he((50, 40), rng=g))  # stream advances
    w1 = np.empty((5, 5), np.float32)
    w2 = np.empty((5, 5), np.float32)
    assert np.array_equal(init.kaiming_normal_(w1, rng=9), init.kaiming_normal_(w2, rng=9))


def test_spawn_generators():
    gens = init.spawn_generators(1234, 4)
    assert len(gens) == 4 and all(isinstance(g, np.random.Generator) for g in gens)
    again = init.spawn_generators(1234, 4)
    glorot = init.GlorotUniform()  # one object used for several "layers"
    layers = [glorot((64, 64), rng=g) for g in gens]
    assert all(np.array_equal(a, glorot((64, 64), rng=g)) for a, g in zip(layers, again))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(layers[i], layers[j])
    assert not np.array_equal(layers[0], glorot((64, 64), rng=init.spawn_generators(1235, 1)[0]))
    assert init.spawn_generators(0, 0) == []
    seq = np.random.SeedSequence(5)
    first, second = init.spawn_generators(seq, 1), init.spawn_generators(seq, 1)
    assert first[0].random() != second[0].random()


# ------------------------------------------------------- name resolution


@pytest.mark.parametrize("name, cls", [
    ("he_normal", init.HeNormal), ("HeNormal", init.HeNormal), ("HE_NORMAL", init.HeNormal),
    ("kaiming_normal", init.HeNormal), ("KaimingUniform", init.HeUniform),
    ("glorot_uniform", init.GlorotUniform), ("GlorotUniform", init.GlorotUniform),
    ("xavier_normal", init.GlorotNormal), ("lecun_uniform", init.LecunUniform),
    ("LecunNormal", init.LecunNormal), ("zeros", init.Zeros), ("Ones", init.Ones),
    ("constant", init.Constant), ("random_uniform", init.RandomUniform),
    ("RandomNormal", init.RandomNormal), ("TruncatedNormal", init.TruncatedNormal),
    ("variance_scaling", init.VarianceScaling), ("Orthogonal", init.Orthogonal),
    ("identity", init.Identity), ("torch_linear_default", init.TorchLinearDefault),
    ("uniform", init.RandomUniform), ("normal", init.RandomNormal),
])
def test_get_by_name(name, cls):
    obj = init.get(name)
    assert type(obj) is cls


def test_get_other_identifiers():
    c = init.get({"name": "constant", "value": 0.1})
    assert isinstance(c, init.Constant) and c.value == 0.1
    vs = init.get({"name": "VarianceScaling", "scale": 2, "mode": "fan_out"})
    assert (vs.scale, vs.mode, vs.distribution) == (2.0, "fan_out", "truncated_normal")
    he = init.HeNormal()
    assert init.get(he) is he
    assert type(init.get(init.Orthogonal)) is init.Orthogonal
    fn = lambda shape, rng=None, dtype=np.float32: np.zeros(shape, dtype)  # noqa: E731
    assert init.get(fn) is fn
    assert init.get(None) is None
    with pytest.raises(ValueError, match=r"Unknown initializer: 'he_nromal'.*glorot_uniform.*he_normal"):
        init.get("he_nromal")
    with pytest.raises(ValueError, match="Could not interpret initializer identifier: 42"):
        init.get(42)
    with pytest.raises(ValueError, match="'name'"):
        init.get({"value": 1.0})
    with pytest.raises(ValueError, match=r"Unknown argument\(s\) \['scale'\] for initializer 'he_normal'"):
        init.get({"name": "he_normal", "scale": 3.0})


ALL_INSTANCES = [
    init.Zeros(), init.Ones(), init.Constant(0.25), init.RandomUniform(-0.1, 0.2),
    init.RandomNormal(0.5, 0.1), init.TruncatedNormal(0.0, 0.3),
    init.VarianceScaling(0.5, "fan_avg", "uniform"), init.GlorotUniform(),
    init.GlorotNormal(), init.HeUniform(), init.HeNormal(), init.LecunUniform(),
    init.LecunNormal(), init.Orthogonal(gain=1.5), init.Identity(gain=0.5),
    init.TorchLinearDefault(), init.TorchLinearDefault(fan_in=10),
]


@pytest.mark.parametrize("obj", ALL_INSTANCES, ids=repr)
def test_config_round_trip(obj):
    config = obj.get_config()
    assert isinstance(config["name"], str)
    restored = init.Initializer.from_config(json.loads(json.dumps(config)))
    assert type(restored) is type(obj) and restored == obj
    assert init.get(config) == obj and type(obj).from_config(config) == obj
    assert np.array_equal(obj((6, 6), rng=1), restored((6, 6), rng=1))


def test_config_contents():
    assert init.HeNormal().get_config() == {"name": "he_normal"}
    assert init.xavier_uniform().get_config() == {"name": "glorot_uniform"}
    assert init.VarianceScaling(2, "fan_in", "uniform").get_config() == {
        "name": "variance_scaling", "scale": 2.0, "mode": "fan_in", "distribution": "uniform"}
    assert init.Constant(np.float32(0.5)).get_config() == {"name": "constant", "value": 0.5}
    with pytest.raises(ValueError, match="does not describe a Orthogonal"):
        init.Orthogonal.from_config({"name": "zeros"})


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: init.VarianceScaling(scale=-1), ValueError,
     r"Argument `scale` must be positive float\. Received: scale=-1$"),
    (lambda: init.VarianceScaling(scale=0.0), ValueError, r"Received: scale=0\.0"),
    (lambda: init.VarianceScaling(mode="fan"), ValueError,
     r"Argument `mode` must be one of 'fan_in', 'fan_out', 'fan_avg'\. Received: mode='fan'"),
    (lambda: init.VarianceScaling(distribution="gaussian"), ValueError,
     r"Argument `distribution` must be one of .*Received: distribution='gaussian'"),
    (lambda: init.RandomNormal(stddev=-0.1), ValueError,
     r"Argument `stddev` must be non-negative float\. Received: stddev=-0\.1"),
    (lambda: init.TruncatedNormal(stddev=-1), ValueError, r"Received: stddev=-1"),
    (lambda: init.RandomUniform(minval=0.1, maxval=0.1), ValueError,
     r"Argument `minval` must be less than `maxval`\. Received: minval=0\.1, maxval=0\.1"),
    (lambda: init.RandomNormal(mean="a"), TypeError, r"Argument `mean` must be .*Received: mean='a'"),
    (lambda: init.Constant(float("nan")), ValueError, r"Argument `value` .*Received: value=nan"),
    (lambda: init.Identity()((2, 2, 2)), ValueError,
     r"Argument `shape` must be 2-D .*Received: shape=\(2, 2, 2\) of rank 3"),
    (lambda: init.Orthogonal()((5,)), ValueError,
     r"Argument `shape` must have rank >= 2 .*Received: shape=\(5,\) of rank 1"),
    (lambda: init.HeNormal()((3, -1)), ValueError,
     r"Argument `shape` must be a tuple of non-negative integers\. Received: shape=\(3, -1\)"),
    (lambda: init.HeNormal()((3.0, 2)), TypeError, r"Received: shape=\(3\.0, 2\)"),
    (lambda: init.Zeros()((2,), dtype=np.int32), TypeError,
     r"Argument `dtype` must be a floating-point dtype\. Received: dtype=int32"),
    (lambda: init.HeNormal()((2, 2), rng=np.random.RandomState(0)), TypeError,
     r"Argument `rng` must be None, an int seed, .*Received: rng=RandomState"),
    (lambda: init.HeNormal()((2, 2), rng=-3), ValueError, r"Received: rng=-3"),
    (lambda: init.TorchLinearDefault(fan_in=-1), ValueError, r"Received: fan_in=-1"),
    (lambda: init.kaiming_normal_(np.empty((2, 2), np.float32), mode="fan_avg"), ValueError,
     r"Argument `mode` must be one of 'fan_in', 'fan_out'\. Received: mode='fan_avg'"),
    (lambda: init.kaiming_uniform_(np.empty((2, 2), np.float32), nonlinearity="swish"),
     ValueError, "Unsupported nonlinearity swish"),
    (lambda: init.trunc_normal_(np.empty(3, np.float32), a=2.0, b=-2.0), ValueError,
     r"Argument `a` must be less than `b`\. Received: a=2\.0, b=-2\.0"),
    (lambda: init.trunc_normal_(np.empty(3, np.float32), std=-1), ValueError,
     r"Argument `std` must be non-negative float\. Received: std=-1"),
    (lambda: init.xavier_uniform_(np.empty(3, np.int64)), TypeError,
     r"Argument `array` must be a numpy\.ndarray .*Received: array with dtype=int64"),
    (lambda: init.xavier_normal_([1.0, 2.0]), TypeError, r"Received: array of type list"),
    (lambda: init.spawn_generators(0, -1), ValueError,
     r"Argument `n` must be a non-negative integer\. Received: n=-1"),
    (lambda: init.spawn_generators("seed", 2), TypeError, r"Received: seed='seed'"),
])
def test_error_messages(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_read_only_array_rejected():
    w = np.zeros(4, np.float32)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="Argument `array` must be writeable"):
        init.kaiming_uniform_(w)


# ------------------------------------------------------------ docstrings


def test_docstring_examples():
    result = doctest.testmod(init, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 20 and result.failed == 0


# ----------------------------------------------------- PyTorch comparison


def test_matches_torch_statistics():
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    fan_in, fan_out = 784, 1500  # ours (in, out); torch weight is (out, in)

    def both(ours_fn, torch_fn, **kw):
        ours = ours_fn(np.empty((fan_in, fan_out), np.float32), rng=0, **kw)
        theirs = torch_fn(torch.empty(fan_out, fan_in), generator=gen, **kw).numpy()
        return ours.astype(np.float64), theirs.astype(np.float64)

    cases = [
        (init.kaiming_normal_, torch.nn.init.kaiming_normal_, {}),
        (init.kaiming_normal_, torch.nn.init.kaiming_normal_,
         {"mode": "fan_out", "nonlinearity": "relu"}),
        (init.kaiming_uniform_, torch.nn.init.kaiming_uniform_, {"a": math.sqrt(5)}),
        (init.xavier_uniform_, torch.nn.init.xavier_uniform_, {"gain": 1.5}),
        (init.xavier_normal_, torch.nn.init.xavier_normal_, {}),
        (init.trunc_normal_, torch.nn.init.trunc_normal_, {"mean": 0.5, "std": 2.0, "a": -1.0, "b": 3.0}),
    ]
    n = fan_in * fan_out
    for ours_fn, torch_fn, kw in cases:
        ours, theirs = both(ours_fn, torch_fn, **kw)
        s = theirs.std()
        # Difference of two independent estimates: sqrt(2) times one SE.
        tol = 6 * math.sqrt(2) * s / math.sqrt(2 * n)
        assert abs(ours.std() - s) <= tol, (ours_fn.__name__, kw, ours.std(), s)
        assert abs(ours.mean() - theirs.mean()) <= 6 * math.sqrt(2) * s / math.sqrt(n)
        if "uniform" in ours_fn.__name__ or "trunc" in ours_fn.__name__:
            # Bounded: both must fill the same interval right up to its ends.
            assert abs(ours.max() - theirs.max()) <= 1e-3 * s
            assert abs(ours.min() - theirs.min()) <= 1e-3 * s
