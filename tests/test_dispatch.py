"""Runtime ISA dispatch, the FASTDENSE_ISA / OMP_NUM_THREADS environment variables (checked in
fresh interpreters), the thread-count API and the version."""

import importlib.metadata
import os
import subprocess
import sys

import numpy as np
import pytest

import fastdense
from fastdense import _core as core

KNOWN = ("ref", "avx2", "avx512")  # worst to best


def run_python(code, tmp_path, **env_updates):
    """Runs `code` in a fresh interpreter with FASTDENSE_ISA/OMP_NUM_THREADS cleared unless given."""
    env = {k: v for k, v in os.environ.items() if k not in ("FASTDENSE_ISA", "OMP_NUM_THREADS")}
    env.update(env_updates)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


REPORT = """
import sys
try:
    import fastdense
except BaseException as e:
    print("IMPORT-FAILED", type(e).__name__, e)
    sys.exit(3)
print("ISA", fastdense.active_isa())
print("THREADS", fastdense.get_num_threads())
"""


def parse(result):
    assert result.returncode == 0, (result.stdout, result.stderr)
    fields = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    return fields["ISA"], int(fields["THREADS"])


# ---------------------------------------------------------------------------------------------
# In-process API
# ---------------------------------------------------------------------------------------------


def test_isa_lists_consistent():
    compiled, supported, active = core.compiled_isas(), core.supported_isas(), core.active_isa()
    assert isinstance(compiled, list) and all(isinstance(n, str) for n in compiled)
    assert isinstance(supported, list) and isinstance(active, str)
    assert len(set(compiled)) == len(compiled) and len(set(supported)) == len(supported)
    assert set(compiled) <= set(KNOWN)
    assert "ref" in compiled and "ref" in supported
    assert set(supported) <= set(compiled)
    assert active in supported


def test_set_isa_switches(supported_isas):
    prev = core.active_isa()
    try:
        for name in supported_isas + list(reversed(supported_isas)):
            assert core.set_isa(name) is None
            assert core.active_isa() == name
            assert fastdense.active_isa() == name
            # and the kernels still run under it
            y = core.matmul_forward(np.ones((3, 5), np.float32), np.ones((5, 2), np.float32))
            assert (y == 5).all()
    finally:
        core.set_isa(prev)
    assert core.active_isa() == prev


def test_isa_and_thread_helpers_restore(use_isa, use_threads, supported_isas):
    prev_isa, prev_threads = core.active_isa(), core.get_num_threads()
    for name in supported_isas:
        with use_isa(name):
            assert core.active_isa() == name
        assert core.active_isa() == prev_isa
    with use_threads(1) as n:
        assert n == 1 == core.get_num_threads()
    assert core.get_num_threads() == prev_threads


def test_top_level_reexports(supported_isas):
    for name in ("compiled_isas", "supported_isas", "active_isa", "set_isa", "get_num_threads",
                 "set_num_threads"):
        assert callable(getattr(fastdense, name)), name
    assert fastdense.compiled_isas() == core.compiled_isas()
    assert fastdense.supported_isas() == core.supported_isas()
    assert fastdense.active_isa() == core.active_isa()
    assert fastdense.get_num_threads() == core.get_num_threads()
    prev = core.active_isa()
    try:
        for name in supported_isas:
            fastdense.set_isa(name)
            assert core.active_isa() == name
    finally:
        core.set_isa(prev)


def test_threads_api(threads):
    assert isinstance(core.has_openmp, bool)
    n0 = core.get_num_threads()
    assert isinstance(n0, int) and n0 >= 1
    if not core.has_openmp:
        assert n0 == 1
    for n in (1, 2, 3, 1):
        got = threads(n)
        assert got == (n if core.has_openmp else 1)
        assert fastdense.get_num_threads() == got
    fastdense.set_num_threads(2)
    assert core.get_num_threads() == (2 if core.has_openmp else 1)


@pytest.mark.parametrize("probe", ["peak", "tile"])
def test_benchmark_probes_run_under_every_isa(use_isa, supported_isas, probe):
    """The suite's probes (FMA peak, GEMM register tile alone) run each ISA's own code and
    return a rate; they reject a budget outside (0, 60] s. (What the rates are is measured
    by the benchmark suite, never asserted here.)"""
    call = (lambda s: core.peak_gflops(1, s)) if probe == "peak" else core.tile_gflops
    for name in supported_isas:
        with use_isa(name):
            g = call(0.01)
            assert np.isfinite(g) and g > 0, (name, g)
    for bad in (0.0, -1.0, float("nan"), 61.0):
        with pytest.raises(ValueError, match="seconds"):
            call(bad)
    with pytest.raises(ValueError, match="threads"):
        core.peak_gflops(0, 0.01)


