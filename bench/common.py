"""Shared pieces of the suite: thread settings, timing, shapes, initial weights, data.

Only the standard library is imported at module level: ``thread_env`` and ``pin`` run in the
worker before numpy, torch or jax is loaded.
"""

from __future__ import annotations

import functools
import math
import os
import resource
import statistics
import time

# --------------------------------------------------------------------------- what is measured

GEMM_FORMS = ["X·W", "dY·Wᵀ", "Xᵀ·dY"]
# (M, K, N): X is (M, K), W is (K, N), dY is (M, N). Every form costs 2·M·K·N FLOPs.
GEMM_SQUARE = [256, 512, 1024, 2048, 4096]
GEMM_SQUARE_QUICK = [256, 1024]
GEMM_SMALL = [(100, 784, 100), (100, 100, 10)]
# A batch of 256 through a 1024-wide layer: the foundation issue's first speed figure.
GEMM_RECT = [(256, 1024, 1024)]

# name -> (layer sizes, batch size)
STEP_CONFIGS = {
    "784-100-10 b100": ([784, 100, 10], 100),
    "784-100-10 b1": ([784, 100, 10], 1),
    "784-1024-1024-10 b256": ([784, 1024, 1024, 10], 256),
    "4096-4096-4096-10 b1024": ([4096, 4096, 4096, 10], 1024),
}
STEP_CONFIGS_QUICK = ["784-100-10 b100", "784-100-10 b1", "784-1024-1024-10 b256"]
STEP_LR, STEP_MOMENTUM = 0.01, 0.9

EPOCH_SIZES, EPOCH_BATCH = [784, 100, 10], 100
EPOCH_LR, EPOCH_MOMENTUM, EPOCH_SEED = 0.05, 0.9, 0

LIBS = {
    "peak": ["fastdense"],
    "gemm": ["fastdense", "numpy", "torch"],
    "step": ["fastdense", "numpy", "torch", "jax"],
    "profile": ["fastdense"],
    "epoch": ["fastdense", "torch"],
}
GROUPS = list(LIBS)


def gemm_label(M, K, N):
    if M == K == N:
        return f"{M}³"
    return f"{M}×{K}·{K}×{N}"


def step_matmul_flops(sizes, m):
    """FLOPs of the matrix products in one training step: forward 2·m·Σ(in·out), backward
    twice that (weight and input gradients) minus the first layer's input gradient, which no
    library computes."""
    fwd = 2 * m * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 3 * fwd - 2 * m * sizes[0] * sizes[1]


# --------------------------------------------------------------------------- threads


