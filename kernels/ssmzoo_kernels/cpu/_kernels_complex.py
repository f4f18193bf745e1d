"""The compiled loops of the CPU selective scan for complex states (Numba): the algorithm, layouts
and gradients of ``_kernels`` (read its docstring first), with real and imaginary parts as
separate arrays and a 2·Re read-out."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ssmzoo_kernels.cpu._fastmath import dphi1c_, expm1_, sincos_
from ssmzoo_kernels.cpu._kernels import _JIT, _cm1


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
