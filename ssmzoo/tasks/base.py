"""The task protocol: what the training loop and the grid runner need from a task.

A task is an object built by a registered factory (``registry.task("mqar", MQAR)``) from its
hyperparameters. It tells

- which model it needs: :attr:`Task.kind` (``"lm"``, ``"classifier"`` or ``"regressor"``) and
  :meth:`Task.head`, the model hyperparameters the data fixes (``n_classes``, ``vocab_size`` or
  ``d_input``, ``d_output``, ``pool``);
- its data: :meth:`Task.split` gives the ``"train"``, ``"val"`` or ``"test"`` split for a seed as
  a :class:`Split` of two tensors whose first axis is the example;
- how to score: :meth:`Task.loss` (a scalar to minimise) and :meth:`Task.metric_terms` (sums and
  counts over a batch, so that metrics over many batches are exact), :meth:`Task.finalize` (means to
  reported values, e.g. perplexity from the mean loss), and :attr:`Task.metric`, the main metric
  with :attr:`Task.higher_is_better`.

Shapes by kind (b = batch, l = length, v = vocabulary):

===========  ====================================  ======================  =====================
kind         inputs                                model output            targets
===========  ====================================  ======================  =====================
lm           token ids (b, l) int64                logits (b, l, v)        token ids (b, l), -100
                                                                           where unlabelled
classifier   token ids (b, l) or features (b, l,   logits (b, n_classes)   class ids (b,)
             d_input) float
regressor    features (b, l, d_input) float        values (b, d_output)    values (b, d_output)
===========  ====================================  ======================  =====================

A task that is a measurement rather than a training run (a gradient probe, an evaluation sweep)
may define ``run_cell(variant, *, model, train, seed, progress, registry) -> (TrainResult,
resolved)``; the grid runner then calls it instead of the training loop.

Synthetic tasks generate their splits from the seed (the same seed gives the same data, whatever
the model); the loaders read files and use the seed only to shuffle or subsample.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Task", "Split", "TokenTask", "ClassificationTask", "RegressionTask", "split_seed",
           "IGNORE_INDEX"]

IGNORE_INDEX = -100  # a target that the loss and the metrics skip (as in zoology and PyTorch)

SplitName = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")


def split_seed(seed: int, split: str, salt: str = "") -> int:
    """A 63-bit seed for one split of one task, stable across processes and platforms."""
    digest = hashlib.sha256(f"{salt}/{split}/{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, split: str, salt: str = "") -> torch.Generator:
    """A CPU ``torch.Generator`` seeded for one split (different splits never share a stream)."""
    g = torch.Generator()
    g.manual_seed(split_seed(seed, split, salt))
    return g


@dataclass
class Split:
    """One split of a task: ``inputs[i]`` and ``targets[i]`` are the i-th example.

    ``lengths`` (examples,) int, when given, is the number of valid positions of each padded
    input; it is passed to the model as ``model(x, lengths=...)``. ``transform``, when given, maps
    a batch of stored inputs to model inputs (e.g. uint8 pixels to floats in [0, 1]), so that
    large splits can be stored compactly.
    """

    inputs: Tensor
    targets: Tensor
    lengths: Tensor | None = None
    transform: Callable[[Tensor], Tensor] | None = None

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"Split: inputs and targets differ in length "
                             f"({len(self.inputs)} vs {len(self.targets)})")
        if self.lengths is not None and len(self.lengths) != len(self.inputs):
            raise ValueError(f"Split: lengths has {len(self.lengths)} entries, expected "
                             f"{len(self.inputs)}")

    def __len__(self) -> int:
        return len(self.inputs)

    def batches(self, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
        """Mini-batches (inputs, targets, lengths or None); integers come out as int64."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            x, y = self.inputs[idx], self.targets[idx]
            if self.transform is not None:
                x = self.transform(x)
            if not x.is_floating_point():
                x = x.long()
            if not y.is_floating_point():
                y = y.long()
            lengths = None if self.lengths is None else self.lengths[idx].long()
            yield x, y, lengths


