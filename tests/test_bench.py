"""The benchmark suite runs end to end (a smoke test; benchmarks measure, tests assert no
timings): the smallest groups through the real runner, one process per case, into a temporary
output prefix."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_runner_writes_json_and_report(tmp_path):
    out = tmp_path / "smoke"
    r = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "peak", "gemm", "--quick", "--threads", "1",
         "--peers", "numpy", "--repeats", "1", "--retries", "0", "--rounds", "2",
         "--out", str(out)],
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
    # two rounds of the whole plan, merged to one row per case
    assert result["context"]["rounds"] == 2
    assert len({(r["group"], r["case"], r["lib"], r["threads"]) for r in rows}) == len(rows)
    assert all(len(r["rounds_median_s"]) == 2 and r["median_s"] == min(r["rounds_median_s"])
               for r in rows if r["group"] == "gemm")
    # the register-tile probe is reported beside the FMA peak, never as the peak reference
    peaks = [row for row in rows if row["group"] == "peak"]
    packed = result["context"]["isa"] != "ref"  # (the reference GEMM has no parts)
    assert {row.get("probe") for row in peaks} == {"fma", "tile"} | ({"parts"} if packed else set())
    fma_best = max(row["gflops_max"] for row in peaks if row["probe"] == "fma")
    assert result["context"]["peak_ref_gflops"]["1"] == fma_best
    tile = next(row for row in peaks if row["probe"] == "tile")
    assert tile["pct_peak"] == pytest.approx(100 * tile["gflops"] / fma_best)
    report = out.with_suffix(".md").read_text()
    assert "## The bar" in report and "## GEMM" in report
    assert "GEMM register tile alone 1T" in report
    if packed:  # the GEMM taken apart: four rates, each also as a share of the same peak
        parts = next(row for row in peaks if row["probe"] == "parts")
        assert set(parts["parts_pct_peak"]) == {"whole", "no_packing", "no_caller_c", "neither"}
        assert parts["parts_pct_peak"]["neither"] == pytest.approx(
            100 * parts["parts"]["neither"] / fma_best)
        assert "whole and by part: without the caller's C" in report
        # and each small shape, in the process of its timed calls (bench/gemm.py)
        small = [row for row in gemm if tuple(row["shape"]) in ((100, 784, 100), (100, 100, 10))]
        assert len(small) == 6
        for row in small:
            assert set(row["parts"]) == {"whole", "no_packing", "no_caller_c", "neither"}
            assert len(row["samples_parts"]) == 1  # --repeats 1
            assert 0 < row["call_1x1_s"] < row["median_s"]
            assert row["parts_pct_peak"]["whole"] == pytest.approx(
                100 * row["parts"]["whole"] / fma_best)
        assert "**1 thread, the small shapes taken apart**" in report


def test_step_profile_times_the_phases_inside_the_call(tmp_path):
    """The profile group times the fused step's phases inside its one C++ call
    (MLPTrainer.set_phase_timing) and the report shows them beside the per-kernel profile."""
    out = tmp_path / "prof"
    r = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "profile", "--quick", "--threads", "2",
         "--repeats", "1", "--retries", "0", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, MPLBACKEND="Agg"),
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = [row for row in json.loads(out.with_suffix(".json").read_text())["rows"]
            if row["group"] == "profile"]
    assert rows
    for row in rows:
        ph = row["phases"]
        layers = len(row["sizes"]) - 1
        assert ph["steps"] > 0 and len(ph["forward"]) == len(ph["backward"]) == layers
        inside = sum(ph["forward"]) + sum(ph["backward"]) + ph["loss"] + ph["update"]
        assert 0 < inside <= ph["wall_s"]
    report = out.with_suffix(".md").read_text()
    assert report.count("Inside the one call") == len(rows)
    assert "| backward 1: weight gradient, update |" in report


def _row(group, case, lib, threads, median_s, **kw):
    return dict(group=group, case=case, lib=lib, threads=threads, median_s=median_s,
                min_s=median_s, max_s=median_s, **kw)


def test_report_states_what_a_failing_step_row_would_take():
    """The report's gap lines are arithmetic on the JSON's rows: the step time a ratio bar
    asks for, and what share of the peak that is."""
    from bench.report import Rows, gaps

    flops = 32e6  # 784-100-10 at batch 100: 2·100·(784·100 + 100·10) · 2, less dX of layer 1
    rows = [
        _row("step", "784-100-10 b100", "fastdense", 2, 200e-6, gflops=flops / 200e-6 / 1e9,
             pct_peak=flops / 200e-6 / 200e9 * 100, ratio={"jax": 1.5, "torch": 3.5}),
        _row("step", "784-100-10 b100", "jax", 2, 300e-6),
        _row("step", "784-100-10 b100", "torch", 2, 700e-6),
    ]
    text = gaps(Rows(rows), {"peak_ref_gflops": {"2": 200.0}})
    assert len(text) == 1
    line = text[0]
    # 2x jax means at most 150 us: 25% less than 200 us; 32 MFLOP at 200 GFLOP/s is 160 us,
    # above 150 us, so more than the peak
    assert "≥ 2× jax means ≤ 150.0 µs: 25% less time" in line
    assert "take 160.0 µs at the 2-thread peak" in line and "107% of peak" in line
    assert "torch" not in line  # met (3.5x against 3x)
    assert "1.59 MB per step (79,510 parameters" in line


def test_report_splits_a_failing_gemm_row_with_the_tile_and_the_parts_probes():
    """The 90%-of-peak GEMM row's gap line sets the rows against the register tile alone and
    against the GEMM taken apart: the points that packing, the caller's C and the rest cost."""
    from bench.report import Rows, gaps

    rows = [_row("gemm", f"X·W {n}³", "fastdense", 1, 1.0, shape=[n] * 3, square=True,
                 pct_peak=pct, ratio={"numpy": 1.1}) for n, pct in ((1024, 80.0), (2048, 74.0))]
    rows += [dict(group="peak", case="GEMM register tile alone 1T", lib="fastdense", threads=1,
                  probe="tile", gflops=92.0, pct_peak=92.0),
             dict(group="peak", case="GEMM 1024³ X·W 1T, whole and by part", lib="fastdense",
                  threads=1, probe="parts", gflops=79.0, pct_peak=79.0,
                  parts_pct_peak={"whole": 79.0, "no_packing": 83.0, "no_caller_c": 86.0,
                                  "neither": 90.0})]
    line = next(g for g in gaps(Rows(rows), {"peak_ref_gflops": {"1": 100.0}}) if "90%" in g)
    assert "reach 74–80%" in line and "runs at 92%" in line
    assert "packing A and B: 4 points" in line and "loading and storing C: 7 points" in line
    assert "without either 90% (11 points for the two; the blocking loops and B's panels from L3 " \
        "against the tile's 92%: 2 points)" in line
    rows[-1]["parts_pct_peak"]["no_caller_c"] = 78.0  # below the whole: the samples' scatter
    line = next(g for g in gaps(Rows(rows), {"peak_ref_gflops": {"1": 100.0}}) if "90%" in g)
    assert "loading and storing C: none measured, -1 points" in line


