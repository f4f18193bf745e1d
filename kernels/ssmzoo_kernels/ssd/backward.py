"""Host side of the chunked SSD backward: the launches of ``_bwd``'s kernels."""

from __future__ import annotations

import torch
import triton
from einops import rearrange

from ssmzoo_kernels.ssd._bwd import (
    _bwd_dc_kernel,
    _bwd_dx_db_kernel,
    _chunk_cb_kernel,
    _dt_bwd_kernel,
    _state_passing_bwd_kernel,
)
from ssmzoo_kernels.ssd._common import block, dot_precision, dt_heads_per_program, interpreting
from ssmzoo_kernels.ssd.tuning import DEFAULT, SSDTuning


def state_passing_bwd(dstates: torch.Tensor, states: torch.Tensor, final: torch.Tensor,
                      dfinal: torch.Tensor | None, cum: torch.Tensor, carried: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """In place: dstates (dH^out) becomes dS. Returns d initial state (batch, heads, headdim,
    d_state) and the gradient of each chunk's total log-decay (batch, heads, nchunks), through
    the carried state only when ``carried`` (see the kernel)."""
    bsz, nc, H, P, N = dstates.shape
    Q = cum.shape[3]
    blk = 256 if interpreting() else 1024
    nb = triton.cdiv(P * N, blk)
    dinit = torch.empty(bsz, H, P, N, device=states.device, dtype=torch.float32)
    dend = torch.empty(bsz, H, nc, nb, device=states.device, dtype=torch.float32)
    df = dfinal.float().contiguous() if dfinal is not None else None
    _state_passing_bwd_kernel[(nb, bsz, H)](
        dstates, states, final, df if df is not None else final, cum, dinit, dend,
        H, Q, nc, P * N, nb, states.stride(0), states.stride(1), states.stride(2),
        HAS_DFINAL=df is not None, BLOCK=blk, CARRIED=carried,
    )
    return dinit, dend.sum(-1)


def dx_db(x: torch.Tensor, dy: torch.Tensor, B: torch.Tensor, C: torch.Tensor, dt: torch.Tensor,
          cum: torch.Tensor, dstates: torch.Tensor, D: torch.Tensor | None, stable: bool = False,
          tuning: SSDTuning = DEFAULT) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None,
                     torch.Tensor | None]:
    """dx (x's dtype), dB (float32), d(dt) from dt x and B . dB per head (batch, heads, nchunks,
    Q) float32, dD (D's shape, float32) or None, and with ``stable`` (the stable log-decay gradient,
    ``SSDTuning.dcum``) the chunk-state part of B . dB on its own (same layout as B . dB, which then
    lacks it and holds the within-chunk pairs summed in float32) or None.

    x, dy: (batch, length, heads, headdim); B, C: (batch, length, groups, d_state); dt, cum:
    (batch, heads, nchunks, Q); dstates: dS, (batch, nchunks, heads, headdim, d_state).
    """
    bsz, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    nc, Q = cum.shape[2], cum.shape[3]
    cfg = tuning.config("bwd_dx", Q, N)
    bs_, bp, bn = cfg["BLOCK"], block(P), block(N)
    ns = triton.cdiv(Q, bs_)
    hpg = H // G
    split = tuning.head_split(hpg, ns * bsz * nc * G)
    dx = torch.empty(bsz, L, H, P, device=x.device, dtype=x.dtype)
    dB = torch.empty(bsz, L, G * split, N, device=x.device, dtype=torch.float32)
    ddt = torch.empty_like(cum)
    ddab = torch.empty_like(cum)
    tsb = torch.empty_like(cum) if stable else None
    dD_part = (torch.empty(bsz * nc, ns, H, bp, device=x.device, dtype=torch.float32)
               if D is not None else None)
    od = tuning.order("bwd", N)
    grid = (ns * G * split, bsz * nc) if od == 2 else (ns, bsz * nc, G * split)
    _bwd_dx_db_kernel[grid](
        x, dy, B, C, dt, cum, dstates, D if D is not None else x,
        dx, dB, ddt, ddab, dD_part if dD_part is not None else ddt,
        tsb if tsb is not None else ddab,
        L, H, Q, nc, P, N, hpg, hpg // split, split, ns,
        *x.stride(), *dy.stride(), *B.stride(), *C.stride(), *dstates.stride(),
        *dx.stride(), *dB.stride(),
        HAS_D=D is not None, D_PER_CHANNEL=D is not None and D.dim() == 2,
        DOT_PREC=dot_precision(x.dtype), ORDER=od, BLOCK_S=bs_, BLOCK_P=bp, BLOCK_N=bn,
        STABLE=stable, num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )
    if split > 1:
        dB = rearrange(dB, "b l (g s) n -> b l g s n", s=split).sum(3)  # (b, l, groups, n)
    dD = None
    if dD_part is not None:
        dD = dD_part.sum((0, 1))[:, :P]  # (heads, headdim)
        if D.dim() == 1:
            dD = dD.sum(-1)
    return dx, dB, ddt, ddab, dD, tsb


