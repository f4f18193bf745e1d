"""Tables and plots for the cells that carry more than one number (measurements, extension)."""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path
from typing import Any

__all__ = ["render", "dt_gradient_points", "instability"]

_POINT = re.compile(r"^ratio_(w|b)@(c|length)=(.+)$")


def _mean_std(values: list[float]) -> str:
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return "—"
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.fmean(vals):.3g} ± {std:.2g}"


def dt_gradient_points(rows: list[dict[str, Any]]) -> dict[str, dict[float, list[float]]]:
    """{"ratio_w vs c" | "ratio_b vs c" | "ratio_b vs length": {x: [value per seed]}}."""
    out: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        for k, v in (r.get("test") or {}).items():
            m = _POINT.match(k)
            if m and r.get("status") == "ok":
                series = out.setdefault(f"ratio_{m.group(1)} vs {m.group(2)}", {})
                series.setdefault(float(m.group(3)), []).append(float(v))
    return out


def _dt_section(rows: list[dict[str, Any]], directory: Path) -> list[str]:
    slopes: dict[str, list[float]] = {}
    for r in rows:
        if r.get("status") == "ok" and "slope" in (r.get("test") or {}):
            slopes.setdefault(r["task"], []).append(float(r["test"]["slope"]))
    points = dt_gradient_points(rows)
    lines = ["## Gradient growth in Δ's parameters (B2S6 Thm 3)", "",
             "| measurement | log-log slope (mean ± std over seeds) | paper |", "|---|---:|---:|"]
    paper = {"ratio_w vs c": "3", "ratio_b vs c": "2", "ratio_b vs length": "1/2"}
    for task, vals in slopes.items():
        m = _POINT.match(next((k for r in rows if r["task"] == task
                               for k in (r.get("test") or {}) if _POINT.match(k)), ""))
        label = f"ratio_{m.group(1)} vs {m.group(2)}" if m else task
        lines.append(f"| `{task}` | {_mean_std(vals)} | {paper.get(label, '?')} |")
    lines.append("")
    for label, series in points.items():
        xs = sorted(series)
        lines += [f"{label}: " + ", ".join(f"{x:g} → {_mean_std(series[x])}" for x in xs), ""]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return lines
    fig, axes = plt.subplots(1, max(len(points), 1), figsize=(4.2 * max(len(points), 1), 3.4))
    axes = list(axes) if len(points) > 1 else [axes]
    for ax, (label, series) in zip(axes, points.items()):
        xs = sorted(series)
        ys = [statistics.fmean(series[x]) for x in xs]
        ax.loglog(xs, ys, "o-", label="measured")
        want = {"ratio_w vs c": 3.0, "ratio_b vs c": 2.0, "ratio_b vs length": 0.5}[label]
        ax.loglog(xs, [ys[0] * (x / xs[0]) ** want for x in xs], "k--", lw=1,
                  label=f"slope {want:g}")
        ax.set_title(label)
        ax.legend()
    fig.tight_layout()
    fig.savefig(directory / "repro.png", dpi=120)
    plt.close(fig)
    lines += ["![gradient ratios](repro.png)", ""]
    return lines


def _extension_section(rows: list[dict[str, Any]], directory: Path) -> list[str]:
    from ssmzoo.repro.length_extension import extension_table

    lines = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        metrics = [r["test"] for r in rows if r["variant"] == variant and r.get("status") == "ok"
                   and any(k.startswith("ppl@") for k in (r.get("test") or {}))]
        if not metrics:
            continue
        lines += [f"## Length extension: `{variant}` (test perplexity, {len(metrics)} seeds)", "",
                  extension_table(metrics)]
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.6))
        keys = {k for m in metrics for k in m if k.startswith("ppl@")}
        for method in dict.fromkeys(k.split("/")[1] for k in sorted(keys)):
            xs = sorted({int(k[4:].split("/")[0]) for k in keys if k.endswith("/" + method)})
            ys = [statistics.fmean(m[f"ppl@{x}/{method}"] for m in metrics) for x in xs]
            ax.plot(xs, ys, "o-", label=method)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context length")
        ax.set_ylabel("test perplexity")
        ax.legend()
        fig.tight_layout()
        name = f"repro-{re.sub(r'[^A-Za-z0-9_.-]+', '_', variant)}.png"
        fig.savefig(directory / name, dpi=120)
        plt.close(fig)
        lines += [f"![perplexity by length]({name})", ""]
    return lines


def instability(history: list[dict[str, Any]], key: str = "loss",
                threshold: float = 1.5) -> tuple[int, float]:
    """(spikes, worst): how many evaluations had a validation ``key`` above ``threshold`` times
    the best value seen before them, and the largest such ratio (1.0: never above the best)."""
    best, spikes, worst = math.inf, 0, 1.0
    for entry in history:
        value = float(entry.get(key, math.nan))
        if not math.isfinite(value):
            continue
        if math.isfinite(best) and best > 0:
            ratio = value / best
            worst = max(worst, ratio)
            spikes += ratio > threshold
        best = min(best, value)
    return spikes, worst


def _stability_section(rows: list[dict[str, Any]]) -> list[str]:
    dense = [r for r in rows if r.get("status") in ("ok", "diverged")
             and len(r.get("history") or []) >= 8]
    if not dense:
        return []
    lines = ["## Training stability (validation loss between evaluations)", "",
             "spikes: evaluations whose validation loss exceeds 1.5x the best loss before them; "
             "worst: the largest such ratio; mean over seeds.", "",
             "| variant | task | final | spikes | worst |", "|---|---|---:|---:|---:|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in dense:
        groups.setdefault((r["variant"], r["task"]), []).append(r)
    for (variant, task), rs in groups.items():
        stats = [instability(r["history"]) for r in rs]
        finals = [float((r.get("test") or r.get("val") or {}).get(r.get("metric") or "loss",
                                                                   math.nan)) for r in rs]
        lines.append(f"| `{variant}` | `{task}` | {_mean_std(finals)} | "
                     f"{statistics.fmean(s for s, _ in stats):.1f} | "
                     f"{statistics.fmean(w for _, w in stats):.2f} |")
    return lines + [""]


def render(name: str, rows: list[dict[str, Any]], directory: Path) -> str:
    """The markdown of ``repro.md`` for these rows ("" when no row needs it); writes plots."""
    dt = [r for r in rows if "dt_gradients" in r["task"]]
    ext = [r for r in rows if "length_extension" in r["task"]]
    lines: list[str] = []
    if dt:
        lines += _dt_section(dt, directory)
    if ext:
        lines += _extension_section(ext, directory)
    lines += _stability_section([r for r in rows if r not in dt and r not in ext])
    return f"# grid {name}\n\n" + "\n".join(lines) if lines else ""