def test_report_takes_a_failing_small_shape_apart():
    """A small shape below 1.3x numpy: its gap line states the target as a share of the peak
    and where fastdense's call goes (the same GEMM from C++, packing, the caller's C, the
    tile), and the GEMM section tabulates the parts."""
    from bench.report import Rows, gaps, markdown

    flops = 2.0 * 100 * 784 * 100
    parts = {"whole": 70.0, "no_packing": 80.0, "no_caller_c": 71.0, "neither": 82.0}
    fd = _row("gemm", "X·W 100×784·784×100", "fastdense", 1, flops / 65e9, shape=[100, 784, 100],
              square=False, form="X·W", flops=flops, gflops=65.0, gflops_min=65.0,
              gflops_max=65.0, pct_peak=65.0, ratio={"numpy": 1.08}, parts=parts,
              parts_pct_peak=dict(parts))
    rows = [fd,
            _row("gemm", "X·W 100×784·784×100", "numpy", 1, flops / 60e9, shape=[100, 784, 100],
                 square=False, form="X·W", flops=flops, gflops=60.0, gflops_min=60.0,
                 gflops_max=60.0, pct_peak=60.0),
            dict(group="peak", case="GEMM register tile alone 1T", lib="fastdense", threads=1,
                 probe="tile", gflops=90.0, gflops_min=90.0, gflops_max=90.0, pct_peak=90.0)]
    line = next(g for g in gaps(Rows(rows), {"peak_ref_gflops": {"1": 100.0}})
                if "small shapes" in g)
    assert "numpy 261.3 µs (60%), so ≤ 201.0 µs per call = 78.0 GFLOP/s = 78% of peak" in line
    # 15.68 MFLOP: 241.2 us at 65 GFLOP/s from Python, 224.0 us at 70 from C++
    assert "from C++ in the same process (`_core.gemm_parts_gflops`) 224.0 µs (70%);" in line
    assert "without packing 80% (packing: 10 points)" in line
    assert "against the register tile's 90% on full tiles (this shape's edge tiles, short " \
        "blocks and set-up per call: 8 points)" in line
    report = markdown({"context": {"peak_ref_gflops": {"1": 100.0}}, "rows": rows})
    assert "| 100×784·784×100 | X·W | 241.2 µs (65%) | 224.0 µs (70%) | 80% | 71% | 82% | – |" \
        in report
    fd["call_1x1_s"] = 1.5e-6  # the same kernel's crossing, timed on a 1x1·1x1 product
    line = next(g for g in gaps(Rows(rows), {"peak_ref_gflops": {"1": 100.0}})
                if "small shapes" in g)
    assert "224.0 µs (70%), and the same call from Python on a 1×1·1×1 product 1.5 µs" in line
    report = markdown({"context": {"peak_ref_gflops": {"1": 100.0}}, "rows": rows})
    assert "the small shapes taken apart" in report
    assert "| 100×784·784×100 | X·W | 241.2 µs (65%) | 224.0 µs (70%) | 80% | 71% | 82% | 1.5 µs |" \
        in report


