"""``ssmzoo train SPEC --task TASK``: one training run with a progress bar and a final metrics line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ssmzoo.errors import ConfigError

__all__ = ["register", "run", "parse_assignments"]


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """``["d_model=64", "pool=last"]`` -> ``{"d_model": 64, "pool": "last"}`` (spec value syntax)."""
    from ssmzoo.errors import SpecSyntaxError
    from ssmzoo.spec import Spec, parse

    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"{what}: expected KEY=VALUE, got {item!r}")
        try:
            parsed = parse(f"x({key.strip()}={value.strip()})").args[key.strip()]
        except SpecSyntaxError:
            parsed = value.strip()  # a plain string such as a path
        if isinstance(parsed, Spec) and not parsed.args:
            parsed = parsed.name
        out[key.strip()] = parsed
    return out


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train one model on one task",
        description="Train SPEC (a mixer: unit, block or variant spec) on a task; the task decides "
                    "the model kind and head. Settings: --model KEY=VALUE and --train KEY=VALUE "
                    "(`ssmzoo describe lm` or `classifier` lists the model settings, "
                    "`ssmzoo describe train` the training settings).")
    p.add_argument("spec", nargs="?", help="mixer spec, e.g. 'b2s6(h=8)' or 'mamba(core=s6)'")
    p.add_argument("--task", help="task spec, e.g. 'mqar(seq_len=64, num_kv=8)'")
    p.add_argument("--config", metavar="FILE", help="a TOML file: variant, task, seed, [model], "
                   "[train] (command-line settings override it)")
    p.add_argument("--out", metavar="DIR", help="run folder: run.json, metrics.csv, checkpoints/")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: this machine's cores)")
    p.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                   help="a model setting (repeatable), e.g. d_model=64")
    p.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                   help="a training setting (repeatable), e.g. warmup=100")
    p.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--batch-size", type=int, help="examples per step")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--eval-every", type=int, help="evaluate every N steps")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, help="seed of model, data and batch order")
    p.add_argument("--save", metavar="DIR", help="save the trained model (config.json + weights)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _read_config(path: str) -> dict[str, Any]:
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"--config: file {path!r} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: {path!r} is not valid TOML ({exc})") from None
    valid = ("variant", "task", "seed", "model", "train")
    for key in data:
        if key not in valid:
            from ssmzoo.errors import UnknownKeyError

            raise UnknownKeyError(f"--config {path}", key, valid)
    return data


def run(args: argparse.Namespace) -> int:
    from ssmzoo.train import TrainConfig
    from ssmzoo.train import resume as train_resume
    from ssmzoo.train import run as train_run
    from ssmzoo.train.loop import cpu_cores

    file = _read_config(args.config) if args.config else {}
    model = {**dict(file.get("model", {})), **parse_assignments(args.model, "--model")}
    train = {**dict(file.get("train", {})), **parse_assignments(args.train, "--train")}
    for key in ("steps", "batch_size", "lr", "eval_every", "device", "threads"):
        value = getattr(args, key)
        if value is not None:
            train[key] = value
    if args.resume is None:  # a resumed run keeps the thread count it recorded, unless given
        train.setdefault("threads", cpu_cores())
    spec = args.spec or file.get("variant")
    task = args.task or file.get("task")
    seed = args.seed if args.seed is not None else int(file.get("seed", 0))
    if args.resume is None and (not spec or not task):
        raise ConfigError("train: expected a mixer SPEC and --task (or a --config file naming "
                          "variant and task), or --resume DIR")
    cfg = TrainConfig.from_dict(train, owner="--train")
    from ssmzoo.registry import get_registry

    registry = get_registry()  # a misspelt mixer or task fails here, before the progress bar
    if args.resume is None:
        registry.resolve(spec)
        registry.resolve_task(task)
    bar, task_id = None, None
    if not args.quiet and not args.json:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TextColumn("{task.fields[loss]}"))
        task_id = bar.add_task("train", total=cfg.steps, loss="")
        bar.start()

    def progress(step: int, loss: float) -> None:
        if bar is not None and task_id is not None:
            bar.update(task_id, completed=step, loss=f"loss {loss:.4g}")

    try:
        if args.resume is not None:
            free = {k: train[k] for k in ("device", "threads", "log_every", "tensorboard")
                    if k in train}
            result, resolved = train_resume(args.resume, progress=progress, overrides=free)
        else:
            result, resolved = train_run(spec, task, model=model, train=cfg, seed=seed,
                                         progress=progress, out=args.out)
    finally:
        if bar is not None:
            bar.stop()
    if args.save and result.model is not None:
        save = getattr(result.model, "save", None)
        if not callable(save):
            raise ConfigError(f"--save: {resolved['model']} has no save() method")
        save(args.save)
    if args.json:
        print(json.dumps({**result.to_dict(), "config": resolved}, default=str))
        return 0 if result.status == "ok" else 2
    final = result.test or result.val
    split = "test" if result.test else "val"
    shown = "  ".join(f"{k}={v:.4g}" for k, v in final.items())
    print(f"{resolved['model']} on {resolved['task']}: {result.status} after {result.steps} steps "
          f"in {result.wall_time:.1f}s, {result.n_params} parameters; {split}: {shown}"
          + (f"  ({result.error})" if result.error else ""))
    return 0 if result.status == "ok" else 2
