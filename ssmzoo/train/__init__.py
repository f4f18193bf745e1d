"""Training: one run of a mixer on a task, as ``ssmzoo train`` and every grid cell do it.

>>> from ssmzoo.train import TrainConfig
>>> TrainConfig(steps=100, warmup=0.1).warmup_steps
10

Resumable runs. ``run(mixer, task, ..., out=DIR, resume=True)`` (or :func:`fit` with
``run_dir=DIR``) writes ``DIR/run.json`` (the resolved configuration), ``DIR/metrics.csv`` (one row
per step: step, loss, lr, and the validation metrics where evaluated) and, every
``checkpoint_every`` steps, an atomic checkpoint in ``DIR/checkpoints/`` (model, optimizer,
schedule position, Python/NumPy/torch/CUDA random states, the data stream's position). With
``resume=True`` a run that finds a checkpoint there continues from it and ends bit-identical to an
uninterrupted run; one that finds none starts afresh, so a grid cell can always pass
``resume=True`` with its own folder. :func:`resume` continues a run from its folder alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssmzoo.errors import CheckpointError, ConfigError, UnknownKeyError
from ssmzoo.spec import Spec, SpecLike, parse
from ssmzoo.train.checkpoint import latest_checkpoint, load_checkpoint
from ssmzoo.train.config import TrainConfig, lr_factor
from ssmzoo.train.loop import Progress, TrainResult, evaluate, fit, seed_everything
from ssmzoo.train.metrics import read_metrics

if TYPE_CHECKING:
    from ssmzoo.registry import Registry
    from ssmzoo.tasks.base import Task

__all__ = ["TrainConfig", "TrainResult", "fit", "evaluate", "run", "model_spec", "lr_factor",
           "seed_everything", "resume", "read_metrics", "load_checkpoint",
           "latest_checkpoint"]


def model_spec(task: Task, mixer: SpecLike, settings: dict[str, Any] | None = None, *,
               registry: Registry | None = None, strict: bool = True) -> Spec:
    """The model spec a task needs around ``mixer``: its kind, its head, then the user's settings.

    With ``strict=False``, settings that the task's model kind does not declare are left out (a
    grid's ``[model]`` table is shared by tasks of different kinds; the grid checks that each key
    is declared by one of them); otherwise they raise. ``mixer`` cannot be a setting: it is the
    variant.
    """
    from ssmzoo.registry import get_registry

    registry = registry or get_registry()
    settings = dict(settings or {})
    if "mixer" in settings:
        raise ConfigError("model settings: 'mixer' is given by the variant, not by [model]")
    declared = {h.name for h in registry.get_model(task.kind).hparams}
    if strict:
        for key in settings:
            if key not in declared:
                raise UnknownKeyError(f"model {task.kind!r}", key, declared - {"mixer"})
    args: dict[str, Any] = {"mixer": parse(mixer), **task.head()}
    args.update({k: v for k, v in settings.items() if k in declared})
    return Spec(task.kind, args)


def run(mixer: SpecLike, task: SpecLike | Task, *, model: dict[str, Any] | None = None,
        train: TrainConfig | dict[str, Any] | None = None, seed: int = 0,
        progress: Progress | None = None, registry: Registry | None = None,
        strict: bool = True, out: str | os.PathLike[str] | None = None,
        resume: bool = False) -> tuple[TrainResult, dict[str, Any]]:
    """Build the task and the model from specs, seed, train; return the result and the resolved
    configuration (``{"variant", "task", "model", "train", "seed"}``, every spec canonical).

    ``strict=False`` drops model settings that the task's model kind does not declare (grids).
    ``out`` is the run folder (``run.json``, ``metrics.csv``, ``checkpoints/``); with ``resume``,
    a checkpoint found there is continued (see the module docstring).
    """
    from ssmzoo.registry import get_registry

    registry = registry or get_registry()
    cfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(dict(train or {}))
    task_obj = task if not isinstance(task, (str, Spec)) else registry.build_task(task)
    spec = registry.resolve_model(model_spec(task_obj, mixer, model, registry=registry,
                                                strict=strict))
    resolved = {"variant": str(parse(mixer)), "task": task_obj.ssmzoo_spec or str(task),
                "model": str(spec), "train": cfg.to_dict(), "seed": seed}
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".run.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(resolved, indent=2) + "\n")
        os.replace(tmp, folder / "run.json")
    seed_everything(seed)
    net = registry.build_model(spec)
    result = fit(net, task_obj, cfg, seed=seed, progress=progress, run_dir=out, resume=resume)
    return result, resolved


def resume(out: str | os.PathLike[str], *, progress: Progress | None = None,
           registry: Registry | None = None,
           overrides: dict[str, Any] | None = None) -> tuple[TrainResult, dict[str, Any]]:
    """Continue the run in folder ``out`` from its newest checkpoint, with the configuration it
    recorded in ``run.json`` (``overrides``: training settings that only change how it runs, such
    as ``device`` or ``threads``). A missing folder, ``run.json`` or checkpoint, or a corrupt one,
    is a :class:`~ssmzoo.errors.CheckpointError` naming the path."""
    folder = Path(out)
    meta = folder / "run.json"
    if not meta.is_file():
        raise CheckpointError(f"resume: {str(meta)!r} not found (expected the folder of a run "
                              "started with `ssmzoo train ... --out DIR`)")
    try:
        resolved = json.loads(meta.read_text())
        task, seed = resolved["task"], int(resolved["seed"])
        train, model_str = dict(resolved["train"]), resolved["model"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"resume: {str(meta)!r} is corrupt ({type(exc).__name__}: "
                              f"{exc})") from None
    load_checkpoint(folder / "checkpoints")  # fails here, naming the path, before any building
    train.update(overrides or {})
    from ssmzoo.registry import get_registry
    from ssmzoo.spec import parse

    registry = registry or get_registry()
    task_obj = registry.build_task(task)
    spec = registry.resolve_model(parse(model_str))
    cfg = TrainConfig.from_dict(train, owner=f"{meta} [train]")
    resolved = {**resolved, "train": cfg.to_dict()}
    seed_everything(seed)
    net = registry.build_model(spec)
    result = fit(net, task_obj, cfg, seed=seed, progress=progress, run_dir=folder, resume=True)
    return result, resolved
