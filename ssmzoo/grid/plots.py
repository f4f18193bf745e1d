"""PNG plots of a grid: the metric by variant, learning curves, the training loss, the metric
against a swept axis. Every metric axis says which way is better.

matplotlib is imported here only (with the non-interactive Agg backend); without it, asking for
plots raises OptionalDependencyError with the install command.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from ssmzoo.errors import OptionalDependencyError
from ssmzoo.grid.report import direction, final_metric, summarize, task_labels

__all__ = ["plot_all", "plot_by_variant", "plot_curves", "plot_train_loss", "plot_sweep",
           "has_train_loss"]


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise OptionalDependencyError("matplotlib", "grid plots", "plots") from None
    return plt


def _grid(plt: Any, n: int) -> tuple[Any, list[Any]]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    flat = [a for row in axes for a in row]
    for a in flat[n:]:
        a.set_visible(False)
    return fig, flat[:n]


def _wrap(title: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(title, width)) or title


def _title(task: str, tasks: list[str]) -> str:
    """The panel title: the table's short label of the task, then its full spec."""
    label = task_labels(tasks)[task]
    return _wrap(task if label == task else f"{label}: {task}")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


def _label(metric: str | None, higher_is_better: Any, prefix: str = "") -> str:
    return f"{prefix}{metric or 'metric'} ({direction(higher_is_better)})"


def _err(std: float) -> float:
    return std if math.isfinite(std) else 0.0  # one seed: no error bar


