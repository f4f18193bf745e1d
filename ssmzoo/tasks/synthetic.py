"""Synthetic token tasks generated from a seed: MQAR, selective copying, induction, keep n-th.

Every generator is vectorised over examples with a seeded ``torch.Generator``: the same (seed,
split) gives the same tensors on every machine, and the splits never share a stream.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from einops import rearrange, repeat
from torch import Tensor

from ssmzoo.errors import HyperparameterTypeError
from ssmzoo.tasks.base import IGNORE_INDEX, ClassificationTask, Split, TokenTask, generator

__all__ = ["MQAR", "SelectiveCopy", "Induction", "KeepNth", "sample_distinct", "sinusoids"]


def _require(ok: bool, task: str, key: str, expected: str, value: object) -> None:
    if not ok:
        raise HyperparameterTypeError(f"task {task!r}", key, expected, value)


def _sizes(split: str, n_train: int, n_val: int, n_test: int) -> int:
    return {"train": n_train, "val": n_val, "test": n_test}[split]


def sample_distinct(n: int, high: int, k: int, g: torch.Generator,
                    weights: Tensor | None = None) -> Tensor:
    """``k`` distinct integers in [0, high) per row, (n, k); drawn by ``weights`` if given.

    Weighted sampling without replacement by the Gumbel-top-k trick, which has the same law as
    drawing one at a time and renormalising (numpy's ``choice(replace=False, p=...)``).
    """
    u = torch.rand(n, high, generator=g).clamp_min(1e-20)  # (n, high)
    keys = -torch.log(-torch.log(u))  # Gumbel noise
    if weights is not None:
        keys = keys + torch.log(weights)
    return keys.topk(k, dim=-1).indices  # (n, k)


def sinusoids(length: int, dim: int) -> Tensor:
    """Sinusoidal positional features (length, dim), as in the Transformer paper."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]  # (l, 1)
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    ang = pos * freq  # (l, dim/2)
    pe = torch.stack([ang.sin(), ang.cos()], dim=-1)  # (l, dim/2, 2)
    return rearrange(pe, "l k two -> l (k two)")[:, :dim]  # (l, dim)


class MQAR(TokenTask):
    """Multi-query associative recall (Zoology): recall the value bound to each queried key.

    The ``num_kv`` key-value pairs come first (keys from the lower half of the vocabulary, values
    from the upper half); each key is queried once later, at a gap drawn from a power law, and the
    label of a query position is its value. Other positions are random tokens with no label.

    Args:
        seq_len: sequence length (even; at least 4 * num_kv).
        num_kv: number of key-value pairs per sequence.
        vocab: vocabulary size (keys below vocab // 2, values from vocab // 2).
        power_a: power-law exponent of the query gaps (1.0 = uniform; zoology uses 0.01).
        random_non_queries: fill non-query positions with random tokens (else token 0).
        n_train: number of training sequences.
        n_val: number of validation sequences.
        n_test: number of test sequences.
    """

    def __init__(self, seq_len: int = 64, num_kv: int = 8, vocab: int = 256, power_a: float = 0.01,
                 random_non_queries: bool = True, n_train: int = 10000, n_val: int = 500,
                 n_test: int = 1000):
        super().__init__()
        _require(seq_len % 2 == 0 and seq_len > 0, "mqar", "seq_len", "a positive even int", seq_len)
        _require(num_kv >= 1 and 4 * num_kv <= seq_len, "mqar", "num_kv",
                 f"an int in [1, seq_len / 4 = {seq_len // 4}]", num_kv)
        _require(vocab // 2 - 1 >= num_kv and vocab - vocab // 2 >= num_kv, "mqar", "vocab",
                 f"an int with at least num_kv = {num_kv} keys and values, >= {2 * num_kv + 2}",
                 vocab)
        _require(power_a > 0, "mqar", "power_a", "a float > 0", power_a)
        self.seq_len, self.num_kv, self.vocab, self.power_a = seq_len, num_kv, vocab, power_a
        self.random_non_queries = random_non_queries
        self.n = (n_train, n_val, n_test)

    def _make(self, split: str, seed: int) -> Split:
        g = generator(seed, split, "mqar")
        n = _sizes(split, *self.n)
        kv, L = self.num_kv, self.seq_len
        half = self.vocab // 2
        keys = sample_distinct(n, half - 1, kv, g) + 1  # (n, kv) in [1, half)
        values = sample_distinct(n, self.vocab - half, kv, g) + half  # (n, kv) in [half, vocab)
        context = rearrange(torch.stack([keys, values], -1), "n kv two -> n (kv two)")  # (n, 2kv)
        space = (L - 2 * kv) // 2
        ranks = torch.arange(1, space + 1, dtype=torch.float64)
        p = self.power_a * ranks ** (self.power_a - 1)
        gaps = sample_distinct(n, space, kv, g, weights=repeat(p / p.sum(), "s -> n s", n=n))
        tail = torch.zeros(n, L - 2 * kv + 1, dtype=torch.long)  # (n, L - 2kv + 1)
        tail.scatter_(1, 2 * gaps, keys)
        seq = torch.cat([context, tail], dim=1)  # (n, L + 1)
        labels = torch.full((n, L + 1), IGNORE_INDEX, dtype=torch.long)
        labels.scatter_(1, 2 * kv + 2 * gaps + 1, values)
        inputs, targets = seq[:, :-1].clone(), labels[:, 1:]  # (n, L) each
        if self.random_non_queries:
            noise = torch.randint(self.vocab, inputs.shape, generator=g)
            inputs = torch.where(inputs == 0, noise, inputs)
        return Split(inputs, targets)


class SelectiveCopy(TokenTask):
    """Selective copying (Mamba paper): output the data tokens scattered among noise, in order.

    Tokens: 0 is noise, 1 is the recall marker, 2..vocab-1 are data. The input is a field of
    ``seq_len`` positions with ``num_tokens`` data tokens at random places, then ``num_tokens``
    markers; the labels at the markers are the data tokens in their order of appearance.

    Args:
        seq_len: length of the field that holds the data tokens and the noise.
        num_tokens: number of data tokens to copy.
        vocab: vocabulary size, including the noise and marker tokens.
        n_train: number of training sequences.
        n_val: number of validation sequences.
        n_test: number of test sequences.
    """

    def __init__(self, seq_len: int = 64, num_tokens: int = 8, vocab: int = 16,
                 n_train: int = 10000, n_val: int = 500, n_test: int = 1000):
        super().__init__()
        _require(1 <= num_tokens <= seq_len, "selective_copy", "num_tokens",
                 f"an int in [1, seq_len = {seq_len}]", num_tokens)
        _require(vocab >= 3, "selective_copy", "vocab", "an int >= 3", vocab)
        self.seq_len, self.num_tokens, self.vocab = seq_len, num_tokens, vocab
        self.n = (n_train, n_val, n_test)

    def _make(self, split: str, seed: int) -> Split:
        g = generator(seed, split, "selective_copy")
        n, k, L = _sizes(split, *self.n), self.num_tokens, self.seq_len
        data = torch.randint(2, self.vocab, (n, k), generator=g)  # (n, k)
        places = sample_distinct(n, L, k, g).sort(dim=-1).values  # (n, k), increasing
        field = torch.zeros(n, L, dtype=torch.long).scatter_(1, places, data)  # (n, L)
        inputs = torch.cat([field, torch.ones(n, k, dtype=torch.long)], dim=1)  # (n, L + k)
        targets = torch.full((n, L + k), IGNORE_INDEX, dtype=torch.long)
        targets[:, L:] = data
        return Split(inputs, targets)


class Induction(TokenTask):
    """Induction heads: after a trigger token, recall the token that followed its first occurrence.

    The last vocabulary token is the trigger. A random sequence holds the trigger once followed by
    a token x; the sequence ends with the trigger again, and the only label (at the last position)
    is x.

    Args:
        seq_len: sequence length.
        vocab: vocabulary size, including the trigger token.
        n_train: number of training sequences.
        n_val: number of validation sequences.
        n_test: number of test sequences.
    """

    def __init__(self, seq_len: int = 64, vocab: int = 16, n_train: int = 10000, n_val: int = 500,
                 n_test: int = 1000):
        super().__init__()
        _require(seq_len >= 4, "induction", "seq_len", "an int >= 4", seq_len)
        _require(vocab >= 3, "induction", "vocab", "an int >= 3", vocab)
        self.seq_len, self.vocab = seq_len, vocab
        self.n = (n_train, n_val, n_test)

    def _make(self, split: str, seed: int) -> Split:
        g = generator(seed, split, "induction")
        n, L, trigger = _sizes(split, *self.n), self.seq_len, self.vocab - 1
        inputs = torch.randint(0, trigger, (n, L), generator=g)  # (n, L), no trigger yet
        pos = torch.randint(0, L - 2, (n,), generator=g)  # first trigger, before the last two
        rows = torch.arange(n)
        inputs[rows, pos] = trigger
        inputs[:, -1] = trigger
        targets = torch.full((n, L), IGNORE_INDEX, dtype=torch.long)
        targets[:, -1] = inputs[rows, pos + 1]
        return Split(inputs, targets)


class KeepNth(ClassificationTask):
    """KEEP n-TH (Input-Selectivity paper): classify a sequence by its n-th token.

    Without positions the model reads token ids; with ``positions=true`` it reads one-hot tokens
    concatenated with sinusoidal positional features (``d_input = vocab + pe_dim``), which lets a
    selective model know when the n-th token passes.

    Args:
        seq_len: sequence length T.
        n: which token is the target (1-based).
        vocab: vocabulary size (= number of classes).
        positions: feed sinusoidal positional features beside the one-hot tokens.
        pe_dim: number of positional features (even) when positions is true.
        n_train: number of training sequences.
        n_val: number of validation sequences.
        n_test: number of test sequences.
    """

    def __init__(self, seq_len: int = 64, n: int = 4, vocab: int = 16, positions: bool = False,
                 pe_dim: int = 16, n_train: int = 10000, n_val: int = 500, n_test: int = 1000):
        super().__init__()
        _require(1 <= n <= seq_len, "keep_nth", "n", f"an int in [1, seq_len = {seq_len}]", n)
        _require(vocab >= 2, "keep_nth", "vocab", "an int >= 2", vocab)
        _require(pe_dim >= 2 and pe_dim % 2 == 0, "keep_nth", "pe_dim", "an even int >= 2", pe_dim)
        self.seq_len, self.nth, self.vocab = seq_len, n, vocab
        self.positions, self.pe_dim = positions, pe_dim
        self.n = (n_train, n_val, n_test)

    def head(self) -> dict[str, Any]:
        inputs = {"d_input": self.vocab + self.pe_dim} if self.positions else {"vocab_size": self.vocab}
        return {"n_classes": self.vocab, **inputs, "pool": "last"}

    def _make(self, split: str, seed: int) -> Split:
        g = generator(seed, split, "keep_nth")
        n = _sizes(split, *self.n)
        tokens = torch.randint(0, self.vocab, (n, self.seq_len), generator=g)  # (n, T)
        targets = tokens[:, self.nth - 1].clone()  # (n,)
        if not self.positions:
            return Split(tokens, targets)
        # stored as token ids; each batch becomes one-hot tokens beside the positional features
        return Split(tokens, targets, transform=_OneHotWithPositions(self.vocab, self.seq_len,
                                                                     self.pe_dim))


class _OneHotWithPositions:
    """Token ids (b, T) -> one-hot tokens and sinusoidal positions (b, T, vocab + pe_dim)."""

    def __init__(self, vocab: int, length: int, pe_dim: int):
        self.vocab, self.pe = vocab, sinusoids(length, pe_dim)  # (T, pe_dim)

    def __call__(self, tokens: Tensor) -> Tensor:
        onehot = torch.nn.functional.one_hot(tokens.long(), self.vocab).float()  # (b, T, vocab)
        pe = repeat(self.pe, "t k -> b t k", b=tokens.shape[0])  # (b, T, pe_dim)
        return torch.cat([onehot, pe], dim=-1)  # (b, T, vocab + pe_dim)
