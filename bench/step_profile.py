"""Where fastdense's training step spends its time: every call from the Python layer into
``fastdense._core`` during ``model.train_step`` is timed, grouped by kernel and operand shapes.

The step is first timed plainly (as in the ``step`` group), then with the fastdense modules'
``_core`` replaced by a timing proxy. "Python + binding overhead" is the proxied step time
minus the time inside the kernel calls: the model's Python code, argument checks, and the
pybind11 crossing (each kernel's own argument checks are inside its call and count as kernel
time). The proxy itself adds about a microsecond per call, which lands in that overhead row.

``phases`` times the inside of that one call: ``MLPTrainer.set_phase_timing`` makes the C++
step read a clock between its phases (each layer's forward, the loss, each layer's backward
with its update), and, where the second layer's backward runs on two threads, on the second
thread too.

Then ``components`` times the step's kernels one by one (forward GEMMs, fused loss, weight
and input gradients, SGD) on the same shapes, so a fused C++ step can be compared with the
sum of its parts and each GEMM's GFLOP/s is visible.
"""

from __future__ import annotations

import sys
import time

from bench import common


class _TimedCore:
    """Stands in for ``fastdense._core``: functions are timed; classes (a fused trainer, say)
    construct the real object and hand back a ``_TimedObject`` whose method calls are timed."""

    def __init__(self, core, acc=None, prefix=""):
        self._core = core
        self.acc = {} if acc is None else acc
        self._prefix = prefix

    def __getattr__(self, name):
        f = getattr(self._core, name)
        if not callable(f):
            return f
        acc, clock, label = self.acc, time.perf_counter, self._prefix + name
        if isinstance(f, type) and not self._prefix:
            def construct(*args, **kwargs):
                return _TimedCore(f(*args, **kwargs), acc, prefix=f"{name}.")

            object.__setattr__(self, name, construct)
            return construct

        def timed(*args, **kwargs):
            t0 = clock()
            r = f(*args, **kwargs)
            dt = clock() - t0
            key = (label, tuple(tuple(getattr(a, "shape", ())) for a in args[:2]))
            e = acc.get(key)
            if e is None:
                acc[key] = [1, dt]
            else:
                e[0] += 1
                e[1] += dt
            return r

        object.__setattr__(self, name, timed)  # cache: later lookups skip __getattr__
        return timed


def _gemm_flops(name, shapes):
    """2·m·k·n for the three GEMM kernels, from the shapes of their first two operands."""
    if not name.startswith("matmul") or len(shapes) < 2 or len(shapes[0]) != 2:
        return None
    (a0, a1), s1 = shapes[0], shapes[1]
    if len(s1) != 2:
        return None
    if name == "matmul_backward_input":  # dy (m, n), w (k, n)
        return 2.0 * a0 * a1 * s1[0]
    return 2.0 * a0 * a1 * s1[1]  # forward: x (m, k), w (k, n); weight: x (m, k), dy (m, n)


def components(sizes, m, x, y, spec):
    """The step's kernels called one by one through ``_core`` on the step's shapes, each timed
    on its own (warm caches, so a lower bound for the same work inside a step): what a fused
    step is made of and how fast each part runs."""
    import numpy as np

    from fastdense import _core

    w0 = common.init_weights(sizes)
    W = [w for w, _ in w0]
    b = [bb for _, bb in w0]
    dW = [np.empty_like(w) for w in W]
    db = [np.empty_like(bb) for bb in b]
    bufs = [np.zeros_like(p) for p in W + b]
    L = len(W)
    acts = [np.empty((m, w.shape[1]), np.float32) for w in W]
    grads = [np.empty((m, w.shape[1]), np.float32) for w in W]
    losses = np.empty(m, np.float32)
    # fill the activations and gradients once, so every call sees realistic data
    h = x
    for i in range(L):
        h = _core.matmul_forward(h, W[i], b[i], relu=i < L - 1, out=acts[i])
    _core.softmax_xent_backward(acts[-1], y, dlogits=grads[-1], losses=losses)
    for i in range(L - 1, 0, -1):
        _core.matmul_backward_input(grads[i], W[i], mask=acts[i - 1], out=grads[i - 1])
    parts = []
    for i in range(L):
        a_in = acts[i - 1] if i else x
        parts.append((f"forward {i + 1}: relu(X·W+b)" if i < L - 1 else f"forward {i + 1}: X·W+b",
                      "matmul_forward", 2.0 * m * W[i].shape[0] * W[i].shape[1],
                      lambda a_in=a_in, i=i: _core.matmul_forward(a_in, W[i], b[i], relu=i < L - 1,
                                                                  out=acts[i])))
    parts.append(("loss: softmax-xent + dlogits", "softmax_xent_backward", None,
                  lambda: _core.softmax_xent_backward(acts[-1], y, dlogits=grads[-1], losses=losses)))
    for i in range(L - 1, -1, -1):
        a_in = acts[i - 1] if i else x
        parts.append((f"backward {i + 1}: Xᵀ·dY, Σ dY", "matmul_backward_weight",
                      2.0 * m * W[i].shape[0] * W[i].shape[1],
                      lambda a_in=a_in, i=i: _core.matmul_backward_weight(a_in, grads[i], dw=dW[i],
                                                                          db=db[i], bias=True)))
        if i:
            parts.append((f"backward {i + 1}: dY·Wᵀ, ReLU mask", "matmul_backward_input",
                          2.0 * m * W[i].shape[0] * W[i].shape[1],
                          lambda i=i: _core.matmul_backward_input(grads[i], W[i], mask=acts[i - 1],
                                                                  out=grads[i - 1])))
    parts.append(("SGD momentum update, all parameters", "sgd_update", None,
                  lambda: _core.sgd_update(W + b, dW + db, bufs, lr=1e-9, momentum=0.9)))
    out = []
    for label, kernel, flops, f in parts:
        r = common.measure(f, repeats=spec["repeats"], min_sample_s=spec["min_sample_s"],
                           warmup_s=min(spec["warmup_s"], 0.05))
        out.append(dict(part=label, kernel=kernel, median_s=r["median_s"], min_s=r["min_s"],
                        max_s=r["max_s"], gflops=flops / r["median_s"] / 1e9 if flops else None,
                        foreign_load=r["foreign_load"]))
    return out


