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
