"""Tests for fastdense.optim: SGD against a float64 reference and PyTorch, validation messages,
learning-rate schedules, and save/restore.

Tolerances: the float64 reference carries, next to each value, the sum of the magnitudes of
the terms that produced it (as conftest's ``ref.sgd_step`` does); a float32 result is accepted
within 16 eps32 of that magnitude, which bounds the accumulated rounding of a few float32
steps without depending on the values' sign pattern.
"""

import itertools
import json
import math
import re

import numpy as np
import pytest

from conftest import CallCounter
from fastdense import _core, optim
from fastdense.optim import SGD

F32 = np.float32
EPS32 = float(np.finfo(np.float32).eps)
SHAPES = [(7, 5), (5,), (33, 17), (1,)]


def make_params(rng, shapes=SHAPES):
    return [rng.standard_normal(s).astype(F32) for s in shapes]


def make_grads(rng, shapes=SHAPES, scales=(0.05, 1.0, 3.0, 10.0)):
    """Gradients of very different sizes, so norm clipping binds for some arrays only."""
    return [(rng.standard_normal(s) * c).astype(F32) for s, c in zip(shapes, scales)]


class RefSGD:
    """The documented rule in float64, tracking the magnitude of every term for tolerances."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, clipvalue=None, clipnorm=None, global_clipnorm=None):
        self.p = [np.asarray(p, np.float64) for p in params]
        self.mag = [np.abs(p) for p in self.p]
        self.lr, self.mu, self.tau, self.wd, self.nesterov = (lr, momentum, dampening,
                                                              weight_decay, nesterov)
        self.clipvalue, self.clipnorm, self.global_clipnorm = clipvalue, clipnorm, global_clipnorm
        self.buf = self.bmag = None
        self.t = 0

    def scales(self, grads):
        norms = [math.sqrt(float(np.sum(np.asarray(g, np.float64) ** 2))) for g in grads]
        if self.clipnorm is not None:
            return [min(1.0, self.clipnorm / (n + 1e-6)) for n in norms]
        if self.global_clipnorm is not None:
            total = math.sqrt(sum(n * n for n in norms))
            return [min(1.0, self.global_clipnorm / (total + 1e-6))] * len(grads)
        return [1.0] * len(grads)

    def step(self, grads):
        lr = self.lr(self.t) if callable(self.lr) else self.lr
        scales = self.scales(grads)
        if self.mu and self.buf is None:
            self.buf, self.bmag, first = [None] * len(grads), [None] * len(grads), True
        else:
            first = False
        for i, (g32, s) in enumerate(zip(grads, scales)):
            g = np.asarray(g32, np.float64) * s
            gm = np.abs(g)
            if self.clipvalue is not None:
                g = np.clip(g, -self.clipvalue, self.clipvalue)
                gm = np.abs(g)
            g = g + self.wd * self.p[i]
            gm = gm + self.wd * self.mag[i]
            if self.mu:
                if first:
                    self.buf[i], self.bmag[i] = g, gm
                else:
                    self.buf[i] = self.mu * self.buf[i] + (1 - self.tau) * g
                    self.bmag[i] = self.mu * self.bmag[i] + abs(1 - self.tau) * gm
                if self.nesterov:
                    g, gm = g + self.mu * self.buf[i], gm + self.mu * self.bmag[i]
                else:
                    g, gm = self.buf[i], self.bmag[i]
            self.p[i] = self.p[i] - lr * g
            self.mag[i] = self.mag[i] + lr * gm
        self.t += 1


def _combos():
    momenta = [(0.0, 0.0, False), (0.9, 0.0, False), (0.9, 0.25, False), (0.9, 0.0, True)]
    clips = [{}, {"clipvalue": 0.5}, {"clipnorm": 1.0}, {"global_clipnorm": 2.0}]
    for (mu, tau, nest), wd, clip in itertools.product(momenta, [0.0, 0.05], clips):
        kw = dict(momentum=mu, dampening=tau, nesterov=nest, weight_decay=wd, **clip)
        name = f"mu{mu}-tau{tau}-{'nest' if nest else 'std'}-wd{wd}-" + \
            ("-".join(f"{k}{v}" for k, v in clip.items()) or "noclip")
        yield pytest.param(kw, id=name)


@pytest.mark.parametrize("kw", list(_combos()))
def test_sgd_matches_float64_reference(kw, rng, isa, check_close):
    params = make_params(rng)
    ref = RefSGD(params, lr=0.05, **kw)
    opt = SGD(params, lr=0.05, **kw)
    for _ in range(6):
        grads = make_grads(rng)
        saved = [g.copy() for g in grads]
        opt.step(grads)
        ref.step(grads)
        for g, s in zip(grads, saved):
            assert np.array_equal(g, s), "step() must not modify the gradients"
    assert opt.iterations == 6
    for i, p in enumerate(params):
        check_close(p, ref.p[i], 16 * EPS32 * ref.mag[i] + 1e-30, what=f"params[{i}]")


def test_norm_clipping_binds_as_intended(rng):
    """The fixture gradients really exercise clipping: some arrays clipped, some not."""
    grads = make_grads(rng)
    scales = RefSGD(make_params(rng), 0.1, clipnorm=1.0).scales(grads)
    assert scales[0] == 1.0 and min(scales) < 0.5
    assert RefSGD(make_params(rng), 0.1, global_clipnorm=2.0).scales(grads)[0] < 0.1


def test_zero_momentum_dampening_without_momentum_is_plain_sgd(rng):
    params = make_params(rng)
    start = [p.astype(np.float64) for p in params]
    grads = make_grads(rng)
    SGD(params, lr=0.5, dampening=0.7).step(grads)  # dampening is ignored without momentum
    for p, s, g in zip(params, start, grads):
        np.testing.assert_allclose(p, s - 0.5 * g, rtol=4 * EPS32, atol=4 * EPS32 * 5)


# ------------------------------------------------------------------------- one call per step


@pytest.mark.parametrize("clip", [{}, {"clipvalue": 1.0}, {"clipnorm": 1.0},
                                  {"global_clipnorm": 1.0}])
def test_one_kernel_call_per_step_and_buffers_reused(clip, rng, monkeypatch):
    update = CallCounter(_core.sgd_update)
    ssq = CallCounter(_core.sum_squares)
    monkeypatch.setattr(optim._core, "sgd_update", update)
    monkeypatch.setattr(optim._core, "sum_squares", ssq)
    params = make_params(rng)
    opt = SGD(params, lr=0.1, momentum=0.9, **clip)
    opt.step(make_grads(rng))
    bufs = list(opt._bufs)
    for _ in range(3):
        opt.step(make_grads(rng))
    assert update.calls == 4
    assert ssq.calls == (4 if ("clipnorm" in clip or "global_clipnorm" in clip) else 0)
    assert all(a is b for a, b in zip(bufs, opt._bufs)), "momentum buffers are reallocated"


# ------------------------------------------------------------------------------- PyTorch


def _torch_run(torch, params0, grad_seq, kw, lr, scheduler=None):
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params0]
    tkw = {k: v for k, v in kw.items()
           if k in ("momentum", "dampening", "weight_decay", "nesterov")}
    topt = torch.optim.SGD(tparams, lr=lr, **tkw)
    sched = scheduler(topt) if scheduler else None
    for grads in grad_seq:
        for t, g in zip(tparams, grads):
            t.grad = torch.tensor(g.copy())
        if "global_clipnorm" in kw:
            torch.nn.utils.clip_grad_norm_(tparams, kw["global_clipnorm"])
        if "clipnorm" in kw:  # per-tensor norm clipping is clip_grad_norm_ on each tensor
            for t in tparams:
                torch.nn.utils.clip_grad_norm_([t], kw["clipnorm"])
        if "clipvalue" in kw:
            torch.nn.utils.clip_grad_value_(tparams, kw["clipvalue"])
        topt.step()
        if sched:
            sched.step()
    return [t.detach().numpy().astype(np.float64) for t in tparams]


TORCH_CASES = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "nesterov": True},
    {"momentum": 0.8, "dampening": 0.3},
    {"weight_decay": 0.01},
    {"momentum": 0.9, "weight_decay": 0.01, "nesterov": True},
    {"momentum": 0.7, "dampening": 0.1, "weight_decay": 0.05},
    {"momentum": 0.9, "global_clipnorm": 1.0},
    {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3, "global_clipnorm": 5.0},
    {"momentum": 0.9, "clipnorm": 0.5},
    {"momentum": 0.9, "clipvalue": 0.25},
]


@pytest.mark.parametrize("kw", TORCH_CASES, ids=lambda kw: "-".join(
    f"{k}={v}" for k, v in kw.items()) or "plain")
def test_sgd_matches_pytorch(kw, rng):
    torch = pytest.importorskip("torch")
    steps, lr = 60, 0.02
    params = make_params(rng)
    params0 = [p.copy() for p in params]
    grad_seq = [make_grads(rng) for _ in range(steps)]
    opt = SGD(params, lr=lr, **kw)
    for grads in grad_seq:
        opt.step(grads)
    expected = _torch_run(torch, params0, grad_seq, kw, lr)
    mu = kw.get("momentum", 0.0)
    for i, (p, e, g0) in enumerate(zip(params, expected, params0)):
        # Both sides round in float32 every step: allow 1e-5 of the largest quantities
        # involved, the weights and the total movement lr * sum|g| / (1 - mu).
        movement = lr * sum(np.abs(g[i]).astype(np.float64) for g in grad_seq) / (1 - mu)
        scale = np.abs(g0) + np.abs(e) + movement
        np.testing.assert_array_less(np.abs(p - e), 1e-5 * scale + 1e-30,
                                     err_msg=f"params[{i}] differs from PyTorch")


@pytest.mark.parametrize("which", ["step", "exponential", "cosine"])
def test_schedules_match_pytorch_schedulers(which, rng):
    torch = pytest.importorskip("torch")
    lr0, steps = 0.1, 60
    if which == "step":
        ours = optim.step_decay(lr0, factor=0.5, every=7)
        make = lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5)  # noqa: E731
    elif which == "exponential":
        ours = optim.exponential_decay(lr0, rate=0.95, steps=1)
        make = lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.95)  # noqa: E731
    else:
        ours = optim.cosine_decay(lr0, total_steps=40, final=0.001)
        make = lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(  # noqa: E731
            o, T_max=40, eta_min=0.001)
    # The learning rates themselves, step by step.
    t = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([t], lr=lr0)
    sched = make(topt)
    for step in range(steps if which != "cosine" else 40):
        assert ours(step) == pytest.approx(sched.get_last_lr()[0], rel=1e-9, abs=1e-15), step
        topt.step()
        sched.step()
    # And a whole training run with momentum.
    params = make_params(rng)
    params0 = [p.copy() for p in params]
    grad_seq = [make_grads(rng) for _ in range(steps if which != "cosine" else 40)]
    opt = SGD(params, lr=ours, momentum=0.9)
    for grads in grad_seq:
        opt.step(grads)
    expected = _torch_run(torch, params0, grad_seq, {"momentum": 0.9}, lr0, scheduler=make)
    for i, (p, e, g0) in enumerate(zip(params, expected, params0)):
        movement = lr0 * sum(np.abs(g[i]).astype(np.float64) for g in grad_seq) / 0.1
        np.testing.assert_array_less(np.abs(p - e), 1e-5 * (np.abs(g0) + movement) + 1e-30)


# ---------------------------------------------------------------------------- validation


def _raises(exc, message):
    return pytest.raises(exc, match=re.escape(message))


@pytest.fixture
def params(rng):
    return make_params(rng)


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"lr": -0.1}, ValueError, "Argument `lr` must be >= 0. Received: lr=-0.1"),
    ({"lr": math.nan}, ValueError, "Argument `lr` must be a finite number. Received: lr=nan"),
    ({"lr": math.inf}, ValueError, "Argument `lr` must be a finite number. Received: lr=inf"),
    ({"lr": "0.1"}, TypeError,
     "Argument `lr` must be a float or a callable `lr(step) -> float`. Received: lr='0.1' "
     "(of type str)"),
    ({"lr": True}, TypeError, "Received: lr=True (of type bool)"),
    ({"momentum": -0.9}, ValueError, "Argument `momentum` must be >= 0. Received: momentum=-0.9"),
    ({"momentum": math.inf}, ValueError,
     "Argument `momentum` must be a finite number. Received: momentum=inf"),
    ({"dampening": math.nan}, ValueError,
     "Argument `dampening` must be a finite number. Received: dampening=nan"),
    ({"weight_decay": -1e-4}, ValueError,
     "Argument `weight_decay` must be >= 0. Received: weight_decay=-0.0001"),
    ({"weight_decay": math.nan}, ValueError,
     "Argument `weight_decay` must be a finite number. Received: weight_decay=nan"),
    ({"nesterov": True}, ValueError,
     "Nesterov momentum requires momentum > 0 and dampening = 0. "
     "Received: momentum=0.0, dampening=0.0"),
    ({"nesterov": True, "momentum": 0.9, "dampening": 0.1}, ValueError,
     "Nesterov momentum requires momentum > 0 and dampening = 0. "
     "Received: momentum=0.9, dampening=0.1"),
    ({"nesterov": "yes", "momentum": 0.9}, TypeError,
     "Argument `nesterov` must be a bool. Received: nesterov='yes' (of type str)"),
    ({"clipvalue": 1.0, "clipnorm": 2.0}, ValueError,
     "At most one of `clipvalue`, `clipnorm` and `global_clipnorm` can be set. "
     "Received: clipvalue=1.0, clipnorm=2.0, global_clipnorm=None"),
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, ValueError,
     "Received: clipvalue=None, clipnorm=1.0, global_clipnorm=1.0"),
    ({"clipvalue": 0.0}, ValueError, "Argument `clipvalue` must be > 0. Received: clipvalue=0.0"),
    ({"clipnorm": -1}, ValueError, "Argument `clipnorm` must be > 0. Received: clipnorm=-1"),
    ({"global_clipnorm": math.inf}, ValueError,
     "Argument `global_clipnorm` must be a finite number. Received: global_clipnorm=inf"),
])
def test_hyperparameter_validation_messages(params, kwargs, exc, message):
    with _raises(exc, message):
        SGD(params, **kwargs)


def test_lr_setter_validates(params):
    opt = SGD(params, lr=0.1)
    with _raises(ValueError, "Argument `lr` must be >= 0. Received: lr=-1"):
        opt.lr = -1
    assert opt.lr == 0.1
    opt.lr = 0.5
    assert opt.current_lr == 0.5


def test_params_validation_messages(rng):
    good = rng.standard_normal((3, 4)).astype(F32)
    with _raises(TypeError, "Argument `params` must be a list of float32 numpy arrays. "
                            "Received: ndarray"):
        SGD(good)
    with _raises(ValueError, "Argument `params` is an empty list"):
        SGD([])
    with _raises(TypeError, "Argument `params[1]` must have dtype float32. "
                            "Received: dtype float64"):
        SGD([good, np.zeros(3)])
    with _raises(TypeError, "Argument `params[0]` must be a float32 numpy array. "
                            "Received: list"):
        SGD([[1.0, 2.0]])
    with _raises(ValueError, "Argument `params[0]` of shape (4, 3) must be C-contiguous"):
        SGD([good.T])
    ro = good.copy()
    ro.flags.writeable = False
    with _raises(ValueError, "Argument `params[0]` is read-only"):
        SGD([ro])
    with _raises(ValueError, "Arguments `params[0]` and `params[2]` share memory"):
        SGD([good, np.zeros(2, F32), good])
    flat = np.zeros(10, F32)
    with _raises(ValueError, "Arguments `params[0]` and `params[1]` share memory"):
        SGD([flat[:6], flat[4:]])
    SGD([flat[:5], flat[5:]])  # disjoint views of one buffer are fine


def test_step_validation_messages(params, rng):
    opt = SGD(params, lr=0.1)
    grads = make_grads(rng)
    with _raises(ValueError, "Argument `grads` must have one array per parameter (4). "
                             "Received: 3 arrays"):
        opt.step(grads[:3])
    with _raises(TypeError, "Argument `grads` must be a list of float32 numpy arrays"):
        opt.step(grads[0])
    bad = list(grads)
    bad[2] = bad[2].T.copy()
    with pytest.raises(ValueError, match=re.escape("grads[2]")):
        opt.step(bad)
    bad[2] = grads[2].astype(np.float64)
    with pytest.raises(TypeError, match=re.escape("grads[2]")):
        opt.step(bad)
    assert opt.iterations == 0, "a failed step must not count"


def test_schedule_returning_bad_value_raises(params, rng):
    opt = SGD(params, lr=lambda step: 0.1 - 0.1 * step)
    opt.step(make_grads(rng))
    opt.step(make_grads(rng))  # lr(1) == 0 is allowed
    with _raises(ValueError, "The learning-rate schedule returned an invalid value at step 2: "
                             "Argument `lr` must be >= 0. Received: lr=-0.1"):
        opt.step(make_grads(rng))


# ----------------------------------------------------------------------------- schedules


def test_schedule_values():
    s = optim.step_decay(0.1, factor=0.5, every=10)
    assert [s(t) for t in (0, 9, 10, 19, 20, 35)] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125]
    e = optim.exponential_decay(1.0, rate=0.5, steps=100)
    assert e(0) == 1.0 and e(100) == 0.5 and e(50) == pytest.approx(math.sqrt(0.5), rel=1e-15)
    es = optim.exponential_decay(1.0, rate=0.5, steps=100, staircase=True)
    assert es(99) == 1.0 and es(100) == 0.5 and es(250) == 0.25
    c = optim.cosine_decay(0.2, total_steps=100, final=0.02)
    assert c(0) == pytest.approx(0.2) and c(50) == pytest.approx(0.11)
    assert c(100) == 0.02 and c(10_000) == 0.02
    vals = [c(t) for t in range(101)]
    assert all(a >= b for a, b in zip(vals, vals[1:])), "cosine decay must be monotone"
    assert optim.StepDecay is optim.step_decay and optim.CosineDecay is optim.cosine_decay


@pytest.mark.parametrize("factory, kwargs, exc, message", [
    (optim.step_decay, {"initial": -1.0}, ValueError,
     "Argument `initial` must be >= 0. Received: initial=-1.0"),
    (optim.step_decay, {"initial": 0.1, "factor": 0.0}, ValueError,
     "Argument `factor` must be > 0. Received: factor=0.0"),
    (optim.step_decay, {"initial": 0.1, "every": 0}, ValueError,
     "Argument `every` must be >= 1. Received: every=0"),
    (optim.step_decay, {"initial": 0.1, "every": 2.5}, TypeError,
     "Argument `every` must be a positive integer. Received: every=2.5"),
    (optim.exponential_decay, {"initial": 0.1, "rate": math.nan}, ValueError,
     "Argument `rate` must be a finite number. Received: rate=nan"),
    (optim.cosine_decay, {"initial": 0.1, "total_steps": 0}, ValueError,
     "Argument `total_steps` must be >= 1. Received: total_steps=0"),
    (optim.cosine_decay, {"initial": 0.1, "total_steps": 10, "final": -0.1}, ValueError,
     "Argument `final` must be >= 0. Received: final=-0.1"),
])
def test_schedule_validation(factory, kwargs, exc, message):
    with _raises(exc, message):
        factory(**kwargs)


def test_schedule_drives_the_step(rng):
    """Without momentum, step t moves the weights by exactly lr(t) * g (in float32)."""
    sched = optim.step_decay(0.4, factor=0.5, every=2)
    p = [np.ones(8, F32)]
    opt = SGD(p, lr=sched)
    seen = []
    for t in range(6):
        assert opt.current_lr == sched(t)
        seen.append(opt.current_lr)
        before = p[0].copy()
        g = np.full(8, 0.25, F32)
        opt.step([g])
        np.testing.assert_array_equal(p[0], before - F32(sched(t)) * g)
    assert seen == [0.4, 0.4, 0.2, 0.2, 0.1, 0.1]


# ------------------------------------------------------------------------- save / restore


def _state_json_roundtrip(state):
    """What a model's save() would do: config through JSON, arrays through an npz-like dict."""
    out = dict(state)
    out["config"] = json.loads(json.dumps(state["config"]))
    if state["momentum_buffers"] is not None:
        out["momentum_buffers"] = [np.array(b) for b in state["momentum_buffers"]]
    return out


