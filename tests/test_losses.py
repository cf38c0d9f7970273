"""Tests for fastdense.losses: values and gradients against float64 numpy references (which
are themselves checked against central finite differences), against PyTorch, numerical
stability, the probabilities warning, validation messages and the registry.

Tolerances: float32 results are accepted within c * eps32 times the magnitudes involved (the
logits' size plus log C for cross-entropy values, the gradient scale for gradients).
"""

import json
import re
import warnings

import numpy as np
import pytest

from conftest import CallCounter, central_diff
from fastdense import _core, losses
from fastdense.losses import MeanSquaredError, SoftmaxCrossEntropy

F32 = np.float32
F64 = np.float64
EPS32 = float(np.finfo(np.float32).eps)
REDUCTIONS = ["mean", "sum", "none"]
TARGET_KINDS = ["int64", "int32", "uint8", "int_column", "onehot", "probs"]


# ----------------------------------------------------------------------- float64 references


def ref_xent(z, targets, eps=0.0, reduction="mean"):
    """Softmax cross-entropy in float64 via a dense target matrix: (value, grad)."""
    z = np.asarray(z, F64)
    M, C = z.shape
    t = np.asarray(targets)
    if np.issubdtype(t.dtype, np.integer):
        dense = np.zeros((M, C))
        dense[np.arange(M), t.reshape(-1)] = 1.0
    else:
        dense = t.astype(F64)
    dense = dense * (1 - eps) + eps / C
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    logp = z - lse
    rows = -(dense * logp).sum(axis=1)
    grad = np.exp(logp) * dense.sum(axis=1, keepdims=True) - dense
    return _ref_reduce(rows, grad, M, reduction)


def ref_mse(y, t, reduction="mean"):
    d = np.asarray(y, F64) - np.asarray(t, F64)
    if reduction == "none":
        return d * d, 2 * d
    if reduction == "sum":
        return float((d * d).sum()), 2 * d
    return float((d * d).mean()), 2 * d / d.size


def _ref_reduce(rows, grad, M, reduction):
    if reduction == "mean":
        return float(rows.mean()), grad / M
    if reduction == "sum":
        return float(rows.sum()), grad
    return rows, grad  # the gradient of the sum


def _scalar(value):
    return float(np.sum(value))  # "none" -> the sum, whose gradient the losses return


def make_targets(kind, rng, M, C):
    labels = rng.integers(0, C, size=M)
    if kind == "int64":
        return labels.astype(np.int64)
    if kind == "int32":
        return labels.astype(np.int32)
    if kind == "uint8":
        return labels.astype(np.uint8)
    if kind == "int_column":
        return labels.astype(np.int64).reshape(M, 1)
    if kind == "onehot":
        return np.eye(C, dtype=F32)[labels]
    p = rng.dirichlet(np.ones(C), size=M)
    return p.astype(F32)


def xent_tol(z, scale):
    """Value and grad tolerances for logits z and gradient scale (1/M or 1)."""
    C = z.shape[1]
    tol_row = 16 * EPS32 * (np.abs(z).max(axis=1) + np.log(C) + 1.0)
    return tol_row, 16 * EPS32 * scale + 1e-30


def check_value(got, ref, tol_rows, reduction):
    if reduction == "none":
        assert isinstance(got, np.ndarray) and got.dtype == F32 and got.shape == ref.shape
        np.testing.assert_array_less(np.abs(got.astype(F64) - ref), tol_rows)
    else:
        assert isinstance(got, float)
        tol = tol_rows.mean() if reduction == "mean" else tol_rows.sum()
        assert abs(got - ref) <= tol, (got, ref, tol)


# ------------------------------------------------------------------ the references are right


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind, eps", [("int64", 0.0), ("int64", 0.2), ("probs", 0.0),
                                       ("probs", 0.1)])
