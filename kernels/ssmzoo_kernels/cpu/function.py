"""``selective_scan`` on the CPU through the compiled loops of :mod:`._kernels`.

The wrapper does in PyTorch (so autograd handles it) everything that costs O(batch·d·L): Δ's bias
and softplus, D, the z gate, and the re-layout of B and C to (batch, g, L, n) with real and
imaginary parts apart; the fixed B (or C) and B_bias (C_bias) are added into one per-channel
(d, n) part. :class:`_Scan` is the autograd Function around the loops: it saves its inputs only
(the backward recomputes the states channel by channel) and returns every gradient the loops give.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ssmzoo.scan.backend import SelectiveScanCall


def _np(t: Tensor | None, dtype: torch.dtype, dims: int):
    """The array the loops read: contiguous, or a placeholder of ``dims`` ones when absent."""
    if t is None:
        return torch.zeros((1,) * dims, dtype=dtype).numpy()
    return t.detach().contiguous().numpy()


def _blocks(groups: tuple[int, ...]) -> int:
    """Channel blocks of the backward: whole groups of every grouped operand in each block."""
    g = 0
    for k in groups:
        g = math.gcd(g, k)
    return g or 1


def set_threads() -> None:
    """Run the loops on as many threads as torch uses (a grid cell's single thread included)."""
    import numba

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


class _Scan(torch.autograd.Function):
    """y = s·Re(Σ_n γ h), h_t = a_t h_{t-1} + k_t β_t u_t; inputs in :mod:`._kernels`' layout.

    Arguments (None when absent): u, dt (b, d, L); A_re, A_im (d, n); Bv_re, Bv_im, Cv_re,
    Cv_im (b, g, L, n); Bc_re, Bc_im, Cc_re, Cc_im (d, n); h0_re, h0_im (b, d, n); then the flag
    zoh. ``*_im`` are None for real A. Returns y and the last state's parts.
    """

    @staticmethod
    def forward(ctx: Any, u, dt, Ar, Ai, Bvr, Bvi, Bcr, Bci, Cvr, Cvi, Ccr, Cci, h0r, h0i,
                zoh: bool):
        from ssmzoo_kernels.cpu import _kernels, _kernels_complex

        cplx = Ai is not None
        dtype = u.dtype
        b, d, _ = u.shape
        n = Ar.shape[1]
        y = torch.empty_like(u)
        hLr = torch.empty((b, d, n), dtype=dtype)
        flags = (Bvr is not None, Bcr is not None, Cvr is not None, Ccr is not None,
                 h0r is not None, bool(zoh))
        set_threads()
        if cplx:
            hLi = torch.empty((b, d, n), dtype=dtype)
            _kernels_complex.fwd_complex(
                _np(u, dtype, 3), _np(dt, dtype, 3), _np(Ar, dtype, 2), _np(Ai, dtype, 2),
                _np(Bvr, dtype, 4), _np(Bvi, dtype, 4), _np(Bcr, dtype, 2), _np(Bci, dtype, 2),
                _np(Cvr, dtype, 4), _np(Cvi, dtype, 4), _np(Ccr, dtype, 2), _np(Cci, dtype, 2),
                _np(h0r, dtype, 3), _np(h0i, dtype, 3), y.numpy(), hLr.numpy(), hLi.numpy(),
                *flags)
        else:
            hLi = None
            _kernels.fwd_real(
                _np(u, dtype, 3), _np(dt, dtype, 3), _np(Ar, dtype, 2), _np(Bvr, dtype, 4),
                _np(Bcr, dtype, 2), _np(Cvr, dtype, 4), _np(Ccr, dtype, 2), _np(h0r, dtype, 3),
                y.numpy(), hLr.numpy(), *flags)
        ctx.zoh = bool(zoh)
        ctx.save_for_backward(u, dt, Ar, Ai, Bvr, Bvi, Bcr, Bci, Cvr, Cvi, Ccr, Cci, h0r, h0i)
        return (y, hLr) if hLi is None else (y, hLr, hLi)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dy: Tensor, dhLr: Tensor | None, dhLi: Tensor | None = None):
        from ssmzoo_kernels.cpu import _kernels, _kernels_complex

        u, dt, Ar, Ai, Bvr, Bvi, Bcr, Bci, Cvr, Cvi, Ccr, Cci, h0r, h0i = ctx.saved_tensors
        cplx = Ai is not None
        dtype = u.dtype
        b, d, _ = u.shape
        n = Ar.shape[1]
        has_dhL = dhLr is not None or dhLi is not None
        if cplx and has_dhL:
            dhLr = torch.zeros((b, d, n), dtype=dtype) if dhLr is None else dhLr
            dhLi = torch.zeros((b, d, n), dtype=dtype) if dhLi is None else dhLi
        dy = torch.zeros_like(u) if dy is None else dy.to(dtype)
        blocks = _blocks(tuple(t.shape[1] for t in (Bvr, Cvr) if t is not None))
        du, ddt = torch.empty_like(u), torch.empty_like(u)
        per_b = (b, d, n)
        z = lambda t: None if t is None else torch.zeros(t.shape, dtype=dtype)  # noqa: E731
        e = lambda: torch.empty(per_b, dtype=dtype)  # noqa: E731
        flags = (Bvr is not None, Bcr is not None, Cvr is not None, Ccr is not None,
                 h0r is not None, has_dhL, ctx.zoh, blocks)
        set_threads()
        if cplx:
            dAr, dAi, dBcr, dBci, dCcr, dCci, dh0r, dh0i = (e() for _ in range(8))
            dBvr, dBvi, dCvr, dCvi = z(Bvr), z(Bvi), z(Cvr), z(Cvi)
            _kernels_complex.bwd_complex(
                _np(u, dtype, 3), _np(dt, dtype, 3), _np(Ar, dtype, 2), _np(Ai, dtype, 2),
                _np(Bvr, dtype, 4), _np(Bvi, dtype, 4), _np(Bcr, dtype, 2), _np(Bci, dtype, 2),
                _np(Cvr, dtype, 4), _np(Cvi, dtype, 4), _np(Ccr, dtype, 2), _np(Cci, dtype, 2),
                _np(h0r, dtype, 3), _np(h0i, dtype, 3), _np(dy, dtype, 3),
                _np(dhLr, dtype, 3), _np(dhLi, dtype, 3), *flags,
                du.numpy(), ddt.numpy(), dAr.numpy(), dAi.numpy(),
                _np(dBvr, dtype, 4), _np(dBvi, dtype, 4), dBcr.numpy(), dBci.numpy(),
                _np(dCvr, dtype, 4), _np(dCvi, dtype, 4), dCcr.numpy(), dCci.numpy(),
                dh0r.numpy(), dh0i.numpy())
        else:
            dAr, dBcr, dCcr, dh0r = (e() for _ in range(4))
            dAi = dBci = dCci = dh0i = dBvi = dCvi = None
            dBvr, dCvr = z(Bvr), z(Cvr)
            _kernels.bwd_real(
                _np(u, dtype, 3), _np(dt, dtype, 3), _np(Ar, dtype, 2), _np(Bvr, dtype, 4),
                _np(Bcr, dtype, 2), _np(Cvr, dtype, 4), _np(Ccr, dtype, 2), _np(h0r, dtype, 3),
                _np(dy, dtype, 3), _np(dhLr, dtype, 3), *flags,
                du.numpy(), ddt.numpy(), dAr.numpy(), _np(dBvr, dtype, 4), dBcr.numpy(),
                _np(dCvr, dtype, 4), dCcr.numpy(), dh0r.numpy())

        def need(i: int, t: Tensor | None) -> Tensor | None:
            return t if t is not None and ctx.needs_input_grad[i] else None

        def over_batch(i: int, t: Tensor | None) -> Tensor | None:
            return t.sum(0) if t is not None and ctx.needs_input_grad[i] else None

        return (need(0, du), need(1, ddt), over_batch(2, dAr), over_batch(3, dAi),
                need(4, dBvr), need(5, dBvi), over_batch(6, dBcr), over_batch(7, dBci),
                need(8, dCvr), need(9, dCvi), over_batch(10, dCcr), over_batch(11, dCci),
                need(12, dh0r), need(13, dh0i), None)


