"""Shared fixtures and float64 reference helpers for the fastdense kernel tests.

Helpers are exposed as fixtures (session-scoped where possible, so that hypothesis tests can use
them too) instead of being imported from this module.

Tolerances follow llm.c's validate_result idea, scaled by magnitude: a float32 result is accepted
when |got - ref| <= c * eps32 * (sum of the absolute values of the terms that produced it) + tiny,
where ref is computed in float64 from the same float32 inputs.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from types import SimpleNamespace

import warnings

import numpy as np
import pytest

import fastdense
from fastdense import _core as core

F32 = np.float32
F64 = np.float64
EPS32 = float(np.finfo(np.float32).eps)
TINY = 1e-30
GEMM_C = 4.0  # c in |err| <= c * eps32 * sum_k |a_ik||b_kj| + tiny
ISA_PREFERENCE = ("ref", "avx2", "avx512")  # worst to best

# When a hypothesis test fails, hypothesis' pytest plugin lazily imports its patch writer (and
# libcst); some libcst/mypy_extensions versions emit a DeprecationWarning on that import, which
# filterwarnings=error turns into an INTERNALERROR that hides the actual failure. Import it now,
# with warnings silenced, so the later import is a cache hit.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import hypothesis.extra._patching  # noqa: F401
    except Exception:  # not installed / internal layout changed: nothing to pre-load
        pass

# Evaluated at collection time: every ISA this build can run on this CPU.
SUPPORTED_ISAS = list(core.supported_isas())


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "cross_isa_relaxable: asserts cross-ISA bitwise equality for kernels the determinism "
        "contract in kernels.h does not cover (softmax, sgd, sum_squares, relu); relax to a "
        "tolerance if the implementation documents ISA-dependent rounding for them",
    )


def pytest_report_header(config):
    return [
        f"fastdense {fastdense.__version__}: compiled={core.compiled_isas()} "
        f"supported={core.supported_isas()} active={core.active_isa()} "
        f"threads={core.get_num_threads()} openmp={core.has_openmp}"
    ]


# --------------------------------------------------------------------------------------------
# ISA and thread-count control (always restored)
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _isa_context(name):
    prev = core.active_isa()
    core.set_isa(name)
    try:
        yield name
    finally:
        core.set_isa(prev)


@contextlib.contextmanager
def _threads_context(n):
    prev = core.get_num_threads()
    core.set_num_threads(n)
    try:
        yield core.get_num_threads()
    finally:
        core.set_num_threads(prev)


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Runs the test once per ISA that is compiled in and supported here; restores afterwards."""
    with _isa_context(request.param):
        assert core.active_isa() == request.param
        yield request.param


@pytest.fixture(scope="session")
def supported_isas():
    return list(SUPPORTED_ISAS)


@pytest.fixture(scope="session")
def use_isa():
    """Context manager factory: `with use_isa("avx2"): ...` (for loops and hypothesis tests)."""
    return _isa_context


@pytest.fixture(scope="session")
def use_threads():
    """Context manager factory: `with use_threads(2): ...`; yields the resulting thread count."""
    return _threads_context


@pytest.fixture
def threads():
    """Setter `threads(n) -> get_num_threads()`; the previous count is restored afterwards."""
    prev = core.get_num_threads()

    def set_threads(n):
        core.set_num_threads(n)
        return core.get_num_threads()

    yield set_threads
    core.set_num_threads(prev)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's node id, so every test gets its own fixed stream."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


# --------------------------------------------------------------------------------------------
# Comparison helpers
# --------------------------------------------------------------------------------------------


def _fmt_index(idx):
    return "(" + ", ".join(str(int(v)) for v in idx) + ")"