def test_reference_xent_grad_matches_finite_differences(kind, eps, reduction, rng):
    z = rng.standard_normal((4, 5)) * 2
    t = make_targets(kind, rng, 4, 5)
    _, grad = ref_xent(z, t, eps, reduction)
    fd = central_diff(lambda x: _scalar(ref_xent(x, t, eps, reduction)[0]), z)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_reference_mse_grad_matches_finite_differences(reduction, rng):
    y, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    _, grad = ref_mse(y, t, reduction)
    fd = central_diff(lambda x: _scalar(ref_mse(x, t, reduction)[0]), y)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------- cross-entropy vs ref


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_xent_matches_reference(kind, eps, reduction, rng):
    M, C = 37, 10
    z = (rng.standard_normal((M, C)) * 3).astype(F32)
    t = make_targets(kind, rng, M, C)
    loss = SoftmaxCrossEntropy(label_smoothing=eps, reduction=reduction)
    ref_value, ref_grad = ref_xent(z, t, eps, reduction)
    tol_rows, tol_grad = xent_tol(z.astype(F64), 1.0 / M if reduction == "mean" else 1.0)

    check_value(loss(z, t), ref_value, tol_rows, reduction)
    value, grad = loss.value_and_grad(z, t)
    check_value(value, ref_value, tol_rows, reduction)
    assert grad.dtype == F32 and grad.shape == (M, C)
    np.testing.assert_array_less(np.abs(grad - ref_grad), tol_grad)
    # grad_out: written in place and returned, same values.
    buf = np.full((M, C), np.nan, F32)
    value2, grad2 = loss.value_and_grad(z, t, grad_out=buf)
    assert grad2 is buf
    np.testing.assert_array_equal(buf, grad)
    assert value2 == value if reduction != "none" else np.array_equal(value2, value)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_integer_labels_use_the_fused_kernel(reduction, rng, monkeypatch):
    fwd, bwd = CallCounter(_core.softmax_xent_forward), CallCounter(_core.softmax_xent_backward)
    monkeypatch.setattr(losses._core, "softmax_xent_forward", fwd)
    monkeypatch.setattr(losses._core, "softmax_xent_backward", bwd)
    z = rng.standard_normal((16, 7)).astype(F32)
    labels = rng.integers(0, 7, 16)
    loss = SoftmaxCrossEntropy(reduction=reduction)
    loss(z, labels)
    _, g_kernel = loss.value_and_grad(z, labels)
    assert (fwd.calls, bwd.calls) == (1, 1)
    # Label smoothing and dense targets take the numpy path; the two paths agree.
    SoftmaxCrossEntropy(0.1, reduction).value_and_grad(z, labels)
    _, g_numpy = loss.value_and_grad(z, np.eye(7, dtype=F32)[labels])
    assert (fwd.calls, bwd.calls) == (1, 1)
    scale = 1 / 16 if reduction == "mean" else 1.0
    np.testing.assert_allclose(g_numpy, g_kernel, rtol=0, atol=8 * EPS32 * scale)


def test_xent_accepts_float64_and_noncontiguous_logits(rng):
    z = rng.standard_normal((5, 12))
    labels = rng.integers(0, 6, 5)
    loss = SoftmaxCrossEntropy()
    v64 = loss(z[:, ::2], labels)
    v32 = loss(np.ascontiguousarray(z[:, ::2], dtype=F32), labels)
    assert v64 == v32
    assert loss.value_and_grad(z[:, ::2], labels)[1].dtype == F32


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind, eps", [("int64", 0.0), ("int64", 0.1), ("onehot", 0.05),
                                       ("probs", 0.0)])
def test_xent_stable_for_huge_logits(kind, eps, reduction, rng):
    M, C = 12, 6
    z = (rng.choice([-1e5, 1e5], size=(M, C)) + rng.standard_normal((M, C))).astype(F32)
    z[0] = 1e5  # a row of ties at the top
    z[1] = -1e5  # and one at the bottom
    t = make_targets(kind, rng, M, C)
    loss = SoftmaxCrossEntropy(label_smoothing=eps, reduction=reduction)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid warnings from numpy either
        value, grad = loss.value_and_grad(z, t)
    ref_value, ref_grad = ref_xent(z, t, eps, reduction)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    tol_rows, tol_grad = xent_tol(z.astype(F64), 1.0 / M if reduction == "mean" else 1.0)
    check_value(value, ref_value, tol_rows, reduction)
    np.testing.assert_array_less(np.abs(grad - ref_grad), tol_grad)