def plot_by_variant(rows: list[dict[str, Any]], path: Path) -> Path:
    """One panel per task: the main metric per variant (mean ± std over seeds; one seed: no
    error bar)."""
    plt = _plt()
    summary = summarize(rows)
    tasks = list(dict.fromkeys(g["task"] for g in summary))
    fig, axes = _grid(plt, len(tasks))
    for ax, task in zip(axes, tasks):
        gs = [g for g in summary if g["task"] == task]
        labels = [g["variant"] + (f"\n{_sweep(g['sweep'])}" if g["sweep"] else "") for g in gs]
        errs = [_err(g["std"]) for g in gs]
        ax.bar(range(len(gs)), [g["mean"] for g in gs], yerr=errs if any(errs) else None,
               capsize=3, color="tab:blue", alpha=0.8)
        ax.set_xticks(range(len(gs)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(_title(task, tasks), fontsize=8)
        ax.set_ylabel(_label(gs[0]["metric"], gs[0]["higher_is_better"]), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sweep(sweep: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sweep.items())


def plot_curves(rows: list[dict[str, Any]], path: Path) -> Path:
    """One panel per task: the validation metric against the step, per variant (mean over seeds)."""
    plt = _plt()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = _grid(plt, len(tasks))
    for ax, task in zip(axes, tasks):
        curves: dict[str, dict[int, list[float]]] = {}
        metric, better = None, None
        for r in rows:
            if r["task"] != task or not r.get("history"):
                continue
            metric, better = r.get("metric"), r.get("higher_is_better")
            label = r["variant"] + (f" ({_sweep(r['sweep'])})" if r.get("sweep") else "")
            for h in r["history"]:
                if metric in h and isinstance(h[metric], (int, float)):
                    curves.setdefault(label, {}).setdefault(int(h["step"]), []).append(h[metric])
        for label, points in curves.items():
            steps = sorted(points)
            ax.plot(steps, [statistics.fmean(points[s]) for s in steps], marker=".", label=label)
        ax.set_title(_title(task, tasks), fontsize=8)
        ax.set_xlabel("step")
        ax.set_ylabel(_label(metric, better, "val "), fontsize=8)
        if curves:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _loss_points(rows: list[dict[str, Any]], task: str) -> dict[str, dict[int, list[float]]]:
    """Per variant label: the training loss recorded at each evaluation's step, over seeds."""
    out: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if r["task"] != task or r["status"] != "ok":
            continue
        label = r["variant"] + (f" ({_sweep(r['sweep'])})" if r.get("sweep") else "")
        for h in r.get("history") or []:
            loss = h.get("train_loss")
            if isinstance(loss, (int, float)) and math.isfinite(loss):
                out.setdefault(label, {}).setdefault(int(h["step"]), []).append(float(loss))
    return out


def has_train_loss(rows: list[dict[str, Any]]) -> bool:
    """Whether any finished cell recorded a training loss (measurement cells record none)."""
    return any(_loss_points(rows, t) for t in dict.fromkeys(r["task"] for r in rows))


def plot_train_loss(rows: list[dict[str, Any]], path: Path) -> Path:
    """One panel per task: the training loss (mean over the steps since the previous evaluation,
    as the history records it) against the step, per variant, mean over seeds. Where each variant
    has a single point (evaluated at the end only), the final training loss per variant as bars."""
    plt = _plt()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = _grid(plt, len(tasks))
    for ax, task in zip(axes, tasks):
        curves = _loss_points(rows, task)
        if curves and all(len(points) == 1 for points in curves.values()):
            labels = list(curves)
            ax.bar(range(len(labels)), [statistics.fmean(next(iter(curves[k].values())))
                                        for k in labels], color="tab:orange", alpha=0.8)
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        else:
            for label, points in curves.items():
                steps = sorted(points)
                ax.plot(steps, [statistics.fmean(points[s]) for s in steps], marker=".",
                        label=label)
            ax.set_xlabel("step")
            values = [v for p in curves.values() for vs in p.values() for v in vs]
            if values and min(values) > 0 and max(values) / min(values) >= 20:
                ax.set_yscale("log")
            if curves:
                ax.legend(fontsize=7)
        ax.set_title(_title(task, tasks), fontsize=8)
        ax.set_ylabel(_label("training loss", False), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweep(rows: list[dict[str, Any]], key: str, path: Path) -> Path:
    """One panel per task: the main metric against the swept ``key``, one line per variant."""
    plt = _plt()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = _grid(plt, len(tasks))
    for ax, task in zip(axes, tasks):
        lines: dict[str, dict[Any, list[float]]] = {}
        metric, better = None, None
        for r in rows:
            value = final_metric(r)
            if r["task"] != task or r["status"] != "ok" or not math.isfinite(value):
                continue
            metric, better = r.get("metric"), r.get("higher_is_better")
            x = (r.get("sweep") or {}).get(key)
            others = {k: v for k, v in (r.get("sweep") or {}).items() if k != key}
            label = r["variant"] + (f" ({_sweep(others)})" if others else "")
            lines.setdefault(label, {}).setdefault(x, []).append(value)
        for label, points in lines.items():
            xs = sorted(points, key=lambda v: (isinstance(v, str), v))
            numeric = all(isinstance(x, (int, float)) for x in xs)
            pos = xs if numeric else list(range(len(xs)))
            ax.errorbar(pos, [statistics.fmean(points[x]) for x in xs],
                        yerr=[statistics.stdev(points[x]) if len(points[x]) > 1 else 0 for x in xs],
                        marker="o", capsize=3, label=label)
            if not numeric:
                ax.set_xticks(pos, [str(x) for x in xs])
            elif all(x > 0 for x in xs) and max(xs) / min(xs) >= 20:
                ax.set_xscale("log")
        ax.set_title(_title(task, tasks), fontsize=8)
        ax.set_xlabel(key)
        ax.set_ylabel(_label(metric, better), fontsize=8)
        if lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(rows: list[dict[str, Any]], directory: Path) -> dict[str, Path]:
    """Every plot that the rows support, written into ``directory``."""
    out = {"by_variant": plot_by_variant(rows, directory / "metric_by_variant.png"),
           "curves": plot_curves(rows, directory / "learning_curves.png")}
    if has_train_loss(rows):
        out["train_loss"] = plot_train_loss(rows, directory / "train_loss.png")
    for key in dict.fromkeys(k for r in rows for k in (r.get("sweep") or {})):
        out[f"sweep:{key}"] = plot_sweep(rows, key, directory / f"sweep_{_safe(key)}.png")
    return out