@pytest.mark.parametrize("kw", [
    {"lr": 0.05, "momentum": 0.9, "nesterov": True, "global_clipnorm": 2.0},
    {"lr": optim.cosine_decay(0.1, 30, final=0.01), "momentum": 0.8, "dampening": 0.2,
     "weight_decay": 1e-3, "clipnorm": 1.0},
    {"lr": optim.step_decay(0.1, 0.5, 4), "clipvalue": 0.5},
], ids=["nesterov-global", "cosine-damp-clipnorm", "step-nomomentum"])
def test_state_dict_roundtrip_continues_bitwise(kw, rng, assert_bitwise):
    start = make_params(rng)
    grad_seq = [make_grads(rng) for _ in range(20)]

    full = [p.copy() for p in start]
    opt_a = SGD(full, **kw)
    for g in grad_seq:
        opt_a.step(g)

    part = [p.copy() for p in start]
    opt_b = SGD(part, **kw)
    for g in grad_seq[:9]:
        opt_b.step(g)
    checkpoint = [p.copy() for p in part]  # what a model would save next to the state
    state = _state_json_roundtrip(opt_b.state_dict())
    assert state["iterations"] == 9
    for g in grad_seq[9:12]:  # later steps must not change the saved state
        opt_b.step(g)

    resumed = checkpoint
    opt_c = SGD.from_config(resumed, state["config"])
    opt_c.load_state_dict(state)
    assert opt_c.iterations == 9
    if callable(kw["lr"]):
        assert opt_c.lr == kw["lr"] and opt_c.current_lr == kw["lr"](9)
    for g in grad_seq[9:]:
        opt_c.step(g)
    assert opt_c.iterations == opt_a.iterations == 20
    for i, (a, c) in enumerate(zip(full, resumed)):
        assert_bitwise(c, a, what=f"params[{i}]")
    if opt_a._bufs is not None:
        for i, (a, c) in enumerate(zip(opt_a._bufs, opt_c._bufs)):
            assert_bitwise(c, a, what=f"momentum_buffers[{i}]")


