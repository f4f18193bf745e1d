"""Host side of the chunked SSD forward: the launches of ``_fwd``'s kernels (dt and its
within-chunk cumsum, chunk states, state passing, fused, the chunk scan)."""

from __future__ import annotations

import torch
import triton

from ssmzoo_kernels.ssd._common import block, dot_precision, dt_heads_per_program, interpreting
from ssmzoo_kernels.ssd._fwd import (
    _chunk_scan_fwd_kernel,
    _chunk_state_kernel,
    _dt_cumsum_kernel,
    _fused_state_kernel,
    _state_passing_fwd_kernel,
)
from ssmzoo_kernels.ssd.tuning import DEFAULT, SSDTuning


def dt_cumsum(dt: torch.Tensor, A: torch.Tensor, dt_bias: torch.Tensor | None, Q: int,
              softplus: bool, limit: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """dt after bias/softplus/clamp and its within-chunk cumulative log-decay.

    dt: (batch, length, heads) -> both (batch, heads, nchunks, Q) float32.
    """
    bsz, L, H = dt.shape
    nc = triton.cdiv(L, Q)
    dt_out = torch.empty(bsz, H, nc, Q, device=dt.device, dtype=torch.float32)
    cum = torch.empty_like(dt_out)
    block_h = dt_heads_per_program(block(Q, lo=1))
    _dt_cumsum_kernel[(bsz, nc, triton.cdiv(H, block_h))](
        dt, A, dt_bias if dt_bias is not None else dt, dt_out, cum,
        L, H, Q, nc, *dt.stride(), float(limit[0]), float(limit[1]),
        HAS_BIAS=dt_bias is not None, SOFTPLUS=softplus,
        BLOCK_Q=block(Q, lo=1), BLOCK_H=block_h,
    )
    return dt_out, cum


def _grid(order_: int, tiles: int, H: int, bc: int) -> tuple[int, ...]:
    return (tiles * H, bc) if order_ == 2 else (tiles, bc, H)


def chunk_state(x: torch.Tensor, B: torch.Tensor, dt: torch.Tensor, cum: torch.Tensor,
                mode: int, tuning: SSDTuning = DEFAULT) -> torch.Tensor:
    """sum_s w_s x_s^T B_s per chunk and head: (batch, nchunks, heads, headdim, d_state) float32.

    x: (batch, length, heads, headdim); B: (batch, length, groups, d_state). Mode 1 runs in the
    backward and takes the backward's launch order.
    """
    bsz, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    nc, Q = cum.shape[2], cum.shape[3]
    out = torch.empty(bsz, nc, H, P, N, device=x.device, dtype=torch.float32)
    bp, bn = block(P, hi=64), block(N, hi=64)
    cfg = tuning.config("state", Q, N)
    od = tuning.order("fwd" if mode == 0 else "bwd", N)
    grid = _grid(od, triton.cdiv(P, bp) * triton.cdiv(N, bn), H, bsz * nc)
    _chunk_state_kernel[grid](
        x, B, dt, cum, out, L, H, Q, nc, P, N, H // G,
        *x.stride(), *B.stride(), *out.stride(),
        MODE=mode, DOT_PREC=dot_precision(x.dtype), ORDER=od,
        BLOCK_P=bp, BLOCK_N=bn, BLOCK_S=cfg["BLOCK"],
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )
    return out


def state_passing(states: torch.Tensor, cum: torch.Tensor, initial_states: torch.Tensor | None,
                  out_dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """From the chunk states S_c (float32): the states entering each chunk, in ``out_dtype``
    (float32: in place, over ``states``), and the final state (batch, heads, headdim, d_state)
    float32."""
    bsz, nc, H, P, N = states.shape
    Q = cum.shape[3]
    final = torch.empty(bsz, H, P, N, device=states.device, dtype=torch.float32)
    out = states if out_dtype == states.dtype else torch.empty_like(states, dtype=out_dtype)
    init = initial_states.float().contiguous() if initial_states is not None else None
    blk = 256 if interpreting() else 1024
    _state_passing_fwd_kernel[(triton.cdiv(P * N, blk), bsz, H)](
        states, cum, init if init is not None else final, final, out,
        H, Q, nc, P * N, states.stride(0), states.stride(1), states.stride(2),
        HAS_INIT=init is not None, BLOCK=blk,
    )
    return out, final


def fused_state_passing(x: torch.Tensor, B: torch.Tensor, dt: torch.Tensor, cum: torch.Tensor,
                        initial_states: torch.Tensor | None,
                        out_dtype: torch.dtype = torch.float32, tuning: SSDTuning = DEFAULT
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``chunk_state`` (mode 0) and ``state_passing`` in one launch: the states entering each
    chunk (batch, nchunks, heads, headdim, d_state) in ``out_dtype`` and the final state
    (batch, heads, headdim, d_state) float32."""
    bsz, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    nc, Q = cum.shape[2], cum.shape[3]
    out = torch.empty(bsz, nc, H, P, N, device=x.device, dtype=out_dtype)
    final = torch.empty(bsz, H, P, N, device=x.device, dtype=torch.float32)
    init = initial_states.float().contiguous() if initial_states is not None else None
    cfg = tuning.config("fused_state", Q, N)
    # default tiles: the whole d_state (x read once), headdim in blocks of 32 (more programs:
    # the launch has only batch * heads * tiles of them, each walking every chunk)
    # headdim 16 at d_state > 64 (faster at N 128: docs/developer/ssd-notes.md, "v3 — measured")
    bp = min(block(P), cfg.get("BLOCK_P", 16 if interpreting() or N > 64 else 32))
    bn = min(block(N), cfg.get("BLOCK_N", 256))
    if "num_warps" not in tuning.tiles.get("fused_state", {}) and not interpreting():
        # sm_90 build of (32, 128) tiles: 255 registers and a stack with 4 warps, 199 and none
        # with 8 (cuobjdump --dump-resource-usage)
        cfg["num_warps"] = 8 if bp * bn >= 32 * 128 else 4
    grid = (triton.cdiv(P, bp) * triton.cdiv(N, bn), H, bsz)
    _fused_state_kernel[grid](
        x, B, dt, cum, init if init is not None else final, out, final,
        L, H, Q, nc, P, N, H // G,
        *x.stride(), *B.stride(), *out.stride(),
        HAS_INIT=init is not None, DOT_PREC=dot_precision(x.dtype),
        SCALE_X=bn > bp if tuning.fused_scale == "auto" else tuning.fused_scale == "x",
        BLOCK_P=bp, BLOCK_N=bn, BLOCK_S=cfg["BLOCK"],
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )
    return out, final


def chunk_scan(x: torch.Tensor, B: torch.Tensor, C: torch.Tensor, dt: torch.Tensor,
               cum: torch.Tensor, states: torch.Tensor, D: torch.Tensor | None,
               z: torch.Tensor | None, tuning: SSDTuning = DEFAULT
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The outputs (batch, length, heads, headdim) in x's dtype, and, when z is given, the
    output before the gate (kept for the backward)."""
    bsz, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    nc, Q = cum.shape[2], cum.shape[3]
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    ypre = torch.empty_like(out) if z is not None else None
    cfg = tuning.config("scan_fwd", Q, N)
    bt, bp = cfg["BLOCK"], block(P, hi=64)
    od = tuning.order("fwd", N)
    grid = _grid(od, triton.cdiv(Q, bt) * triton.cdiv(P, bp), H, bsz * nc)
    zz = z if z is not None else x
    _chunk_scan_fwd_kernel[grid](
        x, zz, B, C, dt, cum, states, D if D is not None else x, out,
        ypre if ypre is not None else out,
        L, H, Q, nc, P, N, H // G,
        *x.stride(), *zz.stride(), *B.stride(), *C.stride(), *states.stride(), *out.stride(),
        HAS_D=D is not None, D_PER_CHANNEL=D is not None and D.dim() == 2, HAS_Z=z is not None,
        DOT_PREC=dot_precision(x.dtype), ORDER=od,
        BLOCK_T=bt, BLOCK_P=bp, BLOCK_N=block(N),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )
    return out, ypre
