"""GEMM in the three forms a training step needs, for one library and one shape.

    X·W     (M,K)·(K,N) -> (M,N)    forward
    dY·Wᵀ   (M,N)·(N,K) -> (M,K)    input gradient
    Xᵀ·dY   (K,M)·(M,N) -> (K,N)    weight gradient

Inputs and outputs are allocated outside the timed region; every library writes into a
preallocated output (fastdense ``out=``/``dw=``, ``np.matmul(out=)``, ``torch.matmul(out=)``;
transposes are views, never copies). fastdense's weight gradient is called with
``bias=False`` so that it computes exactly the product.
"""

from __future__ import annotations

from bench import common


def _callables(lib, M, K, N, threads):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((M, K), dtype=np.float32)
    W = rng.standard_normal((K, N), dtype=np.float32)
    dY = rng.standard_normal((M, N), dtype=np.float32)
    Y, dX, dW = (np.empty(s, np.float32) for s in [(M, N), (M, K), (K, N)])
    if lib == "numpy":
        return {
            "X·W": lambda: np.matmul(X, W, out=Y),
            "dY·Wᵀ": lambda: np.matmul(dY, W.T, out=dX),
            "Xᵀ·dY": lambda: np.matmul(X.T, dY, out=dW),
        }, np.__version__
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
        tX, tW, tdY, tY, tdX, tdW = map(torch.from_numpy, (X, W, dY, Y, dX, dW))
        return {
            "X·W": lambda: torch.matmul(tX, tW, out=tY),
            "dY·Wᵀ": lambda: torch.matmul(tdY, tW.t(), out=tdX),
            "Xᵀ·dY": lambda: torch.matmul(tX.t(), tdY, out=tdW),
        }, torch.__version__
    import fastdense
    from fastdense import _core

    fastdense.set_num_threads(threads)
    return {
        "X·W": lambda: _core.matmul_forward(X, W, out=Y),
        "dY·Wᵀ": lambda: _core.matmul_backward_input(dY, W, out=dX),
        "Xᵀ·dY": lambda: _core.matmul_backward_weight(X, dY, dw=dW, bias=False),
    }, fastdense.__version__


def run(spec):
    rows = []
    for shape in spec["params"]["shapes"]:
        rows += _run_shape(spec, *shape)
    return {"rows": rows}


def _run_shape(spec, M, K, N):
    lib, t = spec["lib"], spec["threads"]
    fns, version = _callables(lib, M, K, N, t)
    # Two threads: where the host ran them, around every sample (common.PLACEMENTS).
    roundtrip = common.roundtrip_probe() if t == 2 else None
    rows = []
    for form in common.GEMM_FORMS:
        m = common.measure(fns[form], repeats=spec["repeats"], min_sample_s=spec["min_sample_s"],
                           warmup_s=spec["warmup_s"], roundtrip=roundtrip)
        flops = 2.0 * M * K * N
        rows.append(dict(
            group="gemm", case=f"{form} {common.gemm_label(M, K, N)}", form=form,
            shape=[M, K, N], square=(M == K == N), lib=lib, version=version, threads=t,
            flops=flops, gflops=flops / m["median_s"] / 1e9,
            gflops_min=flops / m["max_s"] / 1e9, gflops_max=flops / m["min_s"] / 1e9, **m,
        ))
        if lib == "fastdense" and t == 1 and (M, K, N) in common.GEMM_SMALL:
            rows[-1].update(_parts(M, K, N, form, spec["repeats"]))
    return rows


# The fastdense kernel that runs each form (its name is gemm_parts_gflops' `form`).
_KERNEL = {"X·W": "forward", "dY·Wᵀ": "backward_input", "Xᵀ·dY": "backward_weight"}


def _parts(M, K, N, form, repeats):
    """The small shapes' profile, in the process and minute of their timed calls: the same
    one-thread GEMM called from C++ (no Python, no argument checks), whole and without
    packing and/or the caller's C (``_core.gemm_parts_gflops``), medians of ``repeats``
    samples that run the four back to back; and the same call from Python on a 1x1·1x1
    product (``call_1x1_s``): what crossing into the kernel costs whatever the shape (the
    interpreter, pybind11, the argument checks, the dispatch). Nothing for the reference ISA,
    which has no packed GEMM to take apart."""
    parts = common.gemm_parts(repeats, 0.1, shape=(M, K, N), form=_KERNEL[form])
    if not parts:
        return {}
    tiny = common.measure(_callables("fastdense", 1, 1, 1, 1)[0][form], repeats=repeats,
                          min_sample_s=0.02, warmup_s=0.02)
    return {"parts": parts[0], "samples_parts": parts[1], "call_1x1_s": tiny["median_s"]}
