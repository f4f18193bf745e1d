"""Run a reproduction grid, including cells that are measurements rather than training runs.

:func:`run_cell` is :func:`ssmzoo.grid.cell.run_cell` plus one rule: a task with a ``run_cell``
method (see :mod:`ssmzoo.repro.tasks`) runs the cell itself. :func:`run` runs a grid file or a
built-in grid with it into the grid runner's SQLite store (resumable, one row per cell), then
writes the grid report and this package's own tables, so ``ssmzoo grid report DIR`` and
``ssmzoo grid status DIR`` work on its output::

    python -m ssmzoo.repro dt-gradient-growth --out runs/dt-gradient-growth
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from ssmzoo.registry import Registry

__all__ = ["run_cell", "run", "extra_report"]


def run_cell(cell: dict[str, Any], *, grid: str = "", device: str | None = None,
             registry: Registry | None = None,
             progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """One cell (``Cell.to_dict()``) -> the row to store; never raises for a failed cell."""
    from ssmzoo.grid.cell import run_cell as train_cell
    from ssmzoo.grid.cell import versions
    from ssmzoo.repro._plugin import ensure_registered

    reg = ensure_registered(registry)
    try:
        task = reg.build_task(cell["task"])
    except Exception:  # the training path records the error the usual way
        return train_cell(cell, grid=grid, device=device, registry=reg, progress=progress)
    if not hasattr(task, "run_cell"):
        return train_cell(cell, grid=grid, device=device, registry=reg, progress=progress)
    from ssmzoo.train import TrainConfig

    start = time.perf_counter()
    train = dict(cell["train"])
    if device is not None:
        train["device"] = device
    record: dict[str, Any] = {
        "key": cell["key"], "grid": grid, "variant": cell["label_variant"] or cell["variant"],
        "task": cell["label_task"] or cell["task"], "seed": cell["seed"], "sweep": cell["sweep"],
        "config": {"variant": cell["variant"], "task": cell["task"], "model": cell["model_spec"],
                   "train": train, "seed": cell["seed"], "sweep": cell["sweep"]},
        "metric": task.metric, "higher_is_better": int(task.higher_is_better),
    }
    try:
        result, resolved = task.run_cell(cell["variant"], model=cell["model"],
                                         train=TrainConfig.from_dict(train), seed=cell["seed"],
                                         progress=progress, registry=reg)
        record["config"].update(model=resolved.get("model", ""), train=resolved.get("train", {}))
        record.update(status=result.status, val=result.val, test=result.test,
                      history=result.history, error=result.error or None, steps=result.steps,
                      n_params=result.n_params, wall_time=result.wall_time)
    except Exception as exc:  # recorded, and the grid goes on
        tail = "".join(traceback.format_exception(exc)[-3:]).strip()
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}\n{tail}",
                      wall_time=time.perf_counter() - start)
    record["versions"] = versions()
    record["finished_at"] = time.time()
    return record


def run(grid: str, *, out: str | Path | None = None, device: str | None = None,
        retry_failed: bool = False, progress: bool = True) -> Path:
    """Run ``grid`` (a file or a built-in name) into ``out`` (default ``runs/NAME``) and write
    the reports; returns the directory."""
    from ssmzoo.errors import OptionalDependencyError
    from ssmzoo.grid.config import load_grid
    from ssmzoo.grid.report import write_report
    from ssmzoo.grid.runner import _Progress, plan
    from ssmzoo.grid.store import Store
    from ssmzoo.repro._plugin import ensure_registered

    reg = ensure_registered()
    cfg = load_grid(grid, registry=reg)
    directory = Path(out) if out is not None else Path("runs") / cfg.name
    with Store(directory) as store:
        store.set_meta(name=cfg.name, path=cfg.path, toml=cfg.text,
                       plan=[c.key for c in cfg.cells])
        todo, _ = plan(cfg, store, retry_failed=retry_failed)
        bar = _Progress(len(cfg.cells), len(cfg.cells) - len(todo), progress)
        try:
            for cell in todo:
                record = run_cell(cell.to_dict(), grid=cfg.name, device=device, registry=reg,
                                  progress=bar.cell(cell))
                store.write(record)
                bar.advance(record)
        finally:
            bar.close()
    try:
        write_report(directory)
    except OptionalDependencyError:  # no matplotlib: the tables without the plots
        write_report(directory, plots=False)
    extra_report(directory)
    return directory


def extra_report(directory: str | Path) -> Path | None:
    """Write ``repro.md`` (and ``repro.png``) for grids whose cells carry more than one number:
    the measured points of ``dt_gradients`` and the length x method table of
    ``length_extension``. Returns the markdown path, or None when there is nothing to add."""
    from ssmzoo.grid.report import load_rows
    from ssmzoo.repro.report import render

    directory = Path(directory)
    name, rows = load_rows(directory)
    text = render(name, rows, directory)
    if not text:
        return None
    path = directory / "repro.md"
    path.write_text(text)
    return path
