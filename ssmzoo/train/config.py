"""Training settings: one dataclass, declared the way unit hyperparameters are, so that a grid's
``[train]`` table is validated (unknown keys with the nearest name, types) by the same machinery.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ssmzoo.errors import HyperparameterTypeError, UnknownKeyError
from ssmzoo.hparams import HParam, coerce, declared

__all__ = ["TrainConfig", "lr_factor"]


@dataclass
class TrainConfig:
    """Settings of one training run (the ``[train]`` table of a grid file).

    Args:
        steps: number of optimizer steps.
        batch_size: training examples per step.
        lr: peak learning rate (parameters may carry their own scale of it).
        weight_decay: AdamW weight decay (parameters that opt out, such as A, D and the step bias, get none).
        betas: AdamW betas.
        warmup: linear warmup, in steps (an int) or as a fraction of steps (a float below 1).
        min_lr: learning rate at the end of the cosine decay, as a fraction of lr.
        grad_clip: clip the global gradient norm to this value (0 for no clipping).
        eval_every: evaluate on the validation split every this many steps (0: only at the end).
        eval_batches: at most this many validation batches per evaluation (0: the whole split).
        eval_batch_size: batch size of evaluation (0: the training batch size).
        test: evaluate on the test split at the end.
        device: cpu, cuda, cuda:N, or auto (cuda when available).
        precision: auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16.
        log_every: report the training loss to the progress callback every this many steps.
        threads: torch CPU threads for this run (0: leave torch's setting).
        checkpoint_every: save a resumable checkpoint every this many steps (0: none; needs a
            run folder).
        keep_checkpoints: how many of the newest checkpoints to keep.
        tensorboard: also log to TensorBoard in the run folder (the ``tensorboard`` extra).
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    warmup: int | float = 0.1
    min_lr: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 200
    eval_batches: int = 0
    eval_batch_size: int = 0
    test: bool = True
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    log_every: int = 10
    threads: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    tensorboard: bool = False

    @classmethod
    def hparams(cls) -> list[HParam]:
        """The declared settings (name, default, type, one-line doc)."""
        return declared(cls)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, owner: str = "[train]") -> TrainConfig:
        """Validate keys (nearest name on a typo) and types, then build the config."""
        valid = {h.name: h for h in cls.hparams()}
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if key not in valid:
                raise UnknownKeyError(owner, key, valid)
            if isinstance(value, list) and key == "betas":
                value = tuple(value)
            clean[key] = coerce(owner, valid[key], value)
        cfg = cls(**clean)
        cfg.check(owner)
        return cfg

    def check(self, owner: str = "[train]") -> None:
        """Range checks that the types alone do not express."""
        for key, ok, expected in [
            ("steps", self.steps >= 1, "an int >= 1"),
            ("batch_size", self.batch_size >= 1, "an int >= 1"),
            ("lr", self.lr > 0 and math.isfinite(self.lr), "a finite float > 0"),
            ("weight_decay", self.weight_decay >= 0, "a float >= 0"),
            ("warmup", self.warmup >= 0, "an int of steps or a fraction in [0, 1)"),
            ("min_lr", 0 <= self.min_lr <= 1, "a fraction in [0, 1]"),
            ("grad_clip", self.grad_clip >= 0, "a float >= 0"),
            ("eval_every", self.eval_every >= 0, "an int >= 0"),
            ("threads", self.threads >= 0, "an int >= 0"),
            ("checkpoint_every", self.checkpoint_every >= 0, "an int >= 0"),
            ("keep_checkpoints", self.keep_checkpoints >= 1, "an int >= 1"),
        ]:
            if not ok:
                raise HyperparameterTypeError(owner, key, expected, getattr(self, key))
        if isinstance(self.warmup, float) and self.warmup >= 1:
            raise HyperparameterTypeError(owner, "warmup", "an int of steps or a fraction in "
                                          "[0, 1)", self.warmup)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup * self.steps)) if isinstance(self.warmup, float) else self.warmup


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """The schedule's multiplier of lr before ``step`` (0-based): linear warmup, then cosine."""
    warm = cfg.warmup_steps
    if step < warm:
        return (step + 1) / warm
    span = max(cfg.steps - warm, 1)
    progress = min((step - warm) / span, 1.0)
    return cfg.min_lr + (1 - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

