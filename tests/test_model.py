"""Layers, Sequential/MLP, the fused training step, fit/evaluate/predict, save/load."""

import os
import time
import zipfile

import numpy as np
import pytest

import fastdense
from fastdense import Dense, MLP, ReLU, Sequential, data

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="module")
def embedded():
    return data.load_dataset("embedded")


def _numpy_step(params, x, y, relu_flags):
    """float64 forward/backward of a Dense stack with mean softmax cross-entropy."""
    acts, h = [x.astype(np.float64)], x.astype(np.float64)
    ws = params[0::2]
    bs = params[1::2]
    for W, b, relu in zip(ws, bs, relu_flags):
        h = h @ W.astype(np.float64) + b
        if relu:
            h = np.maximum(h, 0)
        acts.append(h)
    z = h - h.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    loss = float(np.mean(-np.log(p[np.arange(len(y)), y])))
    dz = p.copy()
    dz[np.arange(len(y)), y] -= 1
    dz /= len(y)
    grads = []
    for i in range(len(ws) - 1, -1, -1):
        grads = [acts[i].T @ dz, dz.sum(0)] + grads
        if i > 0:
            dz = (dz @ ws[i].T.astype(np.float64)) * (acts[i] > 0 if relu_flags[i - 1] else 1)
    return loss, grads


def test_gradients_match_float64_reference():
    rng = np.random.default_rng(0)
    model = MLP([13, 17, 9, 5], kernel_init="he_normal", bias_init="random_normal", seed=3)
    model.compile(lr=0.0)
    x = rng.standard_normal((33, 13)).astype(np.float32)
    y = rng.integers(0, 5, 33)
    loss = model.train_step(x, y)
    ref_loss, ref_grads = _numpy_step(model.parameters(), x, y, [True, True, False])
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for g, r in zip(model.gradients(), ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)


def test_standalone_relu_layer_is_fused_like_activation():
    a = Sequential([Dense(8, activation="relu"), Dense(3)], input_dim=5, seed=1)
    b = Sequential([Dense(8), ReLU(), Dense(3)], input_dim=5, seed=1)
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    with pytest.raises(ValueError, match="ReLU must follow a Dense"):
        Sequential([ReLU(), Dense(3)])


def test_seed_reproducible_and_layers_get_their_own_streams():
    init = fastdense.init.get("glorot_uniform")
    a = Sequential([Dense(20, kernel_init=init), Dense(20, kernel_init=init)], input_dim=20, seed=7)
    b = Sequential([Dense(20, kernel_init=init), Dense(20, kernel_init=init)], input_dim=20, seed=7)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p, q)
    # One initializer object on two layers of the same shape never yields identical layers.
    assert not np.array_equal(a.parameters()[0], a.parameters()[2])
    c = Sequential([Dense(20, kernel_init=init), Dense(20, kernel_init=init)], input_dim=20, seed=8)
    assert not np.array_equal(a.parameters()[0], c.parameters()[0])


def test_defaults_are_keras_glorot_uniform_and_zero_bias():
    model = MLP([300, 200, 10], seed=0)
    W, b = model.parameters()[:2]
    limit = np.sqrt(6 / (300 + 200))
    assert W.dtype == np.float32 and W.shape == (300, 200)
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.95 * limit
    assert not b.any()


def test_get_set_weights_copy_in_place():
    model = MLP([4, 3, 2], seed=0)
    params = model.parameters()
    new = [np.full(p.shape, 0.5, np.float32) for p in params]
    model.set_weights(new)
    assert all((p == 0.5).all() for p in params)  # the same arrays, so SGD still sees them
    got = model.get_weights()
    got[0][...] = 1
    assert (params[0] == 0.5).all()
    with pytest.raises(ValueError, match=r"weights\[0\] has shape \(3, 4\), expected \(4, 3\)"):
        model.set_weights([np.zeros((3, 4))] + new[1:])
    with pytest.raises(ValueError, match="expected 4 arrays, got 1"):
        model.set_weights(new[:1])


def test_training_step_reuses_buffers():
    model = MLP([10, 8, 3], seed=0).compile(lr=0.1)
    x = np.random.default_rng(0).random((16, 10), dtype=np.float32)
    y = np.arange(16) % 3
    model.train_step(x, y)
    ws = model._workspace(16)
    ids = [id(a) for a in ws["acts"] + ws["grads"]]
    grads = [id(g) for g in model.gradients()]
    for _ in range(3):
        model.train_step(x, y)
    ws = model._workspace(16)
    assert [id(a) for a in ws["acts"] + ws["grads"]] == ids
    assert [id(g) for g in model.gradients()] == grads