def test_gemm_parts_probe_runs_every_packed_isa_and_refuses_ref(use_isa, use_threads,
                                                                supported_isas):
    """_core.gemm_parts_gflops times a one-thread GEMM (by default a 1024³ X·W; any shape, in
    each matmul kernel's form) whole and without packing and/or the caller's C under each
    vector ISA (four rates). Its first call for a shape checks that its GEMM gives the bits
    of the form's matmul kernel on the same operands (on one thread or two), so a probe with
    a mixed-up stride, layout or form raises; the reference GEMM has no parts and says so."""
    for name in supported_isas:
        with use_isa(name):
            if name == "ref":
                with pytest.raises(ValueError, match="'ref' has no packed GEMM"):
                    core.gemm_parts_gflops(0.01)
                # the arguments are checked first, whatever the ISA
                with pytest.raises(ValueError, match="`form` must be"):
                    core.gemm_parts_gflops(0.01, form="xw")
                continue
            parts = core.gemm_parts_gflops(0.01)
            assert set(parts) == {"whole", "no_packing", "no_caller_c", "neither"}, name
            assert all(np.isfinite(g) and g > 0 for g in parts.values()), (name, parts)
            # any shape, in each kernel's form, including edges of every kind, a batch of one
            # or two (run_wide), B read in place and packed; the self-check runs each time
            shapes = ((100, 784, 100), (100, 100, 10), (1, 33, 7), (2, 300, 100), (13, 5, 300),
                      (200, 600, 52))
            for threads in (1, 2):
                with use_threads(threads):
                    for form in ("forward", "backward_input", "backward_weight"):
                        for shape in shapes:
                            parts = core.gemm_parts_gflops(0.002, shape=shape, form=form)
                            assert all(np.isfinite(g) and g > 0 for g in parts.values()), \
                                (name, threads, form, shape, parts)
    for bad in (0.0, float("nan"), 61.0):
        with pytest.raises(ValueError, match="seconds"):
            core.gemm_parts_gflops(bad)
    with pytest.raises(ValueError, match="`form` must be 'forward'.*got 'X·W'"):
        core.gemm_parts_gflops(0.01, form="X·W")
    # sizes below 1; M*K, K*N or M*N past 2**27; M*K*N past 2**36
    for shape in ((0, 10, 10), (10, -1, 10), (1 << 14, 1 << 14, 1), (1, 1 << 14, 1 << 14),
                  (1 << 14, 1, 1 << 14), (1 << 13, 1 << 12, 1 << 12)):
        with pytest.raises(ValueError, match=r"`shape` \(M, K, N\)"):
            core.gemm_parts_gflops(0.01, shape=shape)
    with pytest.raises(TypeError):
        core.gemm_parts_gflops(0.01, shape=(10, 10))


def test_version_matches_metadata():
    meta = importlib.metadata.version("fastdense")
    assert isinstance(fastdense.__version__, str) and fastdense.__version__
    assert fastdense.__version__ == meta
    assert core.__version__ == meta


# ---------------------------------------------------------------------------------------------
# Environment variables, read once at import (fresh interpreters)
# ---------------------------------------------------------------------------------------------


def test_default_isa_is_best_supported(tmp_path, supported_isas):
    isa, _ = parse(run_python(REPORT, tmp_path))
    best = max(supported_isas, key=KNOWN.index)
    assert isa == best, f"default ISA {isa!r}, best supported is {best!r}"


@pytest.mark.parametrize("name", KNOWN)
def test_fastdense_isa_forces(tmp_path, supported_isas, name):
    if name not in supported_isas:
        pytest.skip(f"{name} not supported here (test_fastdense_isa_unavailable covers it)")
    isa, _ = parse(run_python(REPORT, tmp_path, FASTDENSE_ISA=name))
    assert isa == name


def test_fastdense_isa_forced_ref_still_computes(tmp_path):
    code = REPORT + (
        "import numpy as np\n"
        "y = fastdense._core.matmul_forward(np.ones((4, 9), np.float32), np.ones((9, 3), np.float32))\n"
        "assert (y == 9).all()\n"
        "print('OK', 1)\n"
    )
    res = run_python(code, tmp_path, FASTDENSE_ISA="ref")
    assert parse(res)[0] == "ref" and "OK 1" in res.stdout


@pytest.mark.parametrize("value", ["bogus", "avx1024", "AVX-2"])
def test_fastdense_isa_bogus_fails_import(tmp_path, value):
    res = run_python(REPORT, tmp_path, FASTDENSE_ISA=value)
    assert res.returncode != 0, res.stdout
    text = res.stdout + res.stderr
    assert "FASTDENSE_ISA" in text and value in text, text


def test_fastdense_isa_unavailable_fails_import(tmp_path, supported_isas):
    unavailable = [n for n in KNOWN if n not in supported_isas]
    if not unavailable:
        pytest.skip("every known ISA is compiled in and supported by this CPU")
    for value in unavailable:
        res = run_python(REPORT, tmp_path, FASTDENSE_ISA=value)
        assert res.returncode != 0, res.stdout
        text = res.stdout + res.stderr
        assert "FASTDENSE_ISA" in text and value in text, text


def test_omp_num_threads_one(tmp_path):
    _, n = parse(run_python(REPORT, tmp_path, OMP_NUM_THREADS="1"))
    assert n == 1


@pytest.mark.skipif(not core.has_openmp, reason="built without OpenMP")
def test_omp_num_threads_three(tmp_path):
    _, n = parse(run_python(REPORT, tmp_path, OMP_NUM_THREADS="3"))
    assert n == 3
