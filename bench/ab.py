"""Same-process A/B of two builds of fastdense's compiled core on one training step, or on
the three GEMM forms.

    python -m bench.ab OTHER_CORE.so [--sizes 784-100-10] [--batch 100] [--threads 2]
                                     [--gathered] [--steps N] [--rounds 9]
    python -m bench.ab OTHER_CORE.so --gemm 100x784x100 1024x1024x1024 [--threads 1]
    python -m bench.ab OTHER_CORE.so --softmax 100x10 1000x10 [--threads 1]

OTHER_CORE.so is a copy of another build's ``fastdense/_core*.so`` (copy it out of
site-packages before installing the build under test; it must be a file of its own, not the
installed one). Both the installed core and OTHER are loaded into this process, each gets an
``MLPTrainer`` on the same initial weights and data (SGD momentum 0.9), and they are timed
alternately: ``rounds`` rounds of ``steps`` steps each. On a shared machine whose speed
drifts 20-30% within minutes, a comparison inside one process, interleaved, is the one that
holds; the commit messages' "A/B" figures come from it. ``--gathered`` times
``step_rows`` on shuffled rows of a 60000-row dataset instead of ``step`` on one batch.

Prints the median and min-max time per step of each build, and whether both ended with
bitwise-equal weights (they must: builds differ in speed, never in results).

``--gemm M×K×N ...`` times, per shape, X·W + b with ReLU, dY·Wᵀ and Xᵀ·dY (X is (M, K), W
(K, N), dY (M, N)) instead of a step: ``rounds`` paired rounds of calls adding up to about
20 ms each, the two builds in alternating order from round to round, and checks that both
builds give bitwise-equal outputs. ``--softmax M×C ...`` does the same for softmax
cross-entropy with its gradient (``softmax_xent_backward`` into preallocated outputs).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time


def _load(path):
    spec = importlib.util.spec_from_file_location("fastdense_ab_other._core", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench.ab: cannot load a compiled core from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> None:
    import numpy as np

    from fastdense import _core

    ap = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    ap.add_argument("other", help="a copy of another build's fastdense/_core*.so")
    ap.add_argument("--sizes", default="784-100-10", help="layer widths, e.g. 784-100-10")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gathered", action="store_true",
                    help="step_rows on shuffled rows of a 60000-row dataset")
    ap.add_argument("--steps", type=int, default=None, help="steps per round")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--gemm", nargs="+", metavar="MxKxN",
                    help="time the three GEMM forms on these shapes instead of a step")
    ap.add_argument("--softmax", nargs="+", metavar="MxC",
                    help="time softmax cross-entropy with dlogits on these shapes instead")
    args = ap.parse_args(argv)
    for option, dims, example, run in (("gemm", "M, K, N", "100x784x100", _gemm_ab),
                                        ("softmax", "M, C", "100x10", _softmax_ab)):
        given = getattr(args, option)
        if not given:
            continue
        try:
            shapes = [tuple(int(v) for v in s.lower().split("x")) for s in given]
        except ValueError:
            shapes = []
        n = dims.count(",") + 1
        if not shapes or any(len(t) != n or min(t) < 1 for t in shapes) or args.rounds < 1:
            raise SystemExit(f"bench.ab: --{option} takes shapes like {example} (positive "
                             f"{dims}) and needs at least one round")
        run({"installed": _core, "other": _load(args.other)}, shapes, args.threads, args.rounds)
        return
    sizes = [int(s) for s in args.sizes.split("-")]
    if len(sizes) < 2 or min(sizes) < 1 or args.batch < 1 or args.rounds < 1:
        raise SystemExit("bench.ab: need at least two positive layer sizes, a positive batch "
                         "and at least one round")
    cores = {"installed": _core, "other": _load(args.other)}

    rng = np.random.default_rng(0)
    n = 60000 if args.gathered else args.batch
    x = rng.random((n, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], n)
    perm = rng.permutation(n)
    w0 = [(rng.standard_normal((a, b)) * 0.05).astype(np.float32)
          for a, b in zip(sizes, sizes[1:])]
    steps = args.steps or max(20, 30000 // args.batch)
    batches = n // args.batch

    def trainer(core):
        core.set_num_threads(args.threads)
        w = [a.copy() for a in w0]
        b = [np.zeros(k, np.float32) for k in sizes[1:]]
        dw, db = [np.zeros_like(a) for a in w], [np.zeros_like(a) for a in b]
        bufs = [np.zeros_like(a) for pair in zip(w, b) for a in pair]
        relu = [True] * (len(sizes) - 2) + [False]
        t = core.MLPTrainer(w, b, dw, db, relu, bufs, momentum=0.9, dampening=0.0,
                            weight_decay=0.0, nesterov=False, clip_mode=0, clip_threshold=0.0)
        return t, w + b

    def run(t, i, first=False):
        if args.gathered:
            j = i % batches
            return t.step_rows(x, y, perm[j * args.batch:(j + 1) * args.batch], 0.01, first)
        return t.step(x, y, 0.01, first)

    runs = {name: trainer(core) for name, core in cores.items()}
    for t, _ in runs.values():
        run(t, 0, first=True)
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (t, _) in runs.items():
            t0 = time.perf_counter()
            for i in range(steps):
                run(t, i + 1)
            times[name].append((time.perf_counter() - t0) / steps * 1e6)
    same = all(np.array_equal(a, b) for a, b in zip(runs["installed"][1], runs["other"][1]))
    mode = "gathered" if args.gathered else "fixed batch"
    print(f"{args.sizes} b{args.batch}, {args.threads} threads, {mode}, {args.rounds} rounds "
          f"of {steps} steps:")
    for name, v in times.items():
        print(f"  {name:9s} {statistics.median(v):9.1f} us/step ({min(v):.1f}-{max(v):.1f})")
    # Rounds are paired (each build's round runs right after the other's), so the per-round
    # ratio cancels most of the machine's drift between rounds.
    ratio = statistics.median(o / i for i, o in zip(times["installed"], times["other"]))
    print(f"  other / installed, median of the rounds' ratios: {ratio:.3f}")
    print(f"  bitwise-equal weights: {same}")


def _gemm_ab(cores, shapes, threads, rounds):
    import numpy as np

    for core in cores.values():
        core.set_num_threads(threads)
    rng = np.random.default_rng(0)
    for M, K, N in shapes:
        x = rng.standard_normal((M, K), dtype=np.float32)
        w = rng.standard_normal((K, N), dtype=np.float32)
        dy = rng.standard_normal((M, N), dtype=np.float32)
        b = rng.standard_normal(N, dtype=np.float32)
        outs = {name: (np.empty((M, N), np.float32), np.empty((M, K), np.float32),
                       np.empty((K, N), np.float32)) for name in cores}

        def forms(core, out):
            y, dx, dw = out
            return {
                "X·W+b, ReLU": lambda: core.matmul_forward(x, w, b, relu=True, out=y),
                "dY·Wᵀ": lambda: core.matmul_backward_input(dy, w, out=dx),
                "Xᵀ·dY": lambda: core.matmul_backward_weight(x, dy, dw=dw, bias=False),
            }

        calls = {name: forms(core, outs[name]) for name, core in cores.items()}
        for form in calls["installed"]:
            times, ratio = _paired({name: calls[name][form] for name in cores}, rounds)
            flops = 2.0 * M * K * N
            line = f"{M}x{K}x{N} {form:12s}"
            for name, v in times.items():
                med = statistics.median(v)
                line += f" | {name} {med * 1e6:9.1f} us {flops / med / 1e9:6.1f} GFLOP/s"
            print(f"{line} | other / installed {ratio:.3f}")
        same = all(np.array_equal(a, o) for a, o in zip(outs["installed"], outs["other"]))
        print(f"{M}x{K}x{N}, {threads} threads, {rounds} rounds: bitwise-equal outputs: {same}")


def _softmax_ab(cores, shapes, threads, rounds):
    import numpy as np

    for core in cores.values():
        core.set_num_threads(threads)
    rng = np.random.default_rng(0)
    for M, C in shapes:
        z = (rng.standard_normal((M, C)) * 3).astype(np.float32)
        y = rng.integers(0, C, M)
        outs = {name: (np.empty((M, C), np.float32), np.empty(M, np.float32)) for name in cores}
        fs = {name: (lambda core=core, o=outs[name]: core.softmax_xent_backward(
            z, y, dlogits=o[0], losses=o[1])) for name, core in cores.items()}
        times, ratio = _paired(fs, rounds)
        line = f"{M}x{C} softmax-xent + dlogits"
        for name, v in times.items():
            line += f" | {name} {statistics.median(v) * 1e6:9.2f} us"
        same = all(np.array_equal(a, o) for a, o in zip(outs["installed"], outs["other"]))
        print(f"{line} | other / installed {ratio:.3f} | bitwise-equal outputs: {same}")


def _paired(fs, rounds):
    """Seconds per call of each of fs (name -> call) over `rounds` paired rounds of about
    20 ms each, the order alternating from round to round, and the median of the rounds'
    other / installed ratios."""
    for f in fs.values():
        f()
    t0 = time.perf_counter()
    fs["installed"]()
    reps = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-7)))
    times = {name: [] for name in fs}
    for r in range(rounds):
        for name in (list(fs) if r % 2 == 0 else list(fs)[::-1]):
            t0 = time.perf_counter()
            for _ in range(reps):
                fs[name]()
            times[name].append((time.perf_counter() - t0) / reps)
    ratio = statistics.median(o / i for i, o in zip(times["installed"], times["other"]))
    return times, ratio


if __name__ == "__main__":
    main()
