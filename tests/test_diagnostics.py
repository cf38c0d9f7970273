"""fastdense.diagnostics: numbers against a float64 numpy computation, findings, side effects."""

import json
import math
import sys
import warnings

import numpy as np
import pytest

import fastdense
from fastdense import MLP, Dense, Sequential, diagnostics, init


def _numpy_pass(model, x, y):
    """float64 forward and backward of a Dense stack with mean softmax cross-entropy."""
    stages = model._stages
    hs, zs = [x.astype(np.float64)], []
    for s in stages:
        z = hs[-1] @ s.dense.W.astype(np.float64) + s.dense.b.astype(np.float64)
        zs.append(z)
        hs.append(np.maximum(z, 0) if s.relu else z)
    logits = zs[-1]
    sh = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(sh) / np.exp(sh).sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = float(np.mean(-np.log(p[rows, y])))
    dz = p.copy()
    dz[rows, y] -= 1
    dz /= len(y)
    dzs, dWs, dbs = [None] * len(stages), [None] * len(stages), [None] * len(stages)
    for i in range(len(stages) - 1, -1, -1):
        dzs[i] = dz
        dWs[i], dbs[i] = hs[i].T @ dz, dz.sum(0)
        if i > 0:
            dz = (dz @ stages[i].dense.W.T.astype(np.float64)) * (
                (hs[i] > 0) if stages[i - 1].relu else 1.0)
    return loss, zs, hs[1:], dzs, dWs, dbs, p


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    model = MLP([7, 12, 9, 4], kernel_init="he_normal", bias_init="random_normal", seed=3)
    # Two units of the first layer that no sample can switch on: dead over the batch.
    model._stages[0].dense.W[:, :2] = -1.0
    model._stages[0].dense.b[:2] = -5.0
    x = rng.random((40, 7), dtype=np.float32)  # in [0, 1): x @ W - 5 < 0 for those units
    y = rng.integers(0, 4, 40)
    return model, x, y


def _close(a, b, rtol=2e-4, atol=1e-6):
    assert a == pytest.approx(b, rel=rtol, abs=atol)


def test_statistics_match_numpy(small):
    model, x, y = small
    lr = 0.05
    report = diagnostics.diagnose(model, x, y, lr=lr)
    loss, zs, acts, dzs, dWs, dbs, p = _numpy_pass(model, x, y)
    _close(report.loss, loss, rtol=1e-5)
    assert report.batch_size == 40 and report.num_classes == 4 and report.lr == lr
    assert [s.name for s in report.layers] == ["dense_0", "dense_1", "dense_2"]
    for s, z, a, dz, dW, db, stage in zip(report.layers, zs, acts, dzs, dWs, dbs, model._stages):
        assert (s.in_features, s.out_features, s.relu) == (stage.dense.input_dim,
                                                           stage.dense.units, stage.relu)
        for summary, ref in ((s.preact, z), (s.act, a), (s.grad, dW)):
            _close(summary.mean, ref.mean(), atol=1e-6)
            _close(summary.std, ref.std())
            _close(summary.min, ref.min())
            _close(summary.max, ref.max())
            assert summary.nonfinite_fraction == 0
        # Exact zeros: ReLU outputs where z <= 0 (z itself is never exactly 0 here).
        assert s.act.zero_fraction == pytest.approx(np.mean(a == 0))
        dead = int(np.sum(~(a > 0).any(axis=0))) if stage.relu else 0
        assert s.dead_units == dead and s.dead_fraction == pytest.approx(dead / z.shape[1])
        _close(s.weight_grad_norm, np.linalg.norm(dW))
        _close(s.grad_norm, math.sqrt(np.linalg.norm(dW) ** 2 + np.linalg.norm(db) ** 2))
        w_norm = np.linalg.norm(stage.dense.W.astype(np.float64))
        _close(s.weight_norm, w_norm, rtol=1e-6)
        _close(s.update_ratio, lr * np.linalg.norm(dW) / w_norm)
        _close(s.delta_rms, np.sqrt(np.mean(dz ** 2)))
        _close(s.signal, np.sqrt(np.mean(z.std(axis=0) ** 2)))
    assert report.layers[0].dead_units >= 2  # the two units forced off above, maybe more
    _close(report.grad_ratio, np.linalg.norm(dWs[0]) / np.linalg.norm(dWs[-1]))
    sig = [np.sqrt(np.mean(z.std(axis=0) ** 2)) for z in zs]
    _close(report.growth, (sig[-1] / sig[0]) ** 0.5)
    _close(report.top_prob, p.max(axis=1).mean())


