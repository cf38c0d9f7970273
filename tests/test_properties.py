"""Hypothesis property tests and bitwise determinism.

Determinism contract (kernels.h): every GEMM output element is one sequential FMA chain in
increasing reduction order, so results do not depend on the thread count, on how rows are split
into batches, or on the ISA. The other kernels are checked for thread-count and batch-slice
independence too; their cross-ISA bitwise equality is marked `cross_isa_relaxable`.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastdense import _core as core

F32, F64 = np.float32, np.float64
SUPPORTED = list(core.supported_isas())
OTHER_ISAS = [name for name in SUPPORTED if name != "ref"]

needs_two_isas = pytest.mark.skipif(len(SUPPORTED) < 2 or "ref" not in SUPPORTED,
                                    reason="needs 'ref' and a vector ISA on this CPU")
needs_openmp = pytest.mark.skipif(not core.has_openmp, reason="built without OpenMP")

dims = st.integers(1, 80)
seeds = st.integers(0, 2**32 - 1)
PROP = settings(max_examples=30, deadline=None)


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(F32)


# ---------------------------------------------------------------------------------------------
# Hypothesis: values vs float64 for random shapes, every ISA
# ---------------------------------------------------------------------------------------------


@PROP
@given(M=dims, K=dims, N=dims, bias=st.booleans(), relu=st.booleans(), seed=seeds,
       scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_prop_matmul_forward(ref, check_close, use_isa, M, K, N, bias, relu, seed, scale):
    rng = np.random.default_rng(seed)
    x, w = randn(rng, M, K, scale=scale), randn(rng, K, N)
    b = randn(rng, N, scale=scale) if bias else None
    yr, tol = ref.matmul_forward(x, w, b, relu)
    for name in SUPPORTED:
        with use_isa(name):
            y = core.matmul_forward(x, w, b, relu=relu)
        check_close(y, yr, tol, f"matmul_forward[{name}] {(M, K, N)} bias={bias} relu={relu}")


@PROP
@given(M=dims, K=dims, N=dims, masked=st.booleans(), seed=seeds)
def test_prop_matmul_backward(ref, check_close, use_isa, M, K, N, masked, seed):
    rng = np.random.default_rng(seed)
    x, w, dy = randn(rng, M, K), randn(rng, K, N), randn(rng, M, N)
    mask = randn(rng, M, K) if masked else None
    dxr, tol_dx = ref.matmul_backward_input(dy, w, mask)
    dwr, tol_dw, dbr, tol_db = ref.matmul_backward_weight(x, dy)
    for name in SUPPORTED:
        with use_isa(name):
            dx = core.matmul_backward_input(dy, w, mask=mask)
            dw, db = core.matmul_backward_weight(x, dy)
        what = f"[{name}] {(M, K, N)}"
        check_close(dx, dxr, tol_dx, f"matmul_backward_input{what} mask={masked}")
        check_close(dw, dwr, tol_dw, f"matmul_backward_weight dw{what}")
        check_close(db, dbr, tol_db, f"matmul_backward_weight db{what}")


@PROP
@given(M=st.integers(1, 60), C=st.integers(1, 300), seed=seeds,
       scale=st.sampled_from([0.1, 1.0, 10.0, 100.0]),
       label_dtype=st.sampled_from([np.int32, np.int64]),
       grad_scale=st.sampled_from([None, 1.0, 0.3]))
def test_prop_softmax_xent(ref, check_close, use_isa, M, C, seed, scale, label_dtype,
                           grad_scale):
    rng = np.random.default_rng(seed)
    logits = randn(rng, M, C, scale=scale)
    labels = rng.integers(0, C, M).astype(label_dtype)
    r = ref.softmax_xent(logits, labels, grad_scale=grad_scale)
    kw = {} if grad_scale is None else {"grad_scale": grad_scale}
    for name in SUPPORTED:
        with use_isa(name):
            mean, losses, dl = core.softmax_xent_backward(logits, labels, **kw)
        what = f"[{name}] M={M} C={C} scale={scale}"
        check_close(losses, r.losses, r.tol_losses, "losses" + what)
        check_close(mean, r.mean, r.tol_mean, "mean" + what)
        check_close(dl, r.dlogits, r.tol_dlogits, "dlogits" + what)


@PROP
@given(n=st.integers(1, 200), seed=seeds, lr=st.sampled_from([0.01, 0.1, 1.0]),
       momentum=st.sampled_from([0.0, 0.5, 0.9]), dampening=st.sampled_from([0.0, 0.3]),
       nesterov=st.booleans(), weight_decay=st.sampled_from([0.0, 1e-2]),
       grad_scale=st.sampled_from([0.5, 1.0, 3.0]), clip_value=st.sampled_from([None, 0.125, 1.0]))
def test_prop_sgd_update(ref, check_close, use_isa, n, seed, lr, momentum, dampening, nesterov,
                         weight_decay, grad_scale, clip_value):
    hyper = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                 weight_decay=weight_decay, clip_value=clip_value)
    for name in SUPPORTED:
        rng = np.random.default_rng(seed)
        params = [randn(rng, n), randn(rng, 3, n)]
        bufs = [np.zeros_like(p) for p in params] if momentum != 0 else None
        with use_isa(name):
            for step in range(3):
                grads = [randn(rng, *p.shape) for p in params]
                expected = [ref.sgd_step(p, g, None if bufs is None else bufs[i],
                                         first_step=step == 0, grad_scale=grad_scale, **hyper)
                            for i, (p, g) in enumerate(zip(params, grads))]
                core.sgd_update(params, grads, bufs, first_step=step == 0,
                                grad_scales=[grad_scale] * len(params), **hyper)
                for i, (pr, br, tp, tb) in enumerate(expected):
                    what = f"sgd[{name}] step {step} array {i} {hyper}"
                    check_close(params[i], pr, tp, what + " param")
                    if bufs is not None:
                        check_close(bufs[i], br, tb, what + " buf")


# ---------------------------------------------------------------------------------------------
# Hypothesis: batch slicing and cross-ISA bitwise equality
# ---------------------------------------------------------------------------------------------


@PROP
@given(M=st.integers(2, 80), K=dims, N=dims, seed=seeds, data=st.data())
def test_prop_batch_slicing_bitwise(assert_bitwise, use_isa, M, K, N, seed, data):
    """f(X)[a:b] == f(X[a:b]) bitwise: a row's result never depends on the other rows."""
    a = data.draw(st.integers(0, M - 1), label="a")
    b = data.draw(st.integers(a + 1, M), label="b")
    rng = np.random.default_rng(seed)
    x, w, bias = randn(rng, M, K), randn(rng, K, N), randn(rng, N)
    dy, mask = randn(rng, M, N), randn(rng, M, K)
    labels = rng.integers(0, N, M)
    for name in SUPPORTED:
        with use_isa(name):
            y = core.matmul_forward(x, w, bias, relu=True)
            assert_bitwise(core.matmul_forward(x[a:b], w, bias, relu=True), y[a:b],
                           f"matmul_forward[{name}] rows {a}:{b}")
            dx = core.matmul_backward_input(dy, w, mask=mask)
            assert_bitwise(core.matmul_backward_input(dy[a:b], w, mask=mask[a:b]), dx[a:b],
                           f"matmul_backward_input[{name}] rows {a}:{b}")
            _, losses, dl = core.softmax_xent_backward(dy, labels, grad_scale=0.25)
            _, ls, ds = core.softmax_xent_backward(dy[a:b], labels[a:b], grad_scale=0.25)
            assert_bitwise(ls, losses[a:b], f"softmax losses[{name}] rows {a}:{b}")
            assert_bitwise(ds, dl[a:b], f"softmax dlogits[{name}] rows {a}:{b}")


