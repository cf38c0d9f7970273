"""Argument validation in the bindings: exception types and the key facts in their messages.

TypeError for a wrong dtype or a non-array; ValueError for shapes, contiguity, read-only or
overlapping outputs, empty dimensions and labels out of range. Messages are matched on key facts
(argument name, received dtype/shape, ...) in any order, not on whole sentences.
"""

import re

import numpy as np
import pytest

import fastdense
from fastdense import _core as core

F32, F64 = np.float32, np.float64


def facts(*patterns):
    """A regex (for pytest.raises(match=...)) matching when every pattern occurs, in any order."""
    return "(?s)" + "".join(f"(?=.*(?:{p}))" for p in patterns)


def arg(*names):
    """The argument name as a word (any of several names)."""
    return r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b"


def shape(*dims):
    """A shape tuple as Python prints it; 1-D shapes may omit the trailing comma."""
    if len(dims) == 1:
        return rf"\({dims[0]},?\)"
    return re.escape("(" + ", ".join(map(str, dims)) + ")")


CONTIG = "contiguous"
READONLY = r"read-only|read only|readonly|writ"
OVERLAP = r"overlap|alias|share"
RANGE = "out of range"
EMPTY = r"empty|zero|\(0|, 0\)|0 rows"


def a(*shape_, dtype=F32, fill=1.0):
    return np.full(shape_, fill, dtype=dtype)


def fortran(*shape_):
    return np.asfortranarray(a(*shape_))


def noncontig(*shape_):
    """A view of the given shape whose last dimension has stride 2 elements."""
    return a(*shape_[:-1], 2 * shape_[-1])[..., ::2]


def readonly(*shape_):
    arr = a(*shape_)
    arr.flags.writeable = False
    return arr


def labels(*values, dtype=np.int64):
    return np.array(values, dtype=dtype)


L5 = labels(1, 2, 3, 4, 0)  # valid labels for M=5, C=10