def test_diagnose_leaves_the_model_untouched(small):
    model, x, y = small
    model.compile(lr=0.1, momentum=0.9)
    model.fit(x, y, epochs=1, batch_size=8, seed=0, verbose=0)  # fill buffers and momentum
    params = [p.copy() for p in model.parameters()]
    grads = [g.copy() for g in model.gradients()]
    state = model.optimizer.state_dict()
    trainer = getattr(model, "_trainer", None)
    def buffers():  # every training buffer, flattened
        return {(m, k, i): a.copy() for m, d in model._workspaces.items() for k, v in d.items()
                for i, a in enumerate(v if isinstance(v, list) else [v])}

    ws = buffers()
    diagnostics.diagnose(model, x[:16], y[:16].astype(np.float32).reshape(-1, 1).repeat(4, 1),
                         loss="mse")  # float targets must not flip the model to regression
    diagnostics.diagnose(model, x, y)
    for a, b in zip(model.parameters(), params):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.gradients(), grads):
        np.testing.assert_array_equal(a, b)
    after = model.optimizer.state_dict()
    assert after["iterations"] == state["iterations"]
    for a, b in zip(after["momentum_buffers"], state["momentum_buffers"]):
        np.testing.assert_array_equal(a, b)
    after_ws = buffers()
    assert set(after_ws) == set(ws)
    for key, a in ws.items():
        np.testing.assert_array_equal(after_ws[key], a)
    assert model._int_labels  # still a classifier
    assert getattr(model, "_trainer", None) is trainer


def _kinds(report_or_findings):
    findings = getattr(report_or_findings, "findings", report_or_findings)
    return [f.kind for f in findings]


@pytest.fixture(scope="module")
def images():
    (x, y), _ = fastdense.data.load_dataset("embedded")
    return x[:256], y[:256]


def test_zero_init_hidden_layer_is_dead_and_symmetric(images):
    x, y = images
    model = MLP([784, 100, 10], kernel_init="zeros", seed=0)
    report = diagnostics.diagnose(model, x, y, lr=0.5)
    assert _kinds(report) == ["symmetric", "dead", "uniform_softmax"]
    sym, dead = report.findings[:2]
    assert sym.layer == 0 and dead.layer == 0
    assert "100 units" in sym.message and "random init" in sym.remedy
    assert "100 of 100" in dead.message and "he_normal" in dead.remedy
    assert report.layers[0].dead_fraction == 1.0 and report.layers[0].identical_units
    assert "2.3026" in report.findings[2].message  # loss = ln 10
    assert _kinds(diagnostics.check_initialization(model, x, y)) == ["symmetric", "dead"]


def test_zero_init_softmax_regression_is_fine(images):
    # No hidden layer: identical output units are told apart by the labels.
    x, y = images
    model = Sequential([Dense(10, kernel_init="zeros")], input_dim=784)
    report = diagnostics.diagnose(model, x, y, lr=0.5)
    assert _kinds(report) == ["uniform_softmax"]
    assert report.layers[0].update_ratio == math.inf  # W = 0, dW != 0
    assert diagnostics.check_initialization(model, x, y) == []


@pytest.mark.parametrize("kernel_init, output_init, expected", [
    (init.RandomNormal(0, 1.0), None, ["exploding_activations", "saturated_softmax"]),
    (init.RandomNormal(0, 0.01), None,
     ["vanishing_gradients", "vanishing_activations", "uniform_softmax"]),
    ("he_normal", "glorot_uniform", []),
])
def test_deep_mlp_scale_of_init(images, kernel_init, output_init, expected):
    x, y = images
    model = MLP([784, 128, 128, 128, 128, 10], kernel_init=kernel_init, output_init=output_init,
                seed=0)
    report = diagnostics.diagnose(model, x, y, lr=0.05)
    assert _kinds(report) == expected
    if expected and expected[0] == "exploding_activations":
        assert report.growth > diagnostics.GROWTH_HIGH and report.loss > 100
        assert "he_normal" in report.findings[0].remedy
    if "uniform_softmax" in expected:
        assert report.loss == pytest.approx(math.log(10), abs=1e-3)
        assert report.growth < diagnostics.GROWTH_LOW


def test_vanishing_gradient_ratio_between_first_and_last_layer():
    rng = np.random.default_rng(1)
    model = Sequential([Dense(32, activation="relu", kernel_init="he_normal"),
                        Dense(5, kernel_init=init.RandomNormal(0, 1e-5))], input_dim=20, seed=0)
    x = rng.standard_normal((64, 20)).astype(np.float32)
    report = diagnostics.diagnose(model, x, rng.integers(0, 5, 64))
    assert report.grad_ratio < diagnostics.VANISHING_GRAD_RATIO
    assert _kinds(report) == ["vanishing_gradients", "uniform_softmax"]
    assert report.findings[0].layer == 0 and "variance scaling" in report.findings[0].remedy