@needs_two_isas
@PROP
@given(M=dims, K=dims, N=dims, seed=seeds)
def test_prop_cross_isa_gemm_bitwise(assert_bitwise, use_isa, M, K, N, seed):
    rng = np.random.default_rng(seed)
    d = SimpleNamespace(x=randn(rng, M, K), w=randn(rng, K, N), b=randn(rng, N),
                        dy=randn(rng, M, N), mask=randn(rng, M, K))
    with use_isa("ref"):
        expected = _run_gemms(d)
    for name in OTHER_ISAS:
        with use_isa(name):
            got = _run_gemms(d)
        for key in expected:
            assert_bitwise(got[key], expected[key], f"{key}: {name} vs ref, {(M, K, N)}")


# ---------------------------------------------------------------------------------------------
# Large-size determinism: thread count, batch slicing, repeat calls, ISAs
# ---------------------------------------------------------------------------------------------

BIG_GEMM = (263, 391, 317)  # ~3.3e7 multiply-adds per GEMM: well above the parallel threshold
BIG_N = 2_000_003
BIG_SOFTMAX = (4099, 101)


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(2024)
    M, K, N = BIG_GEMM
    Ms, C = BIG_SOFTMAX
    return SimpleNamespace(
        x=randn(rng, M, K), w=randn(rng, K, N), b=randn(rng, N), dy=randn(rng, M, N),
        mask=randn(rng, M, K),
        v=randn(rng, BIG_N), v2=randn(rng, BIG_N),
        logits=randn(rng, Ms, C, scale=5.0), labels=rng.integers(0, C, Ms),
        params=[randn(rng, BIG_N), randn(rng, 1001)],
        grads=[[randn(rng, BIG_N), randn(rng, 1001)] for _ in range(2)],
    )


