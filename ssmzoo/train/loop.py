"""The training loop shared by ``ssmzoo train`` and every grid cell.

AdamW over the model's parameter groups (``ssmzoo.param_groups``: no weight decay and per-parameter
learning-rate scales where parameters ask for them), linear warmup then cosine decay, global
gradient clipping, evaluation every N steps, seeds for everything (model init, data, batch order),
CPU or CUDA with bf16 autocast on CUDA. A NaN or infinite loss or gradient ends the run with status
``diverged`` instead of raising, so that a grid records it and goes on.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ssmzoo.errors import ConfigError
from ssmzoo.tasks.base import Split, Task, generator
from ssmzoo.train.config import TrainConfig, lr_factor

__all__ = ["TrainResult", "fit", "evaluate", "seed_everything", "resolve_device", "make_optimizer"]

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


def _train_batches(split: Split, batch_size: int,
                   seed: int) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
    g = generator(seed, "order", "train-loop")
    while True:  # epochs, each in a fresh seeded order
        yield from split.batches(batch_size, shuffle=True, generator=g, drop_last=True)


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
        progress: Progress | None = None) -> TrainResult:
    """Train ``model`` on ``task`` with ``cfg``; returns the history and the final metrics.

    The model is moved to ``cfg.device``. Data and batch order come from ``seed``; seed the model's
    initialisation before building it (:func:`seed_everything`, as :func:`ssmzoo.train.run` does).
    """
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _fit(model, task, cfg, seed=seed, progress=progress)
    finally:
        torch.set_num_threads(threads)


def _fit(model: nn.Module, task: Task, cfg: TrainConfig, *, seed: int,
         progress: Progress | None) -> TrainResult:
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
    batches = _train_batches(train, cfg.batch_size, seed)
    running, n_running = 0.0, 0

    def record(step: int) -> None:
        nonlocal running, n_running
        metrics = evaluate(model, task, val, batch_size=eval_bs, max_batches=cfg.eval_batches,
                           device=device, precision=cfg.precision)
        entry = {"step": step, "train_loss": running / max(n_running, 1),
                 "lr": opt.param_groups[0]["lr"], "time": time.perf_counter() - start, **metrics}
        result.history.append(entry)
        result.val = metrics
        running, n_running = 0.0, 0

    for step in range(cfg.steps):
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
                result.status, result.error = "diverged", f"gradient norm {norm} at step {step + 1}"
                break
        opt.step()
        result.steps = step + 1
        result.train_loss = value
        running += value
        n_running += 1
        if progress is not None and (result.steps % cfg.log_every == 0 or result.steps == cfg.steps):
            progress(result.steps, value)
        if cfg.eval_every and result.steps % cfg.eval_every == 0 and result.steps < cfg.steps:
            record(result.steps)
    if result.status == "ok":
        record(result.steps)
        if cfg.test:
            result.test = evaluate(model, task, task.split("test", seed), batch_size=eval_bs,
                                   device=device, precision=cfg.precision)
    result.wall_time = time.perf_counter() - start
    result.model = model
    return result
