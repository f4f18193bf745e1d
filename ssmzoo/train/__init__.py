"""Training: one run of a mixer on a task, as ``ssmzoo train`` and every grid cell do it.

>>> from ssmzoo.train import TrainConfig
>>> TrainConfig(steps=100, warmup=0.1).warmup_steps
10
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssmzoo.errors import ConfigError, UnknownKeyError
from ssmzoo.spec import Spec, SpecLike, parse
from ssmzoo.train.config import TrainConfig, lr_factor
from ssmzoo.train.loop import Progress, TrainResult, evaluate, fit, seed_everything

if TYPE_CHECKING:
    from ssmzoo.registry import Registry
    from ssmzoo.tasks.base import Task

__all__ = ["TrainConfig", "TrainResult", "fit", "evaluate", "run", "model_spec", "lr_factor",
           "seed_everything"]


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
        strict: bool = True) -> tuple[TrainResult, dict[str, Any]]:
    """Build the task and the model from specs, seed, train; return the result and the resolved
    configuration (``{"variant", "task", "model", "train", "seed"}``, every spec canonical).

    ``strict=False`` drops model settings that the task's model kind does not declare (grids).
    """
    from ssmzoo.registry import get_registry

    registry = registry or get_registry()
    cfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(dict(train or {}))
    task_obj = task if not isinstance(task, (str, Spec)) else registry.build_task(task)
    spec = registry.resolve_model(model_spec(task_obj, mixer, model, registry=registry,
                                                strict=strict))
    resolved = {"variant": str(parse(mixer)), "task": task_obj.ssmzoo_spec or str(task),
                "model": str(spec), "train": cfg.to_dict(), "seed": seed}
    seed_everything(seed)
    net = registry.build_model(spec)
    result = fit(net, task_obj, cfg, seed=seed, progress=progress)
    return result, resolved
