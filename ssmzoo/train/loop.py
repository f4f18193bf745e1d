"""The training loop shared by ``ssmzoo train`` and every grid cell.

AdamW over the model's parameter groups (``ssmzoo.param_groups``: no weight decay and per-parameter
learning-rate scales where parameters ask for them), linear warmup then cosine decay, global
gradient clipping, evaluation every N steps, seeds for everything (model init, data, batch order),
CPU or CUDA with bf16 autocast on CUDA. A NaN or infinite loss or gradient ends the run with status
``diverged`` instead of raising, so that a grid records it and goes on.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ssmzoo.errors import CheckpointError, ConfigError
from ssmzoo.tasks.base import Split, Task, generator
from ssmzoo.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ssmzoo.train.config import TrainConfig, lr_factor
from ssmzoo.train.metrics import MetricsLog

__all__ = ["TrainResult", "fit", "evaluate", "seed_everything", "resolve_device", "make_optimizer", "cpu_cores"]

Progress = Callable[[int, float], None]  # (step done, training loss)


@dataclass
class TrainResult:
    """What one run produced.

    ``history`` holds one entry per evaluation: ``{"step", "train_loss", "lr", "time", **val
    metrics}``; ``val`` and ``test`` are the final metrics (``test`` empty when not evaluated).
    """

    status: str  # "ok" or "diverged"
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    val: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    train_loss: float = math.nan
    wall_time: float = 0.0
    n_params: int = 0
    error: str = ""
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as plain data."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "model"}


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass


def cpu_cores() -> int:
    """CPU cores this process may use (its affinity where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto``; a CUDA request without CUDA is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train: device expects cpu, cuda, cuda:N or auto, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train: device {name!r} was asked for but torch sees no CUDA device "
                          "(use device=cpu)")
    return device


def _param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict[str, Any]]:
    try:
        from ssmzoo.models.optim import param_groups
    except ImportError:
        # The models package is not installed with its optimiser hints: fall back to the usual
        # rule (no decay on vectors and scalars).
        decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
        rest = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
        return [{"params": decay, "lr": lr, "weight_decay": weight_decay},
                {"params": rest, "lr": lr, "weight_decay": 0.0}]
    return list(param_groups(model, lr=lr, weight_decay=weight_decay))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over ``param_groups``; each group remembers its peak lr for the schedule."""
    groups = [g for g in _param_groups(model, cfg.lr, cfg.weight_decay) if list(g["params"])]
    for g in groups:
        g.setdefault("lr", cfg.lr)
        g["peak_lr"] = g["lr"]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def _autocast(device: torch.device, precision: str) -> Any:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def forward(model: nn.Module, x: Tensor, lengths: Tensor | None) -> Tensor:
    """``model(x)``, or ``model(x, lengths=lengths)`` for padded inputs."""
    return model(x) if lengths is None else model(x, lengths=lengths)


class _BatchStream:
    """Training batches forever, each epoch in a fresh seeded order; its position can be saved.

    The state is the order generator's state at the start of the current epoch and the number of
    batches already taken from that epoch, so a restored stream yields the very same batches.
    """

    def __init__(self, split: Split, batch_size: int, seed: int):
        self.split, self.batch_size = split, batch_size
        self.g = generator(seed, "order", "train-loop")
        self.epoch_state = self.g.get_state()
        self.taken = 0
        self._it: Iterator[tuple[Tensor, Tensor, Tensor | None]] | None = None

    def _start_epoch(self) -> None:
        self.epoch_state = self.g.get_state()
        self.taken = 0
        self._it = self.split.batches(self.batch_size, shuffle=True, generator=self.g,
                                      drop_last=True)

    def __next__(self) -> tuple[Tensor, Tensor, Tensor | None]:
        if self._it is None:
            self._start_epoch()
        assert self._it is not None
        try:
            batch = next(self._it)
        except StopIteration:
            self._start_epoch()
            batch = next(self._it)
        self.taken += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch_state": self.epoch_state.clone(), "taken": self.taken,
                "started": self._it is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g.set_state(state["epoch_state"])
        if not state["started"]:
            self._it, self.taken = None, 0
            return
        self._start_epoch()  # replays the epoch's permutation from its saved start
        assert self._it is not None
        for _ in range(state["taken"]):
            next(self._it)
        self.taken = state["taken"]


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, split: Split, *, batch_size: int,
             max_batches: int = 0, device: torch.device | str = "cpu",
             precision: str = "auto") -> dict[str, float]:
    """Metrics of ``task`` on ``split`` (exact over the batches seen: sums over counts)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    sums: dict[str, list[float]] = {}
    for i, (x, y, lengths) in enumerate(split.batches(batch_size)):
        if max_batches and i >= max_batches:
            break
        x, y = x.to(device), y.to(device)
        lengths = None if lengths is None else lengths.to(device)
        with _autocast(device, precision):
            out = forward(model, x, lengths)
        for name, (s, n) in task.metric_terms(out.float(), y).items():
            acc = sums.setdefault(name, [0.0, 0.0])
            acc[0] += s
            acc[1] += n
    model.train(was_training)
    means = {k: (s / n if n else math.nan) for k, (s, n) in sums.items()}
    return task.finalize(means)


