"""The grid runner: validate, plan, skip what is done, run the rest locally or on Ray.

Every cell is written to SQLite the moment it ends (by the driver, in the order results arrive),
so a run killed at any point resumes where it stopped and never duplicates a cell.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssmzoo.errors import ConfigError, OptionalDependencyError
from ssmzoo.grid.cell import run_cell
from ssmzoo.grid.config import Cell, GridConfig, load_grid
from ssmzoo.grid.store import DONE, Store

if TYPE_CHECKING:
    from ssmzoo.registry import Registry

__all__ = ["run_grid", "GridRun", "plan"]

EXECUTORS = ("local", "ray")


@dataclass
class GridRun:
    """What a call of :func:`run_grid` did."""

    out: Path
    total: int
    skipped: int
    ran: int
    statuses: dict[str, int]


def plan(cfg: GridConfig, store: Store, *, retry_failed: bool = False) -> tuple[list[Cell], int]:
    """The cells still to run, and how many are skipped as already recorded."""
    done = store.statuses()
    todo, skipped = [], 0
    for cell in cfg.cells:
        status = done.get(cell.key)
        if status in DONE or (status == "failed" and not retry_failed):
            skipped += 1
        else:
            todo.append(cell)
    return todo, skipped


class _Progress:
    """A rich progress bar: cells done, and the current cell's step and loss (local executor)."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.bar = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.fields[detail]}"))
        self.task = self.bar.add_task("cells", total=total, completed=done, detail="")
        self.bar.start()

    def cell(self, cell: Cell) -> Callable[[int, float], None]:
        steps = cell.train.get("steps", 0)
        name = f"{cell.label_variant} | {cell.label_task} | seed {cell.seed}"

        def update(step: int, loss: float) -> None:
            if self.bar is not None:
                self.bar.update(self.task, detail=f"{name}  step {step}/{steps}  loss {loss:.4g}")
        update(0, float("nan"))
        return update

    def advance(self, record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1,
                            detail=f"{record['variant']} | {record['task']}: {record['status']}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run_grid(grid: str | GridConfig, *, out: str | Path | None = None, executor: str = "local",
             device: str | None = None, retry_failed: bool = False, address: str | None = None,
             num_cpus: int | None = None, registry: Registry | None = None,
             progress: bool = True) -> GridRun:
    """Run a grid file (path or built-in name) into ``out`` (default ``runs/NAME``).

    ``executor="ray"`` runs cells as Ray tasks on a local cluster started for the run (``num_cpus``
    CPUs) or on the cluster at ``address``; with ``device="cuda"`` each cell asks for one GPU.
    """
    if executor not in EXECUTORS:
        from ssmzoo.errors import did_you_mean

        raise ConfigError(f"grid run: executor expects one of {', '.join(EXECUTORS)}, got "
                          f"{executor!r}{did_you_mean(executor, EXECUTORS)}")
    if executor == "ray":
        _import_ray()  # fail before any work when Ray is missing
    cfg = grid if isinstance(grid, GridConfig) else load_grid(grid, registry=registry)
    out = Path(out) if out is not None else Path("runs") / cfg.name
    with Store(out) as store:
        store.set_meta(name=cfg.name, path=cfg.path, toml=cfg.text,
                       plan=[c.key for c in cfg.cells])
        todo, skipped = plan(cfg, store, retry_failed=retry_failed)
        bar = _Progress(len(cfg.cells), len(cfg.cells) - len(todo), progress)
        try:
            if executor == "local":
                for cell in todo:
                    record = run_cell(cell.to_dict(), grid=cfg.name, device=device,
                                      registry=registry, progress=bar.cell(cell))
                    store.write(record)
                    bar.advance(record)
            elif todo:
                _run_ray(cfg, todo, store, bar, device=device, address=address, num_cpus=num_cpus)
        finally:
            bar.close()
        statuses: dict[str, int] = {}
        keys = {c.key for c in cfg.cells}
        for key, status in store.statuses().items():
            if key in keys:
                statuses[status] = statuses.get(status, 0) + 1
    return GridRun(out, len(cfg.cells), skipped, len(todo), statuses)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise OptionalDependencyError("ray", "--executor ray", "ray") from None
    return ray


def _remote_cell(cell: dict[str, Any], grid: str, device: str | None) -> dict[str, Any]:
    return run_cell(cell, grid=grid, device=device)


def _run_ray(cfg: GridConfig, todo: list[Cell], store: Store, bar: _Progress, *,
             device: str | None, address: str | None, num_cpus: int | None) -> None:
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
        started = True
    try:
        gpus = 1 if device is not None and device.startswith("cuda") else 0
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_remote_cell)
        pending = {remote.remote(c.to_dict(), cfg.name, device): c for c in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception as exc:  # the worker died: record it like any failed cell
                    record = {"key": cell.key, "grid": cfg.name, "variant": cell.label_variant,
                              "task": cell.label_task, "seed": cell.seed, "sweep": cell.sweep,
                              "config": cell.to_dict(), "status": "failed",
                              "error": f"{type(exc).__name__}: {exc}"}
                store.write(record)
                bar.advance(record)
    finally:
        if started:
            ray.shutdown()
