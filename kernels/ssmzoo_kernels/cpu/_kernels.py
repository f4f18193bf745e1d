"""The compiled loops of the CPU selective scan (Numba): one pass per channel, the state in cache.

This module holds the real-state loops and what both kinds share; the complex-state loops are in
``_kernels_complex``.

Everything that is elementwise over (batch, d, length) - softplus, D, the z gate, the layout of B
and C - is done by the PyTorch wrapper; these loops do the part whose cost grows with d_state:

    h_t = a_t h_{t-1} + k_t β_t u_t,      y_t = s · Re(Σ_n γ_t h_t)

with a_t = exp(Δ_t A), k_t = Δ_t (Euler) or (a_t - 1)/A (ZOH), β_t and γ_t the effective B and C of
the channel at step t (the group's input-dependent rows plus a fixed per-channel part, which is
where B2S6's B_bias/C_bias go), and s = 1 for real states, 2 for complex ones (mamba_ssm's 2·Re
read-out of conjugate-pair modes).

Layouts (all C-contiguous, one float dtype): u, Δ, y: (batch, d, L); A: (d, n); variable B/C:
(batch, g, L, n), the n states of a step adjacent; fixed parts: (d, n); states: (batch, d, n).
Complex tensors come as separate real and imaginary arrays. An absent operand is a (1, ...)
placeholder with its flag off.

The backward recomputes the channel's forward into a per-thread buffer (states, decays and ZOH
factors: 6·L·n floats for complex, 2–3·L·n real) and walks it backwards; the state adjoint is

    λ_t = s · dy_t · conj(γ_t) + conj(a_{t+1}) λ_{t+1}

and every gradient is a product of λ with what the forward formed (dγ = s·dy·conj(h),
dβ = λ·conj(k)·u, da = λ·conj(h_{t-1}), dk = λ·conj(β)·u), taken through a = exp(ΔA) and
k = (a - 1)/A to Δ and A. Complex gradients follow torch's convention for real losses
(dL/dRe + i·dL/dIm). Work is split over (batch, block of channels) so that each block owns whole
groups of B/C: the group gradients are summed without two threads ever writing one element.
Sums over a channel's steps (dA and the fixed parts' gradients) are accumulated in the input dtype.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ssmzoo_kernels.cpu._fastmath import dphi1_, exp_, expm1_, phi1_

# reassoc lets the compiler vectorise the sums over the modes of a step; no nnan/ninf, so NaN and
# inf still propagate as in the reference
_JIT = {"nogil": True, "cache": True,
        "fastmath": {"reassoc", "contract", "arcp", "nsz", "afn"}}


@numba.njit(inline="always", **{k: v for k, v in _JIT.items() if k != "cache"})
def _cm1(cs, sn, one):
    """cos(θ) - 1 without cancellation, from cos θ and sin θ (``one``: 1 in their dtype)."""
    if cs > 0:
        return -sn * sn / (one + cs)
    return cs - one


# ---- real A ------------------------------------------------------------------------------------
@numba.njit(parallel=True, **_JIT)
def fwd_real(u, dt, A, Bv, Bc, Cv, Cc, h0, y, hL, has_Bv, has_Bc, has_Cv, has_Cc, has_h0, zoh):
    nb, nd, L = u.shape
    nn = A.shape[1]
    zero = u.dtype.type(0.0)
    one = u.dtype.type(1.0)
    pb = nd // Bv.shape[1] if has_Bv else nd
    pc = nd // Cv.shape[1] if has_Cv else nd
    for bc in prange(nb * nd):
        b = bc // nd
        c = bc - b * nd
        gb = c // pb
        gc = c // pc
        h = np.zeros(nn, dtype=u.dtype)
        if has_h0:
            h[:] = h0[b, c]
        for t in range(L):
            x = u[b, c, t]
            d = dt[b, c, t]
            acc = zero
            for n in range(nn):
                a_n = A[c, n]
                if zoh:
                    em = expm1_(d * a_n)
                    k = d * phi1_(d * a_n, em)
                    a = em + one
                else:
                    a = exp_(d * a_n)
                    k = d
                beta = zero
                if has_Bv:
                    beta += Bv[b, gb, t, n]
                if has_Bc:
                    beta += Bc[c, n]
                hn = a * h[n] + k * beta * x
                h[n] = hn
                gam = zero
                if has_Cv:
                    gam += Cv[b, gc, t, n]
                if has_Cc:
                    gam += Cc[c, n]
                acc += gam * hn
            y[b, c, t] = acc
        hL[b, c] = h


@numba.njit(parallel=True, **_JIT)
def bwd_real(u, dt, A, Bv, Bc, Cv, Cc, h0, dy, dhL, has_Bv, has_Bc, has_Cv, has_Cc, has_h0,
             has_dhL, zoh, blocks,
             du, ddt, dA, dBv, dBc, dCv, dCc, dh0):
    """Gradients; dA, dBc, dCc per batch element (batch, d, n), summed over batch by the caller."""
    nb, nd, L = u.shape
    nn = A.shape[1]
    zero = u.dtype.type(0.0)
    one = u.dtype.type(1.0)
    pb = nd // Bv.shape[1] if has_Bv else nd
    pc = nd // Cv.shape[1] if has_Cv else nd
    per = nd // blocks
    for task in prange(nb * blocks):
        b = task // blocks
        blk = task - b * blocks
        H = np.empty((L + 1, nn), dtype=u.dtype)  # H[t + 1]: the state after step t
        lam = np.empty(nn, dtype=u.dtype)
        sA = np.empty(nn, dtype=u.dtype)
        sB = np.empty(nn, dtype=u.dtype)
        sC = np.empty(nn, dtype=u.dtype)
        for c in range(blk * per, (blk + 1) * per):
            gb = c // pb
            gc = c // pc
            # forward again, keeping what the reverse walk needs
            for n in range(nn):
                lam[n] = h0[b, c, n] if has_h0 else zero
                H[0, n] = lam[n]
            for t in range(L):
                x = u[b, c, t]
                d = dt[b, c, t]
                for n in range(nn):
                    a_n = A[c, n]
                    if zoh:
                        em = expm1_(d * a_n)
                        k = d * phi1_(d * a_n, em)
                        a = em + one
                    else:
                        a = exp_(d * a_n)
                        k = d
                    beta = zero
                    if has_Bv:
                        beta += Bv[b, gb, t, n]
                    if has_Bc:
                        beta += Bc[c, n]
                    lam[n] = a * lam[n] + k * beta * x
                for n in range(nn):  # a plain copy: keeps the loop above free of extra stores
                    H[t + 1, n] = lam[n]
            # the reverse walk; lam is now the state adjoint
            for n in range(nn):
                lam[n] = dhL[b, c, n] if has_dhL else zero
                sA[n] = 0.0
                sB[n] = 0.0
                sC[n] = 0.0
            for t in range(L - 1, -1, -1):
                x = u[b, c, t]
                d = dt[b, c, t]
                g = dy[b, c, t]
                gx = zero
                gd = zero
                for n in range(nn):
                    a_n = A[c, n]
                    gam = zero
                    if has_Cv:
                        gam += Cv[b, gc, t, n]
                    if has_Cc:
                        gam += Cc[c, n]
                    hn = H[t + 1, n]
                    dgam = g * hn
                    if has_Cv:
                        dCv[b, gc, t, n] += dgam
                    sC[n] += dgam
                    lm = lam[n] + g * gam
                    beta = zero
                    if has_Bv:
                        beta += Bv[b, gb, t, n]
                    if has_Bc:
                        beta += Bc[c, n]
                    # a and k again (cheaper than storing them: the loop stays vectorised)
                    if zoh:
                        em = expm1_(d * a_n)
                        k = d * phi1_(d * a_n, em)
                        a = em + one
                    else:
                        a = exp_(d * a_n)
                        k = d
                    dbeta = lm * k * x
                    if has_Bv:
                        dBv[b, gb, t, n] += dbeta
                    sB[n] += dbeta
                    gx += lm * k * beta
                    dk = lm * beta * x
                    da = lm * H[t, n]
                    # a = exp(ΔA): ∂a/∂Δ = A·a, ∂a/∂A = Δ·a
                    gd += da * a_n * a
                    ga = da * d * a
                    if zoh:
                        # k = (a - 1)/A = Δ phi1(ΔA): ∂k/∂Δ = a, ∂k/∂A = Δ² phi1'(ΔA), the latter
                        # by series near 0 (never (Δa - k)/A, which cancels there)
                        gd += dk * a
                        ga += dk * d * d * dphi1_(d * a_n, a, a - one)
                    else:
                        gd += dk
                    sA[n] += ga
                    lam[n] = a * lm
                du[b, c, t] = gx
                ddt[b, c, t] = gd
            for n in range(nn):
                dA[b, c, n] = sA[n]
                dBc[b, c, n] = sB[n]
                dCc[b, c, n] = sC[n]
                dh0[b, c, n] = lam[n]


# ---- complex A (real and imaginary parts as separate arrays) -----------------------------------
