"""Peak probe: measured FP32 FMA throughput of the active ISA (``_core.peak_gflops``).

Every other figure is stated as a percentage of the peak measured for the same thread count.
The reference is the best sample (``gflops_max``): the probe can only be slowed down by other
load on the machine, never sped up, so the best sample is the closest to the hardware's limit
and the percentages derived from it are conservative.

On one thread it also measures the GEMM's register tile alone (``_core.tile_gflops``: packed
operands in cache, no packing, no caller's C): the ceiling of every GEMM of the active ISA,
which splits a GEMM's distance from the peak into the tile's own and that of everything around
it (rows with ``probe == "tile"``; they are never the peak reference). And it takes that
"around" apart (``_core.gemm_parts_gflops``, ``probe == "parts"``): a 1024³ X·W whole, without
packing, without the caller's C, and without either, back to back in each sample.
"""

from __future__ import annotations

import statistics

from bench import common


def _blas_name(np):
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{cfg.get('name')} {cfg.get('version')}"
    except Exception:  # numpy < 2 has no dict mode; the name is context, not a result
        return "unknown"


def _row(probe, case, threads, samples, seconds):
    return {
        "group": "peak",
        "case": case,
        "probe": probe,
        "lib": "fastdense",
        "threads": threads,
        "gflops": statistics.median(samples),
        "gflops_min": min(samples),
        "gflops_max": max(samples),
        "samples_gflops": samples,
        "probe_s": seconds,
    }


def run(spec):
    import numpy as np

    import fastdense
    from fastdense import _core

    t = spec["threads"]
    fastdense.set_num_threads(t)
    seconds = 0.2
    _core.peak_gflops(t, 0.05)  # warm-up: wake the cores, start the OpenMP team
    samples = [_core.peak_gflops(t, seconds) for _ in range(spec["repeats"])]
    again = ", end of suite" if spec["params"].get("again") else ""
    rows = [_row("fma", f"FMA peak {t}T{again}", t, samples, seconds)]
    if t == 1:
        _core.tile_gflops(0.05)
        tiles = [_core.tile_gflops(seconds) for _ in range(spec["repeats"])]
        rows.append(_row("tile", f"GEMM register tile alone 1T{again}", t, tiles, seconds))
        parts = common.gemm_parts(spec["repeats"], seconds)  # (a 1024³ X·W; none for ref)
        if parts:
            row = _row("parts", f"GEMM 1024³ X·W 1T, whole and by part{again}", t,
                       [p["whole"] for p in parts[1]], seconds)
            row["parts"], row["samples_parts"] = parts
            rows.append(row)
    ctx = {
        "fastdense": fastdense.__version__,
        "isa": fastdense.active_isa(),
        "compiled_isas": list(fastdense.compiled_isas()),
        "supported_isas": list(fastdense.supported_isas()),
        "openmp": bool(_core.has_openmp() if callable(_core.has_openmp) else _core.has_openmp),
        "numpy": np.__version__,
        "blas": _blas_name(np),
    }
    return {"rows": rows, "context": ctx}