def thread_env(threads: int) -> dict:
    """Environment variables that fix every library's thread count to ``threads``."""
    t = str(threads)
    env = {
        "OMP_NUM_THREADS": t,
        "OPENBLAS_NUM_THREADS": t,
        "MKL_NUM_THREADS": t,
        "BLIS_NUM_THREADS": t,
        "VECLIB_MAXIMUM_THREADS": t,
        "NUMEXPR_NUM_THREADS": t,
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if threads == 1:
        # XLA sizes its CPU thread pool from the schedulable CPUs (the affinity mask set by
        # `pin`), which is what actually limits JAX here; these flags additionally keep Eigen
        # single-threaded. XLA accepts the second token silently.
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env


def pin(cores):
    """Restrict this process (and the threads it creates later) to ``cores``."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cores))


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _busy_ticks(cpus):
    """Busy clock ticks (everything but idle and iowait, steal included) of ``cpus``, from
    /proc/stat; None where that is not available."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    total = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu" and int(name[3:]) in cpus:
            v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return total


class LoadMeter:
    """How much of this process's cores something else used while it ran: (busy time of the
    pinned cores − this process's CPU time) / wall time, in cores (0 = the cores were ours).
    Resolution is one clock tick (10 ms) per core, so short windows read ±0.1 core."""

    def __init__(self):
        self.cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def start(self):
        self.t0, self.c0, self.b0 = time.perf_counter(), cpu_seconds(), _busy_ticks(self.cpus)

    def stop(self):
        wall = time.perf_counter() - self.t0
        own = cpu_seconds() - self.c0
        b1 = _busy_ticks(self.cpus)
        util = own / wall if wall > 0 else None
        if b1 is None or self.b0 is None or wall <= 0:
            return util, None
        return util, max(0.0, ((b1 - self.b0) / self.hz - own) / wall)


def maxrss_mb():
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- timing


# The rates of _core.gemm_parts_gflops: a one-thread GEMM whole, and without the costs around
# its register tile, measured back to back in every sample.
GEMM_PARTS = ("whole", "no_packing", "no_caller_c", "neither")


def gemm_parts(repeats, seconds, **shape_form):
    """``repeats`` samples of ``_core.gemm_parts_gflops(seconds, **shape_form)``: the median
    rate per part and the samples, or None under the reference ISA (no packed GEMM)."""
    import fastdense
    from fastdense import _core

    if fastdense.active_isa() == "ref":
        return None
    samples = [_core.gemm_parts_gflops(seconds, **shape_form) for _ in range(repeats)]
    return {k: statistics.median(s[k] for s in samples) for k in GEMM_PARTS}, samples


def measure(fn, *, repeats, min_sample_s=0.05, warmup_s=0.1, sync=None, roundtrip=None):
    """Time ``fn``: warm up, then ``repeats`` samples of ``inner`` calls lasting at least
    ``min_sample_s`` each. ``sync(result)`` (JAX's block_until_ready) runs after every warm-up
    call and after the last call of every sample, so asynchronous libraries are timed to
    completion while consecutive calls may still overlap, as they do in a training loop.
    ``roundtrip()`` (``roundtrip_probe``), when given, runs before every sample and after the
    last, outside the timed calls.

    Returns a dict with per-call seconds (median, min, max over samples), the samples, the
    number of calls per sample, and ``cpu_util``: CPU seconds of all this process's threads
    divided by wall seconds over the samples (≈ the number of busy threads), and
    ``foreign_load``: cores' worth of other processes' work on the pinned cores meanwhile;
    with ``roundtrip``, ``samples_roundtrip_ns``: its ``repeats + 1`` readings (sample i lies
    between readings i and i + 1).
    """
    sync = sync or (lambda r: None)
    sync(fn())  # first call: compilation, thread pools, buffers, page faults
    t_start, calls = time.perf_counter(), 0
    while True:
        t0 = time.perf_counter()
        sync(fn())
        one = time.perf_counter() - t0
        calls += 1
        if time.perf_counter() - t_start >= warmup_s:
            break
    inner = max(1, math.ceil(min_sample_s / max(one, 1e-9)))
    samples, readings = [], []
    meter = LoadMeter()
    meter.start()
    for _ in range(repeats):
        if roundtrip:
            readings.append(roundtrip())
        t0 = time.perf_counter()
        r = None
        for _ in range(inner):
            r = fn()
        sync(r)
        samples.append((time.perf_counter() - t0) / inner)
    if roundtrip:
        readings.append(roundtrip())
    util, foreign = meter.stop()
    out = {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "samples_s": samples,
        "inner": inner,
        "cpu_util": util,
        "foreign_load": foreign,
    }
    if roundtrip:  # (a reading that found no fast chunk is NaN: None keeps the JSON standard)
        out["samples_roundtrip_ns"] = [v if v == v else None for v in readings]
    return out


# --------------------------------------------------------------------------- where the threads ran

# On a virtual machine the host places the two vCPUs, and moves them while the guest runs: on
# the sibling hyperthreads of one core, on two cores of one core complex (one L3), or on cores
# of two complexes. A cache line's round trip between the two threads tells which (on a 2-vCPU
# Zen 3 guest: ~70 ns, 90-170 ns, 380-550 ns), and each library's 2-thread step is slower in
# the far placements (784-100-10 b100: fastdense 314 vs 381 us, JAX 643 vs 775 us, torch 1.06
# vs 1.36 ms; docs/benchmarks.md). The classes, by round trip in ns: [low, high). They are
# this guest's: there the 2-thread FMA probe read the 1-thread peak below 80 ns, which is
# what makes that class one core. Elsewhere (bare metal, where two cores of one complex may
# answer in less) check them against that probe before trusting the one-core class; when a
# run has too few samples outside it, the bar falls back to all samples.
PLACEMENTS = [
    ("one core", 0.0, 80.0),
    ("one core complex", 80.0, 250.0),
    ("two core complexes", 250.0, 5000.0),
]
# Above the last class a round trip waited on the scheduler (another thread shared a CPU).


def placement_of(before_ns, after_ns):
    """The placement class of a sample from the round trips read before and after it, or None
    when they differ (the host moved a vCPU during the sample) or either is out of range."""
    def one(ns):
        for name, lo, hi in PLACEMENTS:
            if ns is not None and lo <= ns < hi:
                return name
        return None

    a, b = one(before_ns), one(after_ns)
    return a if a is not None and a == b else None


def samples_over_rounds(row):
    """``row``'s samples, one list per round (``rounds_samples_s`` after ``merge_rounds``,
    else its own ``samples_s``)."""
    return row.get("rounds_samples_s") or [row.get("samples_s")]


def samples_by_placement(row):
    """{placement: [seconds per call, ...]} over all of ``row``'s rounds (with
    ``rounds_roundtrip_ns`` after ``merge_rounds``, else its own readings); {} when its
    samples carry no round trips."""
    samples = samples_over_rounds(row)
    readings = row.get("rounds_roundtrip_ns") or [row.get("samples_roundtrip_ns")]
    out = {}
    for s, rt in zip(samples, readings):
        if not s or not rt or len(rt) != len(s) + 1:
            continue
        for i, t in enumerate(s):
            p = placement_of(rt[i], rt[i + 1])
            if p is not None:
                out.setdefault(p, []).append(t)
    return out


MIN_PLACED = 3  # samples of each library that a placement needs to be compared in


def placement_ratios(slow, fast):
    """slow's time over fast's within each placement class that both were measured in, at
    least MIN_PLACED samples each: {placement: ratio of the two medians}."""
    a, b = samples_by_placement(slow), samples_by_placement(fast)
    return {p: statistics.median(a[p]) / statistics.median(b[p])
            for p, _, _ in PLACEMENTS
            if len(a.get(p, ())) >= MIN_PLACED and len(b.get(p, ())) >= MIN_PLACED}


ONE_CORE = PLACEMENTS[0][0]  # both threads on one physical core: no second core to scale to


def two_core_median_s(row):
    """The median seconds per call over ``row``'s samples taken while its two threads ran on
    two physical cores (any placement but ONE_CORE), or None with fewer than MIN_PLACED."""
    by = samples_by_placement(row)
    two = [t for p, ts in by.items() if p != ONE_CORE for t in ts]
    return statistics.median(two) if len(two) >= MIN_PLACED else None


@functools.lru_cache(maxsize=None)
def roundtrip_probe():
    """``fastdense._roundtrip.core_roundtrip_ns`` (cpp/probes/roundtrip.cpp), loaded once from
    the installed package's folder without importing the package, so that a peer's process
    does not load fastdense's core and its OpenMP runtime; None when the module is not there or
    this process has fewer than two CPUs."""
    import importlib.machinery
    import importlib.util

    if len(os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else ()) < 2:
        return None
    spec = importlib.util.find_spec("fastdense")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_roundtrip" + suffix)
            if os.path.exists(path):
                mspec = importlib.util.spec_from_file_location("_roundtrip", path)
                module = importlib.util.module_from_spec(mspec)
                mspec.loader.exec_module(module)
                return module.core_roundtrip_ns
    return None


# --------------------------------------------------------------------------- weights and data


def init_weights(sizes, seed=0):
    """He-normal hidden kernels, Glorot-uniform output kernel, zero biases, as float32
    ``[(W (in, out), b (out,)), ...]``: the same starting point for every library."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i < len(sizes) - 2:
            w = rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)
        else:
            lim = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-lim, lim, (fan_in, fan_out))
        out.append((w.astype(np.float32), np.zeros(fan_out, np.float32)))
    return out


def step_batch(sizes, m, seed=1):
    """A standard-normal input batch and random labels (int64)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], m).astype(np.int64)
    return x, y


