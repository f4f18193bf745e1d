"""Shared pieces of the chunked SSD kernels: tile choices, dot precision, strides.

Notation (shared/PAPERS.md 0.2): per head h and chunk c of Q positions, dt_t is the step after
bias, softplus and clamping, a_t = dt_t * A_h its log-decay and cum_t = a_0 + ... + a_t the
within-chunk cumulative sum (inclusive). H_c is the state (headdim, d_state) entering chunk c.
Intermediate tensors, all float32:

- ``dt``, ``cum``: (batch, heads, nchunks, Q), positions past the sequence end hold dt 0, so cum
  is flat there and ``cum[..., Q-1]`` is the whole chunk's log-decay;
- ``states``: (batch, nchunks, heads, headdim, d_state), the state entering each chunk (float32,
  or x's dtype with ``STATES = "input"``).
"""

from __future__ import annotations

import os

import torch
import triton

from ssmzoo.errors import did_you_mean
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


# Launch settings per kernel ("state", "fused_state", "scan_fwd", "bwd_dx", "bwd_dc"), merged over the defaults
# of :func:`config`; for experiments (benchmarks/gpu_ssd.py sweeps them), e.g.
# ``TUNING["scan_fwd"] = {"BLOCK": 128, "num_warps": 8}``.
TUNING: dict[str, dict[str, int]] = {}
# the backward kernels loop over the heads of a group; below this many programs they split the
# heads over several programs (partial dB/dC summed afterwards)
TARGET_PROGRAMS = 2048

# Variants kept side by side, so that one GPU run times them on the same inputs
# (benchmarks/gpu_ssd.py ab); the defaults are the measured ones until a run says otherwise.
# STATES: dtype of the states entering each chunk, as the chunk scan and the backward read them:
#   "float32" (v2), or "input": x's dtype (mamba_ssm does this; half the bytes at N 128). The
#   recurrence itself and the final state stay float32 either way.
STATES = "input"  # faster at N 128 (docs/developer/ssd-notes.md, "v3 — measured")
# FUSED_STATE: False (v2): a chunk-state launch writes every chunk's own state S_c (float32), the
#   state passing reads them back; True: one launch, each program walks the chunks of one
#   (batch, head, headdim block, d_state block), computes S_c on the tensor cores and carries H.
FUSED_STATE = True  # with input-dtype states: forward+backward 0.53-0.93x mamba_ssm (ab, same run)
# Launch order of the chunk-parallel kernels: "v1" (tiles on grid axis 0, chunks on 1, heads or
# head groups on 2) or "v2" (a chunk's heads adjacent on axis 0, for L2 reuse of B/C);
# "auto": v1 at d_state <= 64, v2 above (H100, 2026-11-23: v2 sped the N 128 forward up,
# 1.44 -> 1.18 ms, and slowed the N 16 forward+backward, 2.25 -> 3.13 ms).
ORDER = {"fwd": "v2", "bwd": "v1"}  # v1 backward order with the fused forward (ssd-notes.md, v3)

# The gradient of the log-decays. Per head, d cum_t = C_t . dC_t - B_t . dB_t (plus, at a chunk's
# end, the gradient through the state passed on), and the per-step gradient is its reverse cumsum.
# "identity" computes exactly that from the finished dC/dB rows: the reverse cumsum then subtracts
# nearly equal sums (every pair (t, s) of a chunk enters at t and leaves at s; every chunk state's
# term enters at the chunk's end and leaves at its position), each rounded on its own path (the
# decay-weighted tiles rounded to the input dtype for the tensor cores; the state passed on stored
# in the input dtype), so in bf16 the error of dA and dt_bias was 4-5x mamba_ssm's (docs/developer/ssd-notes.md,
# "dA and dt_bias in bf16"). "stable" never forms those differences: the pairs' terms are summed in
# float32 from float32 products (one more (T, N) x (N, S) product in the dC kernel), the chunk
# state's terms go through a forward exclusive cumsum of their own, and the chunk-end term is the
# carried state's alone, which is how mamba_ssm's "stable" d(dA) kernels are organised.
# SSMZOO_SSD_DCUM overrides it.
DCUM = os.environ.get("SSMZOO_SSD_DCUM", "stable")