def test_kernel_arrays_start_on_cache_lines(tmp_path):
    """Parameters, gradients, momentum buffers and workspaces start on 64-byte boundaries
    (fastdense._memory), also after set_weights and save/load, and stay where they are."""
    def line_offsets(model):
        arrays = (model.parameters() + model.gradients() + model.optimizer._momentum_buffers()
                  + [a for ws in model._workspaces.values() for a in ws["acts"] + ws["grads"]])
        return {a.ctypes.data % 64 for a in arrays}

    x = np.random.default_rng(0).random((5, 10), dtype=np.float32)
    y = np.arange(5) % 3
    model = MLP([10, 7, 3], seed=0).compile(lr=0.1, momentum=0.9)
    model.train_step(x, y)
    model.forward(x, training=True)
    assert line_offsets(model) == {0}
    before = [a.ctypes.data for a in model.parameters()]
    model.set_weights(model.get_weights())
    assert [a.ctypes.data for a in model.parameters()] == before
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = fastdense.load(path)
    for a, b in zip(loaded.parameters(), model.parameters()):
        np.testing.assert_array_equal(a, b)
    loaded.train_step(x, y)
    assert line_offsets(loaded) == {0}


def test_memory_helpers():
    from fastdense import _memory

    for shape in (1, 17, (3, 5), (784, 100)):
        a = _memory.empty(shape)
        assert a.ctypes.data % 64 == 0 and a.flags.c_contiguous and a.dtype == np.float32
        assert a.shape == ((shape,) if isinstance(shape, int) else shape)
        assert not _memory.zeros(shape).any()
    c = _memory.copy(np.arange(6.0).reshape(2, 3))
    assert c.dtype == np.float32 and c.ctypes.data % 64 == 0
    np.testing.assert_array_equal(c, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert _memory.empty((2, 3), np.int64).ctypes.data % 64 == 0
    assert _memory.empty((0, 3)).shape == (0, 3)
    with pytest.raises(ValueError, match="negative"):
        _memory.empty((2, -3))


def test_fit_learns_embedded_fashion_mnist(embedded):
    (x, y), (xt, yt) = embedded
    model = MLP([784, 100, 10], kernel_init="he_normal", seed=0)
    model.compile(lr=0.05, momentum=0.9)
    h = model.fit(x, y, epochs=5, batch_size=100, validation_data=(xt, yt), seed=0, verbose=0)
    assert set(h.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "time"}
    assert len(h["loss"]) == 5 and h["loss"][-1] < h["loss"][0]
    result = model.evaluate(xt, yt)
    assert result["accuracy"] >= 0.80  # floor for 6000 training images, 5 epochs
    assert result["accuracy"] == pytest.approx(h["val_accuracy"][-1])
    proba = model.predict_proba(xt[:50])
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert (proba.argmax(1) == model.predict(xt[:50]).argmax(1)).all()


def test_fit_is_deterministic_for_a_seed(embedded):
    (x, y), _ = embedded
    runs = []
    for _ in range(2):
        model = MLP([784, 32, 10], kernel_init="he_normal", seed=5).compile(lr=0.05, momentum=0.9)
        model.fit(x[:1000], y[:1000], epochs=2, batch_size=64, seed=11, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_fit_stops_on_non_finite_loss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 20)).astype(np.float32) * 100
    y = rng.integers(0, 3, 200)
    model = MLP([20, 64, 3], kernel_init="random_normal", seed=0).compile(lr=1e6)
    with pytest.raises(FloatingPointError, match=r"epoch \d+, step \d+.*smaller learning rate"):
        model.fit(x, y, epochs=5, batch_size=20, verbose=0)