def _overlapping_pair(M, K, N):
    """x (M, K) and out (M, N) sharing part of one buffer."""
    base = np.zeros(M * K + M * N, F32)
    return base[: M * K].reshape(M, K), base[M * K // 2: M * K // 2 + M * N].reshape(M, N)


def _mf_partial_overlap():
    x, out = _overlapping_pair(5, 7, 3)
    core.matmul_forward(x, a(7, 3), out=out)


def _relu_partial_overlap():
    base = a(101)
    core.relu_forward(base[:100], out=base[1:])


def _mf_out_is_bias():
    b = a(3)
    core.matmul_forward(a(1, 7), a(7, 3), b, out=b.reshape(1, 3))


def _sx_losses_overlap_logits():
    logits = a(5, 10)
    core.softmax_xent_forward(logits, L5, losses=logits.reshape(-1)[:5])


def _labels_with(bad, dtype=np.int64):
    lab = L5.astype(dtype).copy()
    lab[3] = bad
    return lab


# (id, call, exception type, facts the message must contain)
CASES = [
    # --- matmul_forward -------------------------------------------------------------------
    ("mf-x-float64", lambda: core.matmul_forward(a(5, 7, dtype=F64), a(7, 3)), TypeError,
     [arg("x"), "float64"]),
    ("mf-x-int32", lambda: core.matmul_forward(a(5, 7, dtype=np.int32), a(7, 3)), TypeError,
     [arg("x"), "int32"]),
    ("mf-w-float64", lambda: core.matmul_forward(a(5, 7), a(7, 3, dtype=F64)), TypeError,
     [arg("w"), "float64"]),
    ("mf-b-float64", lambda: core.matmul_forward(a(5, 7), a(7, 3), a(3, dtype=F64)), TypeError,
     [arg("b"), "float64"]),
    ("mf-out-float64", lambda: core.matmul_forward(a(5, 7), a(7, 3), out=a(5, 3, dtype=F64)),
     TypeError, [arg("out"), "float64"]),
    ("mf-x-list", lambda: core.matmul_forward([[1.0] * 7] * 5, a(7, 3)), TypeError, [arg("x")]),
    ("mf-w-list", lambda: core.matmul_forward(a(5, 7), [[1.0] * 3] * 7), TypeError, [arg("w")]),
    ("mf-x-1d", lambda: core.matmul_forward(a(7), a(7, 3)), ValueError, [arg("x"), shape(7)]),
    ("mf-x-3d", lambda: core.matmul_forward(a(2, 5, 7), a(7, 3)), ValueError,
     [arg("x"), shape(2, 5, 7)]),
    ("mf-w-1d", lambda: core.matmul_forward(a(5, 7), a(7)), ValueError, [arg("w"), shape(7)]),
    ("mf-K-mismatch", lambda: core.matmul_forward(a(5, 7), a(8, 3)), ValueError,
     [arg("x", "w"), shape(8, 3)]),
    ("mf-b-shape", lambda: core.matmul_forward(a(5, 7), a(7, 3), a(4)), ValueError,
     [arg("b"), shape(4)]),
    ("mf-b-2d", lambda: core.matmul_forward(a(5, 7), a(7, 3), a(1, 3)), ValueError,
     [arg("b"), shape(1, 3)]),
    ("mf-out-shape", lambda: core.matmul_forward(a(5, 7), a(7, 3), out=a(5, 4)), ValueError,
     [arg("out"), shape(5, 4), shape(5, 3)]),
    ("mf-x-noncontig", lambda: core.matmul_forward(noncontig(5, 7), a(7, 3)), ValueError,
     [arg("x"), CONTIG]),
    ("mf-x-fortran", lambda: core.matmul_forward(fortran(5, 7), a(7, 3)), ValueError,
     [arg("x"), CONTIG]),
    ("mf-w-fortran", lambda: core.matmul_forward(a(5, 7), fortran(7, 3)), ValueError,
     [arg("w"), CONTIG]),
    ("mf-b-noncontig", lambda: core.matmul_forward(a(5, 7), a(7, 3), a(6)[::2]), ValueError,
     [arg("b"), CONTIG]),
    ("mf-out-noncontig", lambda: core.matmul_forward(a(5, 7), a(7, 3), out=noncontig(5, 3)),
     ValueError, [arg("out"), CONTIG]),
    ("mf-out-readonly", lambda: core.matmul_forward(a(5, 7), a(7, 3), out=readonly(5, 3)),
     ValueError, [arg("out"), READONLY]),
    ("mf-out-is-x", lambda: (lambda x: core.matmul_forward(x, a(3, 3), out=x))(a(5, 3)),
     ValueError, [arg("out"), OVERLAP]),
    ("mf-out-is-w", lambda: (lambda w: core.matmul_forward(a(3, 3), w, out=w))(a(3, 3)),
     ValueError, [arg("out"), OVERLAP]),
    ("mf-out-partial-overlap", _mf_partial_overlap, ValueError, [arg("out"), OVERLAP]),
    ("mf-out-is-b", _mf_out_is_bias, ValueError, [arg("out"), OVERLAP]),
    ("mf-empty-M", lambda: core.matmul_forward(a(0, 7), a(7, 3)), ValueError, [arg("x"), EMPTY]),
    ("mf-empty-K", lambda: core.matmul_forward(a(5, 0), a(0, 3)), ValueError,
     [arg("x", "w"), EMPTY]),
    ("mf-empty-N", lambda: core.matmul_forward(a(5, 7), a(7, 0)), ValueError, [arg("w"), EMPTY]),
    # --- matmul_backward_input ------------------------------------------------------------
    ("mbi-dy-float64", lambda: core.matmul_backward_input(a(5, 3, dtype=F64), a(7, 3)),
     TypeError, [arg("dy"), "float64"]),
    ("mbi-mask-float64",
     lambda: core.matmul_backward_input(a(5, 3), a(7, 3), mask=a(5, 7, dtype=F64)), TypeError,
     [arg("mask"), "float64"]),
    ("mbi-N-mismatch", lambda: core.matmul_backward_input(a(5, 3), a(7, 4)), ValueError,
     [arg("dy", "w"), r"\(7, 4\)|\(5, 3\)"]),
    ("mbi-mask-shape", lambda: core.matmul_backward_input(a(5, 3), a(7, 3), mask=a(5, 6)),
     ValueError, [arg("mask"), shape(5, 6)]),
    ("mbi-out-shape", lambda: core.matmul_backward_input(a(5, 3), a(7, 3), out=a(7, 5)),
     ValueError, [arg("out"), shape(7, 5)]),
    ("mbi-dy-noncontig", lambda: core.matmul_backward_input(noncontig(5, 3), a(7, 3)),
     ValueError, [arg("dy"), CONTIG]),
    ("mbi-mask-fortran", lambda: core.matmul_backward_input(a(5, 3), a(7, 3), mask=fortran(5, 7)),
     ValueError, [arg("mask"), CONTIG]),
    ("mbi-out-readonly", lambda: core.matmul_backward_input(a(5, 3), a(7, 3), out=readonly(5, 7)),
     ValueError, [arg("out"), READONLY]),
    ("mbi-out-is-mask",
     lambda: (lambda m: core.matmul_backward_input(a(5, 3), a(7, 3), mask=m, out=m))(a(5, 7)),
     ValueError, [arg("out"), OVERLAP]),
    ("mbi-empty", lambda: core.matmul_backward_input(a(0, 3), a(7, 3)), ValueError,
     [arg("dy"), EMPTY]),
    # --- matmul_backward_weight -----------------------------------------------------------
    ("mbw-x-float64", lambda: core.matmul_backward_weight(a(5, 7, dtype=F64), a(5, 3)),
     TypeError, [arg("x"), "float64"]),
    ("mbw-dy-int64", lambda: core.matmul_backward_weight(a(5, 7), a(5, 3, dtype=np.int64)),
     TypeError, [arg("dy"), "int64"]),
    ("mbw-M-mismatch", lambda: core.matmul_backward_weight(a(5, 7), a(6, 3)), ValueError,
     [arg("x", "dy"), r"\(6, 3\)|\(5, 7\)"]),
    ("mbw-dw-shape", lambda: core.matmul_backward_weight(a(5, 7), a(5, 3), dw=a(3, 7)),
     ValueError, [arg("dw"), shape(3, 7)]),
    ("mbw-db-shape", lambda: core.matmul_backward_weight(a(5, 7), a(5, 3), db=a(4)), ValueError,
     [arg("db"), shape(4)]),
    ("mbw-dw-float64", lambda: core.matmul_backward_weight(a(5, 7), a(5, 3), dw=a(7, 3, dtype=F64)),
     TypeError, [arg("dw"), "float64"]),
    ("mbw-dw-readonly", lambda: core.matmul_backward_weight(a(5, 7), a(5, 3), dw=readonly(7, 3)),
     ValueError, [arg("dw"), READONLY]),
    ("mbw-db-readonly", lambda: core.matmul_backward_weight(a(5, 7), a(5, 3), db=readonly(3)),
     ValueError, [arg("db"), READONLY]),
    ("mbw-dw-is-x", lambda: (lambda x: core.matmul_backward_weight(x, a(3, 3), dw=x))(a(3, 3)),
     ValueError, [arg("dw"), OVERLAP]),
    ("mbw-x-fortran", lambda: core.matmul_backward_weight(fortran(5, 7), a(5, 3)), ValueError,
     [arg("x"), CONTIG]),
    ("mbw-empty", lambda: core.matmul_backward_weight(a(0, 7), a(0, 3)), ValueError,
     [arg("x", "dy"), EMPTY]),
    # --- relu -----------------------------------------------------------------------------
    ("relu-x-float64", lambda: core.relu_forward(a(6, dtype=F64)), TypeError,
     [arg("x"), "float64"]),
    ("relu-x-list", lambda: core.relu_forward([1.0, -1.0]), TypeError, [arg("x")]),
    ("relu-out-shape", lambda: core.relu_forward(a(6), out=a(5)), ValueError,
     [arg("out"), shape(5)]),
    ("relu-out-float64", lambda: core.relu_forward(a(6), out=a(6, dtype=F64)), TypeError,
     [arg("out"), "float64"]),
    ("relu-out-readonly", lambda: core.relu_forward(a(6), out=readonly(6)), ValueError,
     [arg("out"), READONLY]),
    ("relu-out-partial-overlap", _relu_partial_overlap, ValueError, [arg("out"), OVERLAP]),
    ("relu-x-noncontig", lambda: core.relu_forward(noncontig(4, 6)), ValueError,
     [arg("x"), CONTIG]),
    ("relu-empty", lambda: core.relu_forward(a(0)), ValueError, [arg("x"), EMPTY]),
    ("relu-empty-2d", lambda: core.relu_forward(a(3, 0)), ValueError, [arg("x"), EMPTY]),
    ("relub-shape-mismatch", lambda: core.relu_backward(a(5, 6), a(6, 5)), ValueError,
     [arg("dy", "y"), r"\(6, 5\)|\(5, 6\)"]),
    ("relub-y-float64", lambda: core.relu_backward(a(5, 6), a(5, 6, dtype=F64)), TypeError,
     [arg("y"), "float64"]),
    ("relub-dy-fortran", lambda: core.relu_backward(fortran(5, 6), a(5, 6)), ValueError,
     [arg("dy"), CONTIG]),
    ("relub-out-readonly", lambda: core.relu_backward(a(5, 6), a(5, 6), out=readonly(5, 6)),
     ValueError, [arg("out"), READONLY]),
    # --- softmax_xent ---------------------------------------------------------------------
    ("sx-logits-float64", lambda: core.softmax_xent_forward(a(5, 10, dtype=F64), L5), TypeError,
     [arg("logits"), "float64"]),
    ("sx-labels-float32", lambda: core.softmax_xent_forward(a(5, 10), L5.astype(F32)),
     TypeError, [arg("labels"), "float32"]),
    ("sx-labels-float64", lambda: core.softmax_xent_forward(a(5, 10), L5.astype(F64)),
     TypeError, [arg("labels"), "float64"]),
    ("sx-labels-int8", lambda: core.softmax_xent_forward(a(5, 10), L5.astype(np.int8)),
     TypeError, [arg("labels"), "int8"]),
    ("sx-labels-list", lambda: core.softmax_xent_forward(a(5, 10), [1, 2, 3, 4, 0]), TypeError,
     [arg("labels")]),
    ("sx-logits-1d", lambda: core.softmax_xent_forward(a(10), L5), ValueError,
     [arg("logits"), shape(10)]),
    ("sx-labels-2d", lambda: core.softmax_xent_forward(a(5, 10), L5.reshape(5, 1)), ValueError,
     [arg("labels"), shape(5, 1)]),
    ("sx-labels-length", lambda: core.softmax_xent_forward(a(5, 10), labels(1, 2, 3, 4, 0, 1)),
     ValueError, [arg("labels"), shape(6)]),
    ("sx-label-negative", lambda: core.softmax_xent_forward(a(5, 10), _labels_with(-1)),
     ValueError, [arg("labels"), RANGE, r"-1\b"]),
    ("sx-label-negative-int32",
     lambda: core.softmax_xent_forward(a(5, 10), _labels_with(-7, np.int32)), ValueError,
     [arg("labels"), RANGE, r"-7\b"]),
    ("sx-label-eq-C", lambda: core.softmax_xent_forward(a(5, 10), _labels_with(10)), ValueError,
     [arg("labels"), RANGE, r"\b10\b"]),
    ("sx-label-huge", lambda: core.softmax_xent_forward(a(5, 10), _labels_with(2**40)),
     ValueError, [arg("labels"), RANGE, str(2**40)]),
    ("sx-logits-noncontig", lambda: core.softmax_xent_forward(noncontig(5, 10), L5), ValueError,
     [arg("logits"), CONTIG]),
    ("sx-logits-fortran", lambda: core.softmax_xent_forward(fortran(5, 10), L5), ValueError,
     [arg("logits"), CONTIG]),
    ("sx-labels-noncontig",
     lambda: core.softmax_xent_forward(a(5, 10), np.repeat(L5, 2)[::2]), ValueError,
     [arg("labels"), CONTIG]),
    ("sx-losses-shape", lambda: core.softmax_xent_forward(a(5, 10), L5, losses=a(4)),
     ValueError, [arg("losses"), shape(4)]),
    ("sx-losses-readonly", lambda: core.softmax_xent_forward(a(5, 10), L5, losses=readonly(5)),
     ValueError, [arg("losses"), READONLY]),
    ("sx-losses-overlap-logits", _sx_losses_overlap_logits, ValueError,
     [arg("losses"), OVERLAP]),
    ("sx-empty-M", lambda: core.softmax_xent_forward(a(0, 10), labels()), ValueError,
     [arg("logits", "labels"), EMPTY]),
    ("sx-empty-C", lambda: core.softmax_xent_forward(a(5, 0), L5), ValueError,
     [arg("logits", "labels")]),
    ("sxb-dlogits-shape", lambda: core.softmax_xent_backward(a(5, 10), L5, dlogits=a(5, 9)),
     ValueError, [arg("dlogits"), shape(5, 9)]),
    ("sxb-dlogits-float64",
     lambda: core.softmax_xent_backward(a(5, 10), L5, dlogits=a(5, 10, dtype=F64)), TypeError,
     [arg("dlogits"), "float64"]),
    ("sxb-dlogits-is-logits",
     lambda: (lambda z: core.softmax_xent_backward(z, L5, dlogits=z))(a(5, 10)), ValueError,
     [arg("dlogits"), OVERLAP]),
    ("sxb-dlogits-readonly",
     lambda: core.softmax_xent_backward(a(5, 10), L5, dlogits=readonly(5, 10)), ValueError,
     [arg("dlogits"), READONLY]),
    ("sxb-label-eq-C", lambda: core.softmax_xent_backward(a(5, 10), _labels_with(10)),
     ValueError, [arg("labels"), RANGE, r"\b10\b"]),
    ("sxb-labels-int16", lambda: core.softmax_xent_backward(a(5, 10), L5.astype(np.int16)),
     TypeError, [arg("labels"), "int16"]),
    # --- sgd_update -----------------------------------------------------------------------
    ("sgd-grads-length", lambda: core.sgd_update([a(3), a(4)], [a(3)], lr=0.1), ValueError,
     [arg("grads")]),
    ("sgd-bufs-length",
     lambda: core.sgd_update([a(3), a(4)], [a(3), a(4)], [a(3)], lr=0.1, momentum=0.9),
     ValueError, [arg("momentum_bufs")]),
    ("sgd-scales-length",
     lambda: core.sgd_update([a(3), a(4)], [a(3), a(4)], lr=0.1, grad_scales=[1.0]),
     ValueError, [arg("grad_scales")]),
    ("sgd-grad-shape", lambda: core.sgd_update([a(3), a(3, 4)], [a(3), a(4, 3)], lr=0.1),
     ValueError, [arg("grads"), shape(4, 3)]),
    ("sgd-buf-shape",
     lambda: core.sgd_update([a(3, 4)], [a(3, 4)], [a(12)], lr=0.1, momentum=0.9), ValueError,
     [arg("momentum_bufs"), shape(12)]),
    ("sgd-param-float64", lambda: core.sgd_update([a(3, dtype=F64)], [a(3)], lr=0.1), TypeError,
     [arg("params"), "float64"]),
    ("sgd-grad-float64", lambda: core.sgd_update([a(3)], [a(3, dtype=F64)], lr=0.1), TypeError,
     [arg("grads"), "float64"]),
    ("sgd-buf-float64",
     lambda: core.sgd_update([a(3)], [a(3)], [a(3, dtype=F64)], lr=0.1, momentum=0.9),
     TypeError, [arg("momentum_bufs"), "float64"]),
    ("sgd-param-not-array", lambda: core.sgd_update([[1.0, 2.0]], [a(2)], lr=0.1), TypeError,
     [arg("params")]),
    ("sgd-momentum-without-bufs",
     lambda: core.sgd_update([a(3)], [a(3)], lr=0.1, momentum=0.9), ValueError,
     [arg("momentum_bufs")]),
    ("sgd-param-readonly", lambda: core.sgd_update([readonly(3)], [a(3)], lr=0.1), ValueError,
     [arg("params"), READONLY]),
    ("sgd-buf-readonly",
     lambda: core.sgd_update([a(3)], [a(3)], [readonly(3)], lr=0.1, momentum=0.9), ValueError,
     [arg("momentum_bufs"), READONLY]),
    ("sgd-grad-noncontig", lambda: core.sgd_update([a(4, 3)], [noncontig(4, 3)], lr=0.1),
     ValueError, [arg("grads"), CONTIG]),
    ("sgd-param-fortran", lambda: core.sgd_update([fortran(4, 3)], [a(4, 3)], lr=0.1),
     ValueError, [arg("params"), CONTIG]),
    ("sgd-grad-is-param", lambda: (lambda p: core.sgd_update([p], [p], lr=0.1))(a(5)),
     ValueError, [OVERLAP]),
    ("sgd-empty-array", lambda: core.sgd_update([a(0)], [a(0)], lr=0.1), ValueError,
     [arg("params", "grads"), EMPTY]),
    # --- sum_squares, dispatch, threads ---------------------------------------------------
    ("ss-float64", lambda: core.sum_squares([a(3), a(3, dtype=F64)]), TypeError, ["float64"]),
    ("ss-noncontig", lambda: core.sum_squares([noncontig(4, 3)]), ValueError, [CONTIG]),
    ("ss-array-not-list-item", lambda: core.sum_squares([[1.0, 2.0]]), TypeError, []),
    ("ss-empty-array", lambda: core.sum_squares([a(0)]), ValueError, []),
    ("set-isa-bogus", lambda: core.set_isa("bogus"), ValueError, ["bogus"]),
    ("set-threads-0", lambda: core.set_num_threads(0), ValueError, []),
    ("set-threads-negative", lambda: core.set_num_threads(-3), ValueError, []),
]


@pytest.mark.parametrize("call,exc,patterns", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error(call, exc, patterns):
    with pytest.raises(exc, match=facts(*patterns)):
        call()


def test_case_ids_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_top_level_set_isa_rejects_unknown():
    with pytest.raises(ValueError, match="bogus"):
        fastdense.set_isa("bogus")


def test_set_isa_unavailable(supported_isas):
    """An ISA that is known but not compiled in / not supported here is refused clearly."""
    unavailable = [n for n in ("avx2", "avx512") if n not in supported_isas]
    if not unavailable:
        pytest.skip("every known ISA is compiled in and supported by this CPU")
    prev = core.active_isa()
    for name in unavailable:
        with pytest.raises((RuntimeError, ValueError), match=name):
            core.set_isa(name)
        assert core.active_isa() == prev


# ---------------------------------------------------------------------------------------------
# Validation happens before any computation: failed calls leave every output untouched.
# ---------------------------------------------------------------------------------------------


def test_failed_matmul_leaves_out_untouched():
    out = np.full((5, 3), 42.0, F32)
    with pytest.raises(TypeError):
        core.matmul_forward(a(5, 7), a(7, 3), a(3, dtype=F64), out=out)
    with pytest.raises(ValueError):
        core.matmul_forward(a(5, 7), a(7, 3), a(4), relu=True, out=out)
    assert (out == 42.0).all()
    dw, db = np.full((7, 3), 42.0, F32), np.full(3, 42.0, F32)
    with pytest.raises(ValueError):
        core.matmul_backward_weight(a(5, 7), a(5, 3), dw=dw, db=a(4))
    assert (dw == 42.0).all() and (db == 42.0).all()


def test_failed_softmax_leaves_outputs_untouched():
    lab = labels(1, 2, 3, 4, 10)  # the last row's label is out of range
    losses, dl = np.full(5, 42.0, F32), np.full((5, 10), 42.0, F32)
    with pytest.raises(ValueError, match=RANGE):
        core.softmax_xent_backward(a(5, 10), lab, dlogits=dl, losses=losses)
    assert (losses == 42.0).all() and (dl == 42.0).all()


def test_failed_sgd_leaves_every_array_untouched():
    params = [a(4, fill=1.0), a(3, 4, fill=2.0)]
    bufs = [a(4, fill=3.0), a(3, 4, fill=4.0)]
    grads = [a(4), a(4, 3)]  # the second array's grad has the wrong shape
    with pytest.raises(ValueError):
        core.sgd_update(params, grads, bufs, lr=0.1, momentum=0.9)
    assert (params[0] == 1.0).all() and (params[1] == 2.0).all()
    assert (bufs[0] == 3.0).all() and (bufs[1] == 4.0).all()


# ---------------------------------------------------------------------------------------------
# Nasty inputs: each must raise, never crash the process (a crash would kill pytest).
# ---------------------------------------------------------------------------------------------


def test_no_crash_on_nasty_inputs():
    huge = np.broadcast_to(np.float32(1.0), (1 << 31, 3))  # 24 GiB claimed, stride 0
    with pytest.raises(ValueError):
        core.matmul_forward(huge, a(3, 4))
    huge_w = np.lib.stride_tricks.as_strided(a(1), shape=(3, 1 << 40), strides=(0, 0))
    with pytest.raises(ValueError):
        core.matmul_forward(a(2, 3), huge_w)
    with pytest.raises(ValueError):
        core.relu_forward(np.broadcast_to(np.float32(1.0), (1 << 40,)))
    with pytest.raises(ValueError):
        core.matmul_forward(a(5, 7), a(7, 3), out=a(5, 3)[::-1])
    with pytest.raises(ValueError):
        core.softmax_xent_forward(a(5, 10), _labels_with(np.iinfo(np.int64).min))
    with pytest.raises(ValueError):
        core.matmul_forward(np.zeros((), F32), a(1, 1))  # 0-d
    with pytest.raises((TypeError, ValueError)):
        core.matmul_forward(np.float32(1.0), a(1, 1))  # numpy scalar, not an array
    with pytest.raises((TypeError, ValueError)):
        core.matmul_forward(a(2, 3).astype(">f4"), a(3, 4))  # big-endian float32
    with pytest.raises(TypeError):
        core.matmul_forward(np.empty((2, 3), dtype=object), a(3, 4))

    nones = [
        lambda: core.matmul_forward(None, None),
        lambda: core.matmul_forward(a(2, 3), None),
        lambda: core.matmul_backward_input(None, None),
        lambda: core.matmul_backward_weight(None, None),
        lambda: core.relu_forward(None),
        lambda: core.relu_backward(None, None),
        lambda: core.softmax_xent_forward(None, None),
        lambda: core.softmax_xent_backward(a(5, 10), None),
        lambda: core.sgd_update(None, None, lr=0.1),
        lambda: core.sgd_update([None], [None], lr=0.1),
        lambda: core.sgd_update([a(3)], [a(3)], [None], lr=0.1, momentum=0.9),
        lambda: core.sum_squares(None),
        lambda: core.sum_squares([None]),
        lambda: core.set_isa(None),
    ]
    for i, call in enumerate(nones):
        with pytest.raises(TypeError):
            call()
