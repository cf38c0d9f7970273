"""The benchmark suite runs end to end (a smoke test; benchmarks measure, tests assert no
timings): the smallest groups through the real runner, one process per case, into a temporary
output prefix."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_runner_writes_json_and_report(tmp_path):
    out = tmp_path / "smoke"
    r = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "peak", "gemm", "--quick", "--threads", "1",
         "--peers", "numpy", "--repeats", "1", "--retries", "0", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, MPLBACKEND="Agg"),
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["context"]["fastdense"]
    rows = result["rows"]
    gemm = [row for row in rows if row["group"] == "gemm" and row["lib"] == "fastdense"]
    assert {tuple(row["shape"]) for row in gemm} >= {(256, 256, 256), (256, 1024, 1024)}
    assert all(row["lib"] in ("fastdense", "numpy") for row in rows)
    report = out.with_suffix(".md").read_text()
    assert "## The bar" in report and "## GEMM" in report


def test_ab_compares_two_builds_of_the_core_in_one_process(tmp_path):
    """bench.ab loads a second copy of the compiled core beside the installed one and steps
    both on the same data; two copies of one build must end with bitwise-equal weights."""
    import shutil

    import fastdense._core as core

    other = tmp_path / Path(core.__file__).name
    shutil.copyfile(core.__file__, other)
    r = subprocess.run(
        [sys.executable, "-m", "bench.ab", str(other), "--sizes", "300-20-3", "--batch", "40",
         "--threads", "2", "--gathered", "--steps", "3", "--rounds", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "300-20-3 b40, 2 threads, gathered, 2 rounds of 3 steps" in r.stdout
    assert "installed" in r.stdout and "other" in r.stdout
    assert "bitwise-equal weights: True" in r.stdout