def test_state_dict_contents(rng):
    params = make_params(rng)
    opt = SGD(params, lr=optim.exponential_decay(0.1, 0.9, 10), momentum=0.9)
    s0 = opt.state_dict()
    assert s0["iterations"] == 0 and s0["momentum_buffers"] is None
    opt.step(make_grads(rng))
    s1 = opt.state_dict()
    assert [b.shape for b in s1["momentum_buffers"]] == [p.shape for p in params]
    assert all(b.dtype == F32 for b in s1["momentum_buffers"])
    assert all(b is not a for b, a in zip(s1["momentum_buffers"], opt._bufs))
    assert s1["config"] == {
        "name": "SGD",
        "lr": {"schedule": "exponential_decay",
               "config": {"initial": 0.1, "rate": 0.9, "steps": 10, "staircase": False}},
        "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
        "clipvalue": None, "clipnorm": None, "global_clipnorm": None,
    }
    json.dumps(s1["config"])
    rebuilt = SGD.from_config(make_params(rng), s1["config"])
    assert rebuilt.lr == opt.lr and rebuilt.get_config() == opt.get_config()


def test_load_state_before_any_momentum_step_starts_fresh(rng, assert_bitwise):
    start = make_params(rng)
    grads = [make_grads(rng) for _ in range(3)]
    a = [p.copy() for p in start]
    opt_a = SGD(a, lr=0.1, momentum=0.9)
    state = opt_a.state_dict()
    for g in grads:
        opt_a.step(g)
    b = [p.copy() for p in start]
    opt_b = SGD(b, lr=0.1, momentum=0.9)
    opt_b.step(grads[0])
    opt_b.load_state_dict(state)  # back to "no momentum step yet"
    for x, y in zip(b, start):
        np.copyto(x, y)
    for g in grads:
        opt_b.step(g)
    for x, y in zip(a, b):
        assert_bitwise(y, x)