def test_non_finite_values_are_reported_without_numpy_warnings(images):
    x, y = images
    model = MLP([784, 64, 64, 10], kernel_init="he_normal", seed=0)
    model._stages[1].dense.W[:] = 1e38  # overflows float32 to inf in the second layer
    report = diagnostics.diagnose(model, x, y, lr=0.1)
    assert report.findings[0].kind == "non_finite" and report.findings[0].layer == 1
    assert math.isnan(report.loss) and report.layers[1].preact.nonfinite_fraction > 0
    assert report.layers[0].grad is None  # no backward pass through infinities
    json.dumps(report.to_dict(), allow_nan=False)
    assert "non_finite" in report.table()
    xn = x.copy()
    xn[3, 5] = np.nan
    model = MLP([784, 64, 10], kernel_init="he_normal", seed=0)
    assert _kinds(diagnostics.check_initialization(model, xn, y)) == ["non_finite"]


def test_small_batches_only_report_fully_dead_layers():
    # With m samples about 2^-m of healthy units look dead; m = 2 must not cry "dead".
    model = MLP([4, 64, 3], kernel_init="he_normal", seed=0)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    report = diagnostics.diagnose(model, x, np.array([0, 1]))
    assert 0 < report.layers[0].dead_fraction < 1
    assert "dead" not in _kinds(report)


def test_regression_targets_and_custom_loss():
    model = MLP([1, 16, 16, 1], kernel_init="glorot_uniform", seed=0)
    x = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
    report = diagnostics.diagnose(model, x, 3 * x, loss="mse", lr=0.01)
    assert report.num_classes is None and report.top_prob is None
    ref = np.mean((model.predict(x).astype(np.float64) - 3 * x) ** 2)
    assert report.loss == pytest.approx(ref, rel=1e-5)
    assert all(s.grad is not None for s in report.layers)


def test_report_serialises_and_prints(small):
    model, x, y = small
    report = diagnostics.diagnose(model, x, y, lr=0.1)
    d = json.loads(report.to_json())
    assert d == report.to_dict()
    assert [layer["name"] for layer in d["layers"]] == ["dense_0", "dense_1", "dense_2"]
    assert set(d["layers"][0]["preact"]) == {"mean", "std", "min", "max", "zero_fraction",
                                             "nonfinite_fraction"}
    assert {"dead_fraction", "grad_norm", "update_ratio", "weight_norm"} <= set(d["layers"][0])
    text = report.table()
    assert "dense_0" in text and "lr|dW|/|W|" in text and "findings" in text
    assert repr(report).startswith("Report(layers=3")


def test_fit_hook_warns_once():
    model = MLP([6, 16, 3], kernel_init="zeros", seed=0).compile(lr=0.1)
    x = np.random.default_rng(0).random((40, 6), dtype=np.float32)
    y = np.arange(40) % 3
    with pytest.warns(diagnostics.InitializationWarning, match="symmetric.*dead") as rec:
        found = diagnostics.warn_initialization(model, x, y)
    assert len(rec) == 1 and _kinds(found) == ["symmetric", "dead"]
    assert "he_normal" in str(rec[0].message)
    healthy = MLP([6, 16, 3], kernel_init="he_normal", seed=0).compile(lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert diagnostics.warn_initialization(healthy, x, y) == []


def test_plot_histograms_writes_a_png(tmp_path, small):
    pytest.importorskip("matplotlib")
    model, x, y = small
    path = tmp_path / "layers.png"
    diagnostics.diagnose(model, x, y).plot_histograms(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    zero = MLP([5, 4, 3], kernel_init="zeros")
    diagnostics.diagnose(zero, x[:, :5], y % 3).plot_histograms(tmp_path / "zeros.png")
    assert (tmp_path / "zeros.png").stat().st_size > 0


def test_plot_histograms_names_the_extra_without_matplotlib(tmp_path, small, monkeypatch):
    model, x, y = small
    report = diagnostics.diagnose(model, x, y)
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install fastdense\[plot\]"):
        report.plot_histograms(tmp_path / "x.png")


def test_bad_arguments():
    model = MLP([5, 4, 3], seed=0)
    x = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="shape"):
        diagnostics.diagnose(model, np.zeros((4, 6), np.float32), np.zeros(4, int))
    with pytest.raises(ValueError, match="4 samples but y has 3"):
        diagnostics.diagnose(model, x, np.zeros(3, int))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        diagnostics.diagnose(model, x, np.full(4, 3))