def test_report_lists_a_step_row_only_when_the_bar_fails_it():
    """The gap lines judge a step row as the bar does, by the median of the rounds' ratios:
    a row whose picked round alone falls short (2.85x) but whose rounds' ratio meets the bar
    (3.04x) is not listed."""
    from bench.report import Rows, gaps

    flops = 0.3e6
    rows = [
        _row("step", "784-100-10 b1", "fastdense", 2, 41e-6, gflops=flops / 41e-6 / 1e9,
             pct_peak=1.0, ratio={"jax": 3.04, "torch": 16.9}),
        _row("step", "784-100-10 b1", "jax", 2, 117e-6),
        _row("step", "784-100-10 b1", "torch", 2, 690e-6),
    ]
    assert not gaps(Rows(rows), {"peak_ref_gflops": {"2": 200.0}})
    rows[0]["ratio"]["jax"] = 2.9
    assert "≥ 3× jax" in gaps(Rows(rows), {"peak_ref_gflops": {"2": 200.0}})[0]


def test_report_states_a_failing_scaling_row_with_its_rounds_and_the_peers():
    """A 2-thread GEMM below 1.85x its own 1-thread figure is listed with each round's own
    scaling, the peers' scaling on the same case and the FMA probe's; one that meets it is not."""
    from bench.report import Rows, gaps

    def gemm(case, lib, threads, rounds):
        return _row("gemm", case, lib, threads, rounds[1], shape=[1024] * 3, square=True,
                    rounds_median_s=rounds)

    rows = [gemm("X·W 1024³", "fastdense", 1, [2.0, 2.0, 2.0]),
            gemm("X·W 1024³", "fastdense", 2, [1.0, 1.6, 1.25]),
            gemm("X·W 1024³", "numpy", 1, [3.0, 3.0, 3.0]),
            gemm("X·W 1024³", "numpy", 2, [2.0, 1.5, 1.5]),
            gemm("Xᵀ·dY 1024³", "fastdense", 1, [2.0, 2.0, 2.0]),
            gemm("Xᵀ·dY 1024³", "fastdense", 2, [1.0, 1.05, 1.0])]
    rows[1]["scaling_vs_1t"] = 1.6  # the median of 2.0, 1.25 and 1.6
    rows[5]["scaling_vs_1t"] = 2.0
    text = [g for g in gaps(Rows(rows), {"peak_ref_gflops": {"1": 100.0, "2": 195.0}})
            if "1.85×" in g]
    assert len(text) == 1
    line = text[0]
    assert "X·W 1024³ 1.600× (rounds: 2.00×, 1.25×, 1.60×)" in line
    assert "numpy 2.00×" in line  # per round 1.5, 2.0, 2.0
    assert "The FMA probe's own: 1.95×" in line
    assert "Xᵀ·dY" not in line


