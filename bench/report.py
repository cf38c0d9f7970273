"""Markdown report (and PNG plots) generated from a suite JSON.

    python -m bench.report bench/results/latest.json      # writes latest.md and latest-*.png

Everything in the report is computed from the JSON's rows, so a report can be regenerated,
or the bar re-judged, without re-running anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from bench.common import (GEMM_FORMS, GEMM_SMALL, MIN_PLACED, ONE_CORE, PLACEMENTS,
                          STEP_CONFIGS, paired_ratio, samples_by_placement)

PEERS = ["numpy", "torch", "jax"]


# --------------------------------------------------------------------------- formatting



# The fused step's phases (MLPTrainer.phase_seconds): (label, seconds per step) in step order.
def _phases(ph):
    L = len(ph["forward"])
    out = [(f"forward {l + 1}", ph["forward"][l]) for l in range(L)]
    out.append(("loss", ph["loss"]))
    for l in range(L - 1, -1, -1):
        what = "weight gradient" if l == 0 else "input and weight gradients"
        out.append((f"backward {l + 1}: {what}" + (", update" if not ph["update"] else ""),
                    ph["backward"][l]))
    if ph["update"]:
        out.append(("clipping and the update", ph["update"]))
    return out


def _split_text(ph):
    """The second thread's part of a layer-2 backward that ran on two threads, or ""."""
    if not ph.get("split_steps"):
        return ""
    return (f" (backward 2 on two threads in {ph['split_steps']} of them: the second thread "
            f"waited {_t(ph['split_wait'])} for the loss, then ran its share of the input "
            f"gradient in {_t(ph['split_input_gradient'])})")


def _t(s):
    """Seconds in a readable unit."""
    if s is None:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


CONTENDED = 0.25


def _dag(r):
    """† marks a case during which other processes used our cores (see the notes)."""
    return " †" if (r.get("foreign_load") or 0.0) > CONTENDED else ""


def _trange(r):
    return f"{_t(r['median_s'])} ({_t(r['min_s'])}–{_t(r['max_s'])}){_dag(r)}"


def _g(r):
    return f"{r['gflops']:.1f} ({r['gflops_min']:.1f}–{r['gflops_max']:.1f}){_dag(r)}"


def _x(v):
    return "–" if v is None else f"{v:.2f}×"


def _pct(v):
    return "–" if v is None else f"{v:.0f}%"


def _table(header, body):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return out


class Rows:
    def __init__(self, rows):
        self.rows = rows
        self.idx = {(r["group"], r["case"], r["lib"], r["threads"]): r for r in rows}

    def get(self, group, case, lib, threads):
        return self.idx.get((group, case, lib, threads))

    def where(self, **kw):
        return [r for r in self.rows if all(r.get(k) == v for k, v in kw.items())]


# --------------------------------------------------------------------------- the bar


def _status(ok, missing=None):
    if missing:
        return f"n/a ({missing})"
    return "**PASS**" if ok else "**FAIL**"


# The step rows of the bar: config, minimum ratio per peer, minimum % of peak (or None).
_STEP_BAR = [
    ("784-100-10 b100", {"jax": 2.0, "torch": 3.0}, None),
    ("784-100-10 b1", {"jax": 3.0, "torch": 10.0}, None),
    ("784-1024-1024-10 b256", {"jax": 1.25}, 85),
    ("4096-4096-4096-10 b1024", {"jax": 1.1}, 90),
]


def step_ratio(r, peer):
    """A 2-thread step row's ratio to ``peer`` as the bar reads it: (ratio, {placement:
    ratio}). Where both libraries were measured in a common placement of the two threads on
    two physical cores (common.PLACEMENTS but ONE_CORE), the lowest of those placements'
    ratios: a fastdense case timed while its threads were far apart against a peer's timed
    while they were close (or the other way round) compares the host's placements, not the
    libraries. Samples the host ran on one core are no 2-thread measurement, as for the
    scaling row (the placement table still shows them). Elsewhere the rounds' median ratio,
    and {}."""
    v = r.get("ratio", {}).get(peer)
    by_place = {p: x for p, x in (r.get("ratio_by_placement", {}).get(peer) or {}).items()
                if p != ONE_CORE}
    if v is None:
        return None
    if by_place:
        return min(by_place.values()), by_place
    return v, {}


def scaling(r):
    """A 2-thread GEMM row's speed-up over its 1-thread row as the bar reads it: over the
    samples in which the host ran the two threads on two physical cores where there are
    enough of them (on one core, two threads have one core's FMA units), else the rounds'
    median ratio."""
    return r.get("scaling_two_cores", r["scaling_vs_1t"])


def step_pct_peak(r):
    """A 2-thread step's % of the 2-thread peak as the bar reads it: over the samples with
    two physical cores where there are enough, else over all (see ``scaling``)."""
    return r.get("pct_peak_two_cores", r.get("pct_peak"))


def _placed(by_place):
    return ", ".join(f"{name}: {v:.2f}×" for name, v in by_place.items())


