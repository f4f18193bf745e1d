"""The autograd Function around the chunked SSD kernels: bookkeeping only, the work is in
``forward`` and ``backward`` (the launches) and ``_fwd``/``_bwd`` (the kernels)."""

from __future__ import annotations

import torch
from torch import Tensor

from ssmzoo_kernels.ssd import backward as _bwd
from ssmzoo_kernels.ssd import forward as _fwd
from ssmzoo_kernels.ssd.tuning import DEFAULT, SSDTuning


def ssd_fwd(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int,
            D: Tensor | None, z: Tensor | None, dt_bias: Tensor | None,
            initial_states: Tensor | None, dt_softplus: bool, dt_limit: tuple[float, float],
            tuning: SSDTuning = DEFAULT
            ) -> tuple[Tensor, Tensor | None, Tensor, Tensor, Tensor, Tensor]:
    """Every forward tensor: out (batch, length, heads, headdim), the output before the gate (or
    None), dt and its within-chunk cumsum (batch, heads, nchunks, Q), the state entering each
    chunk (batch, nchunks, heads, headdim, d_state; float32, or x's dtype with
    ``tuning.states = "input"``) and the final state (batch, heads, headdim, d_state), all float32
    but out (and those states)."""
    dt_proc, cum = _fwd.dt_cumsum(dt, A, dt_bias, chunk_size, dt_softplus, dt_limit)
    sdt = tuning.states_dtype(x.dtype)
    if tuning.fused_state:
        states, final = _fwd.fused_state_passing(x, B, dt_proc, cum, initial_states, sdt, tuning)
    else:
        own = _fwd.chunk_state(x, B, dt_proc, cum, mode=0, tuning=tuning)
        states, final = _fwd.state_passing(own, cum, initial_states, sdt)
    out, ypre = _fwd.chunk_scan(x, B, C, dt_proc, cum, states, D, z, tuning)
    return out, ypre, dt_proc, cum, states, final


def ssd_bwd(dout: Tensor, dfinal: Tensor | None, x: Tensor, dt: Tensor, A: Tensor, B: Tensor,
            C: Tensor, D: Tensor | None, z: Tensor | None, dt_bias: Tensor | None,
            ypre: Tensor | None, dt_proc: Tensor, cum: Tensor, states: Tensor, final: Tensor,
            dt_softplus: bool, dt_limit: tuple[float, float], tuning: SSDTuning = DEFAULT
            ) -> tuple[Tensor | None, ...]:
    """Gradients of x, dt, A, B, C, D, z, dt_bias and the initial states (None where absent)."""
    dz = None
    if z is not None:
        zf = z.float()
        sig = torch.sigmoid(zf)
        doutf = dout.float()
        dz = (doutf * ypre.float() * sig * (1.0 + zf * (1.0 - sig))).to(z.dtype)
        dy = (doutf * zf * sig).to(x.dtype)
    else:
        dy = dout.to(x.dtype)
    dstates = _fwd.chunk_state(dy, C, dt_proc, cum, mode=1, tuning=tuning)  # dH^out per chunk
    stable = tuning.dcum_stable()  # one choice for the three kernels that share it
    dinit, dend = _bwd.state_passing_bwd(dstates, states, final, dfinal, cum, carried=stable)
    dx, dB, ddt, ddab, dD, tsb = _bwd.dx_db(x, dy, B, C, dt_proc, cum, dstates, D, stable,
                                            tuning)
    cb = _bwd.chunk_cb(B, C, cum.shape[3]) if stable and tuning.cb_once(B.shape[-1]) else None
    dC, ddac = _bwd.dc(x, dy, B, C, dt_proc, cum, states, stable, cb, tuning)
    ddt_in, dA, ddt_bias = _bwd.dt_bwd(ddt, ddac, ddab, dend, tsb, dt_proc, dt, A, dt_bias,
                                       dt_softplus, dt_limit)
    return (dx, ddt_in, dA.to(A.dtype), dB.to(B.dtype), dC.to(C.dtype),
            dD.to(D.dtype) if dD is not None else None, dz,
            ddt_bias.to(dt_bias.dtype) if ddt_bias is not None else None, dinit)


class SSDTritonFn(torch.autograd.Function):
    """out (and final states) of the chunked SSD, differentiable in every tensor argument."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, z, dt_bias, initial_states, chunk_size, dt_softplus,
                dt_limit, return_final_states, tuning):
        out, ypre, dt_proc, cum, states, final = ssd_fwd(
            x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, dt_softplus, dt_limit,
            tuning)
        ctx.save_for_backward(x, dt, A, B, C, D, z, dt_bias, ypre, dt_proc, cum, states, final)
        ctx.dt_softplus, ctx.dt_limit, ctx.tuning = dt_softplus, dt_limit, tuning
        ctx.init_dtype = initial_states.dtype if initial_states is not None else None
        if not return_final_states:
            ctx.mark_non_differentiable(final)
        return out, final

    @staticmethod
    def backward(ctx, dout, dfinal):
        x, dt, A, B, C, D, z, dt_bias, ypre, dt_proc, cum, states, final = ctx.saved_tensors
        dx, ddt, dA, dB, dC, dD, dz, ddt_bias, dinit = ssd_bwd(
            dout, dfinal, x, dt, A, B, C, D, z, dt_bias, ypre, dt_proc, cum, states, final,
            ctx.dt_softplus, ctx.dt_limit, ctx.tuning)
        dinit = dinit.to(ctx.init_dtype) if ctx.init_dtype is not None else None
        return dx, ddt, dA, dB, dC, dD, dz, ddt_bias, dinit, None, None, None, None, None


__all__ = ["SSDTritonFn", "ssd_fwd", "ssd_bwd"]
