"""One full training step (forward, softmax cross-entropy, backward, SGD with momentum 0.9)
of an MLP with ReLU hidden layers, for one library and one configuration.

Every library starts from the same weights (``common.init_weights``) and trains on the same
fixed batch (standard-normal inputs, random labels) with lr 0.01, momentum 0.9:

* fastdense: ``model.train_step(x, y)`` on ``MLP(sizes).compile(lr=, momentum=)``, i.e. the
  public model API including its argument checks (the product, not the raw kernels).
* numpy: a hand-written step on preallocated buffers (``out=`` everywhere numpy allows it),
  with numpy's BLAS for the products.
* torch (eager): ``nn.Sequential(nn.Linear, nn.ReLU, ...)``, ``F.cross_entropy``,
  ``optim.SGD(momentum=0.9)``, ``zero_grad(set_to_none=True)``, ``loss.backward()``,
  ``opt.step()``; the returned loss stays a tensor (no ``.item()``).
* jax: the whole step (``value_and_grad`` + momentum update) under one ``jax.jit`` with the
  parameters and momentum donated; warm-up includes compilation; the result is blocked on at
  the end of every sample (not after every step), so consecutive steps may overlap as in a
  training loop.
"""

from __future__ import annotations

from bench import common


def _fastdense(sizes, m, w0, x, y, threads):
    import fastdense

    fastdense.set_num_threads(threads)
    model = fastdense.MLP(sizes, seed=0)
    model.set_weights([a for wb in w0 for a in wb])
    model.compile(lr=common.STEP_LR, momentum=common.STEP_MOMENTUM)

    def step():
        return model.train_step(x, y)

    step.model = model  # for step_profile's phase timing
    return step, None, fastdense.__version__


class NumpyMLP:
    """A float32 MLP training step in plain numpy, allocation-free after construction except
    for the few temporaries numpy's reductions make."""

    def __init__(self, w0, m, lr, momentum):
        import numpy as np

        self.np = np
        self.W = [w.copy() for w, _ in w0]
        self.b = [b.copy() for _, b in w0]
        self.dW = [np.empty_like(w) for w in self.W]
        self.db = [np.empty_like(b) for b in self.b]
        self.mW = [np.zeros_like(w) for w in self.W]
        self.mb = [np.zeros_like(b) for b in self.b]
        self.tW = [np.empty_like(w) for w in self.W]
        self.tb = [np.empty_like(b) for b in self.b]
        widths = [w.shape[1] for w in self.W]
        self.acts = [np.empty((m, n), np.float32) for n in widths]
        self.grads = [np.empty((m, n), np.float32) for n in widths]
        self.masks = [np.empty((m, n), bool) for n in widths]
        self.rowmax = np.empty((m, 1), np.float32)
        self.rowsum = np.empty((m, 1), np.float32)
        self.rows = np.arange(m)
        self.lr, self.mu, self.first = np.float32(lr), np.float32(momentum), True

    def step(self, x, y):
        np = self.np
        L = len(self.W)
        h = x
        for i in range(L):
            a = self.acts[i]
            np.matmul(h, self.W[i], out=a)
            a += self.b[i]
            if i < L - 1:
                np.maximum(a, 0, out=a)
            h = a
        # softmax cross-entropy, mean over the batch; p becomes d(loss)/d(logits)
        logits, p = self.acts[-1], self.grads[-1]
        np.max(logits, axis=1, keepdims=True, out=self.rowmax)
        np.subtract(logits, self.rowmax, out=p)
        np.exp(p, out=p)
        np.sum(p, axis=1, keepdims=True, out=self.rowsum)
        p /= self.rowsum
        loss = -np.mean(np.log(p[self.rows, y]))
        p[self.rows, y] -= 1
        p *= np.float32(1.0 / len(y))
        for i in range(L - 1, -1, -1):
            dz = self.grads[i]
            a_in = self.acts[i - 1] if i > 0 else x
            np.matmul(a_in.T, dz, out=self.dW[i])
            np.sum(dz, axis=0, out=self.db[i])
            if i > 0:
                g = self.grads[i - 1]
                np.matmul(dz, self.W[i].T, out=g)
                np.greater(a_in, 0, out=self.masks[i - 1])
                np.multiply(g, self.masks[i - 1], out=g)
        # PyTorch's SGD: buf = mu*buf + g (buf = g on the first step); p -= lr*buf
        for params, grads, bufs, tmps in ((self.W, self.dW, self.mW, self.tW),
                                          (self.b, self.db, self.mb, self.tb)):
            for p_, g_, m_, t_ in zip(params, grads, bufs, tmps):
                if self.first:
                    np.copyto(m_, g_)
                else:
                    np.multiply(m_, self.mu, out=m_)
                    m_ += g_
                np.multiply(m_, self.lr, out=t_)
                p_ -= t_
        self.first = False
        return float(loss)


