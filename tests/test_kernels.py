"""Kernel values for every supported ISA.

* float32 results vs float64 numpy references with magnitude-scaled tolerances, on odd sizes that
  exercise every vector tail and block edge;
* exact results on small-integer data (no rounding at all, so any indexing slip shows);
* backward kernels vs central finite differences of float64 forward functions.
"""

import math

import numpy as np
import pytest

from conftest import central_diff
from fastdense import _core as core

F32, F64 = np.float32, np.float64

SIZES = (1, 7, 15, 17, 33, 63, 65, 100, 129)
# Orthogonal array of strength 2: 81 (M, K, N) triples in which every pair of sizes occurs for
# every pair of dimensions (N is the Latin square SIZES[(i + j) % 9]).
COVER = [(SIZES[i], SIZES[j], SIZES[(i + j) % len(SIZES)])
         for i in range(len(SIZES)) for j in range(len(SIZES))]
# (600, 130, 36): a 600-long reduction (two K blocks) in Xᵀ·dY with a 4-column right edge;
# (1100, 200, 300): three K blocks and ten column panels, Xᵀ read in place.
# (100, 300, 512), (12, 64, 1024): rows of W 2 and 4 KiB apart, so a short X·W packs W (in
# place, its rows would share L1 sets), except for a single 12-row sliver, which reads it in place.
LARGE = [(256, 1024, 100), (1, 784, 100), (100, 784, 100), (100, 100, 10), (300, 700, 500),
         (600, 130, 36), (1100, 200, 300), (100, 300, 512), (12, 64, 1024)]
LARGE_IDS = ["x".join(map(str, s)) for s in LARGE]


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(F32)


def randint(rng, *shape, lo=-3, hi=3):
    return rng.integers(lo, hi + 1, size=shape).astype(F32)


