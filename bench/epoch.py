"""One epoch of Fashion-MNIST, 784-100-10 (ReLU), batch 100, SGD lr 0.05 momentum 0.9.

* fastdense: ``model.fit(x_train, y_train, epochs=1, batch_size=100, seed=0, verbose=0)``
  (fit checks x for NaN/inf, shuffles with ``default_rng(seed).permutation``, and per batch
  runs the C++ step on those rows of the dataset, gathered inside the step; it counts training
  loss and accuracy).
* torch (eager): the same initial weights copied in, the same permutation, one gather per
  epoch (``index_select``), then per batch ``zero_grad(set_to_none=True)``, forward,
  ``F.cross_entropy``, ``backward``, ``SGD.step`` and the same running loss/accuracy that fit
  keeps (``loss.item()``, ``argmax``).

Each repetition restarts from the initial weights with a fresh optimizer, so every timed epoch
does the same work and ends at the same test accuracy; one untimed epoch warms up first.
Only the epoch is timed (not data loading, not evaluation).

Memory: ``ru_maxrss`` of the case process (the peak resident set over its lifetime) after the
library is imported and the data loaded, and at the end. The end value includes the
interpreter, the imported libraries, the dataset as float32 (train 188 MB + test 31 MB), the
shuffled copy of the training set (torch) or one gathered batch (fastdense), the model,
optimizer state and autograd buffers, and evaluation on the test set. The torch
process reads the data with fastdense's loader module alone (numpy only), without loading
fastdense's compiled core.
"""

from __future__ import annotations

import time

from bench import common


def _fastdense(spec, train, test, w0):
    import fastdense

    fastdense.set_num_threads(spec["threads"])
    (xtr, ytr), (xte, yte) = train, test
    model = fastdense.MLP(common.EPOCH_SIZES, seed=0)
    flat = [a for wb in w0 for a in wb]

    def epoch():
        model.set_weights(flat)
        model.compile(lr=common.EPOCH_LR, momentum=common.EPOCH_MOMENTUM)
        t0 = time.perf_counter()
        h = model.fit(xtr, ytr, epochs=1, batch_size=common.EPOCH_BATCH, seed=common.EPOCH_SEED,
                      verbose=0)
        dt = time.perf_counter() - t0
        return dt, h.history["loss"][-1], h.history["accuracy"][-1]

    def test_acc():
        return model.evaluate(xte, yte)["accuracy"]

    return epoch, test_acc, fastdense.__version__


def _torch(spec, train, test, w0):
    import numpy as np
    import torch
    import torch.nn.functional as F

    from bench.step import torch_mlp

    torch.set_num_threads(spec["threads"])
    (xtr, ytr), (xte, yte) = train, test
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    txte, tyte = torch.from_numpy(xte), torch.from_numpy(yte)
    model = torch_mlp(w0)
    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    n, bs = len(xtr), common.EPOCH_BATCH

    def epoch():
        model.load_state_dict(init_state)
        opt = torch.optim.SGD(model.parameters(), lr=common.EPOCH_LR,
                              momentum=common.EPOCH_MOMENTUM)
        t0 = time.perf_counter()
        perm = torch.from_numpy(np.random.default_rng(common.EPOCH_SEED).permutation(n))
        xs, ys = xt.index_select(0, perm), yt.index_select(0, perm)
        total, correct = 0.0, 0
        for lo in range(0, n, bs):
            xb, yb = xs[lo:lo + bs], ys[lo:lo + bs]
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
            correct += int((out.argmax(1) == yb).sum().item())
        dt = time.perf_counter() - t0
        return dt, total / n, correct / n

    def test_acc():
        with torch.no_grad():
            return float((model(txte).argmax(1) == tyte).float().mean().item())

    return epoch, test_acc, torch.__version__


def run(spec):
    import statistics

    lib = spec["lib"]
    # Import the library first, so that "after load" is interpreter + library + data.
    if lib == "torch":
        import torch  # noqa: F401
    else:
        import fastdense  # noqa: F401
    train, test, data_note = common.load_fashion_mnist(via_package=(lib == "fastdense"))
    rss_loaded = common.maxrss_mb()
    w0 = common.init_weights(common.EPOCH_SIZES, seed=0)
    epoch, test_acc, version = (_fastdense if lib == "fastdense" else _torch)(spec, train, test, w0)
    epoch()  # warm-up
    times, meter = [], common.LoadMeter()
    meter.start()
    for _ in range(spec["epoch_repeats"]):
        dt, loss, acc = epoch()
        times.append(dt)
    cpu_util, foreign = meter.stop()
    tacc = test_acc()
    rss_end = common.maxrss_mb()
    n = len(train[0])
    med = statistics.median(times)
    row = dict(
        group="epoch", case="Fashion-MNIST epoch 784-100-10 b100", lib=lib, version=version,
        threads=spec["threads"], median_s=med, min_s=min(times), max_s=max(times),
        samples_s=times, samples_per_s=n / med, train_loss=loss, train_acc=acc, test_acc=tacc,
        n_train=n, n_test=len(test[0]), rss_after_load_mb=rss_loaded, rss_end_mb=rss_end,
        cpu_util=cpu_util, foreign_load=foreign, data=data_note, lr=common.EPOCH_LR,
        momentum=common.EPOCH_MOMENTUM,
    )
    return {"rows": [row]}
