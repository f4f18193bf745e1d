"""Reports of a grid directory: a table (markdown, or rich in a terminal), a CSV of every cell,
the status, PNG plots.

The table has one row per variant (and per combination of swept values) and one column per task:
the task's main metric on the test split (validation when there is no test), mean ± std over the
seeds that finished (the value alone when one seed finished: no standard deviation of one value).
Cells that diverged or failed are counted beside the numbers, never averaged. A column is headed
by the task's name (``mqar``, ``mqar#2`` for a second task of that name) and its metric; the full
task specs are listed below the table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssmzoo.grid.store import GridStoreError, Store

__all__ = ["load_rows", "summarize", "task_labels", "report_table", "markdown", "rich_table",
           "Entry", "ReportTable", "TaskColumn",
           "to_csv", "status_text", "final_metric", "write_report", "direction"]


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
    """One entry per (variant, swept values, task): values over seeds, their count ``n``, mean,
    std (NaN below two values), status counts."""
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
        g["n"] = len(vals)
        g["mean"] = statistics.fmean(vals) if vals else math.nan
        g["std"] = statistics.stdev(vals) if len(vals) > 1 else math.nan  # none of one value
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


def direction(higher_is_better: Any) -> str:
    """``higher is better`` or ``lower is better``, for axis labels and legends."""
    return "higher is better" if higher_is_better else "lower is better"


def _short_name(task: str) -> str:
    from ssmzoo.errors import SSMZooError
    from ssmzoo.spec import parse

    try:
        return parse(task).name
    except SSMZooError:  # a label that is not a spec: its text up to the first parenthesis
        return task.split("(", 1)[0].strip() or task


def task_labels(tasks: Iterable[str]) -> dict[str, str]:
    """A short column label per task spec: its name, with ``#2``, ``#3`` for later tasks of the
    same name (``mqar(seq_len=64)``, ``mqar(seq_len=256)`` -> ``mqar``, ``mqar#2``)."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for task in dict.fromkeys(tasks):
        name = _short_name(task)
        seen[name] = seen.get(name, 0) + 1
        out[task] = name if seen[name] == 1 else f"{name}#{seen[name]}"
    return out


@dataclass
class TaskColumn:
    """One column of the table: a task's short label, full spec, main metric and its direction."""

    label: str
    spec: str
    metric: str
    higher_is_better: bool

    @property
    def header(self) -> str:
        return f"{self.label} ({self.metric} {'↑' if self.higher_is_better else '↓'})"


@dataclass
class Entry:
    """One entry of the table: the value (``0.600 ± 0.100``, ``0.812`` for one seed, ``—`` when
    no seed finished, empty when there is no such cell), notes (seed count where it is lower than
    the others', cells that diverged or failed) and whether it is the best of its column."""

    value: str
    notes: str = ""
    best: bool = False

    @property
    def text(self) -> str:
        return self.value + (f" ({self.notes})" if self.notes else "")


@dataclass
class ReportTable:
    """What the markdown and the terminal tables show, before either is rendered."""

    title: str
    note: str
    columns: list[TaskColumn]
    sweep_keys: list[str]
    lines: list[tuple[str, dict[str, Any], list[Entry]]]  # variant, swept values, one per task
    legend: list[TaskColumn] = field(default_factory=list)  # columns whose label is not the spec


def _entry(g: dict[str, Any], n_ref: int, best: float | None) -> Entry:
    n = g["n"]
    value = _pm(g["mean"], g["std"]) if n >= 2 else _fmt(g["mean"]) if n == 1 else "—"
    notes = [f"n={n}"] if 0 < n < n_ref else []
    bad = {k: v for k, v in g["status"].items() if k != "ok"}
    notes += [f"{v} {k}" for k, v in sorted(bad.items())]
    return Entry(value, ", ".join(notes), bool(n) and g["mean"] == best)


def _note(counts: list[int]) -> str:
    where = "test split where evaluated."
    if not counts:
        return f"no cell finished; {where}"
    lo, hi = min(counts), max(counts)
    if hi == 1:
        return f"one seed per entry (n=1: no std); {where}"
    if lo == hi:
        return f"mean ± std over {hi} seeds per entry; {where}"
    return (f"mean ± std over the seeds that finished ({hi} per entry, n=k where fewer; one seed: "
            f"the value alone); {where}")


def report_table(rows: list[dict[str, Any]], *, title: str = "") -> ReportTable | None:
    """The table of the rows (``None`` when no cell is recorded yet)."""
    summary = summarize(rows)
    if not summary:
        return None
    tasks = list(dict.fromkeys(g["task"] for g in summary))
    labels = task_labels(tasks)
    head = {t: next(g for g in summary if g["task"] == t) for t in tasks}
    columns = [TaskColumn(labels[t], t, head[t]["metric"] or "?", bool(head[t]["higher_is_better"]))
               for t in tasks]
    keys = list(dict.fromkeys((g["variant"], _sweep_label(g["sweep"])) for g in summary))
    by = {(g["variant"], _sweep_label(g["sweep"]), g["task"]): g for g in summary}
    best: dict[str, float] = {}
    for t in tasks:
        means = [g["mean"] for g in summary if g["task"] == t and math.isfinite(g["mean"])]
        if means:
            best[t] = max(means) if head[t]["higher_is_better"] else min(means)
    counts = [g["n"] for g in summary if g["n"]]
    n_ref = max(counts, default=0)
    sweeps = {(g["variant"], _sweep_label(g["sweep"])): g["sweep"] for g in summary}
    lines = []
    for variant, sweep in keys:
        cells = []
        for t in tasks:
            g = by.get((variant, sweep, t))
            cells.append(_entry(g, n_ref, best.get(t)) if g else Entry(""))
        lines.append((variant, sweeps[(variant, sweep)], cells))
    sweep_keys = list(dict.fromkeys(k for g in summary for k in g["sweep"]))
    return ReportTable(title, _note(counts), columns, sweep_keys, lines,
                       [c for c in columns if c.label != c.spec])


def markdown(rows: list[dict[str, Any]], *, title: str = "") -> str:
    """The markdown table (mean ± std over seeds, per variant and task), the task specs below."""
    table = report_table(rows, title=title)
    if table is None:
        return f"## {title}\n\nno finished cells yet\n" if title else "no finished cells yet\n"
    swept = bool(table.sweep_keys)
    cols = ["variant"] + (["sweep"] if swept else []) + [c.header for c in table.columns]
    out = [f"## {title}", ""] if title else []
    out += [table.note, ""]
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "|".join(["---"] * (1 + swept) + ["---:"] * len(table.columns)) + "|")
    for variant, sweep, cells in table.lines:
        texts = [f"`{variant}`"] + ([_sweep_label(sweep) or "—"] if swept else [])
        texts += [f"**{e.text}**" if e.best else e.text for e in cells]
        out.append("| " + " | ".join(texts) + " |")
    if table.legend:
        out += ["", "Tasks:", ""]
        out += [f"- `{c.label}`: `{c.spec}`" for c in table.legend]
    return "\n".join(out) + "\n"


