"""The grid runner: validate, plan, skip what is done, run the rest locally or on Ray.

Every cell is written to SQLite the moment it ends (by the driver, in the order results arrive),
so a run killed at any point resumes where it stopped and never duplicates a cell.

Several runners (separate ``ssmzoo grid run`` processes on one results directory) share the work:
a runner trains a cell only after claiming it in the database (:meth:`Store.claim`), renews the
claim's lease from a background thread while the cell trains, and skips cells another runner
holds, coming back to them until they are recorded; a cell whose runner died is taken over once
its lease (``lease`` seconds, default :data:`LEASE`) runs out. Each cell is trained once.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
import uuid
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

__all__ = ["run_grid", "GridRun", "plan", "runner_id", "LEASE"]

EXECUTORS = ("local", "ray")
LEASE = 60.0  # seconds a claim lives without renewal; renewed every third of it


def runner_id() -> str:
    """A name for this runner, unique across processes and hosts: ``host:pid:random``."""
    return f"{platform.node() or 'host'}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class _Renewer:
    """Renews this runner's leases on the cells it holds, from a thread with its own connection."""

    def __init__(self, out: Path, runner: str, lease: float):
        self.out, self.runner, self.lease = out, runner, lease
        self.keys: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="ssmzoo-lease", daemon=True)
        self.thread.start()

    def hold(self, key: str) -> None:
        with self.lock:
            self.keys.add(key)

    def drop(self, key: str) -> None:
        with self.lock:
            self.keys.discard(key)

    def _loop(self) -> None:
        store = None
        try:
            while not self.stop.wait(self.lease / 3):
                with self.lock:
                    keys = list(self.keys)
                if not keys:
                    continue
                store = store or Store(self.out)
                for key in keys:
                    if not store.renew(key, self.runner, lease=self.lease):
                        self.drop(key)  # taken over: the result will not be written
        except Exception:  # a failed renewal only risks a second training, never a lost row
            pass
        finally:
            if store is not None:
                store.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


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
             progress: bool = True, lease: float = LEASE) -> GridRun:
    """Run a grid file (path or built-in name) into ``out`` (default ``runs/NAME``).

    ``executor="ray"`` runs cells as Ray tasks on a local cluster started for the run (``num_cpus``
    CPUs) or on the cluster at ``address``; with ``device="cuda"`` each cell asks for one GPU.
    Other runners may work on the same ``out`` at once: cells are claimed with a lease of
    ``lease`` seconds (see the module's docstring), so each is trained by one runner only.
    """
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not lease > 0:
        raise ConfigError(f"grid run: lease expects a positive number of seconds, got {lease!r}")
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
        runner = runner_id()
        renewer = _Renewer(out, runner, float(lease))
        try:
            if executor == "local":
                ran = _run_local(cfg, todo, store, bar, renewer, device=device,
                                 registry=registry, retry_failed=retry_failed)
            elif todo:
                ran = _run_ray(cfg, todo, store, bar, renewer, device=device, address=address,
                               num_cpus=num_cpus, retry_failed=retry_failed)
            else:
                ran = 0
        finally:
            renewer.close()
            bar.close()
        statuses: dict[str, int] = {}
        keys = {c.key for c in cfg.cells}
        for key, status in store.statuses().items():
            if key in keys:
                statuses[status] = statuses.get(status, 0) + 1
    return GridRun(out, len(cfg.cells), skipped, ran, statuses)


def _run_local(cfg: GridConfig, todo: list[Cell], store: Store, bar: _Progress,
               renewer: _Renewer, *, device: str | None, registry: Registry | None,
               retry_failed: bool) -> int:
    """Claim, train and write cells one by one; wait for cells other runners hold."""
    ran = 0
    pending = list(todo)
    retry = retry_failed
    while pending:
        waiting: list[Cell] = []
        for cell in pending:
            state = store.claim(cell.key, renewer.runner, lease=renewer.lease, retry_failed=retry)
            if state == "busy":
                waiting.append(cell)
                continue
            if state == "done":
                continue
            renewer.hold(cell.key)
            try:
                record = run_cell(cell.to_dict(), grid=cfg.name, device=device,
                                  registry=registry, progress=bar.cell(cell))
            except BaseException:
                renewer.drop(cell.key)
                store.release(cell.key, renewer.runner)
                raise
            renewer.drop(cell.key)
            try:
                written = store.write(record, runner=renewer.runner)
            except BaseException:  # e.g. a full disk: free the cell for the next run at once
                with contextlib.suppress(Exception):
                    store.release(cell.key, renewer.runner)
                raise
            if written:
                ran += 1
                bar.advance(record)
        # a failed cell another runner recorded while we waited is done, not to be retried again
        retry = False
        pending = waiting
        if pending:
            time.sleep(min(1.0, renewer.lease / 4))
    return ran


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise OptionalDependencyError("ray", "--executor ray", "ray") from None
    return ray


def _remote_cell(cell: dict[str, Any], grid: str, device: str | None) -> dict[str, Any]:
    return run_cell(cell, grid=grid, device=device)


def _run_ray(cfg: GridConfig, todo: list[Cell], store: Store, bar: _Progress,
             renewer: _Renewer, *, device: str | None, address: str | None,
             num_cpus: int | None, retry_failed: bool) -> int:
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
        mine = [c for c in todo if store.claim(c.key, renewer.runner, lease=renewer.lease,
                                               retry_failed=retry_failed) == "claimed"]
        for c in mine:
            renewer.hold(c.key)
        pending = {remote.remote(c.to_dict(), cfg.name, device): c for c in mine}
        ran = 0
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
                renewer.drop(cell.key)
                if store.write(record, runner=renewer.runner):
                    ran += 1
                    bar.advance(record)
        return ran
    finally:
        if started:
            ray.shutdown()
