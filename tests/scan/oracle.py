"""Independent float64 oracles, written differently from everything in ssmzoo.scan.

No loop over time and no chunks: the state at t is the closed form
h_t = Π_{r≤t} Ā_r · h_0 + Σ_{s≤t} (Π_{s<r≤t} Ā_r) B̄_s u_s, built as an explicit (t, s) matrix of
decays from float64 cumulative sums, with real and imaginary parts carried as complex128. Small
shapes only (the matrix is length²).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

f64, c128 = torch.float64, torch.complex128


def _softplus(x: Tensor) -> Tensor:
    return torch.where(x > 20, x, torch.log1p(torch.exp(torch.clamp(x, max=20))))


def _bc_full(X: Tensor, b: int, d: int, l: int, cplx: bool) -> Tensor:
    """Any layout -> (b, d, n, l) complex128."""
    if X.dim() == 2:
        return X.to(c128)[None, :, :, None].expand(b, d, X.shape[1], l)
    if cplx:  # (..., 2l) interleaved -> explicit real and imaginary parts
        X = X.to(f64)
        X = torch.complex(X[..., 0::2], X[..., 1::2])
    X = X.to(c128)
    if X.dim() == 3:
        return X[:, None].expand(b, d, X.shape[1], l)
    g = X.shape[1]
    return X.repeat_interleave(d // g, dim=1)  # (b, g, n, l) -> (b, d, n, l)


def selective_scan_oracle(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False, *, B_bias=None, C_bias=None,
                          initial_state=None, discretization="euler"):
    b, d, l = u.shape
    cplx = A.is_complex()
    dt = delta.to(f64)
    if delta_bias is not None:
        dt = dt + delta_bias.to(f64)[:, None]
    if delta_softplus:
        dt = _softplus(dt)
    Ac = A.to(c128)  # (d, n)
    Bf, Cf = _bc_full(B, b, d, l, cplx), _bc_full(C, b, d, l, cplx)  # (b, d, n, l)
    if B_bias is not None:
        Bf = Bf + B_bias.to(c128)[None, :, :, None]
    if C_bias is not None:
        Cf = Cf + C_bias.to(c128)[None, :, :, None]
    dA = dt[:, :, None, :].to(c128) * Ac[None, :, :, None]  # (b, d, n, l)
    if discretization == "euler":
        coef = dt[:, :, None, :].to(c128).expand_as(dA)
    else:
        coef = (torch.exp(dA) - 1) / Ac[None, :, :, None]
    S = torch.cumsum(dA, dim=-1)  # (b, d, n, l): log of Π_{r≤t} Ā_r
    tri = torch.tril(torch.ones(l, l, dtype=torch.bool))
    W = torch.exp(S[..., :, None] - S[..., None, :])  # (b, d, n, t, s)
    W = torch.where(tri, W, torch.zeros((), dtype=c128))
    inp = coef * Bf * u.to(c128)[:, :, None, :]  # (b, d, n, l)
    H = torch.einsum("bdnts,bdns->bdnt", W, inp)  # (b, d, n, l): every state
    if initial_state is not None:
        H = H + torch.exp(S) * initial_state.to(c128)[..., None]
    y = torch.einsum("bdnt,bdnt->bdt", H, Cf)
    y = 2 * y.real if cplx else y.real
    if D is not None:
        y = y + D.to(f64)[:, None] * u.to(f64)
    if z is not None:
        zf = z.to(f64)
        y = y * zf / (1 + torch.exp(-zf))
    last = H[..., -1] if cplx else H[..., -1].real
    return (y, last) if return_last_state else y


def ssd_oracle(x, dt, A, B, C, chunk_size=256, D=None, z=None, dt_bias=None, initial_states=None,
               dt_softplus=False, dt_limit=(0.0, math.inf), return_final_states=False):
    b, l, h, p = x.shape
    g = B.shape[2]
    delta = dt.to(f64)
    if dt_bias is not None:
        delta = delta + dt_bias.to(f64)
    if dt_softplus:
        delta = _softplus(delta)
    delta = torch.minimum(torch.maximum(delta, torch.tensor(dt_limit[0], dtype=f64)),
                          torch.tensor(dt_limit[1], dtype=f64))  # (b, l, h)
    Bh = B.to(f64).repeat_interleave(h // g, dim=2)  # (b, l, h, n)
    Ch = C.to(f64).repeat_interleave(h // g, dim=2)
    S = torch.cumsum(delta * A.to(f64), dim=1)  # (b, l, h)
    tri = torch.tril(torch.ones(l, l, dtype=torch.bool))
    W = torch.exp(S[:, :, None, :] - S[:, None, :, :])  # (b, t, s, h)
    W = torch.where(tri[None, :, :, None], W, torch.zeros((), dtype=f64))
    scores = torch.einsum("bthn,bshn->btsh", Ch, Bh) * W * delta[:, None, :, :]
    y = torch.einsum("btsh,bshp->bthp", scores, x.to(f64))
    if initial_states is not None:
        y = y + torch.exp(S)[..., None] * torch.einsum("bthn,bhpn->bthp", Ch,
                                                        initial_states.to(f64))
    # final state: Σ_s exp(S_L - S_s) Δ_s x_s B_sᵀ + exp(S_L) H0
    wl = torch.exp(S[:, -1:, :] - S) * delta  # (b, l, h)
    final = torch.einsum("bsh,bshp,bshn->bhpn", wl, x.to(f64), Bh)
    if initial_states is not None:
        final = final + torch.exp(S[:, -1])[:, :, None, None] * initial_states.to(f64)
    if D is not None:
        Dp = D.to(f64) if D.dim() == 2 else D.to(f64)[:, None]
        y = y + Dp * x.to(f64)
    if z is not None:
        zf = z.to(f64)
        y = y * zf / (1 + torch.exp(-zf))
    return (y, final) if return_final_states else y