def bar(R, ctx):
    """Each row of the issue's bar: (row, target, measured, status)."""
    out = []

    # GEMM square, 1 thread: >= 1.0x numpy everywhere, >= 90 % of peak at >= 1024
    fd = [r for r in R.where(group="gemm", lib="fastdense", threads=1) if r["square"]]
    with_np = [r for r in fd if "numpy" in r.get("ratio", {})]
    big = [r for r in fd if r["shape"][0] >= 1024 and r.get("pct_peak") is not None]
    sizes = sorted({r["shape"][0] for r in fd})
    if not with_np or not big:
        out.append(("GEMM 256³…4096³, 3 forms, 1 thread", "≥ 1.0× numpy; ≥ 90% peak at ≥ 1024",
                    "–", _status(False, "numpy or sizes ≥ 1024 not measured")))
    else:
        w = min(with_np, key=lambda r: r["ratio"]["numpy"])
        p = min(big, key=lambda r: r["pct_peak"])
        ok = w["ratio"]["numpy"] >= 1.0 and p["pct_peak"] >= 90
        note = "" if sizes == [256, 512, 1024, 2048, 4096] else f" (sizes run: {sizes})"
        out.append(("GEMM 256³…4096³, 3 forms, 1 thread", "≥ 1.0× numpy; ≥ 90% peak at ≥ 1024",
                    f"min {w['ratio']['numpy']:.2f}× ({w['case']}); min {p['pct_peak']:.0f}% "
                    f"({p['case']}){note}", _status(ok)))

    small = [r for r in R.where(group="gemm", lib="fastdense", threads=1)
             if tuple(r["shape"]) in GEMM_SMALL and "numpy" in r.get("ratio", {})]
    if small:
        w = min(small, key=lambda r: r["ratio"]["numpy"])
        out.append(("GEMM 100×784·784×100 and 100×100·100×10, 3 forms, 1 thread", "≥ 1.3× numpy",
                    f"min {w['ratio']['numpy']:.2f}× ({w['case']})",
                    _status(w["ratio"]["numpy"] >= 1.3)))
    else:
        out.append(("GEMM small shapes, 1 thread", "≥ 1.3× numpy", "–", _status(False, "not measured")))

    sc = [r for r in R.where(group="gemm", lib="fastdense", threads=2)
          if r["square"] and r["shape"][0] >= 512 and "scaling_vs_1t" in r]
    if sc:
        w = min(sc, key=scaling)
        text = f"min {scaling(w):.2f}× ({w['case']})"
        if "scaling_two_cores" in w:
            text += (f" over the samples with two cores, pooled over the rounds (the rounds' own "
                     f"ratios: min {min(r['scaling_vs_1t'] for r in sc):.2f}×)")
        out.append(("GEMM 2 threads, ≥ 512, 3 forms", "≥ 1.85× own 1-thread", text,
                    _status(scaling(w) >= 1.85)))
    else:
        out.append(("GEMM 2 threads, ≥ 512", "≥ 1.85× own 1-thread", "–",
                    _status(False, "1 and 2 threads at ≥ 512 not both measured")))

    for name, mins, pct in _STEP_BAR:
        target = ", ".join(f"≥ {v:g}× {k}" for k, v in mins.items())
        if pct:
            target += f", ≥ {pct}% peak"
        r = R.get("step", name, "fastdense", 2)
        if r is None:
            out.append((f"step {name}, 2 threads", target, "–", _status(False, "not measured")))
            continue
        parts, ok, missing = [], True, []
        for peer, need in mins.items():
            v = r.get("ratio", {}).get(peer)
            if v is None:
                missing.append(peer)
                continue
            placed = step_ratio(r, peer)
            if placed is not None and placed[1]:
                parts.append(f"{placed[0]:.2f}× {peer} in the same placement "
                             f"({_placed(placed[1])}; the rounds' ratio {v:.2f}×)")
                ok &= placed[0] >= need
            else:
                parts.append(f"{v:.2f}× {peer}")
                ok &= v >= need
        if pct:
            v = step_pct_peak(r)
            parts.append(f"{v:.0f}% peak" if v is not None else "peak ?")
            if v is not None and "pct_peak_two_cores" in r:
                parts[-1] += f" with two cores (the median round {r['pct_peak']:.0f}%)"
            ok &= (v or 0) >= pct
        out.append((f"step {name}, 2 threads", target, "; ".join(parts),
                    _status(ok, (", ".join(missing) + " not measured") if missing else None)))

    fe, te = R.get("epoch", R_EPOCH, "fastdense", 2), R.get("epoch", R_EPOCH, "torch", 2)
    if fe and te:
        ratio, dacc = fe["ratio"].get("torch"), fe["test_acc"] - te["test_acc"]
        out.append(("Fashion-MNIST epoch 784-100-10 b100, 2 threads", "≥ 3× torch, test acc ± 0.01",
                    f"{ratio:.2f}× torch; acc {fe['test_acc']:.4f} vs {te['test_acc']:.4f} "
                    f"(Δ {dacc:+.4f})", _status(ratio >= 3 and abs(dacc) <= 0.01)))
        out.append(("peak RSS of that epoch", "≤ torch's",
                    f"{fe['rss_end_mb']:.0f} MiB vs {te['rss_end_mb']:.0f} MiB",
                    _status(fe["rss_end_mb"] <= te["rss_end_mb"])))
    else:
        for what in ("Fashion-MNIST epoch, 2 threads", "peak RSS of that epoch"):
            out.append((what, "vs torch", "–", _status(False, "fastdense or torch epoch not measured")))
    return out


