"""What a 2-thread SGD step pays for weights that both threads just read.

When the forward GEMM splits the batch rows (``matmul_forward`` does; the training step did
until its forward split K instead, see gemm_split_k2), both cores read all of a layer's weight
matrix W; then the fused weight-gradient GEMM splits W's rows and each core writes its half in
the SGD epilogue. Every line of W is then shared by the other core's cache, and each write has
to take it back first. This measures that cost in isolation, on W of 784 x 400 floats (large
enough that sgd_update uses both threads):

* ``sgd alone``: ``sgd_update`` on W, repeatedly (each core keeps its half in its cache);
* ``after a forward``: the same call right after ``matmul_forward(X, W)`` on 2 threads read
  all of W on both cores (the pair is repeated; each call is timed on its own).

    python -m bench.coherence            # medians of 5 rounds of 300 pairs, in microseconds

It is not part of the suite; docs/benchmarks.md quotes it for why the training step's forward
splits K on two threads.
"""

from __future__ import annotations

import statistics
import time


def main(rounds: int = 5, pairs: int = 300) -> None:
    import numpy as np

    import fastdense
    from fastdense import _core

    fastdense.set_num_threads(2)
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((784, 400)) * 0.01).astype(np.float32)
    g = (rng.standard_normal(w.shape) * 1e-3).astype(np.float32)
    buf = np.zeros_like(w)
    x = rng.standard_normal((100, 784)).astype(np.float32)
    y = np.empty((100, 400), np.float32)

    def sgd():
        _core.sgd_update([w], [g], [buf], lr=1e-6, momentum=0.9, first_step=False)

    def forward():
        _core.matmul_forward(x, w, out=y)

    def per_call(calls, timed):
        total = 0.0
        for _ in range(pairs):
            for f in calls:
                t0 = time.perf_counter()
                f()
                if f is timed:
                    total += time.perf_counter() - t0
        return total / pairs * 1e6

    for f in (sgd, forward):
        for _ in range(50):
            f()
    alone = [per_call([sgd], sgd) for _ in range(rounds)]
    after = [per_call([forward, sgd], sgd) for _ in range(rounds)]
    print(f"sgd_update on 784x400, 2 threads: alone {statistics.median(alone):.1f} us "
          f"({min(alone):.1f}-{max(alone):.1f}); after a 2-thread forward read W "
          f"{statistics.median(after):.1f} us ({min(after):.1f}-{max(after):.1f})")


if __name__ == "__main__":
    main()
