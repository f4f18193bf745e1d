"""Shared pieces of the chunked SSD kernels: tile choices, dot precision, strides.

Notation (shared/PAPERS.md 0.2): per head h and chunk c of Q positions, dt_t is the step after
bias, softplus and clamping, a_t = dt_t * A_h its log-decay and cum_t = a_0 + ... + a_t the
within-chunk cumulative sum (inclusive). H_c is the state (headdim, d_state) entering chunk c.
Intermediate tensors, all float32:

- ``dt``, ``cum``: (batch, heads, nchunks, Q), positions past the sequence end hold dt 0, so cum
  is flat there and ``cum[..., Q-1]`` is the whole chunk's log-decay;
- ``states``: (batch, nchunks, heads, headdim, d_state), the state entering each chunk.
"""

from __future__ import annotations

import os

import torch
import triton


def interpreting() -> bool:
    """Whether Triton runs in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


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


# Launch settings per kernel ("state", "scan_fwd", "bwd_dx", "bwd_dc"), merged over the defaults
# of :func:`config`; for experiments (benchmarks/gpu_ssd.py sweeps them), e.g.
# ``TUNING["scan_fwd"] = {"BLOCK": 128, "num_warps": 8}``.
TUNING: dict[str, dict[str, int]] = {}
# the backward kernels loop over the heads of a group; below this many programs they split the
# heads over several programs (partial dB/dC summed afterwards)
TARGET_PROGRAMS = 2048


def config(kernel: str, q: int, n: int) -> dict[str, int]:
    """BLOCK (rows of the chunk per program and per inner step), num_warps, num_stages."""
    if interpreting():
        cfg = {"BLOCK": 16, "num_warps": 4, "num_stages": 1}
    else:
        rows = 32 if kernel.startswith("bwd") and n > 64 else 64  # (rows, d_state) tiles in registers
        cfg = {"BLOCK": rows, "num_warps": 4, "num_stages": 2}
    cfg.update(TUNING.get(kernel, {}))
    cfg["BLOCK"] = min(cfg["BLOCK"], block(q))
    return cfg


def head_split(heads_per_group: int, programs: int) -> int:
    """How many programs share a group's heads: the largest divisor of heads_per_group not above
    what brings the launch to TARGET_PROGRAMS."""
    want = max(1, -(-TARGET_PROGRAMS // max(programs, 1)))
    return max(d for d in range(1, heads_per_group + 1) if heads_per_group % d == 0 and d <= want)