@pytest.mark.parametrize(
    "x, y, exc, match",
    [
        (np.zeros((5, 7), np.float32), np.zeros(5, np.int64), ValueError, r"\(batch, 6\), got \(5, 7\)"),
        (np.zeros(6, np.float32), np.zeros(1, np.int64), ValueError, r"\(batch, 6\), got \(6,\)"),
        (np.zeros((0, 6), np.float32), np.zeros(0, np.int64), ValueError, "empty batch"),
        (np.zeros((5, 6), np.float32), np.zeros(4, np.int64), ValueError, "5 samples but y has 4"),
        (np.zeros((5, 6), np.float32), np.full(5, 3), ValueError, r"label 3 is out of range \[0, 3\)"),
        (np.zeros((5, 6), np.float32), np.full(5, -1), ValueError, r"label -1 is out of range"),
        (np.full((5, 6), np.nan, np.float32), np.zeros(5, np.int64), ValueError,
         r"NaN or infinity: x\[0, 0\] = nan"),
        (np.where(np.arange(30).reshape(5, 6) == 17, -np.inf, 1.0), np.zeros(5, np.int64),
         ValueError, r"NaN or infinity: x\[2, 5\] = -inf"),
        (np.zeros((5, 6), np.complex64), np.zeros(5, np.int64), TypeError, "real numeric"),
    ],
)
def test_fit_rejects_bad_input(x, y, exc, match):
    model = MLP([6, 4, 3], seed=0).compile(lr=0.1)
    with pytest.raises(exc, match=match):
        model.fit(x, y, verbose=0)


def test_fit_argument_validation():
    model = MLP([6, 4, 3], seed=0).compile(lr=0.1)
    x, y = np.zeros((5, 6), np.float32), np.zeros(5, np.int64)
    with pytest.raises(ValueError, match="batch_size=0"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="epochs=-1"):
        model.fit(x, y, epochs=-1, verbose=0)


def test_mse_regression_trains():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 1)).astype(np.float32)
    t = (3 * x + 0.5).astype(np.float32)
    model = MLP([1, 16, 1], kernel_init="he_uniform", seed=0)
    model.compile(loss="mse", lr=0.05, momentum=0.9)
    h = model.fit(x, t, epochs=60, batch_size=32, seed=0, verbose=0)
    assert "accuracy" not in h.history
    assert h["loss"][-1] < 0.01 < h["loss"][0]


def test_fit_progress_output(capsys):
    model = MLP([6, 4, 3], seed=0).compile(lr=0.1)
    x = np.random.default_rng(0).random((30, 6), dtype=np.float32)
    model.fit(x, np.arange(30) % 3, epochs=2, batch_size=8, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("epoch 2/2: loss") and "samples/s" in out[1]
    model.fit(x, np.arange(30) % 3, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


# -- PyTorch equivalence ------------------------------------------------------------------------


def _torch_mlp(model):
    torch = pytest.importorskip("torch")
    layers = []
    for s in model._stages:
        lin = torch.nn.Linear(s.dense.input_dim, s.dense.units)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(s.dense.W.T.copy()))
            lin.bias.copy_(torch.from_numpy(s.dense.b))
        layers.append(lin)
        if s.relu:
            layers.append(torch.nn.ReLU())
    return torch, torch.nn.Sequential(*layers)


def _train_both(model, x, y, epochs, batch_size, seed, lr, momentum, **sgd):
    torch, net = _torch_mlp(model)
    torch.manual_seed(0)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, **sgd)
    model.compile(lr=lr, momentum=momentum, **sgd)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, seed=seed, verbose=0)
    # The same batches: fit shuffles with default_rng(seed).permutation each epoch.
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(len(x)))
        for lo in range(0, len(x), batch_size):
            idx = perm[lo:lo + batch_size]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return torch, net


def test_sgd_training_matches_pytorch(embedded):
    (x, y), _ = embedded
    x, y = x[:2000], y[:2000]
    model = MLP([784, 64, 10], kernel_init="he_normal", seed=2)
    torch, net = _train_both(model, x, y, epochs=2, batch_size=50, seed=4, lr=0.05,
                             momentum=0.9, nesterov=True, weight_decay=1e-4)
    # 80 steps of float32 training: equal up to float32 rounding differences.
    torch_weights = []
    for mod in net:
        if isinstance(mod, torch.nn.Linear):
            torch_weights += [mod.weight.detach().numpy().T, mod.bias.detach().numpy()]
    for ours, theirs in zip(model.parameters(), torch_weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=2e-5)


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="needs Debian's dataset-fashion-mnist")
def test_acceptance_full_fashion_mnist_5_epochs_matches_pytorch():
    """Issue acceptance: 784-100-10 ReLU, He init, 5 epochs: >= 0.85 test accuracy, and
    PyTorch trained from the same init on the same batches within 0.01."""
    (x, y), (xt, yt) = data.load_fashion_mnist()
    model = MLP([784, 100, 10], kernel_init="he_normal", seed=0)
    torch, net = _train_both(model, x, y, epochs=5, batch_size=100, seed=0, lr=0.05, momentum=0.9)
    ours = model.evaluate(xt, yt)["accuracy"]
    with torch.no_grad():
        theirs = float((net(torch.from_numpy(xt)).argmax(1).numpy() == yt).mean())
    assert ours >= 0.85
    assert abs(ours - theirs) <= 0.01


