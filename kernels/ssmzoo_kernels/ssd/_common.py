"""Shared pieces of the chunked SSD kernels: block sizes and dot precision (the tunable launch
choices are in ``tuning.py``).

Notation (shared/PAPERS.md 0.2): per head h and chunk c of Q positions, dt_t is the step after
bias, softplus and clamping, a_t = dt_t * A_h its log-decay and cum_t = a_0 + ... + a_t the
within-chunk cumulative sum (inclusive). H_c is the state (headdim, d_state) entering chunk c.
Intermediate tensors, all float32:

- ``dt``, ``cum``: (batch, heads, nchunks, Q), positions past the sequence end hold dt 0, so cum
  is flat there and ``cum[..., Q-1]`` is the whole chunk's log-decay;
- ``states``: (batch, nchunks, heads, headdim, d_state), the state entering each chunk (float32,
  or x's dtype with ``SSDTuning.states = "input"``).
"""

from __future__ import annotations

import torch
import triton

from ssmzoo_kernels._env import interpreting


def block(n: int, lo: int = 16, hi: int | None = None) -> int:
    """The power of two that covers ``n``, at least ``lo`` (tl.dot needs 16), at most ``hi``."""
    b = max(lo, triton.next_power_of_2(int(n)))
    return min(b, hi) if hi is not None else b


def dot_precision(dtype: torch.dtype) -> str:
    """tl.dot's input precision: tf32 for float32 only when torch allows it for matmuls;
    ``"upcast"`` (fp32 operands) for bfloat16 under the interpreter, which cannot multiply it."""
    if dtype == torch.bfloat16 and interpreting():
        return "upcast"
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def dt_heads_per_program(block_q: int) -> int:
    """Heads per program of the dt kernels (forward dt/cumsum, backward dt/log-decays): up to 8,
    with at most 4096 elements of (chunk, heads) per program; 1 under the interpreter."""
    return 1 if interpreting() else max(1, min(8, 4096 // block_q))