def test_custom_callable_lr_config(rng):
    def my_schedule(step):
        return 0.1 / (1 + step)

    opt = SGD(make_params(rng), lr=my_schedule)
    conf = opt.get_config()
    json.dumps(conf)
    assert conf["lr"]["callable"].endswith("my_schedule")
    assert "not serialised" in conf["lr"]["note"]
    with pytest.raises(ValueError, match="custom learning-rate callable"):
        SGD.from_config(make_params(rng), conf)
    again = SGD.from_config(make_params(rng), conf, lr=my_schedule)
    assert again.lr is my_schedule
    # Loading a state whose lr is a custom callable keeps this optimizer's callable.
    opt.step(make_grads(rng))
    again.load_state_dict(opt.state_dict())
    assert again.lr is my_schedule and again.iterations == 1


def test_load_state_dict_mismatch_errors(rng):
    params = make_params(rng)
    opt = SGD(params, lr=0.1, momentum=0.9)
    opt.step(make_grads(rng))
    state = opt.state_dict()
    other = SGD(make_params(rng, SHAPES[:3]), lr=0.1, momentum=0.9)
    with _raises(ValueError, "`state['momentum_buffers']` has 4 arrays but this optimizer has "
                             "3 parameters"):
        other.load_state_dict(state)
    shapes = list(SHAPES)
    shapes[2] = (17, 33)
    wrong = SGD(make_params(rng, shapes), lr=0.1, momentum=0.9)
    with _raises(ValueError, "`state['momentum_buffers'][2]` has shape (33, 17), but "
                             "`params[2]` has shape (17, 33)"):
        wrong.load_state_dict(state)
    assert wrong.iterations == 0 and wrong._bufs is None, "a failed load must change nothing"
    with pytest.raises(ValueError, match="must be a dict from SGD.state_dict()"):
        opt.load_state_dict({"step": 3})
    with _raises(ValueError, "`state['iterations']` must be an integer >= 0. Received: -1"):
        opt.load_state_dict(dict(state, iterations=-1))
    bad_conf = dict(state, config=dict(state["config"], momentum=-1.0))
    with _raises(ValueError, "Argument `momentum` must be >= 0"):
        opt.load_state_dict(bad_conf)
    assert opt.momentum == 0.9


def test_repr_and_properties(rng):
    opt = SGD(make_params(rng), lr=0.1, momentum=0.9, nesterov=True, clipnorm=1.0)
    assert repr(opt).startswith("SGD(4 arrays, lr=0.1, momentum=0.9")
    assert (opt.momentum, opt.dampening, opt.nesterov, opt.clipnorm) == (0.9, 0.0, True, 1.0)
    assert repr(optim.cosine_decay(0.1, 10)) == "CosineDecay(initial=0.1, total_steps=10, " \
                                                "final=0.0)"


def test_docstring_examples():
    import doctest

    result = doctest.testmod(optim, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 5