# -- save / load --------------------------------------------------------------------------------


def _trained(tmp_path, steps=5):
    rng = np.random.default_rng(0)
    x = rng.random((40, 12), dtype=np.float32)
    y = np.arange(40) % 4
    model = Sequential([Dense(9, activation="relu", kernel_init="he_normal"), Dense(4)],
                       input_dim=12, seed=1)
    model.compile(lr=0.1, momentum=0.9, nesterov=True)
    for _ in range(steps):
        model.train_step(x, y)
    return model, x, y


def test_save_load_round_trip_continues_training_identically(tmp_path):
    model, x, y = _trained(tmp_path)
    path = tmp_path / "m.npz"
    model.save(path)
    restored = fastdense.load(path)
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))
    assert restored.get_config() == model.get_config()
    assert restored.layers[0].kernel_init.get_config() == {"name": "HeNormal"} or \
        restored.layers[0].kernel_init == model.layers[0].kernel_init
    for _ in range(3):
        model.train_step(x, y)
        restored.train_step(x, y)
    for a, b in zip(model.parameters(), restored.parameters()):
        np.testing.assert_array_equal(a, b)  # momentum buffers and step count came back


def test_save_is_atomic_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    model, x, _ = _trained(tmp_path)
    path = tmp_path / "m.npz"
    model.save(path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    model.train_step(x, np.arange(40) % 4)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temp file left behind


def test_load_rejects_truncated_and_tampered_files(tmp_path):
    model, _, _ = _trained(tmp_path)
    path = tmp_path / "m.npz"
    model.save(path)
    raw = path.read_bytes()

    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(fastdense.ModelFileError, match="trunc.npz"):
        fastdense.load(trunc)

    # Rewrite one weight array with a valid zip CRC: only the checksum in the header sees it.
    tampered = tmp_path / "tampered.npz"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tampered, "w") as zout:
        for item in zin.infolist():
            blob = zin.read(item.filename)
            if item.filename == "param_0.npy":
                blob = blob[:-4] + b"\x00\x00\x80\x3f"
            zout.writestr(item, blob)
    with pytest.raises(fastdense.ModelFileError, match="checksum"):
        fastdense.load(tampered)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(fastdense.ModelFileError):
        fastdense.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(fastdense.ModelFileError, match="header"):
        fastdense.load(other)
    with pytest.raises(FileNotFoundError):
        fastdense.load(tmp_path / "missing.npz")


# -- the fused C++ training step -------------------------------------------------------------


class _PlainXent(fastdense.losses.SoftmaxCrossEntropy):
    """Same loss, different type: routes training through the Python composition."""


@pytest.mark.parametrize(
    "sgd",
    [
        {"lr": 0.1},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
        {"lr": 0.05, "momentum": 0.5, "dampening": 0.2, "clipvalue": 0.01},
        {"lr": 0.05, "momentum": 0.9, "clipnorm": 0.05},
    ],
)
def test_fused_step_matches_python_composition_bitwise(sgd):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 20)).astype(np.float32)
    y = rng.integers(0, 5, 64)
    fused = MLP([20, 16, 12, 5], kernel_init="he_normal", seed=4).compile(**sgd)
    plain = MLP([20, 16, 12, 5], kernel_init="he_normal", seed=4).compile(loss=_PlainXent(), **sgd)
    for i in range(6):
        xb, yb = x[(i % 2) * 32:(i % 2 + 1) * 32], y[(i % 2) * 32:(i % 2 + 1) * 32]
        assert fused.train_step(xb, yb) == plain.train_step(xb, yb)
    assert fused._trainer is not None and plain._trainer is None
    for a, b in zip(fused.parameters(), plain.parameters()):
        np.testing.assert_array_equal(a, b)
    assert fused.optimizer.iterations == plain.optimizer.iterations == 6


def test_fused_step_rebinds_after_optimizer_state_changes():
    rng = np.random.default_rng(1)
    x, y = rng.random((16, 8), dtype=np.float32), np.arange(16) % 3
    model = MLP([8, 6, 3], seed=0).compile(lr=0.1, momentum=0.9)
    model.train_step(x, y)
    first = model._trainer[1]
    state = model.optimizer.state_dict()
    state["config"]["momentum"] = 0.5
    model.optimizer.load_state_dict(state)
    model.train_step(x, y)
    assert model._trainer[1] is not first