def load_fashion_mnist(via_package: bool):
    """Full Fashion-MNIST through ``fastdense.data.load_fashion_mnist``; the embedded subset
    (with a note) when it is not available.

    ``via_package=False`` loads ``fastdense/data.py`` as a standalone module (it depends on
    numpy only) so that a peer's process does not also load fastdense's compiled core and its
    OpenMP runtime, which would count against the peer's memory.
    Returns ``((x_train, y_train), (x_test, y_test), source_note)``.
    """
    if via_package:
        from fastdense import data
    else:
        import importlib.util

        spec = importlib.util.find_spec("fastdense")
        pkg_dir = spec.submodule_search_locations[0]
        mspec = importlib.util.spec_from_file_location(
            "_bench_fastdense_data", os.path.join(pkg_dir, "data.py"))
        data = importlib.util.module_from_spec(mspec)
        import sys

        sys.modules[mspec.name] = data  # dataclasses look their module up there
        mspec.loader.exec_module(data)
    try:
        # Only the fastdense process may download (it runs first); the peer then finds the
        # same files in the cache.
        train, test = data.load_fashion_mnist(download=via_package, timeout=15)
        return train, test, "full Fashion-MNIST (60000 train / 10000 test)"
    except (data.DataNotFoundError, OSError) as e:
        note = ("Fashion-MNIST not available ("
                + str(e).splitlines()[0] + "); used the embedded 6000/1000 subset")
    if via_package:
        train, test = data.load_embedded()
    else:
        import numpy as np

        with np.load(os.path.join(pkg_dir, "_data", "fashion_mnist_small.npz")) as z:
            train = data._prepare(z["x_train"], z["y_train"], True, "embedded")
            test = data._prepare(z["x_test"], z["y_test"], True, "embedded")
    return train, test, note


def paired_ratio(slow, fast):
    """slow's time over fast's. Over several rounds, the median of the rounds' own ratios:
    two cases measured minutes apart in the same round share the machine's phase, while the
    median rounds of each, taken separately, may come from a slow and a fast phase."""
    a, b = slow.get("rounds_median_s"), fast.get("rounds_median_s")
    if a and b and len(a) == len(b) > 1:
        ratios = sorted(x / y for x, y in zip(a, b))
        n = len(ratios)
        return ratios[n // 2] if n % 2 else (ratios[n // 2 - 1] + ratios[n // 2]) / 2
    return slow["median_s"] / fast["median_s"]
