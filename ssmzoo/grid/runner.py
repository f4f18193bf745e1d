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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssmzoo.errors import ConfigError, OptionalDependencyError
from ssmzoo.grid.cell import run_cell
from ssmzoo.grid.config import Cell, GridConfig, load_grid
from ssmzoo.grid.lease import LEASE, Renewer, runner_id
from ssmzoo.grid.progress import Progress, cell_label
from ssmzoo.grid.store import DONE, Store
from ssmzoo.train.loop import cpu_cores

if TYPE_CHECKING:
    from ssmzoo.registry import Registry

__all__ = ["run_grid", "GridRun", "plan", "runner_id", "cell_label", "LEASE"]

EXECUTORS = ("local", "ray")


def cell_dir(out: Path, cell: Cell) -> Path | None:
    """The run folder of a cell that checkpoints (``[train] checkpoint_every`` > 0):
    ``OUT/cells/KEY``, where a cell killed mid-run finds its checkpoint and continues; None for a
    cell that does not checkpoint."""
    return out / "cells" / cell.key if int(cell.train.get("checkpoint_every", 0) or 0) > 0 else None


def _failed_row(cell: Cell, grid: str, error: str) -> dict[str, Any]:
    """The row of a cell that never returned one (its worker died or raised)."""
    return {"key": cell.key, "grid": grid, "variant": cell.label_variant,
            "task": cell.label_task, "seed": cell.seed, "sweep": cell.sweep,
            "config": cell.to_dict(), "status": "failed", "error": error}


def _write_row(store: Store, renewer: Renewer, bar: Progress, key: str,
               row: dict[str, Any]) -> bool:
    """Write a finished cell's row under this runner's claim; True if it was written (False: the
    claim was taken over). A failed write (a full disk) frees the claim at once and raises."""
    renewer.drop(key)
    try:
        written = store.write(row, runner=renewer.runner)
    except BaseException:
        with contextlib.suppress(Exception):
            store.release(key, renewer.runner)
        raise
    if written:
        bar.advance(row)
    return written


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


