"""GEMM throughput of fastdense against numpy's BLAS, in the three forms a training step needs.

    python bench/gemm.py                 # 1 and 2 threads, writes bench/results/gemm.{json,md}
    python bench/gemm.py --repeats 11 --threads 1

Each (library, thread count) runs in its own process, because OpenBLAS and OpenMP fix their
thread pools when they load. Inside a process every case gets a warm-up, then `--repeats`
samples of enough calls to last ~50 ms each; we report the median with min and max. Inputs and
outputs are allocated outside the timed region and passed as `out=` buffers to both libraries.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHAPES = [(256, 1024, 1024), (1024, 1024, 1024)]  # (M, K, N): X is (M,K), W is (K,N)
FORMS = ["X@W", "dY@W.T", "X.T@dY"]
LIBS = ["fastdense", "numpy"]
RESULTS = Path(__file__).resolve().parent / "results"


def _callables(lib, form, M, K, N):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((M, K), dtype=np.float32)
    W = rng.standard_normal((K, N), dtype=np.float32)
    dY = rng.standard_normal((M, N), dtype=np.float32)
    Y, dX, dW = (np.empty(s, np.float32) for s in [(M, N), (M, K), (K, N)])
    if lib == "numpy":
        return {
            "X@W": lambda: np.matmul(X, W, out=Y),
            "dY@W.T": lambda: np.matmul(dY, W.T, out=dX),
            "X.T@dY": lambda: np.matmul(X.T, dY, out=dW),
        }[form]
    from fastdense import _core

    return {
        "X@W": lambda: _core.matmul_forward(X, W, out=Y),
        "dY@W.T": lambda: _core.matmul_backward_input(dY, W, out=dX),
        "X.T@dY": lambda: _core.matmul_backward_weight(X, dY, dw=dW, bias=False),
    }[form]


def _time(fn, repeats, min_sample_s=0.05):
    fn()
    fn()  # warm-up: thread pools, packing buffers, page faults
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_sample_s / one))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return samples


def worker(lib, threads, repeats):
    rows = []
    for M, K, N in SHAPES:
        for form in FORMS:
            s = _time(_callables(lib, form, M, K, N), repeats)
            flops = 2.0 * M * K * N
            rows.append(
                {
                    "lib": lib,
                    "threads": threads,
                    "form": form,
                    "M": M,
                    "K": K,
                    "N": N,
                    "median_s": statistics.median(s),
                    "min_s": min(s),
                    "max_s": max(s),
                    "gflops_median": flops / statistics.median(s) / 1e9,
                    "gflops_min": flops / max(s) / 1e9,
                    "gflops_max": flops / min(s) / 1e9,
                }
            )
    return rows


def context(threads):
    import numpy as np

    import fastdense

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # numpy < 2 has no dict mode; the name is context, not a result
        blas = "unknown"
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "fastdense": fastdense.__version__,
        "isa": fastdense.active_isa(),
        "numpy": np.__version__,
        "blas": blas,
        "python": platform.python_version(),
        "git": rev,
        "threads": threads,
    }


def markdown(ctx, rows):
    out = [
        f"GEMM GFLOP/s, median (min-max) of {ctx['repeats']} samples; "
        f"{ctx['cpu']}, fastdense {ctx['fastdense']} ({ctx['isa']}), numpy {ctx['numpy']} "
        f"({ctx['blas']}), git {ctx['git']}, {ctx['date']}.",
        "",
        "| threads | M×K×N | form | fastdense | numpy | ratio |",
        "|---|---|---|---|---|---|",
    ]
    key = {(r["lib"], r["threads"], r["form"], r["M"], r["K"], r["N"]): r for r in rows}
    for (lib, t, form, M, K, N), r in key.items():
        if lib != "fastdense" or ("numpy", t, form, M, K, N) not in key:
            continue
        n = key[("numpy", t, form, M, K, N)]

        def cell(x):
            return f"{x['gflops_median']:.1f} ({x['gflops_min']:.1f}-{x['gflops_max']:.1f})"

        ratio = r["gflops_median"] / n["gflops_median"]
        out.append(f"| {t} | {M}×{K}×{N} | {form} | {cell(r)} | {cell(n)} | {ratio:.2f}× |")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS / "gemm")
    ap.add_argument("--worker", nargs=2, metavar=("LIB", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        lib, t = args.worker[0], int(args.worker[1])
        json.dump(worker(lib, t, args.repeats), sys.stdout)
        return

    rows = []
    for t in args.threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t),
                   MKL_NUM_THREADS=str(t))
        for lib in LIBS:
            res = subprocess.run(
                [sys.executable, __file__, "--worker", lib, str(t), "--repeats",
                 str(args.repeats)],
                env=env, capture_output=True, text=True, check=True,
            )
            rows += json.loads(res.stdout)
    ctx = dict(context(args.threads), repeats=args.repeats)
    table = markdown(ctx, rows)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"context": ctx, "rows": rows}, indent=1))
    args.out.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