def _numpy(sizes, m, w0, x, y, threads):
    import numpy as np

    net = NumpyMLP(w0, m, common.STEP_LR, common.STEP_MOMENTUM)
    return (lambda: net.step(x, y)), None, np.__version__


def torch_mlp(w0):
    """``nn.Sequential`` of Linear/ReLU holding ``w0`` (our W is torch's weight transposed)."""
    import torch
    from torch import nn

    layers = []
    for i, (w, b) in enumerate(w0):
        lin = nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(w0) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _torch(sizes, m, w0, x, y, threads):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    model = torch_mlp(w0)
    opt = torch.optim.SGD(model.parameters(), lr=common.STEP_LR, momentum=common.STEP_MOMENTUM)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        return loss

    return step, None, torch.__version__


def _jax(sizes, m, w0, x, y, threads):
    import jax
    import jax.numpy as jnp

    lr, mu = common.STEP_LR, common.STEP_MOMENTUM

    def loss_fn(params, xb, yb):
        h = xb
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        lse = jax.nn.logsumexp(h, axis=1)
        picked = jnp.take_along_axis(h, yb[:, None], axis=1)[:, 0]
        return jnp.mean(lse - picked)

    def train_step(params, mom, xb, yb):
        loss, g = jax.value_and_grad(loss_fn)(params, xb, yb)
        mom = jax.tree_util.tree_map(lambda m_, g_: mu * m_ + g_, mom, g)
        params = jax.tree_util.tree_map(lambda p_, m_: p_ - lr * m_, params, mom)
        return params, mom, loss

    jstep = jax.jit(train_step, donate_argnums=(0, 1))
    state = {
        "params": [(jnp.asarray(w), jnp.asarray(b)) for w, b in w0],
        "mom": [(jnp.zeros(w.shape, jnp.float32), jnp.zeros(b.shape, jnp.float32)) for w, b in w0],
    }
    jx, jy = jnp.asarray(x), jnp.asarray(y.astype("int32"))

    def step():
        state["params"], state["mom"], loss = jstep(state["params"], state["mom"], jx, jy)
        return loss

    def sync(loss):
        jax.block_until_ready((state["params"], loss))

    from importlib.metadata import version

    return step, sync, f"{jax.__version__} (jaxlib {version('jaxlib')})"


BUILDERS = {"fastdense": _fastdense, "numpy": _numpy, "torch": _torch, "jax": _jax}


def run(spec):
    return {"rows": [_run_config(spec, name) for name in spec["params"]["configs"]]}


def _run_config(spec, name):
    import math

    lib, t = spec["lib"], spec["threads"]
    sizes, m = common.STEP_CONFIGS[name]
    w0 = common.init_weights(sizes)
    x, y = common.step_batch(sizes, m)
    fn, sync, version = BUILDERS[lib](sizes, m, w0, x, y, t)
    # Two threads: where the host ran them, around every sample (common.PLACEMENTS).
    roundtrip = common.roundtrip_probe() if t == 2 else None
    res = common.measure(fn, repeats=spec["repeats"], min_sample_s=spec["min_sample_s"],
                         warmup_s=spec["warmup_s"], sync=sync, roundtrip=roundtrip)
    last = fn()
    if sync:
        sync(last)
    last = float(last)
    flops = common.step_matmul_flops(sizes, m)
    row = dict(
        group="step", case=name, config=name, sizes=sizes, batch=m, lib=lib, version=version,
        threads=t, flops=flops, gflops=flops / res["median_s"] / 1e9,
        steps_per_s=1.0 / res["median_s"], samples_per_s=m / res["median_s"],
        final_loss=last, **res,
    )
    if not math.isfinite(last):
        row["note"] = "loss not finite after timing: the timed steps may not be representative"
    return row
