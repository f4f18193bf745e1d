"""Progress of a grid run: a rich line in a terminal, plain lines in a log."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ssmzoo.grid.config import Cell

__all__ = ["Progress", "cell_label"]


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def cell_label(cell: Cell) -> str:
    """A short label of a cell for progress lines: variant, the task's name and the seed, with the
    swept values (``s6 mqar s0``; a task spec's arguments are left out)."""
    from ssmzoo.spec import parse

    try:
        task = parse(cell.label_task or cell.task).name
    except Exception:
        task = cell.label_task or cell.task
    sweep = "".join(f" {k}={v}" for k, v in cell.sweep.items())
    return f"{cell.label_variant or cell.variant} {task} s{cell.seed}{sweep}"


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Progress of a grid run, readable at 80 columns.

    In a terminal: one rich line, ``cells ━━━━━━ 3/12 0:42 ETA 2:05 s6 mqar s0 120/400``
    (cells done, elapsed, time left from this run's pace, the running cells' short labels and
    steps). Otherwise (a batch job, ``nohup``, a pipe): one plain line per finished cell on
    stderr, with the same counts, so a log file shows where a run stands.
    """

    def __init__(self, cells: list[Cell], done: int, enabled: bool, *,
                 terminal: bool | None = None, console: Any = None) -> None:
        import sys

        self.total, self.done, self.enabled = len(cells), done, enabled
        self.start = time.monotonic()
        self.ran = 0  # cells finished by this run (the pace of the ETA)
        self.steps = {c.key: max(1, int(c.train.get("steps", 0) or 1)) for c in cells}
        self.running: dict[str, tuple[str, int]] = {}  # key -> (label, step)
        self.drawn = 0.0  # when the terminal line was last redrawn
        self.bar = None
        self.stream = sys.stderr
        if not enabled:
            return
        if terminal is None:
            terminal = self.stream.isatty()
        if not terminal:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        console = console or Console(file=self.stream)
        self.bar = Progress(TextColumn("cells"), BarColumn(bar_width=16), MofNCompleteColumn(),
                            TextColumn("{task.fields[clock]}"),
                            TextColumn("{task.fields[detail]}"), console=console,
                            transient=False, refresh_per_second=4)
        self.task = self.bar.add_task("cells", total=self.total, completed=done, clock="",
                                      detail="")
        self.bar.start()

    def _eta(self) -> str:
        elapsed = time.monotonic() - self.start
        frac = self.ran + sum(step / self.steps.get(key, 1)
                              for key, (_, step) in self.running.items())
        left = self.total - self.done - frac
        if frac <= 0 or left <= 0:
            return _clock(elapsed)
        return f"{_clock(elapsed)} ETA {_clock(elapsed / frac * left)}"

    def _refresh(self) -> None:
        if self.bar is None:
            return
        width = max(10, self.bar.console.width - 44)  # what the bar, counts and clocks leave
        detail = "  ".join(f"{label} {step}/{self.steps.get(key, 1)}"
                           for key, (label, step) in self.running.items())
        self.bar.update(self.task, completed=self.done, clock=self._eta(),
                        detail=_short(detail, width))

    def started(self, cell: Cell) -> None:
        self.running[cell.key] = (cell_label(cell), 0)
        self._refresh()

    def step(self, key: str, step: int) -> None:
        """A running cell reached ``step``: called from the training loop, so the line is
        redrawn at most 10 times a second, not once per training step."""
        if key in self.running:
            self.running[key] = (self.running[key][0], step)
            now = time.monotonic()
            if now - self.drawn >= 0.1:
                self.drawn = now
                self._refresh()

    def cell(self, cell: Cell) -> Callable[[int, float], None]:
        """The training loop's progress callback for ``cell`` (the in-process executor)."""
        self.started(cell)
        return lambda step, loss: self.step(cell.key, step)

    def advance(self, record: dict[str, Any]) -> None:
        label = self.running.pop(record["key"], (record.get("variant", "?"), 0))[0]
        self.done += 1
        self.ran += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self._refresh()
            return
        metric = record.get("metric")
        value = record.get("test") if record.get("test") is not None else record.get("val")
        shown = f" {metric} {value:.4g}" if metric and isinstance(value, (int, float)) else ""
        took = record.get("wall_time")
        took_text = f" in {took:.0f}s" if isinstance(took, (int, float)) else ""
        print(_short(f"[{self.done}/{self.total}] {label}: {record.get('status')}{shown}"
                     f"{took_text}; {self._eta()}", 100), file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