# C_t . B_s within a chunk for the stable log-decay gradient of the dC kernel: "tiles" computes it
# per tile and per head (one more (T, N) x (N, S) product); "chunk" computes it once per (batch,
# chunk, group) in float32 before the kernel, which reads it (as mamba_ssm's backward does;
# (batch, nchunks, groups, Q, Q) float32, 33.5 MB at b8 L4096 g1 chunk 256); "auto": tiles at
# d_state <= 64, chunk above: "chunk" won the bench at N 128 and lost at N 16, where the product
# per tile is cheap and the extra launch and read are not (docs/developer/ssd-notes.md, "Sixth
# session", with the offline sm_90 build sizes of the dC kernel).
# (The dx/dB kernel keeps its own product: reading the tile there built larger, 4336 -> 4792.)
# SSMZOO_SSD_CB overrides it.
CB = os.environ.get("SSMZOO_SSD_CB", "auto")


def _switch(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` of the switch ``name`` when it is one of ``allowed``, else a ValueError naming
    the switch, the accepted values and the nearest one."""
    if value not in allowed:
        raise ValueError(f"{name} = {value!r}; expected one of {', '.join(map(repr, allowed))}"
                         + did_you_mean(str(value), allowed))
    return value


def cb_once(n: int) -> bool:
    """Whether the backward computes C . B once per chunk and group at d_state n (see CB)."""
    cb = _switch("CB (or SSMZOO_SSD_CB)", CB, ("tiles", "chunk", "auto"))
    return cb == "chunk" or (cb == "auto" and n > 64)


def dcum_stable() -> bool:
    """Whether the backward forms the log-decays' gradient the stable way (see DCUM)."""
    return _switch("DCUM (or SSMZOO_SSD_DCUM)", DCUM, ("stable", "identity")) == "stable"


def order(kind: str, n: int) -> int:
    """1 or 2: the launch order of the forward ("fwd") or backward ("bwd") kernels at d_state n."""
    o = _switch(f"ORDER[{kind!r}]", ORDER[kind], ("v1", "v2", "auto"))
    if o == "auto":
        return 1 if n <= 64 else 2
    return int(o[1])


def states_dtype(x_dtype: torch.dtype) -> torch.dtype:
    """The dtype the entering states are stored in (see STATES)."""
    return torch.float32 if _switch("STATES", STATES, ("float32", "input")) == "float32" else x_dtype


def dt_heads_per_program(block_q: int) -> int:
    """Heads per program of the dt kernels (forward dt/cumsum, backward dt/log-decays): up to 8,
    with at most 4096 elements of (chunk, heads) per program; 1 under the interpreter."""
    return 1 if interpreting() else max(1, min(8, 4096 // block_q))


def config(kernel: str, q: int, n: int) -> dict[str, int]:
    """BLOCK (rows of the chunk per program and per inner step), num_warps, num_stages."""
    if interpreting():
        cfg = {"BLOCK": 16, "num_warps": 4, "num_stages": 1}
    else:
        rows = 32 if kernel.startswith("bwd") and n > 64 else 64  # (rows, d_state) tiles in registers
        # three stages for the state-to-output scan and the chunk states: faster than two on the
        # four target cases' forwards (docs/developer/ssd-notes.md)
        stages = 3 if kernel in ("scan_fwd", "state") else 2
        cfg = {"BLOCK": rows, "num_warps": 4, "num_stages": stages}
    cfg.update(TUNING.get(kernel, {}))
    cfg["BLOCK"] = min(cfg["BLOCK"], block(q))
    return cfg


def head_split(heads_per_group: int, programs: int) -> int:
    """How many programs share a group's heads: the largest divisor of heads_per_group not above
    what brings the launch to TARGET_PROGRAMS."""
    want = max(1, -(-TARGET_PROGRAMS // max(programs, 1)))
    return max(d for d in range(1, heads_per_group + 1) if heads_per_group % d == 0 and d <= want)
