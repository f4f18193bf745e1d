"""Reports of a grid directory: a markdown table, a CSV of every cell, the status, PNG plots.

The table has one row per variant (and per combination of swept values) and one column per task:
the task's main metric on the test split (validation when there is no test), mean ± std over the
seeds that finished. Cells that diverged or failed are counted beside the numbers, never averaged.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ssmzoo.grid.store import GridStoreError, Store

__all__ = ["load_rows", "summarize", "markdown", "to_csv", "status_text", "final_metric",
           "write_report"]


def load_rows(directory: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """(grid name, cells of the latest plan in plan order; every recorded cell if no plan)."""
    with Store(directory, readonly=True) as store:
        plan = store.meta("plan")
        return store.meta("name", Path(directory).name), store.rows(plan)


def final_metric(row: dict[str, Any]) -> float:
    """A cell's main metric: test split if evaluated, else the last validation; NaN if none."""
    metric = row.get("metric")
    for split in ("test", "val"):
        values = row.get(split) or {}
        if metric in values:
            return float(values[metric])
    return math.nan


def _sweep_label(sweep: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sweep.items())


def summarize(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (variant, swept values, task): values over seeds, mean, std, status counts."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        sweep = r.get("sweep") or {}
        key = (r["variant"], json.dumps(sweep, sort_keys=True), r["task"])
        g = groups.setdefault(key, {"variant": r["variant"], "sweep": sweep, "task": r["task"],
                                    "metric": r.get("metric"), "higher_is_better":
                                    r.get("higher_is_better"), "values": [], "seeds": [],
                                    "status": {}})
        g["status"][r["status"]] = g["status"].get(r["status"], 0) + 1
        if r.get("metric") and g["metric"] is None:
            g["metric"], g["higher_is_better"] = r["metric"], r.get("higher_is_better")
        value = final_metric(r)
        if r["status"] == "ok" and math.isfinite(value):
            g["values"].append(value)
            g["seeds"].append(r["seed"])
    for g in groups.values():
        vals = g["values"]
        g["mean"] = statistics.fmean(vals) if vals else math.nan
        g["std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0 if vals else math.nan
    return list(groups.values())


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "—"
    a = abs(x)
    return f"{x:.3f}" if 1e-2 <= a < 1e3 else f"{x:.3g}" if a else "0"


def _pm(mean: float, std: float) -> str:
    """``mean ± std`` with the same decimals for both where the mean reads well with three."""
    if math.isfinite(mean) and math.isfinite(std) and 1e-2 <= abs(mean) < 1e3:
        return f"{mean:.3f} ± {std:.3f}"
    return f"{_fmt(mean)} ± {_fmt(std)}"


def _cell_text(g: dict[str, Any]) -> str:
    text = _pm(g["mean"], g["std"]) if g["values"] else "—"
    bad = {k: v for k, v in g["status"].items() if k != "ok"}
    if bad:
        text += " (" + ", ".join(f"{v} {k}" for k, v in sorted(bad.items())) + ")"
    return text


def markdown(rows: list[dict[str, Any]], *, title: str = "") -> str:
    """The markdown table (mean ± std over seeds, per variant and task)."""
    summary = summarize(rows)
    if not summary:
        return f"## {title}\n\nno finished cells yet\n" if title else "no finished cells yet\n"
    tasks = list(dict.fromkeys(g["task"] for g in summary))
    lines_keys = list(dict.fromkeys((g["variant"], _sweep_label(g["sweep"])) for g in summary))
    by = {(g["variant"], _sweep_label(g["sweep"]), g["task"]): g for g in summary}
    head = {t: next(g for g in summary if g["task"] == t) for t in tasks}
    best: dict[str, float] = {}
    for t in tasks:
        means = [g["mean"] for g in summary if g["task"] == t and math.isfinite(g["mean"])]
        if means:
            best[t] = max(means) if head[t]["higher_is_better"] else min(means)
    swept = any(s for _, s in lines_keys)
    cols = ["variant"] + (["sweep"] if swept else []) + [
        f"{t} ({head[t]['metric'] or '?'} {'↑' if head[t]['higher_is_better'] else '↓'})"
        for t in tasks]
    out = [f"## {title}", ""] if title else []
    n_seeds = max((sum(g["status"].values()) for g in summary), default=0)
    out.append(f"mean ± std over seeds (up to {n_seeds} per entry); test split where evaluated.")
    out.append("")
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "|".join(["---"] * (1 + swept) + ["---:"] * len(tasks)) + "|")
    for variant, sweep in lines_keys:
        cells = [f"`{variant}`"] + ([sweep or "—"] if swept else [])
        for t in tasks:
            g = by.get((variant, sweep, t))
            text = _cell_text(g) if g else ""
            if g and t in best and g["values"] and g["mean"] == best[t]:
                text = f"**{text}**"
            cells.append(text)
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    """One row per cell: variant, task, seed, swept values, status, metric and final metrics."""
    sweep_keys = list(dict.fromkeys(k for r in rows for k in (r.get("sweep") or {})))
    metric_keys = list(dict.fromkeys(f"{split}_{k}" for r in rows for split in ("val", "test")
                                     for k in (r.get(split) or {})))
    fields = (["variant", "task", "seed", *sweep_keys, "status", "metric", "value",
               *metric_keys, "steps", "n_params", "wall_time", "key", "error"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        line: dict[str, Any] = {k: r.get(k) for k in ("variant", "task", "seed", "status",
                                                      "metric", "steps", "n_params", "key")}
        line.update(r.get("sweep") or {})
        line["value"] = final_metric(r)
        line["wall_time"] = round(r["wall_time"], 3) if r.get("wall_time") is not None else None
        for split in ("val", "test"):
            for k, v in (r.get(split) or {}).items():
                line[f"{split}_{k}"] = v
        line["error"] = (r.get("error") or "").splitlines()[0] if r.get("error") else ""
        w.writerow(line)
    return buf.getvalue()


def status_text(directory: str | Path) -> str:
    """Cells planned, finished by status, pending; the first line of each failure."""
    with Store(directory, readonly=True) as store:
        plan = store.meta("plan") or []
        name = store.meta("name", Path(directory).name)
        statuses = store.statuses()
        rows = store.rows(plan)
    counts: dict[str, int] = {}
    for key in plan:
        s = statuses.get(key, "pending")
        counts[s] = counts.get(s, 0) + 1
    done = sum(v for k, v in counts.items() if k != "pending")
    lines = [f"grid {name!r} in {directory}: {done}/{len(plan)} cells recorded"]
    lines += [f"  {k:<9}{counts[k]}" for k in ("ok", "diverged", "failed", "pending") if k in counts]
    stale = len(statuses) - len(set(statuses) & set(plan))
    if stale:
        lines.append(f"  ({stale} more recorded cells belong to an earlier version of the grid)")
    for r in rows:
        if r["status"] in ("failed", "diverged"):
            first = (r.get("error") or "").splitlines()[0] if r.get("error") else ""
            lines.append(f"  {r['status']}: {r['variant']} | {r['task']} | seed {r['seed']}: "
                         f"{first}")
    return "\n".join(lines)


def write_report(directory: str | Path, *, plots: bool = True) -> dict[str, Path]:
    """Write ``report.md``, ``report.csv`` and (with matplotlib) PNG plots into the directory."""
    directory = Path(directory)
    name, rows = load_rows(directory)
    files = {"md": directory / "report.md", "csv": directory / "report.csv"}
    try:
        files["md"].write_text(markdown(rows, title=f"grid {name}"))
        files["csv"].write_text(to_csv(rows))
        if plots and rows:
            from ssmzoo.grid.plots import plot_all

            files.update(plot_all(rows, directory))
    except OSError as exc:
        raise GridStoreError(f"grid report: cannot write the report files into "
                             f"{str(directory)!r}: {exc.strerror or exc} (the results are "
                             f"intact; `ssmzoo grid report DIR` prints them)") from None
    return files
