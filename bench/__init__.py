"""fastdense benchmark suite.

    python -m bench                 # full run: peak, GEMM, training step, step profile, epoch
    python -m bench --quick         # the same cases, fewer sizes and repeats (< 2 minutes)
    python -m bench.report bench/results/latest.json   # regenerate the report and plots

Every case (one group, one library, one thread count, one shape or configuration) runs in a
fresh ``python -m bench.worker`` process that pins itself to the first ``threads`` cores and sets
every library's thread count before any of them is imported; see ``bench/runner.py``.

This package's ``__init__`` imports nothing on purpose: the worker must set environment
variables and CPU affinity before numpy, torch or jax load.
"""
