"""The scans written as plain sequential loops: the specification every backend is tested against.

Slow (one Python step per token) and meant to be read. Both functions take the public functions'
arguments and return what they return; they do no validation (the public functions do it).

Selective scan, per batch element and channel (the state h has d_state entries)::

    Δ_t   = softplus(delta_t + delta_bias)          (softplus and bias optional)
    Ā_t   = exp(Δ_t A)
    B̄_t   = Δ_t (B_t + B_bias)                      (euler, mamba_ssm's choice)
          = (exp(Δ_t A) - 1) / A · (B_t + B_bias)   (zoh)
    h_t   = Ā_t h_{t-1} + B̄_t u_t,                  h_0 = initial_state (or 0)
    y_t   = <C_t + C_bias, h_t>                     (2·Re of it when A is complex)
    out_t = (y_t + D u_t) · silu(z_t)

SSD (Mamba-2), per batch element and head (the state H is headdim × d_state)::

    Δ_t = clamp(softplus(dt_t + dt_bias), dt_limit)
    H_t = exp(Δ_t A_h) H_{t-1} + Δ_t x_t B_tᵀ,      y_t = H_t C_t + D x_t,   out_t = y_t · silu(z_t)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor

from ssmzoo.scan._math import acc_dtype, complex_of, interleaved_to_complex, phi1


def _per_channel(X: Tensor, batch: int, dim: int, length: int, cplx: bool,
                 dtype: torch.dtype) -> Tensor:
    """B or C in any layout -> (batch, dim, d_state, length), complex when A is complex."""
    if X.dim() == 2:  # fixed (dim, d_state)
        X = X.to(complex_of(dtype) if cplx else dtype)
        return repeat(X, "d n -> b d n l", b=batch, l=length)
    X = interleaved_to_complex(X, dtype) if cplx else X.to(dtype)
    if X.dim() == 3:  # variable (batch, d_state, length)
        return repeat(X, "b n l -> b d n l", d=dim)
    return repeat(X, "b g n l -> b (g r) n l", r=dim // X.shape[1])  # grouped


def selective_scan_naive(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
    z: Tensor | None = None, delta_bias: Tensor | None = None, delta_softplus: bool = False,
    return_last_state: bool = False, *, B_bias: Tensor | None = None,
    C_bias: Tensor | None = None, initial_state: Tensor | None = None,
    discretization: str = "euler",
) -> Tensor | tuple[Tensor, Tensor]:
    """``selective_scan`` as a loop over time; same arguments, same results.

    u, delta, z: (batch, dim, length); A: (dim, d_state); B, C: (dim, d_state),
    (batch, d_state, length) or (batch, groups, d_state, length) (last axis 2·length when A is
    complex); D, delta_bias: (dim,); B_bias, C_bias: (dim, d_state); initial_state:
    (batch, dim, d_state). Returns out (batch, dim, length) in u's dtype, and with
    ``return_last_state`` the state (batch, dim, d_state) in the accumulation dtype.
    """
    real = acc_dtype(u, delta, A, B, C, D, z, delta_bias, B_bias, C_bias, initial_state)
    cplx = A.is_complex()
    state_dtype = complex_of(real) if cplx else real
    batch, dim, length = u.shape
    uf, dt = u.to(real), delta.to(real)
    if delta_bias is not None:
        dt = dt + delta_bias.to(real)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    A_ = A.to(state_dtype)
    Bs = _per_channel(B, batch, dim, length, cplx, real)  # (batch, dim, d_state, length)
    Cs = _per_channel(C, batch, dim, length, cplx, real)  # (batch, dim, d_state, length)
    if B_bias is not None:
        Bs = Bs + B_bias.to(state_dtype)[None, :, :, None]
    if C_bias is not None:
        Cs = Cs + C_bias.to(state_dtype)[None, :, :, None]

    if initial_state is None:
        h = torch.zeros(batch, dim, A.shape[1], dtype=state_dtype, device=u.device)
    else:
        h = initial_state.to(state_dtype)
    ys = []
    for t in range(length):
        dA = dt[:, :, t, None] * A_  # (batch, dim, d_state)
        coef = dt[:, :, t, None] if discretization == "euler" else dt[:, :, t, None] * phi1(dA)
        h = torch.exp(dA) * h + coef * Bs[..., t] * uf[:, :, t, None]  # (batch, dim, d_state)
        y = (h * Cs[..., t]).sum(-1)  # (batch, dim)
        ys.append(2 * y.real if cplx else y)
    out = torch.stack(ys, dim=-1)  # (batch, dim, length)
    if D is not None:
        out = out + D.to(real)[:, None] * uf
    if z is not None:
        out = out * F.silu(z.to(real))
    out = out.to(u.dtype)
    return (out, h) if return_last_state else out


def ssd_naive(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int = 256,
    D: Tensor | None = None, z: Tensor | None = None, dt_bias: Tensor | None = None,
    initial_states: Tensor | None = None, dt_softplus: bool = False,
    dt_limit: tuple[float, float] = (0.0, math.inf), return_final_states: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """``ssd_scan`` as a loop over time (``chunk_size`` is accepted and ignored).

    x, z: (batch, length, heads, headdim); dt: (batch, length, heads); A, dt_bias: (heads,);
    B, C: (batch, length, groups, d_state); D: (heads,) or (heads, headdim); initial_states:
    (batch, heads, headdim, d_state). Returns out (batch, length, heads, headdim) in x's dtype, and
    with ``return_final_states`` the state (batch, heads, headdim, d_state) in the accumulation
    dtype.
    """
    real = acc_dtype(x, dt, A, B, C, D, z, dt_bias, initial_states)
    batch, length, heads, headdim = x.shape
    groups, d_state = B.shape[2], B.shape[3]
    xf, delta = x.to(real), dt.to(real)
    if dt_bias is not None:
        delta = delta + dt_bias.to(real)
    if dt_softplus:
        delta = F.softplus(delta)
    delta = delta.clamp(min=dt_limit[0], max=dt_limit[1])  # (batch, length, heads)
    Bh = repeat(B.to(real), "b l g n -> b l (g r) n", r=heads // groups)  # (b, l, heads, n)
    Ch = repeat(C.to(real), "b l g n -> b l (g r) n", r=heads // groups)  # (b, l, heads, n)

    if initial_states is None:
        H = torch.zeros(batch, heads, headdim, d_state, dtype=real, device=x.device)
    else:
        H = initial_states.to(real)
    ys = []
    for t in range(length):
        decay = torch.exp(delta[:, t] * A.to(real))  # (batch, heads)
        inp = torch.einsum("bh,bhp,bhn->bhpn", delta[:, t], xf[:, t], Bh[:, t])
        H = decay[:, :, None, None] * H + inp  # (batch, heads, headdim, d_state)
        ys.append(torch.einsum("bhpn,bhn->bhp", H, Ch[:, t]))
    out = torch.stack(ys, dim=1)  # (batch, length, heads, headdim)
    if D is not None:
        Dp = D.to(real) if D.dim() == 2 else rearrange(D.to(real), "h -> h 1")
        out = out + Dp * xf
    if z is not None:
        out = out * F.silu(z.to(real))
    out = out.to(x.dtype)
    return (out, H) if return_final_states else out
