"""The backward kernel's writes: pairs of (re, im) tiles, atomic adds of channel sums into a
variable dB/dC, per-state stores by inline assembly in the values' own layout (no conversion to
the coalesced store layout first), and the per-chunk channel sums through a scratch."""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["_store_pair", "_atomic_pair", "_st", "_st4", "_acc_pair", "_sum_channels"]


@triton.jit
def _store_pair(ptr, off, re, im, mask, IS_COMPLEX: tl.constexpr):
    tl.store(ptr + off, re, mask=mask)
    if IS_COMPLEX:
        tl.store(ptr + off + 1, im, mask=mask)


@triton.jit
def _atomic_pair(ptrs, re, im, mask, IS_COMPLEX: tl.constexpr):
    """Add the channel sums of (channels, time) tiles into a variable dB/dC row (interleaved)."""
    tl.atomic_add(ptrs, tl.sum(re, axis=0), mask=mask, sem="relaxed")
    if IS_COMPLEX:
        tl.atomic_add(ptrs + 1, tl.sum(im, axis=0), mask=mask, sem="relaxed")


@triton.jit
def _st(ptrs, val, mask, ASM: tl.constexpr):
    """tl.store of float32 values in the values' own layout. ``ASM``: by inline assembly, so that
    the compiler does not convert the tile to its coalesced store layout first (for a (channels,)
    vector or a (channels, time) tile of 8 float32 per thread, that conversion costs shuffles or a
    shared-memory round trip with barriers, per state). Replicated elements store the same value
    twice. The interpreter takes tl.store."""
    if ASM:
        tl.inline_asm_elementwise(
            "{ .reg .pred p; setp.ne.b32 p, $3, 0; @p st.global.b32 [$1], $2; mov.b32 $0, 0; }",
            "=r,l,r,r", [ptrs.to(tl.int64), val.to(tl.int32, bitcast=True), mask.to(tl.int32)],
            dtype=tl.int32, is_pure=False, pack=1)
    else:
        tl.store(ptrs, val, mask=mask)


@triton.jit
def _st4(ptrs, val, ASM: tl.constexpr):
    """Unmasked ``_st`` of a (channels, time) float32 tile whose thread holds runs of 4 (or more)
    consecutive, 16-byte aligned addresses along time: one 16-byte store per run."""
    if ASM:
        tl.inline_asm_elementwise(
            "{ st.global.v4.b32 [$4], {$8, $9, $10, $11}; mov.b32 $0, 0; mov.b32 $1, 0; "
            "mov.b32 $2, 0; mov.b32 $3, 0; }",
            "=r,=r,=r,=r,l,l,l,l,r,r,r,r", [ptrs.to(tl.int64), val.to(tl.int32, bitcast=True)],
            dtype=tl.int32, is_pure=False, pack=4)
    else:
        tl.store(ptrs, val)


@triton.jit
def _acc_pair(ptr, off, re, im, mask, IS_COMPLEX: tl.constexpr, ASM: tl.constexpr):
    """ptr[off] += re (and ptr[off + 1] += im): a (channels,) read-modify-write by one thread."""
    _st(ptr + off, tl.load(ptr + off, mask=mask, other=0.0) + re, mask, ASM)
    if IS_COMPLEX:
        _st(ptr + off + 1, tl.load(ptr + off + 1, mask=mask, other=0.0) + im, mask, ASM)


@triton.jit
def _sum_channels(scr, dst_base, s_n, c, length, DSTATE: tl.constexpr, BN: tl.constexpr,
                  BD: tl.constexpr, BT: tl.constexpr, CPLX: tl.constexpr, PART: tl.constexpr):
    """Sum a (d_state, channels, time) scratch over channels; add the (d_state, time) sums into a
    variable dB/dC row (float32, interleaved re/im when complex: ``PART`` is 0 or 1)."""
    r = tl.arange(0, BN * BT)
    nr = r // BT
    tr = r % BT
    ptrs = scr + nr[:, None] * (BD * BT) + tl.arange(0, BD)[None, :] * BT + tr[:, None]
    ok = nr < DSTATE
    s = tl.sum(tl.load(ptrs, mask=ok[:, None], other=0.0), axis=1)
    t = c * BT + tr
    tl.atomic_add(dst_base + nr * s_n + t * CPLX + PART, s, mask=ok & (t < length), sem="relaxed")