class Task:
    """Base class of every task. Subclasses set the class attributes and implement ``_make``.

    Attributes:
        kind: the model kind the task trains (``lm``, ``classifier`` or ``regressor``).
        metric: the name of the main metric (a key of :meth:`finalize`'s result).
        higher_is_better: whether a larger main metric is better.
        text_encoding: how text maps to the token ids, for a task whose ids are text
            (``"utf-8 bytes"``: id = byte value); ``None`` when the ids are not text.
            ``ssmzoo generate --prompt TEXT`` reads it.
    """

    kind: ClassVar[str] = "classifier"
    metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True
    text_encoding: ClassVar[str | None] = None
    ssmzoo_spec: str = ""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], Split] = {}

    # ---- what the model must look like ------------------------------------------------------
    def head(self) -> dict[str, Any]:
        """Model hyperparameters that the data fixes (merged under the user's model settings)."""
        raise NotImplementedError(f"{type(self).__name__} must define head()")

    # ---- data ---------------------------------------------------------------------------------
    def split(self, name: str, seed: int = 0) -> Split:
        """The ``train``, ``val`` or ``test`` split for ``seed`` (cached per task object)."""
        if name not in SPLITS:
            from ssmzoo.errors import did_you_mean

            raise ValueError(f"{type(self).__name__}.split: no split {name!r}"
                             f"{did_you_mean(name, SPLITS)} (expected one of {', '.join(SPLITS)})")
        key = (name, seed)
        if key not in self._cache:
            self._cache[key] = self._make(name, seed)
        return self._cache[key]

    def _make(self, split: str, seed: int) -> Split:
        raise NotImplementedError(f"{type(self).__name__} must define _make(split, seed)")

    # ---- scoring ------------------------------------------------------------------------------
    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """A scalar to minimise, averaged over the batch (and labelled positions)."""
        raise NotImplementedError

    def metric_terms(self, output: Tensor, target: Tensor) -> dict[str, tuple[float, float]]:
        """``{name: (sum, count)}`` over one batch; the reported value is sum / count."""
        raise NotImplementedError

    def finalize(self, means: dict[str, float]) -> dict[str, float]:
        """Turn the means of :meth:`metric_terms` into the reported metrics (default: as they are)."""
        return dict(means)

    def __repr__(self) -> str:
        return f"<task {self.ssmzoo_spec or type(self).__name__}>"


class TokenTask(Task):
    """A next-token style task: logits (b, l, v) against targets (b, l) with -100 where unlabelled.

    Metrics: ``loss`` (mean cross-entropy over labelled positions), ``accuracy`` (over labelled
    positions) and ``perplexity`` = exp(loss).
    """

    kind: ClassVar[str] = "lm"
    metric: ClassVar[str] = "accuracy"
    vocab: int = 0

    def head(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab}

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output.float().flatten(0, 1), target.flatten(),  # (b*l, v), (b*l,)
                               ignore_index=IGNORE_INDEX)

    def metric_terms(self, output: Tensor, target: Tensor) -> dict[str, tuple[float, float]]:
        mask = target != IGNORE_INDEX  # (b, l)
        n = float(mask.sum())
        nll = F.cross_entropy(output.float().flatten(0, 1), target.flatten(),
                              ignore_index=IGNORE_INDEX, reduction="sum")
        correct = ((output.argmax(-1) == target) & mask).sum()
        return {"loss": (float(nll), n), "accuracy": (float(correct), n)}

    def finalize(self, means: dict[str, float]) -> dict[str, float]:
        out = dict(means)
        if "loss" in out:
            out["perplexity"] = math.exp(min(out["loss"], 700.0))
        return out


class ClassificationTask(Task):
    """Sequence classification: logits (b, n_classes) against class ids (b,)."""

    kind: ClassVar[str] = "classifier"
    metric: ClassVar[str] = "accuracy"

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output.float(), target)

    def metric_terms(self, output: Tensor, target: Tensor) -> dict[str, tuple[float, float]]:
        nll = F.cross_entropy(output.float(), target, reduction="sum")
        correct = (output.argmax(-1) == target).sum()
        return {"loss": (float(nll), float(len(target))),
                "accuracy": (float(correct), float(len(target)))}


class RegressionTask(Task):
    """Sequence-to-vector regression: values (b, d_output) against targets (b, d_output).

    The loss is the mean squared error; ``mse`` is reported, and subclasses add their own metric.
    """

    kind: ClassVar[str] = "regressor"
    metric: ClassVar[str] = "mse"
    higher_is_better: ClassVar[bool] = False

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(output.float(), target)

    def metric_terms(self, output: Tensor, target: Tensor) -> dict[str, tuple[float, float]]:
        se = (output.float() - target).pow(2).sum()
        return {"loss": (float(se) / target.shape[-1], float(len(target))),
                "mse": (float(se), float(target.numel()))}