# ------------------------------------------------------------------------------ MSE vs ref


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, tdtype", [((13, 3), F32), ((13,), F64), ((4, 5, 6), np.int64)])
def test_mse_matches_reference(shape, tdtype, reduction, rng):
    y = rng.standard_normal(shape).astype(F32)
    t = (rng.standard_normal(shape) * 2).astype(tdtype)
    loss = MeanSquaredError(reduction)
    ref_value, ref_grad = ref_mse(y, t.astype(F32), reduction)
    mag = (np.abs(y).astype(F64) + np.abs(t.astype(F32))) ** 2
    scale = 1.0 / y.size if reduction == "mean" else 1.0
    for value in (loss(y, t), loss.value_and_grad(y, t)[0]):
        if reduction == "none":
            assert value.dtype == F32 and value.shape == shape
            np.testing.assert_array_less(np.abs(value - ref_value), 4 * EPS32 * mag + 1e-30)
        else:
            assert isinstance(value, float)
            assert abs(value - ref_value) <= 4 * EPS32 * mag.sum() * scale
    _, grad = loss.value_and_grad(y, t)
    assert grad.dtype == F32 and grad.shape == shape
    np.testing.assert_array_less(np.abs(grad - ref_grad),
                                 4 * EPS32 * 2 * np.sqrt(mag) * scale + 1e-30)
    buf = np.empty(shape, F32)
    assert loss.value_and_grad(y, t, grad_out=buf)[1] is buf
    np.testing.assert_array_equal(buf, grad)


def test_mse_mean_is_over_all_elements():
    y = np.array([[1.0, 3.0], [0.0, 0.0]], F32)
    value, grad = MeanSquaredError().value_and_grad(y, np.zeros((2, 2), F32))
    assert value == 2.5
    np.testing.assert_array_equal(grad, [[0.5, 1.5], [0.0, 0.0]])