def test_fused_step_validates_the_batch():
    model = MLP([8, 6, 3], seed=0).compile(lr=0.1)
    x = np.zeros((4, 8), np.float32)
    with pytest.raises(ValueError, match=r"label 3 .*out of range \[0, 3\)"):
        model.train_step(x, np.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match=r"\(batch, 8\), got \(4, 7\)"):
        model.train_step(np.zeros((4, 7), np.float32), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"`y` of shape \(4,\).*got \(3,\)"):
        model.train_step(x, np.zeros(3, np.int64))
    # float64 input and uint8 labels are converted, as fit does
    model.train_step(x.astype(np.float64), np.zeros(4, np.uint8))


def test_fused_step_after_the_first_checks_and_converts_like_the_first():
    """From the second step on, train_step hands x and y straight to the cached C++ trainer;
    whatever it refuses must still be converted or explained as on the first step, with the
    weights untouched by a refused batch and the optimizer's step count right."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 1])
    model = MLP([8, 6, 3], seed=0).compile(lr=0.1, momentum=0.9)
    twin = MLP([8, 6, 3], seed=0).compile(lr=0.1, momentum=0.9)
    model.train_step(x, y)
    twin.train_step(x, y)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"label 3 .*out of range \[0, 3\)"):
        model.train_step(x, np.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match=r"\(batch, 8\), got \(4, 7\)"):
        model.train_step(np.zeros((4, 7), np.float32), y)
    with pytest.raises(ValueError, match=r"`y` of shape \(4,\).*got \(3,\)"):
        model.train_step(x, y[:3])
    with pytest.raises(ValueError, match=r"empty batch"):
        model.train_step(x[:0], y[:0])
    with pytest.raises(TypeError, match=r"real numeric dtype"):
        model.train_step(x.astype(np.complex64), y)
    for a, b in zip(before, model.parameters()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 1
    # converted, as on the first step: float64, a strided view, uint8 and int32 labels, lists
    wide = np.zeros((4, 16), np.float32)
    wide[:, ::2] = x
    for xi, yi in [(x.astype(np.float64), y.astype(np.uint8)), (wide[:, ::2], y.astype(np.int32)),
                   (x.tolist(), y.tolist()), (x, y)]:
        model.train_step(xi, yi)
        twin.train_step(x, y)
    assert model.optimizer.iterations == twin.optimizer.iterations == 5
    for a, b in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(a, b)
    # float32 and int64 take the direct call, not the checked path
    model._train_step = None
    model.train_step(x, y)
    assert model.optimizer.iterations == 6


def test_fused_step_after_the_first_follows_changes_to_the_loss():
    """A loss changed after the first step (label smoothing, another reduction) is the loss
    the next step minimises: its value is the changed loss of the logits before the step."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0, 2])
    model = MLP([8, 6, 3], seed=0).compile(lr=0.1, momentum=0.9)
    for change in ({"label_smoothing": 0.2}, {"label_smoothing": 0.0, "reduction": "sum"},
                   {"reduction": "mean"}):
        model.train_step(x, y)
        for name, value in change.items():
            setattr(model.loss, name, value)
        want = model.loss(model.forward(x), y)
        assert model.train_step(x, y) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("label_dtype", [np.int32, np.int64])
def test_fit_gathers_shuffled_batches_in_cpp_like_numpy(threads, label_dtype):
    """fit's fused path gathers each shuffled batch in C++ (MLPTrainer.step_rows); it must train
    exactly like stepping on the batches numpy gathers, last partial batch included. (64 rows
    of 100 -> 50 is above the parallel threshold, so 2 threads split the gather.)"""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((250, 100)).astype(np.float32)
    y = rng.integers(0, 6, 250).astype(label_dtype)
    old = fastdense.get_num_threads()
    fastdense.set_num_threads(threads)
    try:
        fit = MLP([100, 50, 6], kernel_init="he_normal", seed=2).compile(lr=0.05, momentum=0.9)
        hist = fit.fit(x, y, epochs=2, batch_size=64, seed=7, verbose=0)
        manual = MLP([100, 50, 6], kernel_init="he_normal", seed=2).compile(lr=0.05, momentum=0.9)
        shuffle = np.random.default_rng(7)
        for _ in range(2):
            perm = shuffle.permutation(len(x))
            losses = [manual.train_step(x[perm[lo:lo + 64]], y[perm[lo:lo + 64]]) * len(perm[lo:lo + 64])
                      for lo in range(0, len(x), 64)]
        assert hist.history["loss"][-1] == pytest.approx(sum(losses) / len(x), rel=1e-12)
    finally:
        fastdense.set_num_threads(old)
    for a, b in zip(fit.parameters(), manual.parameters()):
        np.testing.assert_array_equal(a, b)
    assert fit.optimizer.iterations == manual.optimizer.iterations == 8