def _check_close(got, ref, tol, what="result", max_show=6):
    """Fails (printing the first few mismatches) unless |got - ref| <= tol elementwise.

    Exactly equal values (including equal infinities) and NaN-where-NaN-expected pass.
    """
    got = np.asarray(got)
    ref = np.asarray(ref, dtype=F64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    g = got.astype(F64)
    t = np.broadcast_to(np.asarray(tol, dtype=F64), ref.shape)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        err = np.abs(g - ref)
        ok = (err <= t) | (g == ref) | (np.isnan(g) & np.isnan(ref))
        if ok.all():
            return
        bad = np.argwhere(~ok)
        ratio = np.where(ok, 0.0, err / np.maximum(t, 1e-300))
    lines = [f"{what}: {len(bad)} of {ref.size} elements outside tolerance "
             f"(worst |err|/tol = {np.nanmax(ratio):.3g})"]
    for idx in bad[:max_show]:
        i = tuple(int(v) for v in idx)
        lines.append(f"  at {_fmt_index(i)}: got {g[i]!r}, expected {ref[i]!r}, "
                     f"|err| {err[i]:.3e} > tol {t[i]:.3e}")
    msg = "\n".join(lines)
    print(msg)
    pytest.fail(msg, pytrace=False)


def _assert_bitwise(a, b, what="result", max_show=6):
    """Fails unless a and b have the same dtype, shape and raw bytes (prints first mismatches)."""
    a = np.ascontiguousarray(np.asarray(a))
    b = np.ascontiguousarray(np.asarray(b))
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} vs {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    ua = a.view(f"u{a.itemsize}")
    ub = b.view(f"u{b.itemsize}")
    if np.array_equal(ua, ub):
        return
    bad = np.argwhere(ua != ub)
    lines = [f"{what}: {len(bad)} of {a.size} elements differ bitwise"]
    for idx in bad[:max_show]:
        i = tuple(int(v) for v in idx)
        lines.append(f"  at {_fmt_index(i)}: {a[i]!r} (0x{int(ua[i]):x}) vs "
                     f"{b[i]!r} (0x{int(ub[i]):x})")
    msg = "\n".join(lines)
    print(msg)
    pytest.fail(msg, pytrace=False)


# -- helpers shared by several test files (imported with `from conftest import ...`) ---------


def central_diff(f, x, h=1e-6):
    """d f / d x by central differences in float64; f maps a float64 array to a scalar.
    (Finite differences only in float64: in float32 the rounding error swamps the step.)"""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        fp = f(x)
        x[idx] = old - h
        fm = f(x)
        x[idx] = old
        g[idx] = (fp - fm) / (2 * h)
    return g


class CallCounter:
    """Wraps a function and counts its calls (to check how often a step crosses into C++)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture(scope="session")
def check_close():
    return _check_close


@pytest.fixture(scope="session")
def assert_bitwise():
    return _assert_bitwise


# --------------------------------------------------------------------------------------------
# float64 references (each returns values and a magnitude-scaled tolerance)
# --------------------------------------------------------------------------------------------


def _matmul_forward(x, w, b=None, relu=False):
    x64, w64 = np.asarray(x, F64), np.asarray(w, F64)
    y = x64 @ w64
    mag = np.abs(x64) @ np.abs(w64)
    if b is not None:
        b64 = np.asarray(b, F64)
        y = y + b64
        mag = mag + np.abs(b64)
    if relu:
        y = np.maximum(y, 0.0)
    return y, GEMM_C * EPS32 * mag + TINY


def _matmul_backward_input(dy, w, mask=None):
    dy64, w64 = np.asarray(dy, F64), np.asarray(w, F64)
    dx = dy64 @ w64.T
    tol = GEMM_C * EPS32 * (np.abs(dy64) @ np.abs(w64).T) + TINY
    if mask is not None:
        with np.errstate(invalid="ignore"):
            keep = np.asarray(mask) > 0
        dx = np.where(keep, dx, 0.0)
        tol = np.where(keep, tol, 0.0)  # masked entries must be exactly zero
    return dx, tol


def _matmul_backward_weight(x, dy):
    x64, dy64 = np.asarray(x, F64), np.asarray(dy, F64)
    dw = x64.T @ dy64
    tol_dw = GEMM_C * EPS32 * (np.abs(x64).T @ np.abs(dy64)) + TINY
    db = dy64.sum(axis=0)
    tol_db = GEMM_C * EPS32 * np.abs(dy64).sum(axis=0) + TINY
    return dw, tol_dw, db, tol_db


def _softmax_xent(logits, labels, grad_scale=None):
    """Stable float64 softmax cross-entropy (no warnings for +-1e5 logits)."""
    z = np.asarray(logits, F64)
    M, C = z.shape
    lab = np.asarray(labels).astype(np.int64)
    rows = np.arange(M)
    m = z.max(axis=1)
    with np.errstate(under="ignore"):
        e = np.exp(z - m[:, None])
    s = e.sum(axis=1)
    lse = m + np.log(s)
    zy = z[rows, lab]
    losses = lse - zy
    p = e / s[:, None]
    scale = (1.0 / M) if grad_scale is None else float(grad_scale)
    grad = p.copy()
    grad[rows, lab] -= 1.0
    grad *= scale
    tol_losses = 8 * EPS32 * (np.abs(m) + np.abs(zy) + np.abs(losses) + math.sqrt(C) + 1.0)
    tol_grad = abs(scale) * EPS32 * ((16.0 + 2.0 * math.sqrt(C)) * p + 4.0) + TINY
    return SimpleNamespace(
        mean=float(losses.mean()), losses=losses, dlogits=grad, p=p,
        tol_mean=float(tol_losses.mean()) + 1e-12, tol_losses=tol_losses, tol_dlogits=tol_grad,
    )


def _sgd_step(param, grad, buf=None, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
              nesterov=False, first_step=False, grad_scale=1.0, clip_value=None):
    """One PyTorch-rule SGD step in float64 from the given float32 state.

    Returns (param, buf or None, tol_param, tol_buf or None); tolerances are 8 eps32 times the
    sum of magnitudes of the terms in each result, so that error does not accumulate over steps
    when the caller restarts every step from the kernel's float32 state.
    """
    t = np.asarray(param, F64)
    g = np.asarray(grad, F64) * grad_scale
    gm = np.abs(g)
    if clip_value is not None and 0 < clip_value < math.inf:
        g = np.clip(g, -clip_value, clip_value)
        gm = np.minimum(gm, clip_value)
    g = g + weight_decay * t
    gm = gm + abs(weight_decay) * np.abs(t)
    b = bm = None
    if momentum != 0:
        if first_step:
            b, bm = g, gm
        else:
            b0 = np.asarray(buf, F64)
            b = momentum * b0 + (1 - dampening) * g
            bm = abs(momentum) * np.abs(b0) + abs(1 - dampening) * gm
        if nesterov:
            g, gm = g + momentum * b, gm + abs(momentum) * bm
        else:
            g, gm = b, bm
    new = t - lr * g
    tol_t = 8 * EPS32 * (np.abs(t) + abs(lr) * gm) + TINY
    tol_b = None if bm is None else 8 * EPS32 * bm + TINY
    return new, b, tol_t, tol_b


@pytest.fixture(scope="session")
def ref():
    """float64 reference implementations returning (values, tolerance)."""
    return SimpleNamespace(
        matmul_forward=_matmul_forward,
        matmul_backward_input=_matmul_backward_input,
        matmul_backward_weight=_matmul_backward_weight,
        softmax_xent=_softmax_xent,
        sgd_step=_sgd_step,
        eps32=EPS32,
    )
