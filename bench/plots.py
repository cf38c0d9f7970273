"""PNG plots from a suite JSON (matplotlib, optional): GEMM GFLOP/s vs size per library and
form, and training-step time per configuration per library."""

from __future__ import annotations

from bench.common import GEMM_FORMS, STEP_CONFIGS

COLORS = {"fastdense": "tab:red", "numpy": "tab:blue", "torch": "tab:orange", "jax": "tab:green"}
STYLES = {1: "--", 2: "-"}


def _contended(r):
    return (r.get("foreign_load") or 0.0) > 0.25


def make(data, prefix):
    """Write ``<prefix>-gemm.png`` and ``<prefix>-step.png``; return (paths, note or None)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "plots skipped: matplotlib is not installed (pip install matplotlib)"
    rows = data["rows"]
    paths = []
    peak = {int(k): v for k, v in data["context"].get("peak_ref_gflops", {}).items()}

    gemm = [r for r in rows if r["group"] == "gemm" and r["square"]]
    if gemm:
        fig, axes = plt.subplots(1, len(GEMM_FORMS), figsize=(5 * len(GEMM_FORMS), 4.2),
                                 sharey=True)
        marked = False
        for ax, form in zip(axes, GEMM_FORMS):
            series = {}
            for r in gemm:
                if r["form"] == form:
                    series.setdefault((r["lib"], r["threads"]), []).append(r)
            for (lib, t), rs in sorted(series.items()):
                rs.sort(key=lambda r: r["shape"][0])
                x = [r["shape"][0] for r in rs]
                y = [r["gflops"] for r in rs]
                lo = [r["gflops"] - r["gflops_min"] for r in rs]
                hi = [r["gflops_max"] - r["gflops"] for r in rs]
                ax.errorbar(x, y, yerr=[lo, hi], color=COLORS.get(lib), ls=STYLES.get(t, ":"),
                            marker="o", ms=3, capsize=2, label=f"{lib} {t}T")
                bad = [(a, b) for a, b, r in zip(x, y, rs) if _contended(r)]
                if bad:
                    ax.plot(*zip(*bad), "x", color="black", ms=7, zorder=5)
                    marked = True
            for t, v in sorted(peak.items()):
                ax.axhline(v, color="gray", ls=STYLES.get(t, ":"), lw=0.8)
                ax.annotate(f"peak {t}T", (min(r["shape"][0] for r in gemm), v), fontsize=7,
                            color="gray", va="bottom")
            ax.set_xscale("log", base=2)
            ax.set_title(f"GEMM {form} (square n³)")
            ax.set_xlabel("n")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("GFLOP/s (median, min–max)")
        if marked:
            fig.suptitle("× : another process used this case's cores (†, unreliable)", fontsize=9)
        axes[-1].legend(fontsize=8)
        fig.tight_layout()
        p = prefix.with_name(prefix.name + "-gemm.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)

    steps = [r for r in rows if r["group"] == "step"]
    if steps:
        configs = [c for c in STEP_CONFIGS if any(r["config"] == c for r in steps)]
        libs = [lib for lib in COLORS if any(r["lib"] == lib for r in steps)]
        threads = sorted({r["threads"] for r in steps})
        fig, axes = plt.subplots(1, len(configs), figsize=(4 * len(configs), 4.2))
        axes = axes if len(configs) > 1 else [axes]
        width = 0.8 / max(1, len(libs))
        for ax, c in zip(axes, configs):
            for i, lib in enumerate(libs):
                xs, ys, lo, hi, hatch = [], [], [], [], []
                for j, t in enumerate(threads):
                    r = next((r for r in steps if r["config"] == c and r["lib"] == lib
                              and r["threads"] == t), None)
                    if r:
                        xs.append(j + (i - (len(libs) - 1) / 2) * width)
                        ys.append(r["median_s"] * 1e3)
                        lo.append((r["median_s"] - r["min_s"]) * 1e3)
                        hi.append((r["max_s"] - r["median_s"]) * 1e3)
                        hatch.append("//" if _contended(r) else None)
                bars = ax.bar(xs, ys, width, yerr=[lo, hi], color=COLORS[lib], label=lib, capsize=2)
                for b, h in zip(bars, hatch):
                    b.set_hatch(h)
            ax.set_xticks(range(len(threads)), [f"{t} thread{'s' if t > 1 else ''}" for t in threads])
            ax.set_yscale("log")
            ax.set_title(c, fontsize=10)
            ax.grid(alpha=0.3, axis="y")
        axes[0].set_ylabel("ms per training step (median, min–max; log; hatched: † other load)")
        axes[-1].legend(fontsize=8)
        fig.tight_layout()
        p = prefix.with_name(prefix.name + "-step.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths, None