def _run_gemms(d):
    out = {}
    out["forward_bias_relu"] = core.matmul_forward(d.x, d.w, d.b, relu=True)
    out["forward_plain"] = core.matmul_forward(d.x, d.w)
    out["backward_input_mask"] = core.matmul_backward_input(d.dy, d.w, mask=d.mask)
    out["backward_input"] = core.matmul_backward_input(d.dy, d.w)
    out["dw"], out["db"] = core.matmul_backward_weight(d.x, d.dy)
    return out


def _run_others(d):
    out = {}
    out["relu_forward"] = core.relu_forward(d.v)
    out["relu_backward"] = core.relu_backward(d.v2, d.v)
    mean, out["losses"], out["dlogits"] = core.softmax_xent_backward(d.logits, d.labels)
    out["mean_loss"] = np.float64(mean)
    fmean, out["forward_losses"] = core.softmax_xent_forward(d.logits, d.labels)
    out["forward_mean_loss"] = np.float64(fmean)
    params = [p.copy() for p in d.params]
    bufs = [np.zeros_like(p) for p in params]
    for step, grads in enumerate(d.grads):
        core.sgd_update(params, grads, bufs, lr=0.05, momentum=0.9, nesterov=True,
                        weight_decay=1e-4, first_step=step == 0, grad_scales=[0.5, 2.0],
                        clip_value=1.0)
    for i, (p, m) in enumerate(zip(params, bufs)):
        out[f"sgd_param{i}"], out[f"sgd_buf{i}"] = p, m
    # The plain rules (no scale, clipping, weight decay or dampening), which the vector ISAs
    # run on a shorter path after the first step.
    for name, kw in [("heavy_ball", dict(momentum=0.9)), ("nesterov", dict(momentum=0.9,
                     nesterov=True)), ("no_momentum", dict(momentum=0.0))]:
        plain = [p.copy() for p in d.params]
        plain_bufs = [np.zeros_like(p) for p in plain] if kw["momentum"] else None
        for step in range(3):
            core.sgd_update(plain, d.grads[step % 2], plain_bufs, lr=0.05,
                            first_step=step == 0, **kw)
        for i, p in enumerate(plain):
            out[f"sgd_{name}_param{i}"] = p
            if plain_bufs is not None:
                out[f"sgd_{name}_buf{i}"] = plain_bufs[i]
    out["sum_squares"] = np.array(core.sum_squares([d.v, d.logits, d.x] + params), F64)
    return out


def _assert_same(assert_bitwise, got, expected, what):
    assert got.keys() == expected.keys()
    for key in expected:
        assert_bitwise(got[key], expected[key], f"{key}: {what}")


@needs_openmp
def test_thread_count_bitwise(isa, threads, big, assert_bitwise):
    assert threads(1) == 1
    expected = {**_run_gemms(big), **_run_others(big)}
    for n in (2, 3):
        assert threads(n) == n
        got = {**_run_gemms(big), **_run_others(big)}
        _assert_same(assert_bitwise, got, expected, f"[{isa}] {n} threads vs 1")


