"""The compiled loops of the CPU selective scan (Numba): one pass per channel, the state in cache.

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

from ssmzoo_kernels.cpu._fastmath import dphi1_, dphi1c_, exp_, expm1_, phi1_, sincos_

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
@numba.njit(parallel=True, **_JIT)
def fwd_complex(u, dt, Ar, Ai, Bvr, Bvi, Bcr, Bci, Cvr, Cvi, Ccr, Cci, h0r, h0i, y, hLr, hLi,
                has_Bv, has_Bc, has_Cv, has_Cc, has_h0, zoh):
    nb, nd, L = u.shape
    nn = Ar.shape[1]
    zero = u.dtype.type(0.0)
    one = u.dtype.type(1.0)
    two = u.dtype.type(2.0)
    pb = nd // Bvr.shape[1] if has_Bv else nd
    pc = nd // Cvr.shape[1] if has_Cv else nd
    for bc in prange(nb * nd):
        b = bc // nd
        c = bc - b * nd
        gb = c // pb
        gc = c // pc
        hr = np.zeros(nn, dtype=u.dtype)
        hi = np.zeros(nn, dtype=u.dtype)
        if has_h0:
            hr[:] = h0r[b, c]
            hi[:] = h0i[b, c]
        for t in range(L):
            x = u[b, c, t]
            d = dt[b, c, t]
            acc = zero
            for n in range(nn):
                are = Ar[c, n]
                aim = Ai[c, n]
                em = expm1_(d * are)
                sn, cs = sincos_(d * aim)
                ar = (em + one) * cs
                ai = (em + one) * sn
                if zoh:
                    den = are * are + aim * aim
                    if den != zero:
                        mr = em * cs + _cm1(cs, sn, one)          # Re(a - 1)
                        kr = (mr * are + ai * aim) / den
                        ki = (ai * are - mr * aim) / den
                    else:
                        kr = d
                        ki = zero
                else:
                    kr = d
                    ki = zero
                br = zero
                bi = zero
                if has_Bv:
                    br += Bvr[b, gb, t, n]
                    bi += Bvi[b, gb, t, n]
                if has_Bc:
                    br += Bcr[c, n]
                    bi += Bci[c, n]
                xr = (kr * br - ki * bi) * x
                xi = (kr * bi + ki * br) * x
                nr = ar * hr[n] - ai * hi[n] + xr
                ni = ar * hi[n] + ai * hr[n] + xi
                hr[n] = nr
                hi[n] = ni
                gr = zero
                gi = zero
                if has_Cv:
                    gr += Cvr[b, gc, t, n]
                    gi += Cvi[b, gc, t, n]
                if has_Cc:
                    gr += Ccr[c, n]
                    gi += Cci[c, n]
                acc += gr * nr - gi * ni
            y[b, c, t] = two * acc
        hLr[b, c] = hr
        hLi[b, c] = hi


@numba.njit(parallel=True, **_JIT)
def bwd_complex(u, dt, Ar, Ai, Bvr, Bvi, Bcr, Bci, Cvr, Cvi, Ccr, Cci, h0r, h0i, dy, dhLr, dhLi,
                has_Bv, has_Bc, has_Cv, has_Cc, has_h0, has_dhL, zoh, blocks,
                du, ddt, dAr, dAi, dBvr, dBvi, dBcr, dBci, dCvr, dCvi, dCcr, dCci, dh0r, dh0i):
    nb, nd, L = u.shape
    nn = Ar.shape[1]
    zero = u.dtype.type(0.0)
    one = u.dtype.type(1.0)
    two = u.dtype.type(2.0)
    pb = nd // Bvr.shape[1] if has_Bv else nd
    pc = nd // Cvr.shape[1] if has_Cv else nd
    per = nd // blocks
    for task in prange(nb * blocks):
        b = task // blocks
        blk = task - b * blocks
        Hr = np.empty((L + 1, nn), dtype=u.dtype)  # H[t + 1]: the state after step t
        Hi = np.empty((L + 1, nn), dtype=u.dtype)
        lr = np.empty(nn, dtype=u.dtype)
        li = np.empty(nn, dtype=u.dtype)
        sAr = np.empty(nn, dtype=u.dtype)
        sAi = np.empty(nn, dtype=u.dtype)
        sBr = np.empty(nn, dtype=u.dtype)
        sBi = np.empty(nn, dtype=u.dtype)
        sCr = np.empty(nn, dtype=u.dtype)
        sCi = np.empty(nn, dtype=u.dtype)
        for c in range(blk * per, (blk + 1) * per):
            gb = c // pb
            gc = c // pc
            for n in range(nn):
                lr[n] = h0r[b, c, n] if has_h0 else zero
                li[n] = h0i[b, c, n] if has_h0 else zero
                Hr[0, n] = lr[n]
                Hi[0, n] = li[n]
            for t in range(L):
                x = u[b, c, t]
                d = dt[b, c, t]
                for n in range(nn):
                    are = Ar[c, n]
                    aim = Ai[c, n]
                    em = expm1_(d * are)
                    sn, cs = sincos_(d * aim)
                    ar = (em + one) * cs
                    ai = (em + one) * sn
                    if zoh:
                        den = are * are + aim * aim
                        if den != zero:
                            mr = em * cs + _cm1(cs, sn, one)
                            kr = (mr * are + ai * aim) / den
                            ki = (ai * are - mr * aim) / den
                        else:
                            kr = d
                            ki = zero
                    else:
                        kr = d
                        ki = zero
                    br = zero
                    bi = zero
                    if has_Bv:
                        br += Bvr[b, gb, t, n]
                        bi += Bvi[b, gb, t, n]
                    if has_Bc:
                        br += Bcr[c, n]
                        bi += Bci[c, n]
                    xr = (kr * br - ki * bi) * x
                    xi = (kr * bi + ki * br) * x
                    nr = ar * lr[n] - ai * li[n] + xr
                    ni = ar * li[n] + ai * lr[n] + xi
                    lr[n] = nr
                    li[n] = ni
                for n in range(nn):  # a plain copy: keeps the loop above free of extra stores
                    Hr[t + 1, n] = lr[n]
                    Hi[t + 1, n] = li[n]
            for n in range(nn):
                lr[n] = dhLr[b, c, n] if has_dhL else zero
                li[n] = dhLi[b, c, n] if has_dhL else zero
                sAr[n] = 0.0
                sAi[n] = 0.0
                sBr[n] = 0.0
                sBi[n] = 0.0
                sCr[n] = 0.0
                sCi[n] = 0.0
            for t in range(L - 1, -1, -1):
                x = u[b, c, t]
                d = dt[b, c, t]
                g2 = two * dy[b, c, t]
                gx = zero
                gd = zero
                for n in range(nn):
                    are = Ar[c, n]
                    aim = Ai[c, n]
                    gr = zero
                    gi = zero
                    if has_Cv:
                        gr += Cvr[b, gc, t, n]
                        gi += Cvi[b, gc, t, n]
                    if has_Cc:
                        gr += Ccr[c, n]
                        gi += Cci[c, n]
                    hr = Hr[t + 1, n]
                    hi = Hi[t + 1, n]
                    # y = 2 Re(γ h): dγ = 2 dy conj(h); λ gains 2 dy conj(γ)
                    dgr = g2 * hr
                    dgi = -g2 * hi
                    if has_Cv:
                        dCvr[b, gc, t, n] += dgr
                        dCvi[b, gc, t, n] += dgi
                    sCr[n] += dgr
                    sCi[n] += dgi
                    mr = lr[n] + g2 * gr
                    mi = li[n] - g2 * gi
                    br = zero
                    bi = zero
                    if has_Bv:
                        br += Bvr[b, gb, t, n]
                        bi += Bvi[b, gb, t, n]
                    if has_Bc:
                        br += Bcr[c, n]
                        bi += Bci[c, n]
                    # a and k again (cheaper than storing them: the loop stays vectorised)
                    em = expm1_(d * are)
                    sn, cs = sincos_(d * aim)
                    ar = (em + one) * cs
                    ai = (em + one) * sn
                    kr = d
                    ki = zero
                    if zoh:
                        den = are * are + aim * aim
                        if den != zero:
                            mr_ = em * cs + _cm1(cs, sn, one)
                            kr = (mr_ * are + ai * aim) / den
                            ki = (ai * are - mr_ * aim) / den
                    # x_in = k β u: dβ = λ conj(k) u, du = Re(λ conj(k β)), dk = λ conj(β) u
                    dbr = (mr * kr + mi * ki) * x
                    dbi = (mi * kr - mr * ki) * x
                    if has_Bv:
                        dBvr[b, gb, t, n] += dbr
                        dBvi[b, gb, t, n] += dbi
                    sBr[n] += dbr
                    sBi[n] += dbi
                    kbr = kr * br - ki * bi
                    kbi = kr * bi + ki * br
                    gx += mr * kbr + mi * kbi
                    dkr = (mr * br + mi * bi) * x
                    dki = (mi * br - mr * bi) * x
                    pr = Hr[t, n]
                    pi = Hi[t, n]
                    # da = λ conj(h_{t-1});  a = exp(ΔA): ∂a/∂Δ = A a, ∂a/∂A = Δ a
                    dar = mr * pr + mi * pi
                    dai = mi * pr - mr * pi
                    aar = are * ar - aim * ai           # A·a
                    aai = are * ai + aim * ar
                    gd += dar * aar + dai * aai
                    gAr = d * (dar * ar + dai * ai)
                    gAi = d * (dai * ar - dar * ai)
                    if zoh:
                        # k = (a - 1)/A: ∂k/∂Δ = a, ∂k/∂A = w = Δ² phi1'(ΔA) (series near 0,
                        # never (Δa - k)/A, which cancels there); dA += dk conj(w)
                        gd += dkr * ar + dki * ai
                        fr, fi = dphi1c_(d * are, d * aim, ar, ai, ar - one, ai)
                        wr = d * d * fr
                        wi = d * d * fi
                        gAr += dkr * wr + dki * wi
                        gAi += dki * wr - dkr * wi
                    else:
                        gd += dkr
                    sAr[n] += gAr
                    sAi[n] += gAi
                    # λ_{t-1} = conj(a_t) λ_t
                    lr[n] = ar * mr + ai * mi
                    li[n] = ar * mi - ai * mr
                du[b, c, t] = gx
                ddt[b, c, t] = gd
            for n in range(nn):
                dAr[b, c, n] = sAr[n]
                dAi[b, c, n] = sAi[n]
                dBcr[b, c, n] = sBr[n]
                dBci[b, c, n] = sBi[n]
                dCcr[b, c, n] = sCr[n]
                dCci[b, c, n] = sCi[n]
                dh0r[b, c, n] = lr[n]
                dh0i[b, c, n] = li[n]
