"""Synthetic function-approximation tasks (sequence -> vector), from the B2S6 and Input-Selectivity
papers: coefficient recovery, memory under input scales, Haar projections.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from einops import rearrange, repeat
from torch import Tensor

from ssmzoo.tasks.base import RegressionTask, Split, generator
from ssmzoo.tasks.synthetic import _require, _sizes

__all__ = ["CoefRecovery", "MemoryScale", "Haar", "PRIMES", "haar_basis"]

PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71)


class CoefRecovery(RegressionTask):
    """Coefficient recovery (B2S6 paper, Fig. 2): read g from u(t) = sum_i g_i cos(p_i t).

    p_i are the first ``n_coef`` primes, t runs over ``seq_len`` points of [0, 2 pi) and
    g ~ N(0, I). Input (seq_len, 1), target g (n_coef,). Main metric ``l2_error`` = mean ||g~ - g||.

    Args:
        seq_len: number of samples of u on [0, 2 pi).
        n_coef: number of cosines (the first n_coef primes as frequencies, at most 20).
        n_train: number of training sequences.
        n_val: number of validation sequences.
        n_test: number of test sequences.
    """

    metric: ClassVar[str] = "l2_error"

    def __init__(self, seq_len: int = 128, n_coef: int = 10, n_train: int = 20000,
                 n_val: int = 1000, n_test: int = 1000):
        super().__init__()
        _require(1 <= n_coef <= len(PRIMES), "coef_recovery", "n_coef",
                 f"an int in [1, {len(PRIMES)}]", n_coef)
        _require(seq_len >= 2, "coef_recovery", "seq_len", "an int >= 2", seq_len)
        self.seq_len, self.n_coef = seq_len, n_coef
        self.n = (n_train, n_val, n_test)

    def head(self) -> dict[str, Any]:
        return {"d_input": 1, "d_output": self.n_coef}

    def _make(self, split: str, seed: int) -> Split:
        g = generator(seed, split, "coef_recovery")
        n = _sizes(split, *self.n)
        t = torch.arange(self.seq_len, dtype=torch.float32) * (2 * math.pi / self.seq_len)  # (L,)
        p = torch.tensor(PRIMES[: self.n_coef], dtype=torch.float32)  # (k,)
        basis = torch.cos(t[:, None] * p[None, :])  # (L, k)
        coef = torch.randn(n, self.n_coef, generator=g)  # (n, k)
        u = torch.einsum("lk,nk->nl", basis, coef)  # (n, L)
        return Split(rearrange(u, "n l -> n l 1"), coef)

    def metric_terms(self, output: Tensor, target: Tensor) -> dict[str, tuple[float, float]]:
        terms = super().metric_terms(output, target)
        err = (output.float() - target).norm(dim=-1).sum()
        terms["l2_error"] = (float(err), float(len(target)))
        return terms


class MemoryScale(RegressionTask):
    """Memory under input scales (B2S6 paper, Fig. 3): output |u_1| after seq_len - 1 distractors.

    u_1 ~ N(0, sigma1^2) and u_2..u_L ~ N(0, sigma2^2); the target is |u_1| / sigma1, so that the
    main metric ``rel_error`` = mean |G~ - G| / sigma1 is the paper's relative error.

    Args:
        seq_len: sequence length L.
        sigma1: scale of the first token (the one to remember).
        sigma2: scale of every later token.
        n_train: number of training sequences.
        n_val: number of validation sequences.
        n_test: number of test sequences.
    """

    metric: ClassVar[str] = "rel_error"

    def __init__(self, seq_len: int = 64, sigma1: float = 1.0, sigma2: float = 1.0,
                 n_train: int = 10000, n_val: int = 1000, n_test: int = 1000):
        super().__init__()
        _require(sigma1 > 0, "memory_scale", "sigma1", "a float > 0", sigma1)
        _require(sigma2 >= 0, "memory_scale", "sigma2", "a float >= 0", sigma2)
        _require(seq_len >= 1, "memory_scale", "seq_len", "an int >= 1", seq_len)
        self.seq_len, self.sigma1, self.sigma2 = seq_len, sigma1, sigma2
        self.n = (n_train, n_val, n_test)

    def head(self) -> dict[str, Any]:
        return {"d_input": 1, "d_output": 1}

    def _make(self, split: str, seed: int) -> Split:
        g = generator(seed, split, "memory_scale")
        n = _sizes(split, *self.n)
        u = torch.randn(n, self.seq_len, generator=g) * self.sigma2  # (n, L)
        u[:, 0] = torch.randn(n, generator=g) * self.sigma1
        target = u[:, :1].abs() / self.sigma1  # (n, 1)
        return Split(rearrange(u, "n l -> n l 1"), target)

    def metric_terms(self, output: Tensor, target: Tensor) -> dict[str, tuple[float, float]]:
        terms = super().metric_terms(output, target)
        terms["rel_error"] = (float((output.float() - target).abs().sum()), float(target.numel()))
        return terms


def haar_basis(length: int, levels: int) -> Tensor:
    """The Haar scaling function and wavelets psi_{j,k} (j < levels) on ``length`` points of [0, 1).

    Returns (2**levels, length), each row of unit L2 norm on [0, 1) (so sum(row**2) / length = 1).
    """
    t = (torch.arange(length, dtype=torch.float64) + 0.5) / length  # (L,), cell centres
    rows = [torch.ones(length, dtype=torch.float64)]
    for j in range(levels):
        for k in range(2**j):
            s = 2**j * t - k
            psi = torch.where((s >= 0) & (s < 0.5), 1.0, 0.0) - torch.where((s >= 0.5) & (s < 1), 1.0, 0.0)
            rows.append(2 ** (j / 2) * psi)
    return torch.stack(rows).float()  # (2**levels, L)


class Haar(RegressionTask):
    """Haar projections (Input-Selectivity paper): y_k = <x, psi_k> for the Haar basis up to a level.

    The input is white noise x(s) on a grid of ``seq_len`` points, with the time s / L as a second
    channel when ``positions`` is true; the targets are the 2**levels projections of x onto the
    Haar scaling function and wavelets, scaled to unit variance. A piecewise-constant kernel is
    what S6 can build from Δ switching between "freeze" and "reset"; S4D's exponentials cannot.

    Args:
        seq_len: number of grid points.
        levels: wavelet levels; the target has 2**levels entries.
        positions: add the time s / L as a second input channel.
        n_train: number of training sequences.
        n_val: number of validation sequences.
        n_test: number of test sequences.
    """

    def __init__(self, seq_len: int = 128, levels: int = 3, positions: bool = True,
                 n_train: int = 10000, n_val: int = 1000, n_test: int = 1000):
        super().__init__()
        _require(levels >= 0 and 2**levels <= seq_len, "haar", "levels",
                 f"an int >= 0 with 2**levels <= seq_len = {seq_len}", levels)
        self.seq_len, self.levels, self.positions = seq_len, levels, positions
        self.n = (n_train, n_val, n_test)

    def head(self) -> dict[str, Any]:
        return {"d_input": 2 if self.positions else 1, "d_output": 2**self.levels}

    def _make(self, split: str, seed: int) -> Split:
        g = generator(seed, split, "haar")
        n, L = _sizes(split, *self.n), self.seq_len
        x = torch.randn(n, L, generator=g)  # (n, L)
        y = x @ haar_basis(L, self.levels).T / math.sqrt(L)  # (n, 2**levels), unit variance
        feats = rearrange(x, "n l -> n l 1")  # (n, L, 1)
        if self.positions:
            time = repeat(torch.arange(L, dtype=torch.float32) / L, "l -> n l 1", n=n)
            feats = torch.cat([feats, time], dim=-1)  # (n, L, 2)
        return Split(feats, y)