R_EPOCH = "Fashion-MNIST epoch 784-100-10 b100"


def _peak_ref(ctx, threads):
    ref = ctx.get("peak_ref_gflops", {}).get(str(threads))
    return ref if ref else None


def _points(d):
    """A part's cost in points of peak (the probe's samples scatter too)."""
    if d >= 0.5:
        return f"{d:.0f} point" + ("" if round(d) == 1 else "s")
    return "none measured" if d > -0.5 else f"none measured, {d:+.0f} points"


def _parts_whole_s(r):
    """Seconds per call of a small shape's GEMM called from C++ (its `parts` whole rate)."""
    return r["flops"] / r["parts"]["whole"] / 1e9


def _small_profile(r, tile):
    """Where a small shape's call goes (bench/gemm.py's `parts`: the same one-thread GEMM
    called from C++ in the process and minute of the timed calls), as text, or ""."""
    p = r.get("parts_pct_peak")
    if not p or not r.get("parts"):
        return ""
    text = (f"; the same GEMM called from C++ in the same process (`_core.gemm_parts_gflops`) "
            f"{_t(_parts_whole_s(r))} ({p['whole']:.0f}%)")
    if r.get("call_1x1_s"):
        text += (f", and the same call from Python on a 1×1·1×1 product {_t(r['call_1x1_s'])} "
                 "(the crossing, the argument checks, the dispatch)")
    text += (f"; without packing {p['no_packing']:.0f}% (packing: "
             f"{_points(p['no_packing'] - p['whole'])}), without the caller's C "
             f"{p['no_caller_c']:.0f}% (C: {_points(p['no_caller_c'] - p['whole'])}), without "
             f"either {p['neither']:.0f}%")
    if tile:
        text += (f", against the register tile's {tile['pct_peak']:.0f}% on full tiles (this "
                 f"shape's edge tiles, short blocks and set-up per call: "
                 f"{_points(tile['pct_peak'] - p['neither'])})")
    return text


