"""Small real-data tasks that run offline: sequential digits and character-level language modelling."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from einops import rearrange

from ssmzoo.errors import DataError, OptionalDependencyError
from ssmzoo.tasks.base import ClassificationTask, Split, TokenTask, generator
from ssmzoo.tasks.synthetic import _require

__all__ = ["SDigits", "Chars", "default_corpus"]


class SDigits(ClassificationTask):
    """Sequential digits: scikit-learn's bundled 8x8 handwritten digits (1797 images) as a sequence.

    ``order=pixel`` reads the 64 pixels one at a time (length 64, one feature); ``order=row`` reads
    8 rows of 8 pixels. Pixels are scaled to [0, 1]. The split is fixed (1297 train, 200 val, 300
    test), so every seed and every model sees the same test images.

    Args:
        order: pixel (length 64, 1 feature) or row (length 8, 8 features).
        permuted: apply a fixed random permutation to the pixel order (as in psMNIST).
    """

    def __init__(self, order: Literal["pixel", "row"] = "pixel", permuted: bool = False):
        super().__init__()
        self.order, self.permuted = order, permuted

    def head(self) -> dict[str, Any]:
        return {"n_classes": 10, "d_input": 1 if self.order == "pixel" else 8}

    def _all(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise OptionalDependencyError("scikit-learn", "the sdigits task", "tasks") from None
        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # (1797, 64)
        y = torch.tensor(digits.target, dtype=torch.long)  # (1797,)
        if self.permuted:
            x = x[:, torch.randperm(64, generator=generator(0, "perm", "sdigits"))]
        order = torch.randperm(len(x), generator=generator(0, "split", "sdigits"))
        return x[order], y[order]

    def _make(self, split: str, seed: int) -> Split:
        x, y = self._all()
        bounds = {"train": (0, 1297), "val": (1297, 1497), "test": (1497, 1797)}[split]
        x, y = x[slice(*bounds)], y[slice(*bounds)]
        if self.order == "pixel":
            return Split(rearrange(x, "n l -> n l 1"), y)  # (n, 64, 1)
        return Split(rearrange(x, "n (r c) -> n r c", r=8), y)  # (n, 8, 8)


def default_corpus() -> Path:
    """English text that ships with CPython: the pydoc topics (about 750 kB)."""
    import pydoc_data.topics

    return Path(pydoc_data.topics.__file__)


class Chars(TokenTask):
    """Character-level language modelling on a text file, byte by byte (vocabulary 256).

    The file's bytes are cut into three contiguous parts (90% train, 5% val, 5% test) and each
    part into windows of ``seq_len + 1`` bytes. With no ``path``, the corpus is CPython's pydoc
    topics, so the task runs offline. Main metric: bits per byte (``bpc``).

    Args:
        path: a text file; empty for the corpus that ships with Python.
        seq_len: training window length.
        max_train: keep at most this many training windows (0 for all).
    """

    metric: ClassVar[str] = "bpc"
    higher_is_better: ClassVar[bool] = False
    text_encoding: ClassVar[str | None] = "utf-8 bytes"

    def __init__(self, path: str = "", seq_len: int = 128, max_train: int = 0):
        super().__init__()
        _require(seq_len >= 1, "chars", "seq_len", "an int >= 1", seq_len)
        self.path = Path(path).expanduser() if path else default_corpus()
        self.seq_len, self.max_train, self.vocab = seq_len, max_train, 256
        if not self.path.is_file():
            raise DataError(f"task 'chars': expected a text file at {str(self.path)!r}, "
                            "found none (give path=\"...\" or leave it empty for the built-in corpus)")

    def _bytes(self) -> torch.Tensor:
        data = torch.frombuffer(bytearray(self.path.read_bytes()), dtype=torch.uint8)
        if len(data) < 40 * (self.seq_len + 1):
            raise DataError(f"task 'chars': {str(self.path)!r} has {len(data)} bytes; expected at "
                            f"least {40 * (self.seq_len + 1)} for windows of {self.seq_len + 1}")
        return data

    def _make(self, split: str, seed: int) -> Split:
        data = self._bytes()
        a, b = int(0.9 * len(data)), int(0.95 * len(data))
        part = {"train": data[:a], "val": data[a:b], "test": data[b:]}[split]
        w = self.seq_len + 1
        windows = rearrange(part[: len(part) // w * w], "(n w) -> n w", w=w)  # (n, seq_len + 1)
        if split == "train" and self.max_train and len(windows) > self.max_train:
            keep = torch.randperm(len(windows), generator=generator(seed, split, "chars"))
            windows = windows[keep[: self.max_train]]
        return Split(windows[:, :-1], windows[:, 1:])

    def finalize(self, means: dict[str, float]) -> dict[str, float]:
        out = super().finalize(means)
        if "loss" in out:
            out["bpc"] = out["loss"] / math.log(2)
        return out
