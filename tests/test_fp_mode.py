"""Denormals: flushed to zero in every kernel by default (FTZ and DAZ, as TensorFlow and XLA
do), IEEE gradual underflow after set_flush_denormal(False); on every ISA, for any thread
count, and never leaking into the caller's own floating-point mode."""

import contextlib

import numpy as np
import pytest

import fastdense
from fastdense import _core as core

TINY = np.finfo(np.float32).tiny  # the smallest normal float32, 1.18e-38


@contextlib.contextmanager
def flush(enabled):
    prev = core.get_flush_denormal()
    core.set_flush_denormal(enabled)
    try:
        yield
    finally:
        core.set_flush_denormal(prev)


def test_default_is_flush_and_the_switch_round_trips():
    assert fastdense.get_flush_denormal() is True
    with flush(False):
        assert fastdense.get_flush_denormal() is False
    assert fastdense.get_flush_denormal() is True


def test_denormal_inputs_and_results(isa):
    sub = np.float32(1e-39)  # a denormal input
    assert 0 < sub < TINY
    x, w = np.array([[sub]], np.float32), np.ones((1, 1), np.float32)
    small = np.array([[1e-20]], np.float32)  # 1e-20 * 1e-20 = 1e-40: a denormal result
    with flush(False):
        assert core.matmul_forward(x, w)[0, 0] == sub
        assert core.matmul_forward(small, small)[0, 0] == np.float32(1e-20) * np.float32(1e-20)
        assert core.matmul_forward(small, small)[0, 0] > 0
    with flush(True):
        assert core.matmul_forward(x, w)[0, 0] == 0.0  # DAZ: read as zero
        assert core.matmul_forward(small, small)[0, 0] == 0.0  # FTZ: written as zero
        # a normal result is untouched
        assert core.matmul_forward(np.array([[2.0]], np.float32), w)[0, 0] == 2.0


def test_callers_mode_is_restored():
    a, b = np.float32(1e-38), np.float32(0.01)
    expected = a * b
    assert 0 < expected < TINY  # numpy here keeps gradual underflow
    with flush(True):
        core.matmul_forward(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))
        core.relu_forward(np.ones((8,), np.float32))
    assert a * b == expected
    assert np.multiply(np.full(16, a), b).min() > 0


@pytest.mark.parametrize("enabled", [True, False])
def test_team_threads_follow_the_callers_mode(isa, use_threads, enabled):
    # Large enough to be threaded; products around the smallest normal float, so that many
    # partial sums and results are denormal: any team thread in another mode changes bits.
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((256, 64)) * 1e-19).astype(np.float32)
    w = (rng.standard_normal((64, 96)) * 1e-19).astype(np.float32)
    dy = (rng.standard_normal((256, 96)) * 1e-19).astype(np.float32)
    results = {}
    with flush(enabled):
        for t in (1, 2):
            with use_threads(t):
                results[t] = (core.matmul_forward(x, w), core.matmul_backward_input(dy, w),
                              core.matmul_backward_weight(x, dy, bias=False)[0])
    for one, two in zip(results[1], results[2]):
        np.testing.assert_array_equal(one, two)
    y = results[1][0]
    denormal = np.count_nonzero((y != 0) & (np.abs(y) < TINY))
    if enabled:
        assert denormal == 0
    else:
        assert denormal > 0
        ref = x.astype(np.float64) @ w.astype(np.float64)
        # gradual underflow: absolute error of the order of the denormal spacing per FMA
        assert np.abs(y - ref).max() < 64 * 1.5e-45 * 64


def test_training_on_a_learned_batch_keeps_no_denormals():
    # Steps on one batch until the softmax saturates: the momentum buffers are where the
    # denormals collect when they are not flushed.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 784), dtype=np.float32)
    y = rng.integers(0, 10, 1)
    model = fastdense.MLP([784, 100, 10], seed=0)
    model.compile(lr=0.01, momentum=0.9)
    for _ in range(3000):
        model.train_step(x, y)
    bufs = [b for b in model.optimizer._bufs if b is not None]
    assert bufs
    assert all(np.count_nonzero((b != 0) & (np.abs(b) < TINY)) == 0 for b in bufs)