def _gemm_data(M, K, N):
    """Operands of _run_gemms for an (M,K)·(K,N) layer, seeded by its shape."""
    rng = np.random.default_rng(M + K + N)
    return SimpleNamespace(x=randn(rng, M, K), w=randn(rng, K, N), b=randn(rng, N),
                           dy=randn(rng, M, N), mask=randn(rng, M, K))


# Shapes whose rows two threads take in claims from both ends (parallel.h, TwoEndedRows): a
# batch of 100 (X·W, dY·Wᵀ), 30 rows (15 a thread, just past reading B in place), a ragged
# 101 rows, and a tall dW of 1000 rows from a batch of 50 (the weight gradient's own B).
CLAIMED = [(100, 784, 100), (30, 500, 20), (101, 300, 37), (50, 1000, 40)]


@needs_openmp
@pytest.mark.parametrize("M, K, N", CLAIMED)
def test_rows_claimed_from_both_ends_bitwise(isa, threads, assert_bitwise, M, K, N):
    """Which thread runs which rows changes with the threads' speeds from call to call; the
    bits must not: every call on two threads equals the one-thread result."""
    d = _gemm_data(M, K, N)
    threads(1)
    expected = _run_gemms(d)
    threads(2)
    for call in range(8):
        _assert_same(assert_bitwise, _run_gemms(d), expected, f"[{isa}] {M}x{K}x{N} call {call}")


# C at least as wide as tall (or short and wide): two threads split its columns. Each under
# 2^26 multiply-adds, so no call re-measures the share that the test pins.
COLUMN_SPLIT = [(200, 500, 600), (150, 260, 402), (40, 300, 1000)]


@pytest.fixture
def column_share():
    yield core._column_share
    core._column_share(0.5)


@needs_openmp
@pytest.mark.parametrize("M, K, N", COLUMN_SPLIT)
def test_column_split_share_never_changes_bits(isa, threads, assert_bitwise, column_share,
                                               M, K, N):
    """A team of two splits C's columns by a share that follows the cores' measured speeds;
    at every share the bits are the one-thread result."""
    d = _gemm_data(M, K, N)
    threads(1)
    expected = _run_gemms(d)
    threads(2)
    for share in (0.25, 0.3, 0.5, 0.6, 0.75):
        assert column_share(share) == pytest.approx(share, abs=1e-3)
        got = _run_gemms(d)
        assert column_share() == pytest.approx(share, abs=1e-3)  # no call re-measured it
        _assert_same(assert_bitwise, got, expected, f"[{isa}] {M}x{K}x{N} share {share}")


def test_column_share_is_clamped_and_validated(column_share):
    assert column_share(0.9) == 0.75
    assert column_share(0.0) == 0.25
    assert column_share(0.5) == 0.5
    assert column_share() == 0.5
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="share"):
            column_share(bad)
    assert column_share() == 0.5


def test_repeat_calls_bitwise(isa, threads, big, assert_bitwise):
    threads(2)
    first = {**_run_gemms(big), **_run_others(big)}
    again = {**_run_gemms(big), **_run_others(big)}
    _assert_same(assert_bitwise, again, first, f"[{isa}] repeated call")