def dc(x: torch.Tensor, dy: torch.Tensor, B: torch.Tensor, C: torch.Tensor, dt: torch.Tensor,
       cum: torch.Tensor, states: torch.Tensor, stable: bool = False,
       cb: torch.Tensor | None = None, tuning: SSDTuning = DEFAULT
       ) -> tuple[torch.Tensor, torch.Tensor]:
    """dC (batch, length, groups, d_state) float32, and C . dC per head (batch, heads, nchunks,
    Q) float32 (its within-chunk pairs summed in float32 with ``stable``, their C_t . B_s read
    from ``cb`` when given). states: the state entering each chunk, (batch, nchunks, heads,
    headdim, d_state), float32 or x's dtype."""
    bsz, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    nc, Q = cum.shape[2], cum.shape[3]
    cfg = tuning.config("bwd_dc", Q, N)
    bt, bp, bn = cfg["BLOCK"], block(P), block(N)
    nt = triton.cdiv(Q, bt)
    hpg = H // G
    split = tuning.head_split(hpg, nt * bsz * nc * G)
    dC = torch.empty(bsz, L, G * split, N, device=x.device, dtype=torch.float32)
    ddac = torch.empty_like(cum)
    od = tuning.order("bwd", N)
    grid = (nt * G * split, bsz * nc) if od == 2 else (nt, bsz * nc, G * split)
    _bwd_dc_kernel[grid](
        x, dy, B, C, dt, cum, states, dC, ddac, cb if cb is not None else ddac,
        L, H, Q, nc, P, N, hpg, hpg // split, split, nt,
        *x.stride(), *dy.stride(), *B.stride(), *C.stride(), *states.stride(), *dC.stride(),
        DOT_PREC=dot_precision(x.dtype), ORDER=od, BLOCK_T=bt, BLOCK_P=bp, BLOCK_N=bn,
        STABLE=stable, CB_ONCE=cb is not None and stable, num_warps=cfg["num_warps"],
        num_stages=cfg["num_stages"],
    )
    if split > 1:
        dC = rearrange(dC, "b l (g s) n -> b l g s n", s=split).sum(3)  # (b, l, groups, n)
    return dC, ddac


def chunk_cb(B: torch.Tensor, C: torch.Tensor, Q: int) -> torch.Tensor:
    """C_t . B_s for every pair (t, s) of each chunk, float32, (batch, nchunks, groups, Q, Q):
    what the dC kernel's stable log-decay gradient otherwise computes per tile and per head
    (``SSDTuning.cb``), with the same tensor-core products. Positions past the sequence end are zero.
    B, C: (batch, length, groups, d_state)."""
    bsz, L, G, N = B.shape
    nc = triton.cdiv(L, Q)
    out = torch.empty(bsz, nc, G, Q, Q, device=B.device, dtype=torch.float32)
    bt = 16 if interpreting() else 64
    bn = block(N, hi=64)
    nb = triton.cdiv(Q, bt)
    _chunk_cb_kernel[(nb * nb, bsz * nc, G)](
        B, C, out, L, Q, N, G, nc, nb, *B.stride(), *C.stride(),
        DOT_PREC=dot_precision(B.dtype), BLOCK_T=bt, BLOCK_S=bt, BLOCK_N=bn, num_warps=4,
    )
    return out


def dt_bwd(ddt: torch.Tensor, ddac: torch.Tensor, ddab: torch.Tensor, dend: torch.Tensor,
           tsb: torch.Tensor | None, dt_proc: torch.Tensor, dt: torch.Tensor, A: torch.Tensor,
           dt_bias: torch.Tensor | None, softplus: bool, limit: tuple[float, float]
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gradients of dt (dt's dtype, (batch, length, heads)), A (float32) and dt_bias (float32)
    from those of the processed dt (``ddt``) and of the cumulative log-decays: d cum_t =
    C_t . dC_t - B_t . dB_t per head (``ddac`` - ``ddab``, both (batch, heads, nchunks, Q) like
    ``ddt``), plus at each chunk's last step the gradient of its total log-decay through the
    state passed on (``dend``, (batch, heads, nchunks)). The gradient of each step's log-decay
    a_r (cum_t = sum_{r<=t} a_r) is the reverse cumsum of d cum, plus, with the stable form
    (DCUM), the chunk-state terms' forward exclusive cumsum (``tsb``: a chunk-state term at s
    depends on cum_end - cum_s, the a_r with r > s). One launch; dA and d dt_bias are summed
    per (batch row, chunk), then over those rows in a fixed order."""
    bsz, L, H = dt.shape
    nc, Q = ddac.shape[2], ddac.shape[3]
    g = torch.empty(bsz, L, H, device=dt.device, dtype=dt.dtype)
    parts = torch.empty(2, bsz * nc, H, device=dt.device, dtype=torch.float32)
    bq = block(Q, lo=1)
    block_h = dt_heads_per_program(bq)
    _dt_bwd_kernel[(bsz, nc, triton.cdiv(H, block_h))](
        ddt, ddac, ddab, dend, tsb if tsb is not None else ddt, dt_proc, dt, A,
        dt_bias if dt_bias is not None else A, g, parts[0], parts[1],
        L, H, Q, nc, *dt.stride(), float(limit[0]), float(limit[1]),
        HAS_TSB=tsb is not None, HAS_BIAS=dt_bias is not None, SOFTPLUS=softplus,
        BLOCK_Q=bq, BLOCK_H=block_h,
    )
    sums = parts.sum(1)
    return g, sums[0], sums[1] if dt_bias is not None else None