class _RichReport:
    """The terminal table, laid out at render time for the console's width."""

    def __init__(self, table: ReportTable) -> None:
        self.table = table

    def _widths(self, max_width: int) -> list[int | None]:
        """Every column's width when each value and each header line fits on one line beside
        a variant column of at least 8 (the variant then folds); else no widths (rich wraps
        values too, and nothing is cut off)."""
        table = self.table
        lines = table.lines
        variant = max(len(v) for v, _, _ in lines)
        sweeps = [max([len(k)] + [len(str(s.get(k, "—"))) for _, s, _ in lines])
                  for k in table.sweep_keys]
        tasks = [max([len(c.label), len(c.metric) + 2] + [len(cells[i].value)
                                                          for _, _, cells in lines])
                 for i, c in enumerate(table.columns)]
        n_cols = 1 + len(sweeps) + len(tasks)
        left = max_width - (sum(sweeps) + sum(tasks) + 2 * n_cols)  # 2: space between columns
        if left < min(8, variant):
            return [None] * n_cols
        return [min(variant, left), *sweeps, *tasks]

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = self.table
        t = Table(title=Text(table.title, style="bold") if table.title else None,
                  box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False,
                  collapse_padding=True)
        widths = self._widths(options.max_width)
        t.add_column("variant", overflow="fold", width=widths[0])
        for key, width in zip(table.sweep_keys, widths[1:]):  # a column per swept setting
            t.add_column(key, overflow="fold", width=width)
        for c, width in zip(table.columns, widths[1 + len(table.sweep_keys):]):
            t.add_column(Text(f"{c.label}\n{c.metric} {'↑' if c.higher_is_better else '↓'}"),
                         justify="right", overflow="fold", width=width)
        for variant, sweep, cells in table.lines:
            values = [Text(str(sweep[k]) if k in sweep else "—") for k in table.sweep_keys]
            entries = []
            for e in cells:
                text = Text(e.value, style="bold" if e.best else "")
                if e.notes:  # on a line of its own, below the value
                    text.append(f"\n{e.notes}", style="dim")
                entries.append(text)
            t.add_row(Text(variant), *values, *entries)
        yield t
        yield Text(table.note, style="dim")
        if table.legend:
            legend = Table.grid(padding=(0, 2))
            legend.add_column(style="bold")
            legend.add_column(overflow="fold")
            for c in table.legend:
                legend.add_row(Text(c.label), Text(c.spec))
            yield Text("tasks:")
            yield legend


def rich_table(rows: list[dict[str, Any]], *, title: str = "") -> Any:
    """The table for a terminal: a :mod:`rich` renderable (``Console().print(...)`` shows it),
    short task names as headers and the full task specs listed below it, laid out for the
    console's width (each value on one line where they fit)."""
    from rich.text import Text

    table = report_table(rows, title=title)
    if table is None:
        return Text(f"{title}: no finished cells yet" if title else "no finished cells yet")
    return _RichReport(table)


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