def _parts(t: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """(re, im) of a complex tensor, (t, None) of a real one, (None, None) of None."""
    if t is None:
        return None, None
    if t.is_complex():
        return t.real, t.imag
    return t, None


def _variable(t: Tensor, cplx: bool, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
    """Variable (b, n, L) or grouped (b, g, n, L[·2]) B/C -> (b, g, L, n) real and imaginary."""
    if t.dim() == 3:
        t = t.unsqueeze(1)
    if t.is_complex():  # a complex (b, g, n, L) tensor
        t = t.transpose(2, 3)
        return t.real.to(dtype).contiguous(), t.imag.to(dtype).contiguous()
    t = t.to(dtype)
    if cplx:  # the interleaved 2L layout: re and im of step l at 2l and 2l+1
        t = t.unflatten(3, (-1, 2)).transpose(2, 3)            # (b, g, L, n, 2)
        return t[..., 0].contiguous(), t[..., 1].contiguous()
    return t.transpose(2, 3).contiguous(), None


def _fixed(t: Tensor | None, bias: Tensor | None, cplx: bool,
           dtype: torch.dtype) -> tuple[Tensor | None, Tensor | None]:
    """The per-channel (d, n) part of B or C: the fixed matrix, the bias, or their sum."""
    parts = [p for p in (t, bias) if p is not None]
    if not parts:
        return None, None
    total = parts[0] if len(parts) == 1 else parts[0] + parts[1]
    if cplx and not total.is_complex():
        total = torch.complex(total, torch.zeros_like(total))
    re, im = _parts(total)
    assert re is not None
    return re.to(dtype), (im.to(dtype) if im is not None else None)


def selective_scan_cpu(call: SelectiveScanCall) -> Tensor | tuple[Tensor, Tensor]:
    """Run one validated call (CPU, float32 or float64) through the compiled loops."""
    u, cplx = call.u, call.is_complex
    dtype = u.dtype
    delta = call.delta.to(dtype)
    if call.delta_bias is not None:
        delta = delta + call.delta_bias.to(dtype)[:, None]
    if call.delta_softplus:
        delta = F.softplus(delta)
    Ar, Ai = _parts(call.A)
    Bvr = Bvi = Cvr = Cvi = None
    if call.B.dim() > 2:
        Bvr, Bvi = _variable(call.B, cplx, dtype)
    if call.C.dim() > 2:
        Cvr, Cvi = _variable(call.C, cplx, dtype)
    Bcr, Bci = _fixed(call.B if call.B.dim() == 2 else None, call.B_bias, cplx, dtype)
    Ccr, Cci = _fixed(call.C if call.C.dim() == 2 else None, call.C_bias, cplx, dtype)
    h0r, h0i = _parts(call.initial_state)
    assert Ar is not None
    res = _Scan.apply(u, delta, Ar.to(dtype), None if Ai is None else Ai.to(dtype),
                      Bvr, Bvi, Bcr, Bci, Cvr, Cvi, Ccr, Cci,
                      None if h0r is None else h0r.to(dtype),
                      None if h0i is None else h0i.to(dtype),
                      call.discretization == "zoh")
    y, last = res[0], (res[1] if not cplx else torch.complex(res[1], res[2]))
    if call.D is not None:
        y = y + call.D.to(dtype)[:, None] * u
    if call.z is not None:
        y = y * F.silu(call.z.to(dtype))
    if call.return_last_state:
        return y, last
    return y