def test_fused_gathered_step_validates_rows_and_labels():
    model = MLP([8, 6, 3], seed=0).compile(lr=0.1)
    x, y = np.zeros((5, 8), np.float32), np.array([0, 1, 2, 0, 1])
    trainer = model._fused_trainer(y)
    before = model.get_weights()
    with pytest.raises(IndexError, match=r"row index 5 \(idx\[1\]\) is out of range \[0, 5\)"):
        trainer.step_rows(x, y, np.array([0, 5]), 0.1, True)
    with pytest.raises(IndexError, match=r"row index -1"):
        trainer.step_rows(x, y, np.array([-1]), 0.1, True)
    with pytest.raises(TypeError, match=r"`idx` to be a numpy array of int64"):
        trainer.step_rows(x, y, np.array([0, 1], np.int32), 0.1, True)
    with pytest.raises(ValueError, match=r"`idx` must be a non-empty C-contiguous 1-D array"):
        trainer.step_rows(x, y, np.zeros(0, np.int64), 0.1, True)
    with pytest.raises(ValueError, match=r"`idx` must be a non-empty C-contiguous 1-D array"):
        trainer.step_rows(x, y, np.arange(4)[::2], 0.1, True)
    with pytest.raises(ValueError, match=r"label 7 \(y\[3\]\) is out of range \[0, 3\)"):
        trainer.step_rows(x, np.array([0, 1, 2, 7, 1]), np.array([0, 3]), 0.1, True)
    with pytest.raises(ValueError, match=r"`y` of shape \(5,\).*got \(4,\)"):
        trainer.step_rows(x, y[:4], np.array([0]), 0.1, True)
    # the next batch's rows (prefetched during the step) are checked like idx, before the step
    with pytest.raises(IndexError, match=r"row index 9 \(next_idx\[1\]\) is out of range"):
        trainer.step_rows(x, y, np.array([0]), 0.1, True, np.array([1, 9]))
    with pytest.raises(TypeError, match=r"`next_idx` to be a numpy array of int64"):
        trainer.step_rows(x, y, np.array([0]), 0.1, True, [1, 2])
    with pytest.raises(ValueError, match=r"`next_idx` must be a non-empty C-contiguous 1-D"):
        trainer.step_rows(x, y, np.array([0]), 0.1, True, np.zeros((1, 1), np.int64))
    for a, b in zip(before, model.parameters()):
        np.testing.assert_array_equal(a, b)