def run_grid(grid: str | GridConfig, *, out: str | Path | None = None, executor: str = "local",
             device: str | None = None, retry_failed: bool = False, address: str | None = None,
             num_cpus: int | None = None, registry: Registry | None = None,
             progress: bool = True, lease: float = LEASE, jobs: int = 1) -> GridRun:
    """Run a grid file (path or built-in name) into ``out`` (default ``runs/NAME``).

    ``jobs``: cells trained at once by the local executor, each in a worker process of its own
    with ``cores // jobs`` torch threads (at least 1; a cell's ``[train] threads`` overrides it);
    ``jobs=1`` trains them one by one in this process. Workers load the registry from the
    installed plugins, so a ``registry`` passed in needs ``jobs=1``.

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
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"grid run: jobs expects an int >= 1, got {jobs!r}")
    if jobs > 1 and registry is not None:
        raise ConfigError("grid run: jobs > 1 trains cells in worker processes, which load the "
                          "installed plugins' registry; a registry passed in runs with jobs=1")
    if executor == "ray":
        _import_ray()  # fail before any work when Ray is missing
    cfg = grid if isinstance(grid, GridConfig) else load_grid(grid, registry=registry)
    out = Path(out) if out is not None else Path("runs") / cfg.name
    with Store(out) as store:
        store.set_meta(name=cfg.name, path=cfg.path, toml=cfg.text,
                       plan=[c.key for c in cfg.cells])
        todo, skipped = plan(cfg, store, retry_failed=retry_failed)
        bar = Progress(cfg.cells, len(cfg.cells) - len(todo), progress)
        runner = runner_id()
        renewer = Renewer(out, runner, float(lease))
        try:
            if executor == "local" and jobs > 1 and len(todo) > 1:
                ran = _run_pool(cfg, todo, store, bar, renewer, device=device, jobs=jobs,
                                retry_failed=retry_failed)
            elif executor == "local":
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


def _run_local(cfg: GridConfig, todo: list[Cell], store: Store, bar: Progress,
               renewer: Renewer, *, device: str | None, registry: Registry | None,
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
                                  registry=registry, progress=bar.cell(cell),
                                  run_dir=cell_dir(store.dir, cell))
            except BaseException:
                renewer.drop(cell.key)
                store.release(cell.key, renewer.runner)
                raise
            ran += _write_row(store, renewer, bar, cell.key, record)
        # a failed cell another runner recorded while we waited is done, not to be retried again
        retry = False
        pending = waiting
        if pending:
            time.sleep(min(1.0, renewer.lease / 4))
    return ran


# ---- the local pool: cells in worker processes ---------------------------------------------
_QUEUE: Any = None  # a worker's channel for step progress back to the runner


def _pool_init(threads: int, queue: Any) -> None:
    import torch

    global _QUEUE
    torch.set_num_threads(threads)
    _QUEUE = queue


def _pool_cell(cell: dict[str, Any], grid: str, device: str | None,
               run_dir: Path | None) -> dict[str, Any]:
    last = [0.0]

    def progress(step: int, loss: float) -> None:
        now = time.monotonic()
        if _QUEUE is not None and now - last[0] > 0.25:  # a few updates a second, not per step
            last[0] = now
            with contextlib.suppress(Exception):
                _QUEUE.put_nowait((cell["key"], step))

    return run_cell(cell, grid=grid, device=device, progress=progress, run_dir=run_dir)


WORKER_DIED = ("a worker process died twice while this cell trained (killed, out of memory, or "
               "a crash in native code); run it with --jobs 1 to see why")


def _run_pool(cfg: GridConfig, todo: list[Cell], store: Store, bar: Progress,
              renewer: Renewer, *, device: str | None, jobs: int, retry_failed: bool) -> int:
    """Keep ``jobs`` cells training in worker processes: claim a cell when a worker is free,
    write each row the moment its cell ends; cells other runners hold are tried again later."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    workers = min(jobs, len(todo))
    threads = max(1, cpu_cores() // workers)
    ctx = mp.get_context("spawn")  # no fork of a process holding threads and a SQLite handle
    queue = ctx.Queue()

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_pool_init,
                                   initargs=(threads, queue))

    pool = new_pool()
    running: dict[Any, Cell] = {}
    pending = list(todo)
    first_try = {c.key for c in todo} if retry_failed else set()
    breaks: dict[str, int] = {}  # cell -> pools that broke while it trained
    ran = 0

    def record(cell: Cell, row: dict[str, Any]) -> None:
        nonlocal ran
        ran += _write_row(store, renewer, bar, cell.key, row)

    finished_all = False
    try:
        while pending or running:
            waiting: list[Cell] = []
            for cell in pending:
                if len(running) >= workers:
                    waiting.append(cell)
                    continue
                state = store.claim(cell.key, renewer.runner, lease=renewer.lease,
                                    retry_failed=cell.key in first_try)
                first_try.discard(cell.key)
                if state == "busy":
                    waiting.append(cell)
                elif state == "claimed":
                    renewer.hold(cell.key)
                    running[pool.submit(_pool_cell, cell.to_dict(), cfg.name, device,
                                        cell_dir(store.dir, cell))] = cell
                    bar.started(cell)
            pending = waiting
            if not running:  # every cell left is held by another runner
                time.sleep(min(1.0, renewer.lease / 4))
                continue
            finished, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            with contextlib.suppress(Exception):
                while True:
                    key, step = queue.get_nowait()
                    bar.step(key, step)
            broken = False
            for fut in finished:
                exc = fut.exception()
                if isinstance(exc, BrokenProcessPool):
                    broken = True
                elif exc is not None:  # run_cell records a failed run; this is anything else
                    cell = running.pop(fut)
                    record(cell, _failed_row(cell, cfg.name, f"{type(exc).__name__}: {exc}"))
                else:
                    record(running.pop(fut), fut.result())
            if broken:
                # One worker died and took the pool with it; which cell killed it is unknown:
                # every cell it was training goes back to the queue, and a cell that was in two
                # broken pools is recorded as failed.
                pool.shutdown(wait=False, cancel_futures=True)
                for cell in running.values():
                    breaks[cell.key] = breaks.get(cell.key, 0) + 1
                    if breaks[cell.key] >= 2:
                        record(cell, _failed_row(cell, cfg.name, WORKER_DIED))
                    else:
                        renewer.drop(cell.key)
                        store.release(cell.key, renewer.runner)
                        bar.running.pop(cell.key, None)
                        pending.append(cell)
                running.clear()
                pool = new_pool()
        finished_all = True
        return ran
    finally:
        for cell in running.values():  # interrupted: free the claims of unfinished cells
            renewer.drop(cell.key)
            with contextlib.suppress(Exception):
                store.release(cell.key, renewer.runner)
        if finished_all:  # idle workers: let them exit and reap them
            pool.shutdown(wait=True)
        else:  # interrupted: stop the workers' cells now
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.terminate()
                    proc.join(timeout=5)
        queue.close()
        queue.join_thread()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise OptionalDependencyError("ray", "--executor ray", "ray") from None
    return ray


def _remote_cell(cell: dict[str, Any], grid: str, device: str | None) -> dict[str, Any]:
    return run_cell(cell, grid=grid, device=device)


def _run_ray(cfg: GridConfig, todo: list[Cell], store: Store, bar: Progress,
             renewer: Renewer, *, device: str | None, address: str | None,
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
                    record = _failed_row(cell, cfg.name, f"{type(exc).__name__}: {exc}")
                ran += _write_row(store, renewer, bar, cell.key, record)
        return ran
    finally:
        if started:
            ray.shutdown()
