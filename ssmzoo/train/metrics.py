"""Per-step metrics of a run: ``metrics.csv`` in its folder, and TensorBoard events on request.

The CSV has one row per optimizer step: ``step, loss, lr`` and the validation metrics in the rows
of steps where the run evaluated (empty elsewhere). A resumed run first drops the rows written
after its checkpoint (a killed run may have got further than its last checkpoint), then appends,
so the file of a resumed run equals that of an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from ssmzoo.errors import OptionalDependencyError

__all__ = ["MetricsLog", "read_metrics"]


def _cell(value: float) -> str:
    return repr(float(value))  # shortest text that reads back to the same float


class MetricsLog:
    """Appends one CSV row per step to ``run_dir/metrics.csv`` (and TensorBoard scalars)."""

    def __init__(self, run_dir: str | os.PathLike[str], metric_names: list[str], *,
                 upto: int = 0, tensorboard: bool = False):
        self.path = Path(run_dir) / "metrics.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = ["step", "loss", "lr", *(f"val_{n}" for n in metric_names)]
        kept = self._kept_rows(upto)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(kept)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        tmp.write_text(text.getvalue())
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", newline="")
        self._csv = csv.writer(self._fh, lineterminator="\n")
        self._tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._fh.close()
                raise OptionalDependencyError("tensorboard", "train: tensorboard=true",
                                              extra="tensorboard") from None
            self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=upto + 1)

    def _kept_rows(self, upto: int) -> list[list[str]]:
        if not upto or not self.path.exists():
            return []
        with open(self.path, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows or rows[0] != self.columns:
            return []
        return [r for r in rows[1:] if r and int(r[0]) <= upto]

    def write(self, step: int, loss: float, lr: float, metrics: dict[str, float]) -> None:
        row = [str(step), _cell(loss), _cell(lr)]
        row += [_cell(metrics[c[4:]]) if c[4:] in metrics else "" for c in self.columns[3:]]
        self._csv.writerow(row)
        self._fh.flush()
        if self._tb is not None:
            self._tb.add_scalar("train/loss", loss, step)
            self._tb.add_scalar("train/lr", lr, step)
            for name, value in metrics.items():
                if math.isfinite(value):
                    self._tb.add_scalar(f"val/{name}", value, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The rows of ``run_dir/metrics.csv`` as dicts of floats (empty cells left out)."""
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]