def test_ab_compares_two_builds_of_the_core_in_one_process(tmp_path):
    """bench.ab loads a second copy of the compiled core beside the installed one and steps
    both on the same data; two copies of one build must end with bitwise-equal weights."""
    import shutil

    import fastdense._core as core

    other = tmp_path / Path(core.__file__).name
    shutil.copyfile(core.__file__, other)
    r = _ab(other, "--sizes", "300-20-3", "--batch", "40", "--threads", "2", "--gathered",
            "--steps", "3", "--rounds", "2")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "300-20-3 b40, 2 threads, gathered, 2 rounds of 3 steps" in r.stdout
    assert "installed" in r.stdout and "other" in r.stdout
    assert "bitwise-equal weights: True" in r.stdout


@pytest.fixture
def core_copy(tmp_path):
    """A copy of the installed compiled core, for bench.ab to load beside it."""
    import shutil

    import fastdense._core as core

    other = tmp_path / Path(core.__file__).name
    shutil.copyfile(core.__file__, other)
    return other


def _ab(other, *args):
    """python -m bench.ab against the build copied to `other`, with `args`."""
    return subprocess.run([sys.executable, "-m", "bench.ab", str(other), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_ab_compares_two_builds_on_the_gemm_forms(core_copy):
    """bench.ab --gemm times the three GEMM forms of both builds per shape and checks their
    outputs; two copies of one build must agree bitwise."""
    other = core_copy
    r = _ab(other, "--gemm", "30x40x20", "7x9x5", "--threads", "1", "--rounds", "2")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for form in ("X·W+b, ReLU", "dY·Wᵀ", "Xᵀ·dY"):
        assert f"30x40x20 {form}" in r.stdout
    assert "30x40x20, 1 threads, 2 rounds: bitwise-equal outputs: True" in r.stdout
    assert "7x9x5, 1 threads, 2 rounds: bitwise-equal outputs: True" in r.stdout
    bad = _ab(other, "--gemm", "30x0x20")
    assert bad.returncode != 0 and "--gemm takes shapes" in bad.stderr


def test_ab_compares_two_builds_on_softmax(core_copy):
    """bench.ab --softmax times softmax cross-entropy with dlogits of both builds per shape and
    checks their outputs; two copies of one build must agree bitwise."""
    other = core_copy
    r = _ab(other, "--softmax", "13x10", "5x40", "--threads", "1", "--rounds", "2")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for shape in ("13x10", "5x40"):
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(shape + " softmax"))
        assert "other / installed" in line and line.endswith("bitwise-equal outputs: True")
    bad = _ab(other, "--softmax", "13")
    assert bad.returncode != 0 and "--softmax takes shapes" in bad.stderr


def test_rounds_merge_to_the_median_round():
    """Per case, the round whose median is the median across rounds (the faster middle one for
    an even count); peak probes keep their best round; a case missing from a round (it failed
    there) is merged from the others."""
    from bench.runner import merge_rounds

    def gemm(t, lib="fastdense"):
        return _row("gemm", "X·W 256³", lib, 1, t)

    def peak(best):
        return dict(group="peak", case="FMA peak 1T", lib="fastdense", threads=1,
                    gflops=best - 1, gflops_max=best)

    rounds = [[gemm(3.0), peak(100.0), gemm(9.0, "numpy")],
              [gemm(1.0), peak(120.0)],
              [gemm(2.0), peak(110.0), gemm(7.0, "numpy")]]
    rows = {(r["case"], r["lib"]): r for r in merge_rounds(rounds)}
    assert rows[("X·W 256³", "fastdense")]["median_s"] == 2.0
    assert rows[("X·W 256³", "fastdense")]["rounds_median_s"] == [3.0, 1.0, 2.0]
    assert rows[("X·W 256³", "numpy")]["median_s"] == 7.0  # of two rounds: the faster
    assert rows[("FMA peak 1T", "fastdense")]["gflops_max"] == 120.0
    assert len(rows) == 3
    assert merge_rounds(rounds[:1]) == rounds[0]


def test_ratios_over_rounds_are_the_median_of_each_rounds_ratio():
    """A peer and fastdense measured in the same round share the machine's phase: the ratio is
    the median of the per-round ratios, not the ratio of two separately chosen rounds."""
    from bench.runner import derive

    fd = _row("gemm", "X·W 256³", "fastdense", 1, 1.0, rounds_median_s=[1.0, 2.0, 1.0])
    np_ = _row("gemm", "X·W 256³", "numpy", 1, 2.0, rounds_median_s=[2.0, 2.0, 1.1])
    derive([fd, np_])
    # per round 2.0, 1.0, 1.1 -> 1.1 (the ratio of the median rounds would be 2.0)
    assert fd["ratio"]["numpy"] == pytest.approx(1.1)
    single = _row("gemm", "X·W 512³", "fastdense", 1, 2.0)
    peer = _row("gemm", "X·W 512³", "numpy", 1, 3.0)
    derive([single, peer])
    assert single["ratio"]["numpy"] == pytest.approx(1.5)


# --------------------------------------------------------------------------- placements


def _placed_row(group, case, lib, threads, rounds, **kw):
    """A merged row whose rounds are lists of (seconds, round trip before, round trip after);
    consecutive samples share a reading, as ``measure`` takes them."""
    samples = [[s for s, _, _ in r] for r in rounds]
    readings = [[r[0][1]] + [after for _, _, after in r] for r in rounds]
    for r, rt in zip(rounds, readings):  # the fixture's own consistency
        assert all(rt[i] == r[i][1] for i in range(len(r)))
    meds = [sorted(s)[len(s) // 2] for s in samples]
    return _row(group, case, lib, threads, sorted(meds)[len(meds) // 2], rounds_median_s=meds,
                rounds_samples_s=samples, rounds_roundtrip_ns=readings, **kw)


def test_samples_are_placed_by_the_round_trips_around_them():
    """A sample belongs to a placement only when the readings before and after it agree; a
    reading that waited on the scheduler (above the last class) or is NaN places nothing."""
    from bench import common

    assert common.placement_of(70.0, 75.0) == "one core"
    assert common.placement_of(100.0, 240.0) == "one core complex"
    assert common.placement_of(450.0, 380.0) == "two core complexes"
    assert common.placement_of(100.0, 450.0) is None  # moved during the sample
    assert common.placement_of(7e6, 7e6) is None
    assert common.placement_of(float("nan"), 100.0) is None
    row = _placed_row("step", "c", "fastdense", 2,
                      [[(1.0, 100, 110), (2.0, 110, 450), (3.0, 450, 460)],
                       [(4.0, 70, 72)]])
    assert common.samples_by_placement(row) == {
        "one core complex": [1.0], "two core complexes": [3.0], "one core": [4.0]}
    # one round, unmerged: the row's own samples
    one = dict(samples_s=[1.0, 2.0], samples_roundtrip_ns=[100, 120, 500])
    assert common.samples_by_placement(one) == {"one core complex": [1.0]}
    assert common.samples_by_placement(dict(samples_s=[1.0])) == {}


def test_a_step_is_compared_with_its_peer_within_the_same_placement():
    """fastdense measured while the host kept its threads far apart against a peer measured
    while they were close: the rounds' ratio (1.5x) compares the placements. Within each
    placement both were measured in, the ratios are 2.0x and 2.2x, and the bar takes the lower
    one; a placement with fewer than MIN_PLACED samples of either library is left out, and so
    is the one-core placement (1.56x), which is no 2-thread measurement."""
    from bench.report import Rows, bar, markdown, step_ratio
    from bench.runner import derive

    near, far = (100, 120), (450, 470)
    name = "784-100-10 b100"

    def rounds(times_near, times_far, n_far, times_one_core=()):
        # one round in each placement, n_far samples in the far one
        out = [[(t, near[0], near[1]) if i == 0 else (t, near[1], near[1])
                for i, t in enumerate(times_near)],
               [(t, far[0], far[1]) if i == 0 else (t, far[1], far[1])
                for i, t in enumerate(times_far[:n_far])]]
        return out + ([[(t, 68 if i == 0 else 70, 70) for i, t in enumerate(times_one_core)]]
                      if times_one_core else [])

    fd = _placed_row("step", name, "fastdense", 2,
                     rounds([300e-6] * 5, [400e-6] * 5, 5, [450e-6] * 3), flops=32e6,
                     gflops=1.0, samples_per_s=1.0)
    jax = _placed_row("step", name, "jax", 2,
                      rounds([600e-6] * 5, [880e-6] * 5, 5, [700e-6] * 3))
    torch = _placed_row("step", name, "torch", 2, rounds([1.2e-3] * 5, [1.6e-3] * 5, 2))
    # the rounds' medians as a run can meet them: fd far 400 us, jax near 600 us
    fd["rounds_median_s"], jax["rounds_median_s"] = [400e-6] * 3, [600e-6] * 3
    derive([fd, jax, torch])
    assert fd["ratio"]["jax"] == pytest.approx(1.5)
    # on one core 1.56x: shown, but no 2-thread measurement for the bar
    assert fd["ratio_by_placement"]["jax"] == {
        "one core": pytest.approx(700 / 450), "one core complex": pytest.approx(2.0),
        "two core complexes": pytest.approx(2.2)}
    assert fd["ratio_by_placement"]["torch"] == {"one core complex": pytest.approx(4.0)}
    assert step_ratio(fd, "jax")[0] == pytest.approx(2.0)
    R = Rows([fd, jax, torch])
    row = next(b for b in bar(R, {}) if b[0].startswith(f"step {name}"))
    assert "2.00× jax in the same placement" in row[2] and "the rounds' ratio 1.50×" in row[2]
    assert row[3] == "**PASS**"  # 2.0 >= 2 and 4.0 >= 3
    jax["rounds_samples_s"][0] = [500e-6] * 5  # near: 500 / 300 = 1.67x
    derive([fd, jax, torch])
    assert step_ratio(fd, "jax")[0] == pytest.approx(500 / 300)
    row = next(b for b in bar(Rows([fd, jax, torch]), {}) if b[0].startswith(f"step {name}"))
    assert row[3] == "**FAIL**"
    report = markdown({"context": {"threads": [2]}, "rows": [fd, jax, torch]})
    assert "## Where the two threads ran" in report
    assert f"| {name} | jax | 700.0 µs (3) | 500.0 µs (5) | 880.0 µs (5) | one core: 1.56×, " \
           "one core complex: 1.67×, two core complexes: 2.20× |" in report


def test_scaling_and_peak_share_leave_out_samples_on_one_core():
    """Samples taken while the host ran both threads on one physical core do not count for the
    2-thread scaling or a step's share of the 2-thread peak, where enough others exist."""
    from bench.report import Rows, bar
    from bench.runner import derive

    one_t = _row("gemm", "X·W 1024³", "fastdense", 1, 2.0, shape=[1024] * 3, square=True,
                 flops=2.0 * 1024**3, gflops=1.0, rounds_median_s=[2.0, 2.0],
                 rounds_samples_s=[[2.0] * 3, [2.0] * 3])
    two_t = _placed_row("gemm", "X·W 1024³", "fastdense", 2,
                        [[(1.05, 100, 100)] * 3, [(2.0, 70, 70)] * 3],
                        shape=[1024] * 3, square=True, flops=2.0 * 1024**3, gflops=1.0)
    peak2 = dict(group="peak", case="FMA peak 2T", lib="fastdense", threads=2, probe="fma",
                 gflops=190.0, gflops_max=200.0)
    flops = 2.448e9
    step = _placed_row("step", "784-1024-1024-10 b256", "fastdense", 2,
                       [[(flops / 160e9, 400, 400)] * 3, [(flops / 100e9, 68, 68)] * 3],
                       flops=flops, gflops=flops / (flops / 100e9) / 1e9)
    derive([one_t, two_t, peak2, step])
    # the rounds' own ratios, 1.90x on two cores and 1.0x on one: their median
    assert two_t["scaling_vs_1t"] == pytest.approx((2.0 / 1.05 + 1.0) / 2)
    assert two_t["scaling_two_cores"] == pytest.approx(2.0 / 1.05)
    assert step["pct_peak"] == pytest.approx(50.0)  # the median round, on one core
    assert step["pct_peak_two_cores"] == pytest.approx(80.0)
    row = next(b for b in bar(Rows([one_t, two_t]), {}) if b[0].startswith("GEMM 2 threads"))
    assert "min 1.90× (X·W 1024³) over the samples with two cores" in row[2]
    assert row[3] == "**PASS**"
    # fewer than MIN_PLACED samples on two cores: all samples count
    two_t["rounds_samples_s"][0] = [1.05]
    two_t["rounds_roundtrip_ns"][0] = [100, 100]
    del two_t["scaling_two_cores"]
    derive([one_t, two_t])
    assert "scaling_two_cores" not in two_t


def test_the_roundtrip_probe_measures_two_cpus_or_says_why_not():
    """``fastdense._roundtrip.core_roundtrip_ns``, loaded by the suite without the package: a
    finite positive round trip on two CPUs, the caller's CPU mask restored; a ValueError on
    one CPU and on bad arguments."""
    from bench import common

    code = (
        "import os, math, sys\n"
        "from bench import common\n"
        "cpus = sorted(os.sched_getaffinity(0))\n"
        "if len(cpus) >= 2:\n"
        "    os.sched_setaffinity(0, cpus[:2])\n"
        "    probe = common.roundtrip_probe()\n"
        "    assert probe is not None and 'fastdense' not in sys.modules  # loaded by file\n"
        "    v = probe(200)\n"
        "    assert math.isfinite(v) and 0 < v < 1e6, v\n"
        "    assert os.sched_getaffinity(0) == set(cpus[:2])  # the caller's mask is back\n"

        "from fastdense import _roundtrip as r\n"
        "for bad in ({'round_trips': 99}, {'round_trips': 10**10}, {'max_seconds': 0.0},\n"
        "            {'max_seconds': float('nan')}):\n"
        "    try:\n"
        "        r.core_roundtrip_ns(**bad)\n"
        "        raise SystemExit(f'accepted {bad}')\n"
        "    except ValueError:\n"
        "        pass\n"
        "os.sched_setaffinity(0, cpus[:1])\n"
        "try:\n"
        "    r.core_roundtrip_ns()\n"
        "    raise SystemExit('ran on one CPU')\n"
        "except ValueError as e:\n"
        "    assert 'needs two CPUs' in str(e)\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    # measure() reads it before every sample and after the last
    calls = []
    res = common.measure(lambda: None, repeats=3, min_sample_s=0.001, warmup_s=0.001,
                         roundtrip=lambda: calls.append(1) or 100.0 + len(calls))
    assert res["samples_roundtrip_ns"] == [101.0, 102.0, 103.0, 104.0]
    res = common.measure(lambda: None, repeats=1, min_sample_s=0.001, warmup_s=0.001,
                         roundtrip=lambda: float("nan"))
    assert res["samples_roundtrip_ns"] == [None, None]  # standard JSON