def with_zeros(rng, a, frac=0.2):
    """Sets a fraction of a (float32) to +0.0 and -0.0 (the mask/ReLU boundary cases)."""
    a = a.copy()
    flat = a.reshape(-1)
    idx = rng.choice(flat.size, size=int(flat.size * frac), replace=False)
    flat[idx[: len(idx) // 2]] = 0.0
    flat[idx[len(idx) // 2:]] = -0.0
    return a


def misaligned(a):
    """A C-contiguous copy of `a` whose data starts 4 bytes past a 64-byte boundary."""
    a = np.ascontiguousarray(a)
    buf = np.empty(a.nbytes + 128, dtype=np.uint8)
    off = (-buf.ctypes.data) % 64 + 4
    out = buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % 64 == 4 and out.flags.c_contiguous
    return out


def shape_rng(*key):
    return np.random.default_rng([abs(int(k)) for k in key])


# ---------------------------------------------------------------------------------------------
# GEMMs vs float64
# ---------------------------------------------------------------------------------------------


def _check_forward(ref, check_close, isa, M, K, N, bias, relu, tag=0):
    rng = shape_rng(M, K, N, 1, tag)
    x, w = randn(rng, M, K), randn(rng, K, N)
    b = randn(rng, N) if bias else None
    y = core.matmul_forward(x, w, b, relu=relu)
    assert isinstance(y, np.ndarray) and y.dtype == F32 and y.shape == (M, N)
    assert y.flags.c_contiguous
    yr, tol = ref.matmul_forward(x, w, b, relu)
    check_close(y, yr, tol, f"matmul_forward[{isa}] (M,K,N)={(M, K, N)} bias={bias} relu={relu}")
    if relu:
        assert (y >= 0).all()


def _check_backward_input(ref, check_close, isa, M, K, N, masked, tag=0):
    rng = shape_rng(M, K, N, 2, tag)
    dy, w = randn(rng, M, N), randn(rng, K, N)
    mask = with_zeros(rng, randn(rng, M, K)) if masked else None
    dx = core.matmul_backward_input(dy, w, mask=mask)
    assert isinstance(dx, np.ndarray) and dx.dtype == F32 and dx.shape == (M, K)
    dxr, tol = ref.matmul_backward_input(dy, w, mask)
    check_close(dx, dxr, tol, f"matmul_backward_input[{isa}] (M,K,N)={(M, K, N)} mask={masked}")


def _check_backward_weight(ref, check_close, isa, M, K, N, bias, tag=0):
    rng = shape_rng(M, K, N, 3, tag)
    x, dy = randn(rng, M, K), randn(rng, M, N)
    dw, db = core.matmul_backward_weight(x, dy, bias=bias)
    assert isinstance(dw, np.ndarray) and dw.dtype == F32 and dw.shape == (K, N)
    dwr, tol_dw, dbr, tol_db = ref.matmul_backward_weight(x, dy)
    what = f"matmul_backward_weight[{isa}] (M,K,N)={(M, K, N)}"
    check_close(dw, dwr, tol_dw, what + " dw")
    if bias:
        assert isinstance(db, np.ndarray) and db.dtype == F32 and db.shape == (N,)
        check_close(db, dbr, tol_db, what + " db")
    else:
        assert db is None


@pytest.mark.parametrize("bias,relu", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_forward_cover(isa, ref, check_close, bias, relu):
    for M, K, N in COVER:
        _check_forward(ref, check_close, isa, M, K, N, bias, relu)


@pytest.mark.parametrize("bias_relu", [False, True], ids=["plain", "bias_relu"])
@pytest.mark.parametrize("shape", LARGE, ids=LARGE_IDS)
def test_matmul_forward_large(isa, ref, check_close, shape, bias_relu):
    _check_forward(ref, check_close, isa, *shape, bias=bias_relu, relu=bias_relu)


@pytest.mark.parametrize("rows", [1, 2])
def test_matmul_forward_one_or_two_rows_every_width(isa, ref, check_close, rows):
    """A batch of one or two rows walks all columns of W at once (the vector ISAs' wide kernel:
    whole vectors, then the last columns through a lane mask): every width from 1 to 70 covers
    each count of leftover columns, with and without the fused bias and ReLU."""
    for n in range(1, 71):
        _check_forward(ref, check_close, isa, rows, 37, n, bias=n % 2 == 0, relu=n % 3 == 0)


def test_gemms_every_right_edge_width_over_two_k_blocks(isa, ref, check_close, use_threads):
    """A right edge of every width from 1 to 16 columns past whole 16- and 32-column panels,
    on 13 rows (slivers of 6, 6 and 1) and a 400-long reduction (two K blocks on AVX2, so the
    edge tile is reloaded once): the edge tiles' own copies in and out, and their epilogues
    (bias and ReLU in the forward, the mask in the input gradient) on zero-padded copies.
    Widths up to 32 are two 16-column panels, whose tiles read X (and Xᵀ) in place; wider
    ones pack it."""
    with use_threads(1):
        for n in range(17, 49):
            _check_forward(ref, check_close, isa, 13, 400, n, bias=True, relu=n % 2 == 0)
            _check_backward_input(ref, check_close, isa, 13, n, 400, masked=True)
            _check_backward_weight(ref, check_close, isa, 400, 13, n, bias=n % 2 == 1)


@pytest.mark.parametrize("tail", [1, 2])
def test_gemms_with_a_one_or_two_row_last_block(isa, ref, check_close, use_threads, tail):
    """96 + 1 or 2 output rows on one thread: the last row block is as short as a batch of
    one or two and takes the same wide kernel (with the driver's epilogue), in X·W and in
    Xᵀ·dY."""
    m = 96 + tail
    with use_threads(1):
        _check_forward(ref, check_close, isa, m, 300, 70, bias=True, relu=True)
        _check_forward(ref, check_close, isa, m, 64, 130, bias=False, relu=False)
        _check_backward_weight(ref, check_close, isa, 50, m, 70, bias=True)


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_matmul_backward_input_cover(isa, ref, check_close, masked):
    for M, K, N in COVER:
        _check_backward_input(ref, check_close, isa, M, K, N, masked)


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("shape", LARGE, ids=LARGE_IDS)
def test_matmul_backward_input_large(isa, ref, check_close, shape, masked):
    _check_backward_input(ref, check_close, isa, *shape, masked)


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_matmul_backward_weight_cover(isa, ref, check_close, bias):
    for M, K, N in COVER:
        _check_backward_weight(ref, check_close, isa, M, K, N, bias)


@pytest.mark.parametrize("shape", LARGE, ids=LARGE_IDS)
def test_matmul_backward_weight_large(isa, ref, check_close, shape):
    _check_backward_weight(ref, check_close, isa, *shape, bias=True)


def test_gemms_exact_on_small_integers(isa):
    """Small integers make every product and partial sum exact: results must match exactly."""
    for M, K, N in COVER + [(300, 700, 50)]:
        rng = shape_rng(M, K, N, 4)
        x, w, b = randint(rng, M, K), randint(rng, K, N), randint(rng, N)
        x64, w64, b64 = x.astype(F64), w.astype(F64), b.astype(F64)
        what = f"[{isa}] (M,K,N)={(M, K, N)}"

        y = core.matmul_forward(x, w, b, relu=True)
        np.testing.assert_array_equal(y, np.maximum(x64 @ w64 + b64, 0), err_msg="forward " + what)
        y = core.matmul_forward(x, w)
        np.testing.assert_array_equal(y, x64 @ w64, err_msg="forward no-bias " + what)

        dy = randint(rng, M, N)
        mask = randint(rng, M, K, lo=-1, hi=1)  # -1, 0, 1: masked, masked (0 is not > 0), kept
        dx = core.matmul_backward_input(dy, w, mask=mask)
        np.testing.assert_array_equal(dx, np.where(mask > 0, dy.astype(F64) @ w64.T, 0),
                                      err_msg="backward_input " + what)

        dw, db = core.matmul_backward_weight(x, dy)
        np.testing.assert_array_equal(dw, x64.T @ dy.astype(F64), err_msg="dw " + what)
        np.testing.assert_array_equal(db, dy.astype(F64).sum(0), err_msg="db " + what)


def test_masked_entries_are_exact_zeros(isa):
    rng = shape_rng(5)
    M, K, N = 33, 65, 17
    dy, w = randn(rng, M, N), randn(rng, K, N)
    mask = with_zeros(rng, randn(rng, M, K), frac=0.4)  # negatives, +0.0 and -0.0 all masked
    dx = core.matmul_backward_input(dy, w, mask=mask)
    assert (dx[mask <= 0] == 0).all()
    assert (dx[mask > 0] != 0).all()


def test_outputs_overwritten_inputs_untouched(isa, assert_bitwise):
    """out=/dw=/db=/losses=/dlogits= buffers full of NaN are overwritten and returned; inputs
    are never written; results equal the freshly allocated ones bitwise."""
    for M, K, N in [(1, 1, 1), (17, 33, 65), (64, 100, 7)]:
        rng = shape_rng(M, K, N, 6)
        x, w, b = randn(rng, M, K), randn(rng, K, N), randn(rng, N)
        dy, mask = randn(rng, M, N), randn(rng, M, K)
        saved = [a.copy() for a in (x, w, b, dy, mask)]

        out = np.full((M, N), np.nan, F32)
        y = core.matmul_forward(x, w, b, relu=True, out=out)
        assert np.shares_memory(y, out) and y.shape == (M, N)
        assert_bitwise(out, core.matmul_forward(x, w, b, relu=True), "matmul_forward out=")

        out = np.full((M, K), np.nan, F32)
        dx = core.matmul_backward_input(dy, w, mask=mask, out=out)
        assert np.shares_memory(dx, out)
        assert_bitwise(out, core.matmul_backward_input(dy, w, mask=mask), "backward_input out=")

        dw0, db0 = np.full((K, N), np.nan, F32), np.full((N,), np.nan, F32)
        dw, db = core.matmul_backward_weight(x, dy, dw=dw0, db=db0)
        assert np.shares_memory(dw, dw0) and np.shares_memory(db, db0)
        dw1, db1 = core.matmul_backward_weight(x, dy)
        assert_bitwise(dw0, dw1, "backward_weight dw=")
        assert_bitwise(db0, db1, "backward_weight db=")

        for a, s in zip((x, w, b, dy, mask), saved):
            assert_bitwise(a, s, "input modified")


def test_unaligned_buffers(isa, assert_bitwise):
    """Inputs and outputs 4 bytes off a 64-byte boundary give the same bits as aligned ones."""
    for M, K, N in [(33, 65, 17), (100, 129, 63)]:
        rng = shape_rng(M, K, N, 7)
        x, w, b = randn(rng, M, K), randn(rng, K, N), randn(rng, N)
        dy, mask = randn(rng, M, N), randn(rng, M, K)
        ux, uw, ub, udy, umask = map(misaligned, (x, w, b, dy, mask))

        out = misaligned(np.zeros((M, N), F32))
        core.matmul_forward(ux, uw, ub, relu=True, out=out)
        assert_bitwise(out, core.matmul_forward(x, w, b, relu=True), "forward")

        out = misaligned(np.zeros((M, K), F32))
        core.matmul_backward_input(udy, uw, mask=umask, out=out)
        assert_bitwise(out, core.matmul_backward_input(dy, w, mask=mask), "backward_input")

        dw, db = misaligned(np.zeros((K, N), F32)), misaligned(np.zeros(N, F32))
        core.matmul_backward_weight(ux, udy, dw=dw, db=db)
        dw1, db1 = core.matmul_backward_weight(x, dy)
        assert_bitwise(dw, dw1, "dw")
        assert_bitwise(db, db1, "db")

        out = misaligned(np.zeros((M, K), F32))
        core.relu_forward(ux, out=out)
        assert_bitwise(out, core.relu_forward(x), "relu_forward")
        out = misaligned(np.zeros((M, K), F32))
        core.relu_backward(umask, ux, out=out)
        assert_bitwise(out, core.relu_backward(mask, x), "relu_backward")

        labels = rng.integers(0, K, M).astype(np.int32)
        ulabels = misaligned(labels)
        losses, dl = misaligned(np.zeros(M, F32)), misaligned(np.zeros((M, K), F32))
        core.softmax_xent_backward(ux, ulabels, dlogits=dl, losses=losses)
        _, losses1, dl1 = core.softmax_xent_backward(x, labels)
        assert_bitwise(losses, losses1, "softmax losses")
        assert_bitwise(dl, dl1, "softmax dlogits")

        assert core.sum_squares([ux]) == core.sum_squares([x])

        p, g, buf = x.copy(), mask.copy(), dy[:, :1].repeat(K, axis=1).copy()
        up, ug, ubuf = map(misaligned, (p, g, buf))
        kw = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
        core.sgd_update([p], [g], [buf], **kw)
        core.sgd_update([up], [ug], [ubuf], **kw)
        assert_bitwise(up, p, "sgd param")
        assert_bitwise(ubuf, buf, "sgd buf")


# ---------------------------------------------------------------------------------------------
# ReLU
# ---------------------------------------------------------------------------------------------

RELU_SHAPES = [(1,), (7,), (8,), (15,), (16,), (17,), (31,), (32,), (33,), (63,), (64,), (65,),
               (129,), (1000,), (3, 5), (2, 3, 5), (4, 1, 17)]


def _relu_input(rng, shape):
    x = randn(rng, *shape)
    flat = x.reshape(-1)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0][: max(0, flat.size - 1)]
    flat[rng.choice(flat.size, size=len(specials), replace=False)] = specials
    return x


def test_relu_forward_values(isa):
    for shape in RELU_SHAPES:
        rng = shape_rng(*shape, 8)
        x = _relu_input(rng, shape)
        expected = np.maximum(x, F32(0))  # NaN propagates
        y = core.relu_forward(x)
        assert y.dtype == F32 and y.shape == x.shape
        np.testing.assert_array_equal(y, expected, err_msg=f"relu_forward[{isa}] {shape}")

        out = np.full_like(x, 7.0)
        r = core.relu_forward(x, out=out)
        assert np.shares_memory(r, out)
        np.testing.assert_array_equal(out, expected)

        inplace = x.copy()
        r = core.relu_forward(inplace, out=inplace)
        assert np.shares_memory(r, inplace)
        np.testing.assert_array_equal(inplace, expected, err_msg=f"in-place {shape}")


def test_relu_backward_values(isa):
    for shape in RELU_SHAPES:
        rng = shape_rng(*shape, 9)
        dy = randn(rng, *shape)
        y = _relu_input(rng, shape)  # negatives, zeros, NaN (none > 0): all give 0
        with np.errstate(invalid="ignore"):
            expected = np.where(y > 0, dy, F32(0))
        dx = core.relu_backward(dy, y)
        assert dx.dtype == F32 and dx.shape == shape
        np.testing.assert_array_equal(dx, expected, err_msg=f"relu_backward[{isa}] {shape}")
        out = np.full_like(dy, np.nan)
        core.relu_backward(dy, y, out=out)
        np.testing.assert_array_equal(out, expected)


# ---------------------------------------------------------------------------------------------
# Softmax cross-entropy
# ---------------------------------------------------------------------------------------------


def _check_softmax(ref, check_close, isa, logits, labels, what):
    M = logits.shape[0]
    r = ref.softmax_xent(logits, labels)
    mean, losses = core.softmax_xent_forward(logits, labels)
    assert isinstance(mean, float)
    assert isinstance(losses, np.ndarray) and losses.dtype == F32 and losses.shape == (M,)
    check_close(losses, r.losses, r.tol_losses, f"softmax_xent_forward[{isa}] losses {what}")
    check_close(mean, r.mean, r.tol_mean, f"softmax_xent_forward[{isa}] mean {what}")
    own_mean = math.fsum(losses.astype(F64).tolist()) / M
    assert abs(mean - own_mean) <= 1e-12 * (1 + abs(own_mean)), (mean, own_mean)

    mean2, losses2, dl = core.softmax_xent_backward(logits, labels)
    assert isinstance(mean2, float) and dl.dtype == F32 and dl.shape == logits.shape
    check_close(losses2, r.losses, r.tol_losses, f"softmax_xent_backward[{isa}] losses {what}")
    check_close(mean2, r.mean, r.tol_mean, f"softmax_xent_backward[{isa}] mean {what}")
    check_close(dl, r.dlogits, r.tol_dlogits, f"softmax_xent_backward[{isa}] dlogits {what}")

    r = ref.softmax_xent(logits, labels, grad_scale=2.5)
    _, _, dl_scaled = core.softmax_xent_backward(logits, labels, grad_scale=2.5)
    check_close(dl_scaled, r.dlogits, r.tol_dlogits,
                f"softmax dlogits grad_scale=2.5 [{isa}] {what}")
    return mean2, losses2, dl


def test_softmax_xent_bitwise_the_reference_on_every_isa(supported_isas, assert_bitwise):
    """Short rows (<= 16 classes run R rows at a time in registers on AVX2) and long ones give
    the reference ISA's bits on every ISA, for every row count around the 4-row blocks, with
    and without dlogits, and non-finite logits give non-finite losses."""
    from conftest import _isa_context

    rng = np.random.default_rng(11)
    for C in (1, 2, 5, 7, 8, 9, 10, 15, 16, 17, 33):
        for M in (1, 3, 4, 5, 8, 13):
            logits = (rng.standard_normal((M, C)) * 8).astype(np.float32)
            labels = rng.integers(0, C, M)
            with _isa_context("ref"):
                want = core.softmax_xent_backward(logits, labels, grad_scale=0.3)
            for isa in supported_isas:
                with _isa_context(isa):
                    got = core.softmax_xent_backward(logits, labels, grad_scale=0.3)
                    fwd = core.softmax_xent_forward(logits, labels)
                assert got[0] == want[0], (isa, M, C)
                assert_bitwise(got[1], want[1], f"losses [{isa}] M={M} C={C}")
                assert_bitwise(got[2], want[2], f"dlogits [{isa}] M={M} C={C}")
                assert_bitwise(fwd[1], want[1], f"forward losses [{isa}] M={M} C={C}")
    bad = np.zeros((5, 10), np.float32)
    bad[1, 3], bad[2, 9], bad[4, 0] = np.nan, np.inf, -np.inf
    for isa in supported_isas:
        with _isa_context(isa):
            _, losses, dl = core.softmax_xent_backward(bad, np.arange(5))
        assert np.isnan(losses[1]) and np.isnan(losses[2]) and np.isfinite(losses[[0, 3, 4]]).all()
        assert np.isnan(dl[1]).all() and np.isnan(dl[2]).all()


@pytest.mark.parametrize("label_dtype", [np.int32, np.int64], ids=["int32", "int64"])
@pytest.mark.parametrize("C", [1, 2, 7, 10, 15, 16, 17, 33, 100, 129, 1000])
def test_softmax_xent_values(isa, ref, check_close, C, label_dtype):
    for M in (1, 5, 64):
        for scale in (1.0, 30.0):
            rng = shape_rng(M, C, int(scale), 10)
            logits = randn(rng, M, C, scale=scale)
            labels = rng.integers(0, C, M).astype(label_dtype)
            _check_softmax(ref, check_close, isa, logits, labels, f"M={M} C={C} scale={scale}")


def test_softmax_xent_huge_logits(isa, ref, check_close):
    big, C = F32(1e5), 37
    rng = shape_rng(11)
    rows, labels = [], []
    r = np.full(C, big, F32); r[5] = -big; rows.append(r); labels.append(5)      # loss 2e5+log36
    r = np.full(C, -big, F32); r[3] = big; rows.append(r); labels.append(3)      # loss 0
    rows.append(np.where(rng.random(C) < 0.5, big, -big).astype(F32)); labels.append(0)
    rows.append(np.full(C, big, F32)); labels.append(36)                         # log C
    rows.append(np.full(C, -big, F32)); labels.append(0)                         # log C
    r = np.full(C, -big, F32); r[[4, 30]] = big; rows.append(r); labels.append(30)  # log 2
    r = np.where(np.arange(C) % 2 == 0, big, -big).astype(F32); rows.append(r); labels.append(1)
    logits = np.stack(rows)
    labels = np.array(labels, np.int64)
    M = logits.shape[0]

    mean, losses, dl = _check_softmax(ref, check_close, isa, logits, labels, "+-1e5")
    assert math.isfinite(mean) and np.isfinite(losses).all() and np.isfinite(dl).all()
    assert abs(losses[1]) <= 1e-6 and (np.abs(dl[1]) <= 1e-6).all(), (losses[1], dl[1])
    assert abs(losses[0] - (2e5 + math.log(C - 1))) <= 0.05
    # dlogits rows still sum to ~0 and the probabilities of the two maxima in row 5 are 1/2.
    np.testing.assert_allclose(dl.astype(F64).sum(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(dl[5, [4, 30]] * M, [0.5, -0.5], atol=1e-5)


def test_softmax_xent_all_equal_rows(isa, ref, check_close):
    for C in (1, 3, 16, 17, 100):
        for v in (0.0, 3.5, -7.25, 1e5, -1e5):
            M = 5
            logits = np.full((M, C), v, F32)
            labels = (np.arange(M) % C).astype(np.int32)
            r = ref.softmax_xent(logits, labels)
            mean, losses, dl = core.softmax_xent_backward(logits, labels)
            what = f"[{isa}] C={C} v={v}"
            check_close(losses, np.full(M, math.log(C)), r.tol_losses, "all-equal losses " + what)
            check_close(mean, math.log(C), r.tol_mean, "all-equal mean " + what)
            expected = np.full((M, C), 1.0 / C) - np.eye(C)[labels]
            check_close(dl, expected / M, r.tol_dlogits, "all-equal dlogits " + what)


def test_softmax_xent_int32_int64_labels_identical(isa, assert_bitwise):
    rng = shape_rng(12)
    for M, C in [(1, 1), (7, 10), (65, 129), (300, 17)]:
        logits = randn(rng, M, C, scale=4.0)
        lab64 = rng.integers(0, C, M).astype(np.int64)
        lab32 = lab64.astype(np.int32)
        m32, l32, d32 = core.softmax_xent_backward(logits, lab32)
        m64, l64, d64 = core.softmax_xent_backward(logits, lab64)
        assert m32 == m64 or (math.isnan(m32) and math.isnan(m64))
        assert_bitwise(l32, l64, f"losses int32 vs int64 ({M}, {C})")
        assert_bitwise(d32, d64, f"dlogits int32 vs int64 ({M}, {C})")
        f32m, f32l = core.softmax_xent_forward(logits, lab32)
        f64m, f64l = core.softmax_xent_forward(logits, lab64)
        assert f32m == f64m
        assert_bitwise(f32l, f64l, "forward losses int32 vs int64")


def test_softmax_xent_output_buffers(isa, assert_bitwise):
    rng = shape_rng(13)
    M, C = 9, 21
    logits = randn(rng, M, C)
    labels = rng.integers(0, C, M)
    saved = logits.copy(), labels.copy()
    losses = np.full(M, np.nan, F32)
    mean, l = core.softmax_xent_forward(logits, labels, losses=losses)
    assert np.shares_memory(l, losses)
    losses2, dl2 = np.full(M, np.nan, F32), np.full((M, C), np.nan, F32)
    mean2, l2, d2 = core.softmax_xent_backward(logits, labels, dlogits=dl2, losses=losses2)
    assert np.shares_memory(l2, losses2) and np.shares_memory(d2, dl2)
    _, l3, d3 = core.softmax_xent_backward(logits, labels)
    assert_bitwise(losses2, l3, "losses=")
    assert_bitwise(dl2, d3, "dlogits=")
    assert_bitwise(logits, saved[0], "logits modified")
    assert_bitwise(labels, saved[1], "labels modified")


def test_softmax_xent_nan_row_stays_in_its_row(isa, assert_bitwise):
    rng = shape_rng(14)
    M, C = 6, 19
    logits = randn(rng, M, C)
    labels = rng.integers(0, C, M).astype(np.int32)
    _, clean_losses, clean_dl = core.softmax_xent_backward(logits, labels)
    bad = logits.copy()
    bad[2, labels[2]] = np.nan
    mean, losses, dl = core.softmax_xent_backward(bad, labels)
    assert math.isnan(mean) and math.isnan(losses[2])
    keep = np.arange(M) != 2
    assert_bitwise(losses[keep], clean_losses[keep], "losses of the other rows")
    assert_bitwise(dl[keep], clean_dl[keep], "dlogits of the other rows")


# ---------------------------------------------------------------------------------------------
# SGD and sum of squares
# ---------------------------------------------------------------------------------------------

SGD_SHAPES = [(33, 17), (17,), (1,), (1000,), (4, 5, 6)]
SGD_SCALES = [0.5, 2.0, 1.0, 0.75, 1.5]
SGD_CONFIGS = {
    "plain": dict(momentum=0.0),
    "plain_wd": dict(momentum=0.0, weight_decay=0.01),
    "momentum": dict(momentum=0.9),
    "dampening": dict(momentum=0.9, dampening=0.25),
    "nesterov": dict(momentum=0.9, nesterov=True),
    "nesterov_wd": dict(momentum=0.9, nesterov=True, weight_decay=5e-4),
    "all_scaled": dict(momentum=0.5, dampening=0.5, weight_decay=0.01, grad_scales=True),
    "clip_scaled": dict(momentum=0.9, clip_value=0.5, grad_scales=True),
    "clip_plain": dict(momentum=0.0, clip_value=0.25),
}


@pytest.mark.parametrize("cfg", list(SGD_CONFIGS), ids=list(SGD_CONFIGS))
def test_sgd_update_matches_pytorch_rule(isa, ref, check_close, cfg):
    kw = dict(SGD_CONFIGS[cfg])
    use_scales = kw.pop("grad_scales", False)
    lr = 0.1
    rng = shape_rng(15, len(cfg))
    params = [randn(rng, *s) for s in SGD_SHAPES]
    momentum = kw.get("momentum", 0.0)
    bufs = [np.full(s, np.nan, F32) for s in SGD_SHAPES] if momentum != 0 else None
    scales = SGD_SCALES if use_scales else [1.0] * len(params)
    for step in range(4):
        grads = [randn(rng, *s) for s in SGD_SHAPES]
        first = step == 0
        expected = [
            ref.sgd_step(p, g, None if bufs is None else bufs[i], lr=lr, first_step=first,
                         grad_scale=scales[i], **kw)
            for i, (p, g) in enumerate(zip(params, grads))
        ]
        saved_grads = [g.copy() for g in grads]
        res = core.sgd_update(params, grads, bufs, lr=lr, first_step=first,
                              grad_scales=scales if use_scales else None, **kw)
        assert res is None
        for i, (pr, br, tp, tb) in enumerate(expected):
            what = f"sgd[{isa}] {cfg} step {step} array {i} {SGD_SHAPES[i]}"
            check_close(params[i], pr, tp, what + " param")
            if bufs is not None:
                check_close(bufs[i], br, tb, what + " momentum_buf")
            np.testing.assert_array_equal(grads[i], saved_grads[i], err_msg="grads modified")


def test_sgd_momentum_zero_leaves_buffers_alone(isa, ref, check_close):
    rng = shape_rng(16)
    p, g = randn(rng, 65), randn(rng, 65)
    buf = np.full(65, 123.0, F32)
    pr, _, tol, _ = ref.sgd_step(p, g, lr=0.5, weight_decay=0.1)
    core.sgd_update([p], [g], [buf], lr=0.5, momentum=0.0, weight_decay=0.1)
    check_close(p, pr, tol, "param")
    assert (buf == 123.0).all()


def test_sum_squares_values(isa):
    rng = shape_rng(17)
    arrays = [randn(rng, n) for n in (1, 7, 16, 17, 33, 1000, 4099)]
    arrays += [randn(rng, 3, 5), randn(rng, 2, 3, 4, scale=1e3)]
    res = core.sum_squares(arrays)
    assert isinstance(res, list) and len(res) == len(arrays)
    for a, s in zip(arrays, res):
        assert isinstance(s, float)
        exact = math.fsum((a.astype(F64) ** 2).ravel().tolist())
        assert abs(s - exact) <= 2 * F64(np.finfo(F32).eps) * exact, (a.shape, s, exact)
        assert core.sum_squares([a]) == [s]


def test_sum_squares_beyond_float32_range(isa):
    """Squares that overflow (3e19**2) or underflow (1e-25**2) float32 are still summed
    correctly when the sum is accumulated in double as kernels.h says."""
    big, small = np.full(1000, 3e19, F32), np.full(1000, 1e-25, F32)
    s_big, s_small = core.sum_squares([big, small])
    for s, v in ((s_big, big[0]), (s_small, small[0])):
        exact = 1000 * float(v) ** 2
        assert math.isfinite(s) and abs(s - exact) <= 1e-6 * exact, (s, exact)


# ---------------------------------------------------------------------------------------------
# Finite differences (float64 forward functions, central differences)
# ---------------------------------------------------------------------------------------------


def fd_check(check_close, got, fd, what):
    check_close(got, fd, 2e-5 * (1 + np.abs(fd)), what)


def away_from_zero(rng, *shape, gap=0.2):
    return (np.sign(rng.standard_normal(shape)) * (gap + np.abs(rng.standard_normal(shape)))
            ).astype(F32)


def relu64(a):
    return np.maximum(a, 0.0)


def _seed_with_margin(make, pre, margin=0.02, tries=200):
    """First seed whose pre-activations are all at least `margin` from the ReLU kink."""
    for seed in range(tries):
        data = make(np.random.default_rng([seed, 99]))
        if np.abs(pre(data)).min() > margin:
            return data
    raise AssertionError("no seed with a margin found")


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_fd_matmul_backward_input(isa, check_close, masked):
    rng = shape_rng(18)
    M, K, N = 4, 6, 5
    w, R = randn(rng, K, N), randn(rng, M, N)
    w64, R64 = w.astype(F64), R.astype(F64)
    if masked:  # a: pre-activation of the previous layer; the GEMM input is relu(a)
        a = away_from_zero(rng, M, K)
        dx = core.matmul_backward_input(R, w, mask=core.relu_forward(a))
        fd = central_diff(lambda a64: np.sum(R64 * (relu64(a64) @ w64)), a)
    else:
        x = randn(rng, M, K)
        dx = core.matmul_backward_input(R, w)
        fd = central_diff(lambda x64: np.sum(R64 * (x64 @ w64)), x)
    fd_check(check_close, dx, fd, f"dx vs finite differences [{isa}] mask={masked}")


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
def test_fd_matmul_backward_weight_and_input(isa, check_close, relu):
    M, K, N = 5, 4, 3

    def make(rng):
        return randn(rng, M, K), randn(rng, K, N), randn(rng, N), randn(rng, M, N)

    x, w, b, R = _seed_with_margin(make, lambda d: d[0].astype(F64) @ d[1] + d[2])
    x64, w64, b64, R64 = (a.astype(F64) for a in (x, w, b, R))
    act = relu64 if relu else (lambda a: a)

    y = core.matmul_forward(x, w, b, relu=relu)
    dy = core.relu_backward(R, y) if relu else R
    dw, db = core.matmul_backward_weight(x, dy)
    dx = core.matmul_backward_input(dy, w)
    what = f"[{isa}] relu={relu}"
    fd_check(check_close, dw, central_diff(lambda w_: np.sum(R64 * act(x64 @ w_ + b64)), w), "dw " + what)
    fd_check(check_close, db, central_diff(lambda b_: np.sum(R64 * act(x64 @ w64 + b_)), b), "db " + what)
    fd_check(check_close, dx, central_diff(lambda x_: np.sum(R64 * act(x_ @ w64 + b64)), x), "dx " + what)


def _mean_xent64(z, labels, scale=None):
    m = z.max(axis=1, keepdims=True)
    with np.errstate(under="ignore"):
        lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    losses = lse - z[np.arange(len(labels)), labels]
    return losses.mean() if scale is None else scale * losses.sum()


@pytest.mark.parametrize("grad_scale", [None, 2.5], ids=["mean", "scaled"])
def test_fd_softmax_xent(isa, check_close, grad_scale):
    rng = shape_rng(19)
    M, C = 5, 7
    logits = randn(rng, M, C, scale=3.0)
    labels = rng.integers(0, C, M)
    kw = {} if grad_scale is None else {"grad_scale": grad_scale}
    mean, _, dl = core.softmax_xent_backward(logits, labels, **kw)
    fd = central_diff(lambda z: _mean_xent64(z, labels, grad_scale), logits)
    fd_check(check_close, dl, fd, f"dlogits vs finite differences [{isa}] scale={grad_scale}")
    assert abs(mean - _mean_xent64(logits.astype(F64), labels)) <= 1e-5


def test_fd_relu(isa, check_close):
    rng = shape_rng(20)
    x, R = away_from_zero(rng, 5, 9), randn(rng, 5, 9)
    R64 = R.astype(F64)
    dx = core.relu_backward(R, core.relu_forward(x))
    fd_check(check_close, dx, central_diff(lambda a: np.sum(R64 * relu64(a)), x), f"relu dx [{isa}]")


def test_fd_two_layer_net(isa, check_close):
    """Full training-step composition: every parameter gradient vs finite differences."""
    M, D, H, C = 4, 5, 6, 3

    def make(rng):
        return (randn(rng, M, D), randn(rng, D, H), randn(rng, H), randn(rng, H, C),
                randn(rng, C), rng.integers(0, C, M))

    x, w1, b1, w2, b2, labels = _seed_with_margin(make, lambda d: d[0].astype(F64) @ d[1] + d[2])
    x64, w1_64, b1_64, w2_64, b2_64 = (a.astype(F64) for a in (x, w1, b1, w2, b2))

    def loss64(w1_=w1_64, b1_=b1_64, w2_=w2_64, b2_=b2_64):
        h = relu64(x64 @ w1_ + b1_)
        return _mean_xent64(h @ w2_ + b2_, labels)

    h = core.matmul_forward(x, w1, b1, relu=True)
    z = core.matmul_forward(h, w2, b2)
    mean, _, dz = core.softmax_xent_backward(z, labels)
    dw2, db2 = core.matmul_backward_weight(h, dz)
    dh = core.matmul_backward_input(dz, w2, mask=h)
    dw1, db1 = core.matmul_backward_weight(x, dh)

    assert abs(mean - loss64()) <= 1e-5
    fd_check(check_close, dw1, central_diff(lambda v: loss64(w1_=v), w1), f"dw1 [{isa}]")
    fd_check(check_close, db1, central_diff(lambda v: loss64(b1_=v), b1), f"db1 [{isa}]")
    fd_check(check_close, dw2, central_diff(lambda v: loss64(w2_=v), w2), f"dw2 [{isa}]")
    fd_check(check_close, db2, central_diff(lambda v: loss64(b2_=v), b2), f"db2 [{isa}]")


# -- first_non_finite: the threaded input check behind fit(check of x) --------------------------


@pytest.mark.parametrize("threads_n", [1, 2, 3])
def test_first_non_finite_finds_the_first_bad_value(threads, threads_n):
    """Every position class: the first and last element, block (4096) and thread-part
    boundaries, several bad values (the lowest index wins, whichever part holds it)."""
    threads(threads_n)
    n = 3 * 4096 * 7 + 5  # above the parallel threshold, not a multiple of anything
    base = np.random.default_rng(0).standard_normal(n).astype(F32)
    base[::997] = np.finfo(np.float32).max  # huge but finite
    base[1::991] = np.finfo(np.float32).tiny / 4  # subnormal
    base[2::983] = -0.0
    assert core.first_non_finite(base) == -1
    for bad in (np.nan, np.inf, -np.inf):
        for positions in ([0], [n - 1], [4095], [4096], [n // 2], [n // 3 + 1, n - 2],
                          [n - 7, 12_345]):
            x = base.copy()
            x[positions] = bad
            assert core.first_non_finite(x) == min(positions), (bad, positions)
    nan_payload = np.array([1.0, 2.0], F32)
    nan_payload.view(np.uint32)[1] = 0x7FC0_1234
    assert core.first_non_finite(nan_payload) == 1
    two_d = base[:12].reshape(3, 4).copy()
    two_d[2, 1] = np.inf
    assert core.first_non_finite(two_d) == 9  # flat index of [2, 1]


def test_first_non_finite_rejects_other_arrays():
    assert core.first_non_finite(np.zeros(0, F32)) == -1
    with pytest.raises(TypeError, match="C-contiguous float32 array, got float64"):
        core.first_non_finite(np.zeros(4))
    with pytest.raises(TypeError, match="not C-contiguous"):
        core.first_non_finite(np.zeros((4, 4), F32).T)
    with pytest.raises(TypeError, match="numpy array of float32, got list"):
        core.first_non_finite([1.0])
