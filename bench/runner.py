"""The suite runner: ``python -m bench [--quick] [--threads 1 2] [--only GROUP ...]
[--peers numpy torch jax] [--repeats N] [--out PREFIX]``.

Plans the cases, runs each in its own ``python -m bench.worker`` process (one group, library,
thread count and shape/configuration per process, one after another, never concurrently),
collects their rows, derives % of measured peak and the ratios of fastdense to each peer, and
writes ``PREFIX.json``, then ``PREFIX.md`` and ``PREFIX-*.png`` from that JSON
(``bench/report.py``). The runner itself imports no numerical library.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from bench import common
from bench.worker import MARKER

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PEERS = ["numpy", "torch", "jax"]


def _installed(lib):
    if lib == "jax":
        return importlib.util.find_spec("jax") is not None and importlib.util.find_spec("jaxlib") is not None
    return importlib.util.find_spec(lib) is not None


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def plan(args):
    """The list of case specs, and notes about what is skipped.

    A full run gives every shape or configuration its own process; ``--quick`` runs all the
    shapes (configurations) of one group × library × thread count in one process, which saves
    the interpreter and library start-up (torch alone takes ~1.5 s to import) many times over.
    The peak probe runs first and again last; the best sample is the reference.
    """
    quick = args.quick
    groups = args.only or common.GROUPS
    if any(g in groups for g in ("gemm", "step", "profile")) and "peak" not in groups:
        groups = ["peak"] + list(groups)  # every figure is stated against the measured peak
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(
        range(os.cpu_count() or 1))
    notes, threads = [], []
    for t in args.threads:
        if t > len(allowed):
            notes.append(f"{t} threads skipped: only {len(allowed)} cores available")
        else:
            threads.append(t)
    libs_ok = {"fastdense": True}
    for peer in PEERS:
        if peer not in args.peers:
            libs_ok[peer] = False
            notes.append(f"{peer}: not requested (--peers)")
        elif not _installed(peer):
            libs_ok[peer] = False
            notes.append(f"{peer}: not installed, skipped (pip install {peer})")
        else:
            libs_ok[peer] = True
    timing = dict(repeats=args.repeats or (3 if quick else 5), min_sample_s=0.05,
                  warmup_s=0.1 if quick else 0.2, epoch_repeats=2 if quick else 3)

    def specs(group, key, items, ts, libs=None):
        chunks = [items] if quick else [[it] for it in items]
        for chunk in chunks:
            for t in ts:
                for lib in libs or common.LIBS[group]:
                    if libs_ok.get(lib):
                        yield dict(group=group, lib=lib, threads=t, cores=allowed[:t],
                                   params={key: chunk} if key else {}, **timing)

    cases = []
    peak = list(specs("peak", None, [None], threads)) if "peak" in groups else []
    cases += peak
    if "gemm" in groups:
        sizes = common.GEMM_SQUARE_QUICK if quick else common.GEMM_SQUARE
        shapes = ([[n, n, n] for n in sizes] + [list(s) for s in common.GEMM_RECT]
                  + [list(s) for s in common.GEMM_SMALL])
        cases += specs("gemm", "shapes", shapes, threads)
    configs = common.STEP_CONFIGS_QUICK if quick else list(common.STEP_CONFIGS)
    if quick:
        notes.append("--quick: GEMM sizes 256³ and 1024³ only (plus the two small shapes); "
                     "step config 4096-4096-4096-10 b1024 dropped; 3 repeats, 2 timed epochs")
    if "step" in groups:
        cases += specs("step", "configs", configs, threads)
    if "profile" in groups and threads:
        cases += specs("profile", "configs", configs, [max(threads)])
    if "epoch" in groups:
        cases += specs("epoch", None, [None], threads)
    if len(cases) > len(peak):
        cases += [dict(c, params={"again": True}) for c in peak]
    return cases, notes, timing


CONTENDED = 0.25  # cores of foreign load above which a case is re-run and marked


def merge_rounds(rounds):
    """One row per case out of several rounds of the same plan.

    Some machines change speed for minutes at a time for reasons no process of ours can see
    (another guest on the same host): a library measured in a slow minute and its peer in a
    fast one gives a ratio that says nothing. Over rounds, each case is measured in several
    of those minutes; this keeps, per case, the round whose median time is the median across
    rounds (for an even count the faster of the two middle ones), with every round's median in
    ``rounds_median_s``. Peak probes keep the round with the best sample, since the best
    sample is the reference. A case that failed in some rounds is merged from the others.
    """
    if len(rounds) == 1:
        return list(rounds[0])
    by_key, order = {}, []
    for rows in rounds:
        for r in rows:
            key = (r["group"], r["case"], r["lib"], r["threads"])
            if key not in by_key:
                by_key[key] = []
                order.append(key)
            by_key[key].append(r)
    merged = []
    for key in order:
        rs = by_key[key]
        if all(r.get("median_s") is not None for r in rs):
            ranked = sorted(rs, key=lambda r: r["median_s"])
            pick = dict(ranked[(len(ranked) - 1) // 2])
            pick["rounds_median_s"] = [r["median_s"] for r in rs]
            pick["rounds_samples_s"] = [r.get("samples_s") for r in rs]
            if any("samples_roundtrip_ns" in r for r in rs):  # every round's, for placements
                pick["rounds_roundtrip_ns"] = [r.get("samples_roundtrip_ns") for r in rs]
        else:
            pick = dict(max(rs, key=lambda r: r.get("gflops_max") or 0.0))
            pick["rounds_gflops_max"] = [r.get("gflops_max") for r in rs]
        merged.append(pick)
    return merged


def _foreign(res):
    return max((r.get("foreign_load") or 0.0) for r in res["rows"]) if res["rows"] else 0.0


def _scrub(obj):
    """Replace this machine's paths (checkout, interpreter prefix, home, temp dir) in result
    text (error messages, data notes) with neutral names, recursively."""
    import tempfile

    subs = [(str(ROOT), "<repo>"), (sys.prefix, "<python>"), (sys.base_prefix, "<python>"),
            (tempfile.gettempdir(), "<tmp>"), (str(Path.home()), "~")]
    if isinstance(obj, str):
        for old, new in subs:
            if old and old != "/":
                obj = obj.replace(old, new)
        return obj
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items()}
    return obj


def _wait_quiet(cores, max_wait):
    """Wait (at most ``max_wait`` s) until the cores have been idle for half a second."""
    hz = os.sysconf("SC_CLK_TCK")
    deadline = time.perf_counter() + max_wait
    while True:
        b0 = common._busy_ticks(set(cores))
        time.sleep(0.5)
        b1 = common._busy_ticks(set(cores))
        if b0 is None or b1 is None or (b1 - b0) / hz / 0.5 < CONTENDED:
            return
        if time.perf_counter() > deadline:
            return


def _label(spec):
    p = spec["params"]
    what = ", ".join(
        [common.gemm_label(*s) for s in p.get("shapes", [])] + list(p.get("configs", [])))
    return f"{spec['group']} {spec['lib']} {spec['threads']}T" + (f" [{what}]" if what else "")


def run_case(spec, timeout):
    env = dict(os.environ, **common.thread_env(spec["threads"]))
    try:
        p = subprocess.run([sys.executable, "-m", "bench.worker", json.dumps(spec)], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    for line in p.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):]), None
    tail = " | ".join(p.stderr.strip().splitlines()[-3:])
    return None, f"exit {p.returncode}: {tail}"


def _git():
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        rev = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def derive(rows):
    """Add % of measured peak, fastdense/peer ratios and fastdense's thread scaling."""
    peak = {}
    for r in rows:
        if r["group"] == "peak" and r.get("probe", "fma") == "fma":
            peak[r["threads"]] = max(peak.get(r["threads"], 0.0), r["gflops_max"])
    for r in rows:
        ref = peak.get(r["threads"])
        if (r["group"] in ("gemm", "step") or r.get("probe") in ("tile", "parts")) and ref:
            r["peak_ref_gflops"] = ref
            r["pct_peak"] = 100.0 * r["gflops"] / ref
            if "parts" in r:
                r["parts_pct_peak"] = {k: 100.0 * v / ref for k, v in r["parts"].items()}
    index = {(r["group"], r["case"], r["lib"], r["threads"]): r for r in rows}
    for r in rows:
        if r["lib"] != "fastdense" or r["group"] not in ("gemm", "step", "epoch"):
            continue
        r["ratio"] = {}
        for peer in PEERS:
            p = index.get((r["group"], r["case"], peer, r["threads"]))
            if p:
                r["ratio"][peer] = common.paired_ratio(p, r)
                by_place = common.placement_ratios(p, r)
                if by_place:
                    r.setdefault("ratio_by_placement", {})[peer] = by_place
        one = index.get((r["group"], r["case"], "fastdense", 1))
        if one and r["threads"] != 1:
            r["scaling_vs_1t"] = common.paired_ratio(one, r)
        two = common.two_core_median_s(r) if r["threads"] == 2 else None
        if two is not None:
            if one:  # the 1-thread samples of all rounds against these
                ones = [t for s in common.samples_over_rounds(one) for t in s]
                r["scaling_two_cores"] = statistics.median(ones) / two
            if r.get("peak_ref_gflops"):
                r["pct_peak_two_cores"] = 100.0 * r["flops"] / two / 1e9 / r["peak_ref_gflops"]
    return peak


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description="fastdense benchmark suite "
                                 "(peak, GEMM, training step, step profile, epoch) vs numpy, torch, jax")
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repeats (< 2 min)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", nargs="+", choices=common.GROUPS, metavar="GROUP",
                    help=f"run only these groups ({', '.join(common.GROUPS)}); the peak probe "
                         "always runs with gemm/step/profile")
    ap.add_argument("--peers", nargs="*", default=PEERS, choices=PEERS)
    ap.add_argument("--repeats", type=int, help="timed samples per case (default 5, quick 3)")
    ap.add_argument("--out", type=Path, help="output prefix (default bench/results/latest; "
                    "quick/partial runs: bench/results/quick or bench/results/partial)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per case")
    ap.add_argument("--retries", type=int, help="re-runs of a case that other processes "
                    "disturbed (default 2, quick 1)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the whole plan N times and keep, per case, the round whose "
                         "median is the median across rounds (default 1)")
    ap.add_argument("--list", action="store_true", help="print the cases and exit")
    args = ap.parse_args(argv)

    cases, notes, timing = plan(args)
    if args.list:
        for c in cases:
            print(_label(c))
        return
    if args.retries is None:
        args.retries = 1 if args.quick else 2
    # stop re-running disturbed cases after 75 s (quick: stay within 2 minutes) or 20 min
    args.retry_budget = 75.0 if args.quick else 1200.0
    out = args.out or RESULTS / ("partial" if args.only else "quick" if args.quick else "latest")
    if out.suffix in (".json", ".md"):
        out = out.with_suffix("")

    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    t_suite = time.perf_counter()
    rounds, worker_ctx, contended = [], {}, []
    plan_all = [(r, i, spec) for r in range(args.rounds) for i, spec in enumerate(cases, 1)]
    for rnd, i, spec in plan_all:
        if i == 1:
            rounds.append([])
        rows = rounds[rnd]
        label = _label(spec) + (f" (round {rnd + 1}/{args.rounds})" if args.rounds > 1 else "")
        t0 = time.perf_counter()
        res, err = run_case(spec, args.timeout)
        tries = 1
        # Other processes on our cores make every library's numbers meaningless (OpenMP teams
        # wait for a descheduled thread); run such a case again and keep the quieter result.
        while (not err and tries <= args.retries and _foreign(res) > CONTENDED
               and time.perf_counter() - t_suite < args.retry_budget):
            _wait_quiet(spec["cores"], 3.0 if args.quick else 30.0)
            again, err2 = run_case(spec, args.timeout)
            tries += 1
            if not err2 and _foreign(again) < _foreign(res):
                res = again
        dt = time.perf_counter() - t0
        if err:
            notes.append(f"FAILED {label}: {err}")
            print(f"[{i}/{len(cases)}] {label}: FAILED ({err})", file=sys.stderr, flush=True)
            continue
        if _foreign(res) > CONTENDED:
            contended.append(f"{label} ({_foreign(res):.2f} cores, {tries} tr{'y' if tries == 1 else 'ies'})")
        for r in res["rows"]:
            r["process_s"] = dt
            r["tries"] = tries
            r["affinity"] = res["context"].get("affinity")
        rows += res["rows"]
        if spec["group"] == "peak":
            worker_ctx.update({k: v for k, v in res["context"].items() if k != "affinity"})
        print(f"[{i}/{len(cases)}] {label}: {dt:.1f} s", file=sys.stderr, flush=True)
        data_note = next((r.get("data") for r in res["rows"] if r.get("data")), None)
        if data_note and data_note not in notes and not data_note.startswith("full"):
            notes.append(data_note)
    if contended:
        notes.append(f"† {len(contended)} of {len(cases)} case processes ran while other "
                     f"processes used more than {CONTENDED} of their cores (their figures are "
                     "unreliable; re-run on a quiet machine): " + "; ".join(contended))
    rows = merge_rounds(rounds)
    peak = derive(rows)

    ctx = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "git": _git(),
        "versions": {d: _version(d) for d in ("fastdense", "numpy", "torch", "jax", "jaxlib",
                                              "matplotlib")},
        "quick": args.quick,
        "groups": args.only or common.GROUPS,
        "peers": args.peers,
        "timing": timing,
        "rounds": args.rounds,
        "peak_ref_gflops": {str(k): v for k, v in peak.items()},
        "suite_wall_s": time.perf_counter() - t_suite,
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        **worker_ctx,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_name(out.name + ".json")
    json_path.write_text(json.dumps(_scrub({"context": ctx, "notes": notes, "rows": rows}), indent=1,
                                    ensure_ascii=False) + "\n", encoding="utf-8")
    from bench import report

    md_path = report.write(json_path)
    print(f"wrote {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}"
          f" and {md_path.name} in {ctx['suite_wall_s']:.0f} s", file=sys.stderr)
