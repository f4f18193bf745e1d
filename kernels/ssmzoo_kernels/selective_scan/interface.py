"""The differentiable Triton selective scan: a thin autograd Function around ``_fwd``/``_bwd``.

The entry takes the validated call (:class:`~ssmzoo.scan.backend.SelectiveScanCall`) and a
:class:`~ssmzoo_kernels.selective_scan.tuning.Tuning`; the Function receives the call's tensors
positionally (autograd needs them so) and rebuilds the call from them and its options.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from ssmzoo.scan.backend import SelectiveScanCall
from ssmzoo_kernels.selective_scan.function import SavedStates, _bwd, _fwd_saving
from ssmzoo_kernels.selective_scan.prepare import prepare
from ssmzoo_kernels.selective_scan.tuning import DEFAULT, Tuning

__all__ = ["SelectiveScanTritonFn", "selective_scan_triton"]


def _as_input(grad: Tensor, like: Tensor, cplx_pairs: bool) -> Tensor:
    """A float32 gradient (complex ones as (..., 2) pairs) in the dtype of the input it is for."""
    if cplx_pairs:
        grad = torch.view_as_complex(grad.contiguous())
        if not like.is_complex():  # a real tensor promoted to complex: its gradient is the real part
            grad = grad.real
    return grad.to(like.dtype)


def _variable_grad(g: Tensor, like: Tensor) -> Tensor:
    """A variable dB/dC from the kernels' (batch, groups, d_state, length') layout."""
    return (g if like.dim() == 4 else rearrange(g, "b 1 n l -> b n l")).to(like.dtype)


class SelectiveScanTritonFn(torch.autograd.Function):
    """Forward and backward kernels; saves the inputs, and with ``tuning.save_states`` the
    chunk-start states and un-gated output (else the backward recomputes them)."""

    @staticmethod
    def forward(ctx, options: dict, tuning: Tuning, *tensors: Tensor | None):
        call = SelectiveScanCall.rebuild(tensors, options)
        p = prepare(call)
        save = tuning.save_states and any(ctx.needs_input_grad)
        out, last, saved = _fwd_saving(p, call.return_last_state, tuning, save=save)
        ws, ypre = (saved.ws, saved.ypre) if saved is not None else (None, None)
        ctx.save_for_backward(*tensors, ws, ypre)
        ctx.options, ctx.tuning = options, tuning
        ctx.saved_block_t = saved.block_t if saved is not None else 0
        if not call.return_last_state:
            return out
        return out, torch.view_as_complex(last) if p.is_complex else last

    @staticmethod
    def backward(ctx, dout, dlast=None):
        *tensors, ws, ypre = ctx.saved_tensors
        call = SelectiveScanCall.rebuild(tuple(tensors), ctx.options)
        saved = SavedStates(ws, ypre, ctx.saved_block_t) if ws is not None else None
        p = prepare(call)
        cplx = p.is_complex
        if dlast is not None and cplx:
            dlast = torch.view_as_real(dlast.to(torch.complex64).resolve_conj())
        g = _bwd(p, dout, dlast, ctx.tuning, saved=saved)
        dBf = g["Bf"].sum(0)  # (dim, d_state[, 2]): fixed B, or B_bias
        dCf = g["Cf"].sum(0)
        grads = {
            "u": g["u"], "delta": g["delta"], "A": _as_input(g["A"].sum(0), call.A, cplx),
            "B": _variable_grad(g["Bv"], call.B) if p.B_var else _as_input(dBf, call.B, cplx),
            "C": _variable_grad(g["Cv"], call.C) if p.C_var else _as_input(dCf, call.C, cplx),
            "D": g["D"].sum(0), "z": g["z"], "delta_bias": g["delta_bias"].sum(0),
            "B_bias": dBf, "C_bias": dCf, "initial_state": g["h0"],
        }
        out = []
        for name in SelectiveScanCall.TENSORS:
            like = getattr(call, name)
            grad = grads[name] if like is not None else None
            if grad is not None and name in ("D", "delta_bias"):
                grad = grad.to(like.dtype)
            elif grad is not None and name in ("B_bias", "C_bias", "initial_state"):
                grad = _as_input(grad, like, cplx)
            out.append(grad)
        return (None, None, *out)


def selective_scan_triton(call: SelectiveScanCall, tuning: Tuning = DEFAULT
                          ) -> Tensor | tuple[Tensor, Tensor]:
    """``ssmzoo.selective_scan`` on the Triton kernels for a validated call; same results.

    Returns out (batch, dim, length) in u's dtype, and with ``return_last_state`` the last state
    (batch, dim, d_state), float32 or complex64.
    """
    return SelectiveScanTritonFn.apply(call.options(), tuning, *call.tensor_args())