def fit(model: nn.Module, task: Task, cfg: TrainConfig, *, seed: int = 0,
        progress: Progress | None = None, run_dir: str | os.PathLike[str] | None = None,
        resume: bool = False) -> TrainResult:
    """Train ``model`` on ``task`` with ``cfg``; returns the history and the final metrics.

    The model is moved to ``cfg.device``. Data and batch order come from ``seed``; seed the model's
    initialisation before building it (:func:`seed_everything`, as :func:`ssmzoo.train.run` does).

    With ``run_dir``, the run writes ``run_dir/metrics.csv`` (one row per step), a checkpoint
    every ``cfg.checkpoint_every`` steps into ``run_dir/checkpoints/`` and, with
    ``cfg.tensorboard``, TensorBoard events into ``run_dir/tensorboard/``. With ``resume=True``
    and a checkpoint there, training continues from the newest one and ends with the same
    weights and metrics as an uninterrupted run; without a checkpoint it starts from step 0.
    """
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _fit(model, task, cfg, seed=seed, progress=progress,
                    run_dir=None if run_dir is None else Path(run_dir), resume=resume)
    finally:
        torch.set_num_threads(threads)


# Settings that may differ between a checkpoint and the run that resumes it: they change how the
# run is carried out or logged, not what it computes.
_RESUME_FREE = {"device", "threads", "log_every", "checkpoint_every", "keep_checkpoints",
                "tensorboard"}


def _check_resumable(state: dict[str, Any], cfg: TrainConfig, seed: int) -> None:
    saved, now = dict(state.get("config", {})), cfg.to_dict()
    diff = sorted(k for k in set(saved) | set(now)
                  if k not in _RESUME_FREE and saved.get(k) != now.get(k))
    if diff or state.get("seed") != seed:
        what = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff)
        if state.get("seed") != seed:
            what = ", ".join(x for x in (what, f"seed: {state.get('seed')!r} -> {seed!r}") if x)
        raise CheckpointError(f"resume: checkpoint {state['path']!r} was written by a run with "
                              f"other settings ({what}); resume it with the same settings or "
                              "start a new run folder")


