"""Running one grid cell, the same way on this machine and in a Ray worker."""

from __future__ import annotations

import platform
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssmzoo.registry import Registry

__all__ = ["run_cell", "versions", "fresh_state"]


def versions() -> dict[str, str]:
    """Versions of what produced a result: ssmzoo, its plugins, torch, Python, the device."""
    import torch

    import ssmzoo

    out = {"ssmzoo": ssmzoo.__version__, "torch": torch.__version__,
           "python": platform.python_version(), "host": platform.node(),
           "device": torch.cuda.get_device_name() if torch.cuda.is_available() else
           (platform.processor() or platform.machine())}
    try:
        from ssmzoo.registry import get_registry

        for p in get_registry().plugins:
            out[f"plugin:{p.name}"] = f"{p.distribution} {p.version} ({p.state})"
    except Exception:  # versions are informative; never fail a cell for them
        pass
    return out


_BASE_THREADS: list[int] = []  # torch's thread count before the first cell of this process


def fresh_state(seed: int) -> None:
    """Put the process-wide state a cell's numbers depend on back to where a fresh process has it:
    torch's CPU thread count (the reduction order of matmuls depends on it), the default dtype,
    grad mode, and every global generator (Python, NumPy, torch CPU and CUDA) seeded from ``seed``.
    A cell then computes the same bits alone or after any other cell."""
    import random

    import numpy as np
    import torch

    if not _BASE_THREADS:
        _BASE_THREADS.append(torch.get_num_threads())
    torch.set_num_threads(_BASE_THREADS[0])
    torch.set_default_dtype(torch.float32)
    torch.set_grad_enabled(True)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def run_cell(cell: dict[str, Any], *, grid: str = "", device: str | None = None,
             registry: Registry | None = None,
             progress: Callable[[int, float], None] | None = None,
             run_dir: str | Path | None = None) -> dict[str, Any]:
    """Train one cell (``Cell.to_dict()``); return the row to store. Never raises for a failed run:
    an exception becomes ``status="failed"`` with its message and traceback tail.

    ``run_dir``: the cell's run folder (``run.json``, ``metrics.csv``, ``checkpoints/``); a cell
    that finds a checkpoint there continues from it, so a grid killed mid-cell loses only the
    steps since the cell's last checkpoint (``[train] checkpoint_every``).

    A task with a ``run_cell(variant, *, model, train, seed, progress, registry)`` method (a
    measurement rather than a training run) runs the cell itself and returns what
    :func:`ssmzoo.train.run` returns: ``(TrainResult, resolved config)``.
    """
    from ssmzoo.train import TrainConfig, run

    fresh_state(cell["seed"])
    start = time.perf_counter()
    train = dict(cell["train"])
    if device is not None:
        train["device"] = device
    record: dict[str, Any] = {
        "key": cell["key"], "grid": grid, "variant": cell["label_variant"] or cell["variant"],
        "task": cell["label_task"] or cell["task"], "seed": cell["seed"], "sweep": cell["sweep"],
        "config": {"variant": cell["variant"], "task": cell["task"], "model": cell["model_spec"],
                   "train": train, "seed": cell["seed"], "sweep": cell["sweep"]},
    }
    try:
        from ssmzoo.registry import get_registry

        reg = registry or get_registry()
        task = reg.build_task(cell["task"])
        record.update(metric=task.metric, higher_is_better=int(task.higher_is_better))
        # a task that is a measurement rather than a training run brings its own cell
        runner = getattr(task, "run_cell", None) or (lambda variant, **kw: run(
            variant, task, strict=False, out=run_dir, resume=run_dir is not None, **kw))
        result, resolved = runner(cell["variant"], model=cell["model"],
                                  train=TrainConfig.from_dict(train), seed=cell["seed"],
                                  progress=progress, registry=reg)
        record["config"].update(model=resolved.get("model", cell["model_spec"]),
                                train=resolved.get("train", train))
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
