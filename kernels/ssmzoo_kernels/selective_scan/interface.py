"""The differentiable Triton selective scan: a thin autograd Function around ``_fwd``/``_bwd``."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from ssmzoo_kernels.selective_scan import function
from ssmzoo_kernels.selective_scan.function import (
    SavedStates,
    _bwd,
    _fwd_saving,
    _prepare,
    _Prepared,
)


def _as_input(grad: Tensor, like: Tensor, cplx_pairs: bool) -> Tensor:
    """A float32 gradient (complex ones as (..., 2) pairs) in the dtype of the input it is for."""
    if cplx_pairs:
        grad = torch.view_as_complex(grad.contiguous())
        if not like.is_complex():  # a real tensor promoted to complex: its gradient is the real part
            grad = grad.real
    return grad.to(like.dtype)


class SelectiveScanTritonFn(torch.autograd.Function):
    """Forward and backward kernels; saves the inputs, and with ``function.SAVE_STATES`` the
    chunk-start states and un-gated output (else the backward recomputes them)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, B_bias, C_bias, initial_state,
                delta_softplus, return_last_state, discretization):
        p = _prepare(u, delta, A, B, C, D, z, delta_bias, B_bias, C_bias, initial_state,
                     delta_softplus, discretization)
        save = function.SAVE_STATES and any(ctx.needs_input_grad)
        out, last, saved = _fwd_saving(p, return_last_state, save=save)
        ws, ypre = (saved.ws, saved.ypre) if saved is not None else (None, None)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, B_bias, C_bias, initial_state,
                              ws, ypre)
        ctx.options = (delta_softplus, discretization)
        ctx.saved_block_t = saved.block_t if saved is not None else 0
        if not return_last_state:
            return out
        return out, torch.view_as_complex(last) if p.is_complex else last

    @staticmethod
    def backward(ctx, dout, dlast=None):
        u, delta, A, B, C, D, z, delta_bias, B_bias, C_bias, h0, ws, ypre = ctx.saved_tensors
        saved = SavedStates(ws, ypre, ctx.saved_block_t) if ws is not None else None
        p: _Prepared = _prepare(u, delta, A, B, C, D, z, delta_bias, B_bias, C_bias, h0,
                                *ctx.options)
        if dlast is not None and p.is_complex:
            dlast = torch.view_as_real(dlast.to(torch.complex64).resolve_conj())
        g = _bwd(p, dout, dlast, saved=saved)
        cplx = p.is_complex
        dA = _as_input(g["A"].sum(0), A, cplx)
        dBf = g["Bf"].sum(0)  # (dim, d_state[, 2]): fixed B, or B_bias
        dCf = g["Cf"].sum(0)
        if p.B_var:
            dB = g["Bv"] if B.dim() == 4 else rearrange(g["Bv"], "b 1 n l -> b n l")
            dB = dB.to(B.dtype)
        else:
            dB = _as_input(dBf, B, cplx)
        if p.C_var:
            dC = g["Cv"] if C.dim() == 4 else rearrange(g["Cv"], "b 1 n l -> b n l")
            dC = dC.to(C.dtype)
        else:
            dC = _as_input(dCf, C, cplx)
        return (
            g["u"], g["delta"], dA, dB, dC,
            None if D is None else g["D"].sum(0).to(D.dtype),
            g["z"],
            None if delta_bias is None else g["delta_bias"].sum(0).to(delta_bias.dtype),
            None if B_bias is None else _as_input(dBf, B_bias, cplx),
            None if C_bias is None else _as_input(dCf, C_bias, cplx),
            None if h0 is None else _as_input(g["h0"], h0, cplx),
            None, None, None,
        )


def selective_scan_triton(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
    z: Tensor | None = None, delta_bias: Tensor | None = None, delta_softplus: bool = False,
    return_last_state: bool = False, *, B_bias: Tensor | None = None,
    C_bias: Tensor | None = None, initial_state: Tensor | None = None,
    discretization: str = "euler",
) -> Tensor | tuple[Tensor, Tensor]:
    """``ssmzoo.selective_scan`` on the Triton kernels; same arguments, same results.

    u, delta, z: (batch, dim, length); A: (dim, d_state) real or complex; B, C: (dim, d_state),
    (batch, d_state, length) or (batch, groups, d_state, length) (last axis 2·length, real and
    imaginary interleaved, when A is complex); D, delta_bias: (dim,); B_bias, C_bias:
    (dim, d_state); initial_state: (batch, dim, d_state). Returns out (batch, dim, length) in u's
    dtype, and with ``return_last_state`` the last state (batch, dim, d_state), float32 or
    complex64. Inputs are validated by the public function, not here.
    """
    return SelectiveScanTritonFn.apply(
        u, delta, A, B, C, D, z, delta_bias, B_bias, C_bias, initial_state, delta_softplus,
        return_last_state, discretization,
    )
