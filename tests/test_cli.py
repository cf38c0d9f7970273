"""The `fastdense` command and the example script, run as a user would (subprocesses)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastdense

ROOT = Path(__file__).resolve().parents[1]


def run(*args, **env):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **env))


def test_info_reports_version_isas_threads_and_cuda():
    r = run("-m", "fastdense", "info", OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert f"fastdense {fastdense.__version__}" in r.stdout
    assert f"ISA active:     {fastdense.active_isa()}" in r.stdout
    assert "threads:        1" in r.stdout
    assert "CUDA:" in r.stdout


def test_train_on_embedded_data_saves_a_loadable_model(tmp_path):
    path = tmp_path / "model.npz"
    r = run("-m", "fastdense", "train", "--epochs", "2", "--hidden", "64", "--save", str(path),
            "--verbose", "0")
    assert r.returncode == 0, r.stderr
    line = [s for s in r.stdout.splitlines() if s.startswith("test accuracy")][0]
    assert float(line.split()[2].rstrip(",")) >= 0.7
    model = fastdense.load(path)
    assert [layer.units for layer in model.layers] == [64, 10]


def test_train_reports_bad_arguments_without_a_traceback():
    r = run("-m", "fastdense", "train", "--dataset", "imagenet")
    assert r.returncode == 2
    assert "error:" in r.stderr and "imagenet" in r.stderr and "Traceback" not in r.stderr


def test_tensorflow_softmax_tutorial_example_learns_from_zero_init():
    r = run(str(ROOT / "examples" / "mnist_softmax.py"), "--dataset", "embedded")
    assert r.returncode == 0, r.stderr
    acc = float(r.stdout.split("test accuracy")[1].split()[0])
    assert acc >= 0.7  # softmax regression on the 6000-image subset; ~0.8 on full Fashion-MNIST


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="needs Debian's dataset-fashion-mnist")
def test_tensorflow_softmax_tutorial_on_full_fashion_mnist():
    r = run(str(ROOT / "examples" / "mnist_softmax.py"), "--dataset", "fashion-mnist")
    assert r.returncode == 0, r.stderr
    acc = float(r.stdout.split("test accuracy")[1].split()[0])
    assert 0.75 <= acc <= 0.86  # the tutorial's recipe on Fashion-MNIST gives about 0.8