def phases(sizes, m, w0, x, y, threads, steps):
    """Seconds per step of the fused step's phases, timed inside the one C++ call
    (``MLPTrainer.phase_seconds``), and the wall time per step of the same steps."""
    from bench.step import _fastdense

    fn, _, _ = _fastdense(sizes, m, w0, x, y, threads)
    fn()  # builds the fused trainer
    trainer = fn.model._trainer[1]  # the model's cached MLPTrainer (private, like _core here)
    trainer.set_phase_timing(True)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    wall = (time.perf_counter() - t0) / steps
    trainer.set_phase_timing(False)
    out = dict(trainer.phase_seconds())
    out["wall_s"] = wall
    return out


def run(spec):
    return {"rows": [_run_config(spec, name) for name in spec["params"]["configs"]]}


def _run_config(spec, name):
    import fastdense
    from fastdense import _core

    from bench.step import _fastdense

    t = spec["threads"]
    sizes, m = common.STEP_CONFIGS[name]
    w0 = common.init_weights(sizes)
    x, y = common.step_batch(sizes, m)
    fn, _, version = _fastdense(sizes, m, w0, x, y, t)
    plain = common.measure(fn, repeats=spec["repeats"], min_sample_s=spec["min_sample_s"],
                           warmup_s=spec["warmup_s"])

    proxy = _TimedCore(_core)
    patched = [mod for key, mod in list(sys.modules.items())
               if key.startswith("fastdense.") and getattr(mod, "_core", None) is _core]
    for mod in patched:
        mod._core = proxy
    try:
        # A second model built under the proxy, so that objects it creates lazily (a fused
        # trainer) come from the proxy too.
        fn, _, _ = _fastdense(sizes, m, w0, x, y, t)
        for _ in range(3):
            fn()  # warm-up, and fill the proxy's cache
        proxy.acc.clear()
        steps = max(3, plain["inner"] * spec["repeats"])
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        proxied = (time.perf_counter() - t0) / steps
    finally:
        for mod in patched:
            mod._core = _core
    kernels = []
    for (kname, shapes), (calls, secs) in sorted(proxy.acc.items(), key=lambda kv: -kv[1][1]):
        flops = _gemm_flops(kname, shapes)
        per_step = secs / steps
        kernels.append(dict(
            kernel=kname, shapes=[list(s) for s in shapes], calls_per_step=calls / steps,
            s_per_step=per_step, pct_of_step=100.0 * per_step / proxied,
            gflops=(flops * calls / secs / 1e9) if flops and secs > 0 else None,
        ))
    inside = sum(k["s_per_step"] for k in kernels)
    row = dict(
        group="profile", case=name, config=name, sizes=sizes, batch=m, lib="fastdense",
        version=version, threads=t, step_median_s=plain["median_s"], step_min_s=plain["min_s"],
        step_max_s=plain["max_s"], median_s=plain["median_s"], min_s=plain["min_s"],
        max_s=plain["max_s"], proxied_step_s=proxied, kernel_s=inside,
        overhead_s=proxied - inside, steps_profiled=steps, kernels=kernels,
        patched_modules=sorted(mod.__name__ for mod in patched), isa=fastdense.active_isa(),
        cpu_util=plain["cpu_util"], foreign_load=plain["foreign_load"],
    )
    try:
        row["phases"] = phases(sizes, m, w0, x, y, t, steps)
    except Exception as e:  # no fused trainer (the API moved): the rest of the profile stands
        row["phases_error"] = f"{type(e).__name__}: {e}"
    try:
        row["components"] = components(sizes, m, x, y, spec)
        row["components_s"] = sum(c["median_s"] for c in row["components"])
        row["foreign_load"] = max([plain["foreign_load"] or 0.0]
                                  + [c["foreign_load"] or 0.0 for c in row["components"]])
    except Exception as e:  # the kernel API moved: the fused-step profile above still stands
        row["components_error"] = f"{type(e).__name__}: {e}"
    return row
