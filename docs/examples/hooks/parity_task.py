"""A task registered from a plugin: the parity of a bit string.

The classic test of whether a recurrent model can carry one bit over the whole sequence: the
target is the sum of the bits modulo 2, so every bit matters. Generated from the seed, like the
built-in synthetic tasks.
"""

from __future__ import annotations

from typing import Any

import torch

import ssmzoo
from ssmzoo.tasks.base import ClassificationTask, Split, generator


class Parity(ClassificationTask):
    """Parity of a random bit string: token ids (seq_len,) in {0, 1} -> class sum mod 2.

    Metric: accuracy (chance is 0.5).

    Args:
        seq_len: bits per sequence.
        n_train: number of training sequences.
        n_val: number of validation sequences.
        n_test: number of test sequences.
    """

    def __init__(self, seq_len: int = 32, n_train: int = 4096, n_val: int = 512,
                 n_test: int = 512):
        super().__init__()
        self.seq_len, self.sizes = seq_len, {"train": n_train, "val": n_val, "test": n_test}

    def head(self) -> dict[str, Any]:
        return {"n_classes": 2, "vocab_size": 2}

    def _make(self, split: str, seed: int) -> Split:
        g = generator(seed, split, salt="parity")
        bits = torch.randint(0, 2, (self.sizes[split], self.seq_len), generator=g)  # (n, l)
        return Split(bits, bits.sum(dim=1) % 2)  # targets (n,)


@ssmzoo.hookimpl
def ssmzoo_register_tasks(registry):
    registry.task("parity", Parity, doc="Parity of a random bit string")