# ------------------------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.15])
@pytest.mark.parametrize("kind", ["int64", "probs"])
def test_xent_matches_pytorch(kind, eps, reduction, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    M, C = 29, 8
    z = (rng.standard_normal((M, C)) * 4).astype(F32)
    t = make_targets(kind, rng, M, C)
    tz = torch.tensor(z, requires_grad=True)
    tt = torch.tensor(t)
    tloss = F.cross_entropy(tz, tt, label_smoothing=eps, reduction=reduction)
    tloss.sum().backward()
    value, grad = SoftmaxCrossEntropy(eps, reduction).value_and_grad(z, t)
    tol_rows, tol_grad = xent_tol(z.astype(F64), 1.0 / M if reduction == "mean" else 1.0)
    check_value(value, tloss.detach().numpy().astype(F64), 2 * tol_rows, reduction)
    np.testing.assert_array_less(np.abs(grad - tz.grad.numpy()), 2 * tol_grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_pytorch(reduction, rng):
    torch = pytest.importorskip("torch")
    y = rng.standard_normal((17, 4)).astype(F32)
    t = rng.standard_normal((17, 4)).astype(F32)
    ty = torch.tensor(y, requires_grad=True)
    tloss = torch.nn.functional.mse_loss(ty, torch.tensor(t), reduction=reduction)
    tloss.sum().backward()
    value, grad = MeanSquaredError(reduction).value_and_grad(y, t)
    if reduction == "none":
        np.testing.assert_allclose(value, tloss.detach().numpy(), rtol=4 * EPS32, atol=1e-7)
    else:
        assert value == pytest.approx(tloss.item(), rel=1e-6)
    np.testing.assert_allclose(grad, ty.grad.numpy(), rtol=4 * EPS32, atol=1e-8)


# ------------------------------------------------------------------- probabilities warning


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(F32)


def test_probabilities_warn_once_per_loss_object(rng):
    probs = _softmax(rng.standard_normal((8, 5)))
    labels = rng.integers(0, 5, 8)
    loss = SoftmaxCrossEntropy()
    with pytest.warns(UserWarning, match="expects raw logits") as record:
        loss(probs, labels)
    assert len(record) == 1 and "probabilities" in str(record[0].message)
    assert record[0].filename == __file__, "the warning should point at the caller"
    loss.value_and_grad(probs, labels)  # once per object: this must not warn again
    with pytest.warns(UserWarning, match="expects raw logits"):
        SoftmaxCrossEntropy(0.1).value_and_grad(probs, np.eye(5, dtype=F32)[labels])


def test_no_probability_warning_for_logits_or_near_misses(rng):
    loss = SoftmaxCrossEntropy()
    labels = rng.integers(0, 5, 8)
    loss(rng.standard_normal((8, 5)).astype(F32), labels)  # logits
    probs = _softmax(rng.standard_normal((8, 5)))
    probs[3] *= 0.9  # one row does not sum to 1
    loss(probs, labels)
    loss(np.full((8, 5), 0.5, F32), labels)  # in [0, 1] but rows sum to 2.5
    assert not loss._warned_probabilities


# ------------------------------------------------------------------------------ validation


def _raises(exc, message):
    return pytest.raises(exc, match=re.escape(message))


@pytest.mark.parametrize("outputs, targets, exc, message", [
    (np.zeros((4, 3), F32), np.zeros(5, np.int64), ValueError,
     "SoftmaxCrossEntropy: argument `targets` must hold one label per row of `outputs` "
     "(shape (4, 3)), i.e. shape (4,). Received: shape (5,)"),
    (np.zeros((4, 3), F32), np.array([0, 1, 3, 2]), ValueError,
     "SoftmaxCrossEntropy: `targets[2]` = 3 is out of range [0, 3) for 3 classes"),
    (np.zeros((4, 3), F32), np.array([0, -1, 0, 2], np.int32), ValueError,
     "`targets[1]` = -1 is out of range [0, 3)"),
    (np.zeros((4, 3), F32), np.zeros((4, 4), F32), ValueError,
     "argument `targets` must be integer labels of shape (4,) or one-hot/probability targets "
     "of the shape of `outputs` (4, 3). Received: shape (4, 4)"),
    (np.zeros((4, 3), F32), np.zeros(4, F32), TypeError,
     "argument `targets` of shape (4,) must hold integer class labels. Received: dtype float32"),
    (np.zeros((4, 3), F32), [0, 1, 2, 0], TypeError,
     "argument `targets` must be a numpy array of integer labels (M,) or of float targets "
     "(M, C). Received: list"),
    (np.array([[0, 1, np.nan]], F32), np.array([0]), ValueError,
     "argument `outputs` contains non-finite values; the first is outputs[0, 2] = nan"),
    (np.array([[0, 1], [np.inf, 0]], F32), np.array([0, 1]), ValueError,
     "the first is outputs[1, 0] = inf"),
    (np.zeros((2, 3), F32), np.array([[0, 1, 0], [0, np.nan, 1]], F32), ValueError,
     "argument `targets` contains non-finite values; the first is targets[1, 1] = nan"),
    (np.zeros((0, 3), F32), np.zeros(0, np.int64), ValueError,
     "argument `outputs` is empty (shape (0, 3)); an empty batch has no loss"),
    (np.zeros(3, F32), np.zeros(3, np.int64), ValueError,
     "argument `outputs` must have at least 2 dimension(s). Received: shape (3,)"),
    (np.zeros((2, 3, 4), F32), np.zeros(2, np.int64), ValueError,
     "argument `outputs` must be logits of shape (M, C). Received: shape (2, 3, 4)"),
    (np.zeros((2, 3), np.int64), np.zeros(2, np.int64), TypeError,
     "argument `outputs` must have a floating dtype. Received: dtype int64"),
])
def test_xent_validation_messages(outputs, targets, exc, message):
    loss = SoftmaxCrossEntropy()
    with _raises(exc, message):
        loss(outputs, targets)
    with _raises(exc, message):
        loss.value_and_grad(outputs, targets)


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"reduction": "avg"}, ValueError,
     "Argument `reduction` must be one of ['mean', 'sum', 'none']. Received: reduction='avg'"),
    ({"reduction": None}, ValueError, "Received: reduction=None"),
    ({"label_smoothing": 1.0}, ValueError,
     "Argument `label_smoothing` must be in [0, 1). Received: label_smoothing=1.0"),
    ({"label_smoothing": -0.1}, ValueError, "Received: label_smoothing=-0.1"),
    ({"label_smoothing": float("nan")}, ValueError, "Received: label_smoothing=nan"),
    ({"label_smoothing": "0.1"}, TypeError,
     "Argument `label_smoothing` must be a float in [0, 1). Received: label_smoothing='0.1' "
     "(of type str)"),
])
def test_constructor_validation(kwargs, exc, message):
    with _raises(exc, message):
        SoftmaxCrossEntropy(**kwargs)
    if "reduction" in kwargs:
        with _raises(exc, message):
            MeanSquaredError(**kwargs)


def test_reduction_alias():
    assert SoftmaxCrossEntropy(reduction="sum_over_batch_size").reduction == "mean"