def test_batch_slicing_bitwise_large(isa, threads, assert_bitwise):
    """Full batches big enough to run on 2 threads vs row slices of them (incl. single rows)."""
    threads(2)
    rng = np.random.default_rng(7)
    M, K, N = 1031, 257, 129
    x, w, b = randn(rng, M, K), randn(rng, K, N), randn(rng, N)
    dy, mask = randn(rng, M, N), randn(rng, M, K)
    y = core.matmul_forward(x, w, b, relu=True)
    y_plain = core.matmul_forward(x, w)
    dx = core.matmul_backward_input(dy, w, mask=mask)
    for a, e in [(0, 1), (0, 7), (5, 6), (3, 700), (1030, 1031), (512, 1031), (0, 1031)]:
        what = f"[{isa}] rows {a}:{e}"
        assert_bitwise(core.matmul_forward(x[a:e], w, b, relu=True), y[a:e], "forward " + what)
        assert_bitwise(core.matmul_forward(x[a:e], w), y_plain[a:e], "forward plain " + what)
        assert_bitwise(core.matmul_backward_input(dy[a:e], w, mask=mask[a:e]), dx[a:e],
                       "backward_input " + what)

    Ms, C = BIG_SOFTMAX
    logits = randn(rng, Ms, C, scale=5.0)
    labels = rng.integers(0, C, Ms).astype(np.int32)
    _, losses, dl = core.softmax_xent_backward(logits, labels, grad_scale=0.125)
    _, flosses = core.softmax_xent_forward(logits, labels)
    for a, e in [(0, 1), (0, 7), (5, 6), (3, 2900), (Ms - 1, Ms), (1000, Ms)]:
        what = f"[{isa}] rows {a}:{e}"
        _, ls, ds = core.softmax_xent_backward(logits[a:e], labels[a:e], grad_scale=0.125)
        assert_bitwise(ls, losses[a:e], "softmax_xent_backward losses " + what)
        assert_bitwise(ds, dl[a:e], "softmax_xent_backward dlogits " + what)
        _, fl = core.softmax_xent_forward(logits[a:e], labels[a:e])
        assert_bitwise(fl, flosses[a:e], "softmax_xent_forward losses " + what)


def _small_cases(seed):
    rng = np.random.default_rng(seed)
    cases = []
    # (600, 37, 70): Xᵀ·dY over two K blocks, read in place, with a 6-column narrow edge
    for M, K, N in [(1, 1, 1), (7, 15, 17), (17, 33, 63), (65, 100, 129), (129, 7, 65),
                    (600, 37, 70)]:
        cases.append(SimpleNamespace(x=randn(rng, M, K), w=randn(rng, K, N), b=randn(rng, N),
                                     dy=randn(rng, M, N), mask=randn(rng, M, K)))
    return cases


@needs_two_isas
def test_cross_isa_gemm_bitwise(use_isa, big, assert_bitwise):
    """Contract: fmaf chains in ref/ equal vector FMA lanes, so every ISA gives the same bits."""
    # Reductions whose last KC block would be short, which the driver spreads over the other
    # blocks (AVX2, KC 256: K = 784 in 3 blocks of 262/260, N = 560 in 2 of 280, M = 296 in
    # one): the bits must not depend on where the blocks end.
    rng = np.random.default_rng(7)
    M, K, N = 296, 784, 560
    spread = SimpleNamespace(x=randn(rng, M, K), w=randn(rng, K, N), b=randn(rng, N),
                             dy=randn(rng, M, N), mask=randn(rng, M, K))
    for i, d in enumerate(_small_cases(8) + [big, spread]):
        with use_isa("ref"):
            expected = _run_gemms(d)
        for name in OTHER_ISAS:
            with use_isa(name):
                got = _run_gemms(d)
            _assert_same(assert_bitwise, got, expected, f"{name} vs ref, case {i} {d.x.shape}")


@pytest.mark.cross_isa_relaxable
@needs_two_isas
def test_cross_isa_bitwise_other_kernels(use_isa, big, assert_bitwise):
    """Relaxable: relu/softmax/sgd/sum_squares bitwise equal across ISAs (see marker)."""
    rng = np.random.default_rng(9)
    small = []
    for n, (Ms, C) in [(1, (1, 1)), (17, (7, 10)), (1001, (65, 129)), (4099, (129, 17))]:
        small.append(SimpleNamespace(
            v=randn(rng, n), v2=randn(rng, n), logits=randn(rng, Ms, C, scale=5.0),
            labels=rng.integers(0, C, Ms), x=randn(rng, 3, n),
            params=[randn(rng, n), randn(rng, 2 * n + 1)],
            grads=[[randn(rng, n), randn(rng, 2 * n + 1)] for _ in range(2)]))
    for i, d in enumerate(small + [big]):
        with use_isa("ref"):
            expected = _run_others(d)
        for name in OTHER_ISAS:
            with use_isa(name):
                got = _run_others(d)
            _assert_same(assert_bitwise, got, expected, f"{name} vs ref, case {i}")
