"""Chunked SSD (Mamba-2's scan) in pure PyTorch: the four steps of the state-space dual form.

With one scalar decay per head, the decay between two steps of a chunk is the same for the whole
headdim × d_state state, so each chunk is an attention-like product with a decay mask, and chunks
are joined by a short recurrence on their boundary states. Per head, with a_t = Δ_t A_h the
log-decays and Q = chunk_size:

1. within chunks: Y_diag[t] = Σ_{s≤t} (C_t·B_s) exp(Σ_{s<r≤t} a_r) Δ_s x_s, the mask
   exp(segsum(a)) built from a stable segment sum (no difference of two long cumulative sums);
2. chunk states: S_c = Σ_{s∈c} exp(Σ_{s<r≤end(c)} a_r) Δ_s x_s B_sᵀ;
3. between chunks: S̃_c = exp(Σ_{r∈c} a_r) S̃_{c-1} + S_c from the initial state, as one small
   (chunks+1)² segment-sum product; its last row is the final state;
4. state to output: Y_off[t] = exp(Σ_{start(c)≤r≤t} a_r) C_t · S̃_{c-1}.

Y = Y_diag + Y_off, then + D x and · silu(z). Lengths that Q does not divide are padded with
Δ = 0, x = 0 (identity steps). Autograd differentiates it; memory is that of mamba_ssm's
``ssd_minimal``: O(batch·length·heads·(Q + headdim·d_state/Q)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor

from ssmzoo.scan._math import acc_dtype


def segsum(a: Tensor) -> Tensor:
    """out[..., t, s] = Σ_{s<r≤t} a[..., r] for t ≥ s, and -inf above the diagonal.

    Sums each segment directly (a masked cumulative sum of a repeated copy of ``a``) instead of
    subtracting two cumulative sums, which would lose precision for long segments.
    """
    T = a.shape[-1]
    rep = repeat(a, "... t -> ... t s", s=T)  # (..., T, T): rep[t, s] = a[t]
    strict = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device), diagonal=-1)
    rep = rep.masked_fill(~strict, 0)
    out = torch.cumsum(rep, dim=-2)  # out[t, s] = Σ_{s<r≤t} a[r]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device))
    return out.masked_fill(~causal, -math.inf)


def ssd_chunked(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int = 256,
    D: Tensor | None = None, z: Tensor | None = None, dt_bias: Tensor | None = None,
    initial_states: Tensor | None = None, dt_softplus: bool = False,
    dt_limit: tuple[float, float] = (0.0, math.inf), return_final_states: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """``ssd_scan`` by chunks; same arguments and results as :func:`ssmzoo.scan.naive.ssd_naive`.

    x, z: (batch, length, heads, headdim); dt: (batch, length, heads); A, dt_bias: (heads,);
    B, C: (batch, length, groups, d_state); D: (heads,) or (heads, headdim); initial_states:
    (batch, heads, headdim, d_state).
    """
    real = acc_dtype(x, dt, A, B, C, D, z, dt_bias, initial_states)
    batch, length, heads, headdim = x.shape
    groups = B.shape[2]
    Q = min(chunk_size, length)
    pad = -length % Q
    xf = x.to(real)
    delta = dt.to(real)
    if dt_bias is not None:
        delta = delta + dt_bias.to(real)
    if dt_softplus:
        delta = F.softplus(delta)
    delta = delta.clamp(min=dt_limit[0], max=dt_limit[1])  # (b, l, h)
    Bf, Cf, xp = B.to(real), C.to(real), xf
    if pad:
        delta = F.pad(delta, (0, 0, 0, pad))  # padded steps: Δ = 0, x = 0, B = C = 0
        xp = F.pad(xf, (0, 0, 0, 0, 0, pad))
        Bf, Cf = F.pad(Bf, (0, 0, 0, 0, 0, pad)), F.pad(Cf, (0, 0, 0, 0, 0, pad))

    X = rearrange(xp * delta[..., None], "b (c t) (g r) p -> b c t g r p", t=Q, g=groups)
    Bc = rearrange(Bf, "b (c t) g n -> b c t g n", t=Q)  # (b, c, Q, g, n)
    Cc = rearrange(Cf, "b (c t) g n -> b c t g n", t=Q)  # (b, c, Q, g, n)
    a = rearrange(delta * A.to(real), "b (c t) (g r) -> b g r c t", t=Q, g=groups)
    a_cs = torch.cumsum(a, dim=-1)  # (b, g, r, c, Q)

    # 1. within chunks
    Lmask = torch.exp(segsum(a))  # (b, g, r, c, Q, Q)
    CB = torch.einsum("bctgn,bcsgn->bgcts", Cc, Bc)  # (b, g, c, Q, Q)
    Y_diag = torch.einsum("bgcts,bgrcts,bcsgrp->bctgrp", CB, Lmask, X)
    # 2. chunk states
    to_end = torch.exp(a_cs[..., -1:] - a_cs)  # (b, g, r, c, Q)
    states = torch.einsum("bcsgn,bgrcs,bcsgrp->bcgrpn", Bc, to_end, X)
    # 3. between chunks
    if initial_states is None:
        init = torch.zeros_like(states[:, :1])
    else:
        init = rearrange(initial_states.to(real), "b (g r) p n -> b 1 g r p n", g=groups)
    states = torch.cat([init, states], dim=1)  # (b, c+1, g, r, p, n)
    chunk_decay = torch.exp(segsum(F.pad(a_cs[..., -1], (1, 0))))  # (b, g, r, c+1, c+1)
    states = torch.einsum("bgrzc,bcgrpn->bzgrpn", chunk_decay, states)
    prev, final = states[:, :-1], states[:, -1]  # (b, c, g, r, p, n), (b, g, r, p, n)
    # 4. state to output
    Y_off = torch.einsum("bctgn,bcgrpn,bgrct->bctgrp", Cc, prev, torch.exp(a_cs))

    y = rearrange(Y_diag + Y_off, "b c t g r p -> b (c t) (g r) p")[:, :length]  # (b, l, h, p)
    if D is not None:
        Dp = D.to(real) if D.dim() == 2 else rearrange(D.to(real), "h -> h 1")
        y = y + Dp * xf
    if z is not None:
        y = y * F.silu(z.to(real))
    out = y.to(x.dtype)
    if return_final_states:
        return out, rearrange(final, "b g r p n -> b (g r) p n")
    return out