def test_fused_step_skips_the_update_on_a_non_finite_loss():
    model = MLP([4, 3, 2], seed=0).compile(lr=0.1)
    before = model.get_weights()
    loss = model.train_step(np.full((2, 4), np.inf, np.float32), np.zeros(2, np.int64))
    assert not np.isfinite(loss)
    for a, b in zip(before, model.parameters()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("clip", [None, "clipnorm"])
def test_fused_step_phase_timing(threads, clip):
    """MLPTrainer.set_phase_timing: per-layer phases of the one C++ call, counted only for
    steps that reach the update, inside the wall time of those steps, and without changing
    a bit of the training. (Batch 32 of 300-64-10: the layer-2 backward runs on two threads.)"""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((32, 300)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    kw = {"clipnorm": 1.0} if clip else {}
    old = fastdense.get_num_threads()
    fastdense.set_num_threads(threads)
    try:
        timed = MLP([300, 64, 10], seed=1).compile(lr=0.05, momentum=0.9, **kw)
        plain = MLP([300, 64, 10], seed=1).compile(lr=0.05, momentum=0.9, **kw)
        timed.train_step(x, y)
        plain.train_step(x, y)
        trainer = timed._fused_trainer(y)
        trainer.set_phase_timing(True)
        t0 = time.perf_counter()
        for _ in range(5):
            timed.train_step(x, y)
            plain.train_step(x, y)
        wall = time.perf_counter() - t0
        # a non-finite loss: no update, and the step is not counted
        timed.train_step(np.full_like(x, np.inf), y)
        ph = trainer.phase_seconds()
        trainer.set_phase_timing(False)
        timed.train_step(x, y)
        plain.train_step(x, y)
        assert trainer.phase_seconds()["steps"] == 5  # off: no more steps counted
    finally:
        fastdense.set_num_threads(old)
    assert ph["steps"] == 5
    assert len(ph["forward"]) == len(ph["backward"]) == 2
    parts = ph["forward"] + ph["backward"] + [ph["loss"]]
    assert all(v > 0 for v in parts)
    assert (ph["update"] > 0) == bool(clip)  # the update is separate only with norm clipping
    assert 5 * (sum(parts) + ph["update"]) <= wall
    # the layer-2 backward splits over two threads when there are two
    assert ph["split_steps"] == (5 if threads == 2 else 0)
    if ph["split_steps"]:
        assert ph["split_wait"] > 0 and ph["split_input_gradient"] > 0
        assert ph["split_input_gradient"] <= ph["backward"][1]
    trainer.set_phase_timing(True)  # resets
    assert trainer.phase_seconds()["steps"] == 0
    for a, b in zip(timed.parameters(), plain.parameters()):
        np.testing.assert_array_equal(a, b)


def _assert_same_weights_on_every_isa_and_thread_count(train):
    """train() builds and trains a model; its weights must be bitwise the same on every
    supported ISA with 1 and with 2 threads."""
    isa0, threads0 = fastdense.active_isa(), fastdense.get_num_threads()
    results = []
    try:
        for isa in fastdense.supported_isas():
            for threads in (1, 2):
                fastdense.set_isa(isa)
                fastdense.set_num_threads(threads)
                results.append((isa, threads, train().get_weights()))
    finally:
        fastdense.set_isa(isa0)
        fastdense.set_num_threads(threads0)
    for isa, threads, weights in results[1:]:
        for a, b in zip(results[0][2], weights):
            np.testing.assert_array_equal(a, b, err_msg=f"{isa}, {threads} threads")


def test_training_is_bitwise_identical_across_isas_and_threads():
    """The determinism contract, end to end: same seed and batches give the same weights on
    every supported ISA and thread count (ref uses fmaf chains, the vector ISAs FMA lanes)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 30)).astype(np.float32)
    y = rng.integers(0, 4, 96)

    def train():
        model = MLP([30, 700, 20, 4], kernel_init="he_normal", seed=1)
        model.compile(lr=0.05, momentum=0.9, weight_decay=1e-4)
        for i in range(3):
            model.train_step(x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32])
        return model

    _assert_same_weights_on_every_isa_and_thread_count(train)


@pytest.mark.parametrize("k, n, batch", [
    (784, 100, 100),  # the Fashion-MNIST step: N = 6 x 16 (3 x 32) + a narrow 4-column edge
    (300, 50, 37),    # a wide 18-column edge; rows not a multiple of either tile's
    (1100, 20, 64),   # K spans several K blocks; N under one tile
    (520, 130, 256),  # a batch of 256
    (600, 512, 64),   # W's rows 2 KiB apart: packed, not read in place
    (300, 8, 128),    # N = 8
    (784, 100, 1),    # a batch of one: K split, each thread reads and updates its half of W
    (300, 512, 160),  # Y and dW at least as wide as tall: the threads split their columns
])
def test_two_thread_training_step_is_bitwise_the_one_thread_chain(k, n, batch):
    """On a team of two, the training step splits the first layer's work between the threads
    so that each reads only the weights it then updates: K for a batch of one (one thread runs
    k < kb, hands its partial sums over, the other continues the chain), the columns of Y and
    dW where they are at least as wide as tall, else the batch. The weights must be those of
    one thread and of the scalar reference, for given and for gathered batches."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2 * batch + 5, k)).astype(np.float32)
    y = rng.integers(0, 3, len(x))

    def train():
        model = MLP([k, n, 3], kernel_init="he_normal", seed=4)
        model.compile(lr=0.05, momentum=0.9, weight_decay=1e-4)
        model.train_step(x[:batch], y[:batch])
        model.fit(x, y, epochs=1, batch_size=batch, seed=1, verbose=0)
        return model

    _assert_same_weights_on_every_isa_and_thread_count(train)


@pytest.mark.skipif(not fastdense._core.has_openmp, reason="built without OpenMP")
@pytest.mark.parametrize("share", [0.25, 0.75])
def test_two_thread_step_is_bitwise_the_same_at_any_column_share(share):
    """The share of a column split follows the cores' measured speeds (kernels.h,
    column_share); pinned away from halves, the two-thread steps (forward, input gradient and
    the weight gradient with its fused update, all split by columns) still give the weights of
    one thread. (Every GEMM here is below the size that re-measures the share.)"""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2 * 160, 300)).astype(np.float32)
    y = rng.integers(0, 3, len(x))

    def train():
        model = MLP([300, 512, 3], kernel_init="he_normal", seed=4)
        model.compile(lr=0.05, momentum=0.9, weight_decay=1e-4)
        for i in range(2):
            model.train_step(x[i * 160:(i + 1) * 160], y[i * 160:(i + 1) * 160])
        return model.get_weights()

    threads0 = fastdense.get_num_threads()
    try:
        fastdense.set_num_threads(1)
        expected = train()
        fastdense.set_num_threads(2)
        fastdense._core._column_share(share)
        got = train()
        assert fastdense._core._column_share() == share
    finally:
        fastdense._core._column_share(0.5)
        fastdense.set_num_threads(threads0)
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sizes", [[40, 24, 10], [40, 24, 16, 10]])
@pytest.mark.parametrize(
    "sgd",
    [
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
        {"lr": 0.05, "momentum": 0.5, "nesterov": True, "clipvalue": 0.01},
        {"lr": 0.05, "momentum": 0.9, "clipnorm": 0.05},
    ],
)
def test_side_by_side_layer_1_backward_is_bitwise_the_serial_one(sizes, sgd):
    """When the layers after the first are too small to share, a team of two still runs layer
    1's input gradient and weight gradient side by side (16 rows and up), then layer 1's update.
    The weights must be those of one thread, of every ISA, and of the Python composition."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((150, 40)).astype(np.float32)
    y = rng.integers(0, 10, 150)

    def train(loss=None):
        model = MLP(sizes, kernel_init="he_normal", seed=3)
        model.compile(**sgd) if loss is None else model.compile(loss=loss, **sgd)
        for i in range(3):
            model.train_step(x[i * 50:(i + 1) * 50], y[i * 50:(i + 1) * 50])
        return model

    _assert_same_weights_on_every_isa_and_thread_count(train)
    for a, b in zip(train().parameters(), train(_PlainXent()).parameters()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_side_by_side_backward_skips_the_update_on_a_non_finite_loss(threads):
    model = MLP([8, 6, 3], seed=0).compile(lr=0.1, momentum=0.9)
    before = model.get_weights()
    x = np.zeros((20, 8), np.float32)
    x[7, 2] = np.inf
    old = fastdense.get_num_threads()
    fastdense.set_num_threads(threads)
    try:
        loss = model.train_step(x, np.zeros(20, np.int64))
    finally:
        fastdense.set_num_threads(old)
    assert not np.isfinite(loss)
    for a, b in zip(before, model.parameters()):
        np.testing.assert_array_equal(a, b)


def test_fit_warns_once_about_a_dead_symmetric_initialization(embedded, recwarn):
    (x, y), _ = embedded
    model = MLP([784, 32, 10], kernel_init="zeros", seed=0).compile(lr=0.1)
    with pytest.warns(fastdense.diagnostics.InitializationWarning, match="(?i)dead|symmetr"):
        model.fit(x[:500], y[:500], epochs=1, batch_size=100, verbose=0)
    model.fit(x[:500], y[:500], epochs=1, batch_size=100, verbose=0)  # no second warning
    assert not [w for w in recwarn if issubclass(w.category, fastdense.diagnostics.InitializationWarning)]
    healthy = MLP([784, 32, 10], kernel_init="he_normal", seed=0).compile(lr=0.1)
    healthy.fit(x[:500], y[:500], epochs=1, batch_size=100, verbose=0)  # warnings are errors here


def test_dense_init_alias_resolves_names():
    a = Sequential([Dense(50, init="he_normal")], input_dim=400, seed=3)
    b = Sequential([Dense(50, kernel_init="HeNormal")], input_dim=400, seed=3)
    np.testing.assert_array_equal(a.parameters()[0], b.parameters()[0])
    assert a.parameters()[0].std() == pytest.approx(np.sqrt(2 / 400), rel=0.05)
    with pytest.raises(ValueError, match="either `init` or `kernel_init`"):
        Dense(5, init="zeros", kernel_init="ones")