def gaps(R, ctx):
    """For each row of the bar that fails, what meeting it would take, set against this run's
    own measurements (the peak, the register tile alone, the peers, the step's profile):
    markdown bullets, computed from the JSON like the rest of the report."""
    out = []
    ref1 = _peak_ref(ctx, 1)

    # GEMM, 1 thread, 256³…4096³
    fd = [r for r in R.where(group="gemm", lib="fastdense", threads=1) if r["square"]]
    big = [r for r in fd if r["shape"][0] >= 1024 and r.get("pct_peak") is not None]
    tile = [r for r in R.where(group="peak", probe="tile") if r.get("pct_peak") is not None]
    if big and min(r["pct_peak"] for r in big) < 90 and ref1:
        pcts = sorted(r["pct_peak"] for r in big)
        med = pcts[len(pcts) // 2]
        text = (f"**GEMM, 1 thread, 90% of peak at ≥ 1024** ({0.9 * ref1:.1f} GFLOP/s): the "
                f"{len(big)} fastdense rows at ≥ 1024 reach {pcts[0]:.0f}–{pcts[-1]:.0f}% "
                f"(median {med:.0f}%).")
        if tile:
            t = max(tile, key=lambda r: r["gflops"])
            text += (f" The register tile alone (`_core.tile_gflops`: packed operands in cache, "
                     f"no packing, no caller's C) runs at {t['pct_peak']:.0f}% "
                     f"({t['gflops']:.1f} GFLOP/s): {100 - t['pct_peak']:.0f} points of the "
                     f"distance are the tile's own, {t['pct_peak'] - med:.0f} are spent around "
                     "it (packing A and B, loading and storing the caller's C, the blocking "
                     "loops).")
            parts = [r for r in R.where(group="peak", probe="parts")
                     if r.get("parts_pct_peak")]
            if parts:

                def split(p):
                    return (f"whole {p['whole']:.0f}%, without packing {p['no_packing']:.0f}% "
                            f"(packing A and B: {_points(p['no_packing'] - p['whole'])}), without "
                            f"the caller's C {p['no_caller_c']:.0f}% (loading and storing C: "
                            f"{_points(p['no_caller_c'] - p['whole'])}), without either "
                            f"{p['neither']:.0f}% ({_points(p['neither'] - p['whole'])} for the "
                            f"two; the blocking loops and B's panels from L3 against the "
                            f"tile's {t['pct_peak']:.0f}%: {_points(t['pct_peak'] - p['neither'])})")

                runs = sorted(parts, key=lambda r: "end of suite" in r["case"])
                text += (" Taken apart (`_core.gemm_parts_gflops`, a 1024³ X·W, the medians of "
                         "samples that run the four back to back, in the peak probe's own "
                         "minutes): " + "; ".join(
                             ("at the end of the suite " if "end of suite" in r["case"] else "")
                             + split(r["parts_pct_peak"]) for r in runs) + ".")
        peers = [R.get("gemm", r["case"], "numpy", 1) for r in big]
        peers = [p for p in peers if p and p.get("pct_peak") is not None]
        if peers:
            pp = sorted(p["pct_peak"] for p in peers)
            text += (f" numpy ({ctx.get('blas') or 'its BLAS'}) on the same shapes in this run: "
                     f"{pp[0]:.0f}–{pp[-1]:.0f}% of the same peak.")
        out.append(text)
    slow = [r for r in fd if r.get("ratio", {}).get("numpy", 1.0) < 1.0]
    if slow:
        parts = []
        for r in sorted(slow, key=lambda r: r["ratio"]["numpy"]):
            p = R.get("gemm", r["case"], "numpy", 1)
            parts.append(f"{r['case']} {r['ratio']['numpy']:.3f}× ({_pct(r.get('pct_peak'))} "
                         f"against numpy's {_pct(p.get('pct_peak') if p else None)})")
        out.append("**GEMM, 1 thread, ≥ 1.0× numpy**: below it in this run: " + "; ".join(parts)
                   + ".")

    # GEMM, 2 threads over 1: its own scaling, the peers' and the FMA probe's in the same run
    scal = [r for r in R.where(group="gemm", lib="fastdense", threads=2)
            if r["square"] and r["shape"][0] >= 512 and "scaling_vs_1t" in r and scaling(r) < 1.85]
    if scal:
        ref2 = _peak_ref(ctx, 2)
        probe = f" The FMA probe's own: {ref2 / ref1:.2f}× ({ref2:.1f} / {ref1:.1f} GFLOP/s)." \
            if ref1 and ref2 else ""
        parts = []
        for r in sorted(scal, key=scaling):
            one = R.get("gemm", r["case"], "fastdense", 1)
            a, b = (one or {}).get("rounds_median_s"), r.get("rounds_median_s")
            text = f"{r['case']} {scaling(r):.3f}×"
            if "scaling_two_cores" in r:
                text += (f" with two cores (samples pooled over the rounds), "
                         f"{r['scaling_vs_1t']:.3f}× as the median of the rounds' ratios")
            if a and b and len(a) == len(b) > 1:
                text += " (rounds: " + ", ".join(f"{x / y:.2f}×" for x, y in zip(a, b)) + ")"
            by = samples_by_placement(r)
            if by:
                text += "; its 2-thread samples by placement: " + ", ".join(
                    f"{p} {len(by[p])}" for p, _, _ in PLACEMENTS if p in by)
            peers = []
            for peer in ("numpy", "torch"):
                p1, p2 = R.get("gemm", r["case"], peer, 1), R.get("gemm", r["case"], peer, 2)
                if p1 and p2:
                    peers.append(f"{peer} {paired_ratio(p1, p2):.2f}×")
            if peers:
                text += "; the peers' own scaling on it: " + ", ".join(peers)
            parts.append(text)
        out.append("**GEMM 2 threads, ≥ 1.85× own 1-thread**: below it in this run: "
                   + "; ".join(parts) + "." + probe
                   + " Both threads share the L3 that holds the packed B block and the C block "
                   "(and the host's other guests); a case whose rounds straddle 1.85× moved "
                   "with the machine's phase, and samples taken while the host ran both threads "
                   "on one core (see \"Where the two threads ran\") scale by about 1×.")

    # GEMM, 1 thread, the small shapes
    if ref1:
        best_tile = max(tile, key=lambda r: r["gflops"]) if tile else None
        parts = []
        for r in R.where(group="gemm", lib="fastdense", threads=1):
            if tuple(r["shape"]) not in GEMM_SMALL or r.get("ratio", {}).get("numpy", 9) >= 1.3:
                continue
            p = R.get("gemm", r["case"], "numpy", 1)
            need_s = p["median_s"] / 1.3
            need = r["flops"] / need_s / 1e9
            verdict = ("above the peak: no code can" if need > ref1 else
                       f"fastdense: {_t(r['median_s'])}, {_pct(r.get('pct_peak'))}"
                       + _small_profile(r, best_tile))
            parts.append(f"{r['case']}: numpy {_t(p['median_s'])} ({_pct(p.get('pct_peak'))}), "
                         f"so ≤ {_t(need_s)} per call = {need:.1f} GFLOP/s = "
                         f"{100 * need / ref1:.0f}% of peak ({verdict})")
        if parts:
            out.append("**GEMM small shapes, 1 thread, ≥ 1.3× numpy**: " + "; ".join(parts) + ".")

    # the training steps
    for name, r_bar, target in _STEP_BAR:
        f = R.get("step", name, "fastdense", 2)
        ref2 = _peak_ref(ctx, 2)
        if f is None or not ref2:
            continue
        need = [(peer, R.get("step", name, peer, 2), k) for peer, k in r_bar.items()]
        # failing as the bar reads it: the median of the rounds' own ratios where there is one
        need = [(peer, p["median_s"] / k, k) for peer, p, k in need
                if p and (step_ratio(f, peer) or (p["median_s"] / f["median_s"],))[0] < k]
        flops = f["gflops"] * 1e9 * f["median_s"]
        at_peak = flops / (ref2 * 1e9)
        if target and (step_pct_peak(f) or 100) < target:
            need.append((f"{target}% of peak", at_peak * 100 / target, None))
        if not need:
            continue
        goal = min(s for _, s, _ in need)
        parts = [f"≥ {k:g}× {peer} means ≤ {_t(s)}" if k else f"{peer} means ≤ {_t(s)}"
                 for peer, s, k in need]
        sizes = STEP_CONFIGS[name][0]
        n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
        text = (f"**step {name}, 2 threads**: fastdense {_t(f['median_s'])}; "
                + "; ".join(parts) + f": {100 * (1 - goal / f['median_s']):.0f}% less time. "
                f"Its matmul FLOPs ({flops / 1e6:.1f} M) take {_t(at_peak)} at the 2-thread peak, "
                f"so ≤ {_t(goal)} is {100 * at_peak / goal:.0f}% of peak over the whole step "
                f"(fastdense: {f['pct_peak']:.0f}%). Its update moves "
                f"{20 * n_params / 1e6:.2f} MB per step ({n_params:,} parameters: weights, "
                "momentum and gradient read, weights and momentum written).")
        prof = R.get("profile", name, "fastdense", 2)
        if prof:
            text += f" Profile (same run): Python and binding {_t(prof['overhead_s'])} per step"
            ph = prof.get("phases")
            if ph and ph.get("steps"):
                top = sorted(_phases(ph), key=lambda p: -p[1])[:3]
                text += (f"; inside the one call (wall {_t(ph['wall_s'])} per step), the largest "
                         + ", ".join(f"{label} {_t(v)}" for label, v in top))
            comps = prof.get("components")
            if comps:
                top = sorted(comps, key=lambda c: -c["median_s"])[:3]
                text += (f"; the step's kernels one at a time sum to {_t(prof['components_s'])}, "
                         "the largest " + ", ".join(
                             f"{c['part']} {_t(c['median_s'])}"
                             + (f" ({100 * c['gflops'] / ref2:.0f}% of peak)" if c.get("gflops")
                                else "") for c in top))
            text += "."
        out.append(text)

    # the epoch
    fe, te = R.get("epoch", R_EPOCH, "fastdense", 2), R.get("epoch", R_EPOCH, "torch", 2)
    if fe and te and fe["ratio"].get("torch", 0) < 3:
        out.append(f"**epoch, 2 threads, ≥ 3× torch**: torch {_t(te['median_s'])}, so ≤ "
                   f"{_t(te['median_s'] / 3)}; fastdense {_t(fe['median_s'])}.")
    return out


# --------------------------------------------------------------------------- the report


def markdown(data, plots=()):
    ctx, notes, R = data["context"], data.get("notes", []), Rows(data["rows"])
    v = ctx.get("versions", {})
    threads = sorted({r["threads"] for r in R.rows})
    L = ["# fastdense benchmark results", ""]
    L += [f"{'Quick run' if ctx.get('quick') else 'Run'} of {ctx.get('date')}, "
          f"`{ctx.get('command', 'python -m bench')}`, {ctx.get('suite_wall_s', 0):.0f} s. "
          "Times are medians of repeated samples with (min–max)"
          + (f", from the middle one of {ctx['rounds']} rounds of the whole suite (every "
             "round's median is in the JSON); ratios are the median of the rounds' own ratios"
             if ctx.get("rounds", 1) > 1 else "")
          + "; every figure comes from the JSON next to this file "
          "(`python -m bench.report <json>` regenerates it).", ""]
    L += _table(["context", ""], [
        ["CPU", f"{ctx.get('cpu')} ({ctx.get('cores')} cores)"],
        ["fastdense", f"{v.get('fastdense')}, ISA {ctx.get('isa')} (compiled {ctx.get('compiled_isas')}, "
                      f"OpenMP {ctx.get('openmp')})"],
        ["numpy", f"{ctx.get('numpy') or v.get('numpy')} ({ctx.get('blas')})"],
        ["torch", v.get("torch") or "not installed"],
        ["jax", f"{v.get('jax')} (jaxlib {v.get('jaxlib')})" if v.get("jax") else "not installed"],
        ["python", f"{ctx.get('python')}, {ctx.get('platform')}"],
        ["git", ctx.get("git")],
        ["threads", ", ".join(map(str, ctx.get("threads", [])))],
        ["timing", ", ".join(f"{k} {v_}" for k, v_ in ctx.get("timing", {}).items())],
    ])
    if notes:
        L += ["", "Notes:", ""] + [f"- {n}" for n in notes]

    L += ["", "## The bar", "",
          "Ratios are fastdense's speed over the peer's (peer median time / fastdense median "
          "time) in the same run, 2 threads unless said; % peak is against the FMA peak "
          "measured for the same thread count.", ""]
    L += _table(["row", "target", "measured", "result"], bar(R, ctx))
    left = gaps(R, ctx)
    if left:
        L += ["", "### What the rows that fail would take", "",
              "Each failing row against this run's own measurements: the peak, the GEMM's "
              "register tile alone, the peers, and the step profile below. (The narrative, "
              "with what was tried, is in `docs/benchmarks.md`.)", ""]
        L += [f"- {g}" for g in left]

    # peak
    peaks = R.where(group="peak")
    if peaks:
        L += ["", "## Peak probe", "",
              f"`_core.peak_gflops(threads, 0.2 s)`: FP32 FMA throughput of the active ISA "
              f"({ctx.get('isa')}). The best sample is the reference for every % of peak "
              "(other load can only slow the probe down). `_core.tile_gflops(0.2 s)`: the "
              "GEMM's register tile alone on one thread (packed operands in cache, no packing, "
              "no caller's C), the ceiling of every 1-thread GEMM row. "
              "`_core.gemm_parts_gflops(0.2 s)`: a 1-thread 1024³ X·W whole, without packing "
              "(its tiles reread buffers packed before), without the caller's C (private C "
              "tiles in L1), and without either, back to back in each sample.", ""]
        ref = ctx.get("peak_ref_gflops", {})
        body = []
        names = {"whole": "whole", "no_packing": "without packing",
                 "no_caller_c": "without the caller's C", "neither": "without either"}
        order = {"fma": 0, "tile": 1, "parts": 2}
        for r in sorted(peaks, key=lambda r: (r["threads"], order.get(r.get("probe"), 0))):
            if r.get("probe") == "parts":
                pct = r.get("parts_pct_peak") or {}
                for k, v in r.get("parts", {}).items():
                    got = [sample[k] for sample in r.get("samples_parts", [])]
                    spread = f" ({min(got):.1f}–{max(got):.1f})" if got else ""
                    body.append([f"{r['case']}: {names.get(k, k)}", f"{v:.1f}{spread}",
                                 f"{_pct(pct.get(k))} of the peak"])
            elif r.get("probe", "fma") == "tile":
                body.append([r["case"], _g(r), f"{_pct(r.get('pct_peak'))} of the peak"])
            else:
                body.append([r["case"], _g(r),
                             f"{ref.get(str(r['threads']), r['gflops_max']):.1f} (reference)"])
        L += _table(["probe", "GFLOP/s median (min–max)", "best sample / % of peak"], body)

    # GEMM
    gem = R.where(group="gemm")
    if gem:
        L += ["", "## GEMM", "",
              "GFLOP/s (2·M·K·N / median time), median (min–max); % of the measured peak for the "
              "same thread count; ratios are fastdense / peer. Outputs preallocated for every "
              "library; transposes are views.", ""]
        shapes = []
        for r in gem:
            if r["shape"] not in shapes:
                shapes.append(r["shape"])
        shapes.sort(key=lambda s: (not (s[0] == s[1] == s[2]), s[0] * s[1] * s[2]))
        for t in threads:
            head = ["shape", "form", "fastdense", "% peak", "numpy", "torch", "× numpy", "× torch"]
            if t != 1:
                head.append("× own 1T")
            body = []
            for s in shapes:
                for form in GEMM_FORMS:
                    case = next((r["case"] for r in gem if r["shape"] == s and r["form"] == form), None)
                    f = R.get("gemm", case, "fastdense", t)
                    if f is None:
                        continue
                    row = [case.split(" ", 1)[1], form, _g(f), _pct(f.get("pct_peak"))]
                    for peer in ("numpy", "torch"):
                        p = R.get("gemm", case, peer, t)
                        row.append(f"{_g(p)} {_pct(p.get('pct_peak'))}" if p else "–")
                    row += [_x(f.get("ratio", {}).get("numpy")), _x(f.get("ratio", {}).get("torch"))]
                    if t != 1:
                        row.append(_x(f.get("scaling_vs_1t")))
                    body.append(row)
            L += ["", f"**{t} thread{'s' if t > 1 else ''}**", ""] + _table(head, body)
        body = []
        for r in R.where(group="gemm", lib="fastdense", threads=1):
            p = r.get("parts_pct_peak")
            if not p or not r.get("parts"):
                continue
            body.append([r["case"].split(" ", 1)[1], r["form"],
                         f"{_t(r['median_s'])} ({_pct(r.get('pct_peak'))})",
                         f"{_t(_parts_whole_s(r))} ({p['whole']:.0f}%)"]
                        + [f"{p[k]:.0f}%" for k in ("no_packing", "no_caller_c", "neither")]
                        + [_t(r["call_1x1_s"]) if r.get("call_1x1_s") else "–"])
        if body:
            L += ["", "**1 thread, the small shapes taken apart**: the timed call from Python "
                  "against the same one-thread GEMM called from C++ in the same process "
                  "(`_core.gemm_parts_gflops(0.1, shape=, form=)`: no Python, no argument "
                  "checks), whole and without packing, without the caller's C, without either "
                  "(medians of samples that run the four back to back; % of the 1-thread "
                  "peak), and the same call from Python on a 1×1·1×1 product (what crossing "
                  "into the kernel costs).",
                  ""] + _table(["shape", "form", "from Python", "from C++", "without packing",
                                "without C", "without either", "1×1·1×1 from Python"], body)

    # step
    steps = R.where(group="step")
    if steps:
        L += ["", "## Training step", "",
              "One step: forward, softmax cross-entropy, backward, SGD momentum 0.9 (lr 0.01); "
              "same initial weights and batch for every library. fastdense = `model.train_step`; "
              "numpy = hand-written step on preallocated buffers; torch = eager `nn.Linear`/"
              "`F.cross_entropy`/`optim.SGD`/`zero_grad(set_to_none=True)`; jax = whole step "
              "jitted, params and momentum donated. GFLOP/s and % peak count the step's matmul "
              "FLOPs only (forward 2·m·Σ in·out, backward twice that minus the first layer's "
              "input gradient).", ""]
        for t in threads:
            body = []
            for name in STEP_CONFIGS:
                f = R.get("step", name, "fastdense", t)
                if f is None:
                    continue
                row = [name, _trange(f)]
                for peer in PEERS:
                    p = R.get("step", name, peer, t)
                    row.append(_trange(p) if p else "–")
                row += [_x(f.get("ratio", {}).get(p_)) for p_ in PEERS]
                row += [f"{f['gflops']:.1f}", _pct(f.get("pct_peak")), f"{f['samples_per_s']:,.0f}"]
                body.append(row)
            L += ["", f"**{t} thread{'s' if t > 1 else ''}**", ""]
            L += _table(["config", "fastdense", "numpy", "torch", "jax", "× numpy", "× torch",
                         "× jax", "fd GFLOP/s", "fd % peak", "fd samples/s"], body)

    placed = [(name, lib, samples_by_placement(R.get("step", name, lib, 2)))
              for name in STEP_CONFIGS for lib in ["fastdense", *PEERS]
              if R.get("step", name, lib, 2)]
    placed = [(name, lib, by) for name, lib, by in placed if by]
    if placed:
        names = [p for p, _, _ in PLACEMENTS]
        L += ["", "## Where the two threads ran", "",
              "Before every 2-thread step sample and after the last, `fastdense._roundtrip` "
              "timed a cache line's round trip between two threads of the case's process: the "
              "host's placement of the two vCPUs ("
              + "; ".join(f"{n}: {lo:g}–{hi:g} ns" for n, lo, hi in PLACEMENTS)
              + "). A sample counts for a placement when the readings before and after it fall "
              "in the same one. Medians over all rounds' samples (count in brackets); the bar "
              "compares fastdense with a peer within each placement both were measured in, at "
              f"least {MIN_PLACED} samples each (the ratio of those two medians), and takes the "
              "lowest of those ratios over the placements with two physical cores (samples on "
              "one core are no 2-thread measurement; they are left out of the scaling and the "
              "peak share too).", ""]
        body = []
        for name, lib, by in placed:
            row = [name, lib]
            for n in names:
                v = by.get(n)
                row.append(f"{_t(statistics.median(v))} ({len(v)})" if v else "–")
            f = R.get("step", name, "fastdense", 2)
            ratios = f.get("ratio_by_placement", {}).get(lib) if f else None
            row.append(_placed(ratios) if ratios else "–")
            body.append(row)
        L += _table(["config", "library", *names, "fastdense × lib, same placement"], body)

    # profile
    prof = R.where(group="profile")
    if prof:
        L += ["", "## Where fastdense's step goes", "",
              "Every call into `fastdense._core` during `train_step`, timed from Python (see "
              "`bench/step_profile.py`); per step; GEMM GFLOP/s per kernel call. The rest of "
              "the step is the Python layer and binding overhead.", ""]
        for r in prof:
            body = []
            for k in r["kernels"]:
                shp = " · ".join("×".join(map(str, s)) for s in k["shapes"] if s)
                body.append([k["kernel"], shp, f"{k['calls_per_step']:g}", _t(k["s_per_step"]),
                             _pct(k["pct_of_step"]),
                             f"{k['gflops']:.1f}" if k.get("gflops") else "–"])
            body.append(["Python + binding overhead", "", "", _t(r["overhead_s"]),
                         _pct(100 * r["overhead_s"] / r["proxied_step_s"]), ""])
            body.append(["step (profiled / plain median)", "", "",
                         f"{_t(r['proxied_step_s'])} / {_t(r['step_median_s'])}", "", ""])
            L += ["", f"**{r['config']}, {r['threads']} thread{'s' if r['threads'] > 1 else ''}**", ""]
            L += _table(["call from Python", "operands", "calls", "time/step", "% step", "GFLOP/s"], body)
            ph = r.get("phases")
            if ph and ph.get("steps"):
                phases = _phases(ph)
                body = [[label, _t(v), _pct(100 * v / ph["wall_s"])] for label, v in phases]
                inside = sum(v for _, v in phases)
                body.append(["outside them (Python, binding, the call itself)",
                             _t(ph["wall_s"] - inside),
                             _pct(100 * (ph["wall_s"] - inside) / ph["wall_s"])])
                body.append(["step (wall, the same steps)", _t(ph["wall_s"]), ""])
                L += ["", f"Inside the one call (`MLPTrainer.set_phase_timing`, {ph['steps']} "
                      "steps timed by a clock read between the phases)"
                      + _split_text(ph) + ":", ""]
                L += _table(["phase", "time/step", "% step"], body)
            elif r.get("phases_error"):
                L += ["", f"(phase timing unavailable: {r['phases_error']})"]
            comps = r.get("components")
            if comps:
                body = [[c["part"], f"`{c['kernel']}`", _trange(c),
                         _pct(100 * c["median_s"] / r["components_s"]),
                         f"{c['gflops']:.1f}" if c.get("gflops") else "–"] for c in comps]
                body.append(["sum of the parts", "", _t(r["components_s"]), "", ""])
                L += ["", "Its kernels one at a time on the same shapes (each warm, so a lower "
                      "bound for the same work inside a step):", ""]
                L += _table(["part", "kernel", "time", "% of sum", "GFLOP/s"], body)
            elif r.get("components_error"):
                L += ["", f"(kernel-by-kernel breakdown unavailable: {r['components_error']})"]

    # epoch
    ep = R.where(group="epoch")
    if ep:
        L += ["", "## Fashion-MNIST epoch", "",
              "784-100-10, batch 100, SGD lr 0.05 momentum 0.9, one epoch from the same initial "
              "weights in the same batch order; time excludes data loading and evaluation. "
              "RSS is `ru_maxrss` of the case process (its peak resident set): after loading "
              "the data, and at the end — interpreter, imported libraries, the float32 dataset, "
              "the epoch's shuffled copy (torch) or one gathered batch (fastdense), model, "
              "optimizer and autograd state, test evaluation.", ""]
        body = []
        for r in sorted(ep, key=lambda r: (r["threads"], r["lib"] != "fastdense")):
            body.append([r["lib"], r["threads"], _trange(r), _x(r.get("ratio", {}).get("torch")),
                         f"{r['samples_per_s']:,.0f}", f"{r['train_loss']:.4f}",
                         f"{r['test_acc']:.4f}", f"{r['rss_after_load_mb']:.0f}",
                         f"{r['rss_end_mb']:.0f}"])
        L += _table(["library", "threads", "epoch time", "× torch", "samples/s", "train loss",
                     "test acc", "RSS after load (MiB)", "RSS end (MiB)"], body)
        data_note = ep[0].get("data")
        if data_note:
            L += ["", f"Data: {data_note}."]

    # threads really used
    def busy(r):
        return f"{r['cpu_util']:.2f}{_dag(r)}" if r and r.get("cpu_util") is not None else "–"

    big = max((r["shape"][0] for r in R.where(group="gemm") if r["square"]), default=None)
    cfgs = [c for c in STEP_CONFIGS if R.where(group="step", case=c)]
    if R.rows:
        libs = [lib for lib in ["fastdense", *PEERS] if any(r["lib"] == lib for r in R.rows)]
        head = ["library", "threads"]
        if big:
            head.append(f"GEMM X·W {big}³")
        head += [f"step {c}" for c in cfgs] + ["epoch"]
        body = []
        for t in threads:
            for lib in libs:
                row = [lib, t]
                if big:
                    row.append(busy(R.get("gemm", f"X·W {big}³", lib, t)))
                row += [busy(R.get("step", c, lib, t)) for c in cfgs]
                row.append(busy(R.get("epoch", R_EPOCH, lib, t)))
                body.append(row)
        L += ["", "## Threads actually busy", "",
              "CPU seconds of all the case process's threads / wall seconds over the timed "
              "samples: close to the thread count when the library really used its threads, "
              "lower where it leaves a thread idle (small problems, its own threading policy) or "
              "where another process took the core (†).", ""]
        L += _table(head, body)

    if plots:
        L += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    L += ["", "## Method", "",
          "Each case (group × library × thread count × shape/config) runs in its own process, "
          "pinned with `os.sched_setaffinity` to the first N cores, with OMP/OpenBLAS/MKL thread "
          "variables set before import, `fastdense.set_num_threads(N)`, `torch.set_num_threads(N)`; "
          "JAX is limited by the affinity mask (XLA sizes its pool from the schedulable CPUs) and, "
          "for 1 thread, `XLA_FLAGS=--xla_cpu_multi_thread_eigen=false "
          "intra_op_parallelism_threads=1`. Setup is outside the timed region; warm-up (for JAX "
          "including compilation and `block_until_ready`), then samples of ≥ 50 ms each "
          "(as many calls as that takes), median with min–max."]
    return "\n".join(L) + "\n"


def write(json_path, plots=True):
    """Write ``<prefix>.md`` (and ``<prefix>-*.png`` if matplotlib is available) next to the
    JSON; return the markdown path."""
    json_path = Path(json_path)
    data = json.loads(json_path.read_text(encoding="utf-8"))
    prefix = json_path.with_suffix("")
    made = []
    if plots:
        from bench import plots as _plots

        made, note = _plots.make(data, prefix)
        if note:
            data.setdefault("notes", []).append(note)
    md = prefix.with_name(prefix.name + ".md")
    md.write_text(markdown(data, made), encoding="utf-8")
    return md


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    ap.add_argument("json", type=Path)
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    md = write(args.json, plots=not args.no_plots)
    print(md.read_text(encoding="utf-8"))


if __name__ == "__main__":
    sys.exit(main())