def test_mse_validation_messages():
    loss = MeanSquaredError()
    with _raises(ValueError, "MeanSquaredError: argument `targets` must have the shape of "
                             "`outputs` (4, 1). Received: shape (4,) (no broadcasting"):
        loss(np.zeros((4, 1), F32), np.zeros(4, F32))
    with _raises(ValueError, "argument `outputs` contains non-finite values; the first is "
                             "outputs[1] = inf"):
        loss(np.array([0, np.inf], F32), np.zeros(2))
    with _raises(ValueError, "argument `targets` contains non-finite values"):
        loss(np.zeros(2, F32), np.array([0, np.nan]))
    with _raises(ValueError, "argument `outputs` is empty (shape (0, 2))"):
        loss.value_and_grad(np.zeros((0, 2), F32), np.zeros((0, 2), F32))
    with _raises(TypeError, "argument `targets` must be numeric. Received: dtype <U1"):
        loss(np.zeros(2, F32), np.array(["a", "b"]))


def test_grad_out_validation(rng):
    z = rng.standard_normal((4, 3)).astype(F32)
    labels = np.array([0, 1, 2, 0])
    for loss, t in ((SoftmaxCrossEntropy(), labels), (SoftmaxCrossEntropy(0.1), labels),
                    (MeanSquaredError(), np.zeros((4, 3), F32))):
        who = type(loss).__name__
        with _raises(ValueError, f"{who}: argument `grad_out` must have the shape of "
                                 "`outputs` (4, 3). Received: shape (3, 4)"):
            loss.value_and_grad(z, t, grad_out=np.empty((3, 4), F32))
        with _raises(TypeError, f"{who}: argument `grad_out` must be a float32 numpy array. "
                                "Received: float64"):
            loss.value_and_grad(z, t, grad_out=np.empty((4, 3)))
        with _raises(ValueError, f"{who}: argument `grad_out` shares memory with `outputs`"):
            loss.value_and_grad(z, t, grad_out=z)
        with _raises(ValueError, "must be C-contiguous and writeable"):
            loss.value_and_grad(z, t, grad_out=np.empty((3, 4), F32).T)


# -------------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name, cls", [
    ("softmax_cross_entropy", SoftmaxCrossEntropy),
    ("cross_entropy", SoftmaxCrossEntropy),
    ("sparse_categorical_crossentropy", SoftmaxCrossEntropy),
    ("categorical_crossentropy", SoftmaxCrossEntropy),
    ("mse", MeanSquaredError),
    ("mean_squared_error", MeanSquaredError),
])
def test_get_by_name(name, cls):
    loss = losses.get(name)
    assert type(loss) is cls and loss.reduction == "mean"


def test_get_other_identifiers():
    obj = SoftmaxCrossEntropy(0.1)
    assert losses.get(obj) is obj
    assert type(losses.get(MeanSquaredError)) is MeanSquaredError
    assert type(losses.get(losses.softmax_cross_entropy)) is SoftmaxCrossEntropy
    assert type(losses.get(losses.mean_squared_error)) is MeanSquaredError
    assert losses.CrossEntropy is SoftmaxCrossEntropy

    class Custom:
        def value_and_grad(self, outputs, targets, grad_out=None):
            return 0.0, np.zeros_like(outputs)

    custom = Custom()
    assert losses.get(custom) is custom
    with pytest.raises(ValueError, match=re.escape("Unknown loss 'hinge'. Valid names: [")) as e:
        losses.get("hinge")
    for name in ("softmax_cross_entropy", "cross_entropy", "mse", "mean_squared_error",
                 "sparse_categorical_crossentropy", "categorical_crossentropy"):
        assert repr(name) in str(e.value)
    with pytest.raises(TypeError, match="has no `value_and_grad"):
        losses.get(lambda y, t: 0.0)
    with pytest.raises(TypeError, match="Argument `identifier` must be a loss name"):
        losses.get(3)


@pytest.mark.parametrize("loss", [SoftmaxCrossEntropy(0.1, "sum"), MeanSquaredError("none"),
                                  SoftmaxCrossEntropy()])
def test_config_roundtrip(loss):
    conf = json.loads(json.dumps(loss.get_config()))
    again = losses.get(conf)
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert repr(again) == repr(loss)


def test_functional_forms(rng):
    z = rng.standard_normal((6, 4)).astype(F32)
    t = rng.integers(0, 4, 6)
    assert losses.softmax_cross_entropy(z, t, 0.1, "sum") == \
        SoftmaxCrossEntropy(0.1, "sum")(z, t)
    y = rng.standard_normal((6, 4)).astype(F32)
    np.testing.assert_array_equal(losses.mean_squared_error(y, z, reduction="none"),
                                  MeanSquaredError("none")(y, z))


def test_docstring_examples():
    import doctest

    result = doctest.testmod(losses)
    assert result.failed == 0 and result.attempted > 5