def _fit(model: nn.Module, task: Task, cfg: TrainConfig, *, seed: int,
         progress: Progress | None, run_dir: Path | None, resume: bool) -> TrainResult:
    start = time.perf_counter()
    device = resolve_device(cfg.device)
    model.to(device)
    model.train()
    train, val = task.split("train", seed), task.split("val", seed)
    if len(train) < cfg.batch_size:
        raise ConfigError(f"train: batch_size {cfg.batch_size} exceeds the {len(train)} training "
                          f"examples of {task!r}")
    opt = make_optimizer(model, cfg)
    eval_bs = cfg.eval_batch_size or cfg.batch_size
    result = TrainResult("ok", 0, n_params=sum(p.numel() for p in model.parameters()))
    batches = _BatchStream(train, cfg.batch_size, seed)
    running, n_running, elapsed = 0.0, 0, 0.0
    ckpt_dir = None if run_dir is None else run_dir / "checkpoints"
    if resume and ckpt_dir is not None and latest_checkpoint(ckpt_dir) is not None:
        state = load_checkpoint(ckpt_dir)
        _check_resumable(state, cfg, seed)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        batches.load_state_dict(state["data"])
        set_rng_state(state["rng"])
        running, n_running, elapsed = state["running"], state["n_running"], state["elapsed"]
        result.steps, result.train_loss = state["step"], state["train_loss"]
        result.history = list(state["history"])
        result.val = dict(result.history[-1]) if result.history else {}
        for key in ("step", "train_loss", "lr", "time"):
            result.val.pop(key, None)
    log = None
    if run_dir is not None:
        names = list(evaluate(model, task, val, batch_size=eval_bs, max_batches=1,
                              device=device, precision=cfg.precision))
        log = MetricsLog(run_dir, names, upto=result.steps, tensorboard=cfg.tensorboard)

    def record(step: int) -> dict[str, float]:
        nonlocal running, n_running
        metrics = evaluate(model, task, val, batch_size=eval_bs, max_batches=cfg.eval_batches,
                           device=device, precision=cfg.precision)
        entry = {"step": step, "train_loss": running / max(n_running, 1),
                 "lr": opt.param_groups[0]["lr"],
                 "time": elapsed + time.perf_counter() - start, **metrics}
        result.history.append(entry)
        result.val = metrics
        running, n_running = 0.0, 0
        return metrics

    def checkpoint(step: int) -> None:
        assert ckpt_dir is not None
        state = {"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": {"step": step, "lr_factor": lr_factor(max(step - 1, 0), cfg)},
                 "rng": rng_state(), "data": batches.state_dict(), "running": running,
                 "n_running": n_running, "train_loss": result.train_loss,
                 "history": list(result.history), "config": cfg.to_dict(), "seed": seed,
                 "elapsed": elapsed + time.perf_counter() - start}
        save_checkpoint(ckpt_dir, state, step, keep=cfg.keep_checkpoints)

    try:
        for step in range(result.steps, cfg.steps):
            factor = lr_factor(step, cfg)
            for g in opt.param_groups:
                g["lr"] = g["peak_lr"] * factor
            x, y, lengths = next(batches)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            lengths = None if lengths is None else lengths.to(device)
            with _autocast(device, cfg.precision):
                out = forward(model, x, lengths)
            loss = task.loss(out.float(), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                result.status, result.error = "diverged", f"loss {value} at step {step + 1}"
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
                if not math.isfinite(norm):
                    result.status = "diverged"
                    result.error = f"gradient norm {norm} at step {step + 1}"
                    break
            lr = opt.param_groups[0]["lr"]
            opt.step()
            result.steps = step + 1
            result.train_loss = value
            running += value
            n_running += 1
            if progress is not None and (result.steps % cfg.log_every == 0
                                         or result.steps == cfg.steps):
                progress(result.steps, value)
            evaluated: dict[str, float] = {}
            if cfg.eval_every and result.steps % cfg.eval_every == 0 and result.steps < cfg.steps:
                evaluated = record(result.steps)
            elif result.steps == cfg.steps:
                evaluated = record(result.steps)
            if log is not None:
                log.write(result.steps, value, lr, evaluated)
            if (ckpt_dir is not None and cfg.checkpoint_every
                    and result.steps % cfg.checkpoint_every == 0):
                checkpoint(result.steps)
        if result.status == "ok":
            if not result.history or result.history[-1]["step"] != result.steps:
                record(result.steps)  # a run resumed at its last step
            if cfg.test:
                result.test = evaluate(model, task, task.split("test", seed), batch_size=eval_bs,
                                       device=device, precision=cfg.precision)
    finally:
        if log is not None:
            log.close()
    result.wall_time = elapsed + time.perf_counter() - start
    result.model = model
    return result
