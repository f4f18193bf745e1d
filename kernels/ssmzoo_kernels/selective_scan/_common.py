"""Element-wise pieces shared by the forward and backward selective-scan kernels.

Complex numbers travel as two real tiles (real part, imaginary part). Every helper is a
``triton.jit`` function, inlined into the kernels that call it.

Notation (shared with ``ssmzoo.scan.naive``): Δ the step, A the diagonal state matrix, a = exp(ΔA)
the decay, coef the input coefficient (Δ for Euler, (exp(ΔA) - 1)/A = Δ·phi1(ΔA) for ZOH).
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)  # log2(e); a constexpr, so kernels may read it


@triton.jit
def softplus(x):
    """log(1 + exp(x)) without overflow, accurate for very negative x (log1p by its series)."""
    e = tl.exp(-tl.abs(x))
    lp = tl.where(e < 1e-4, e * (1.0 - 0.5 * e), tl.log(1.0 + e))
    return tl.maximum(x, 0.0) + lp


TWO_PI_HI = tl.constexpr(6.28125)  # 2π split so that k·2π_hi is exact for |k| < 2^15
TWO_PI_LO = tl.constexpr(0.0019353071795864769)


@triton.jit
def cos_sin(x, FAST: tl.constexpr):
    """(cos x, sin x). FAST: reduce x to [-π, π] and use the SFU's approximations (absolute error
    about 5e-7 there), as mamba_ssm's fast-math build does; else libdevice's accurate versions
    (the interpreter's path: it cannot run inline assembly)."""
    if FAST:
        k = tl.floor(x * 0.15915494309189535 + 0.5)
        r = x - k * TWO_PI_HI
        r = r - k * TWO_PI_LO
        c = tl.inline_asm_elementwise("cos.approx.f32 $0, $1;", "=r,r", [r], dtype=tl.float32,
                                      is_pure=True, pack=1)
        s = tl.inline_asm_elementwise("sin.approx.f32 $0, $1;", "=r,r", [r], dtype=tl.float32,
                                      is_pure=True, pack=1)
    else:
        c = tl.cos(x)
        s = tl.sin(x)
    return c, s


@triton.jit
def _first_two(acc_v, acc_w, acc_f, cur_v, cur_w, cur_f):
    # reverse scan: ``cur`` is the earlier segment; keep the first two values of cur ++ acc
    take = cur_f > 0.5
    return cur_v, tl.where(take, cur_w, acc_v), tl.where(take, cur_f, 1.0)


@triton.jit
def next_in_time(x, following):
    """x shifted one step back along axis 1: out[:, t] = x[:, t + 1], and ``following``
    (channels,) at the last step. A reverse scan, so the tile keeps its layout (time in-thread)."""
    zero = x * 0.0
    _v, w, f = tl.associative_scan((x, zero, zero), 1, _first_two, reverse=True)
    return tl.where(f > 0.5, w, following[:, None])


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def store_dz(ptrs, mask, dout, y, zv, sz):
    """dz = dout · y · silu'(z) for out = y · silu(z), stored in dz's dtype; sz = sigmoid(z)."""
    dz = dout * y * sz * (1.0 + zv * (1.0 - sz))
    tl.store(ptrs, dz.to(ptrs.dtype.element_ty), mask=mask)


@triton.jit
def ungated_output(y, u, Dv, IS_COMPLEX: tl.constexpr, HAS_D: tl.constexpr):
    """y + D·u before the gate from y = Σ_n Re(C_n h_n) (doubled for complex A: conjugate pairs)."""
    if IS_COMPLEX:
        y = 2.0 * y
    if HAS_D:
        y += Dv[:, None] * u
    return y


@triton.jit
def cmul(ar, ai, br, bi):
    """(ar + i ai)(br + i bi)."""
    return ar * br - ai * bi, ar * bi + ai * br


@triton.jit
def combine_real(a1, b1, a2, b2):
    """Compose two affine steps h -> a h + b, (a1, b1) first: the operator of the scan."""
    return a1 * a2, a2 * b1 + b2


@triton.jit
def combine_complex(a1r, a1i, b1r, b1i, a2r, a2i, b2r, b2i):
    """``combine_real`` for complex a and b, each given as (real, imaginary) tiles."""
    ar = a1r * a2r - a1i * a2i
    ai = a1r * a2i + a1i * a2r
    br = a2r * b1r - a2i * b1i + b2r
    bi = a2r * b1i + a2i * b1r + b2i
    return ar, ai, br, bi


@triton.jit
def load_dt(delta_ptrs, mask, dbias, HAS_DBIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """Δ for a (channels, time) tile: delta (+ delta_bias per channel), softplus when asked.

    Returns (raw, dt): raw is the argument of the softplus (needed by the backward); dt is 0 where
    ``mask`` is off, so padded time steps have decay 1 and input 0 and leave the state unchanged.
    """
    raw = tl.load(delta_ptrs, mask=mask, other=0.0).to(tl.float32)
    if HAS_DBIAS:
        raw = raw + dbias[:, None]
    if SOFTPLUS:
        dt = softplus(raw)
    else:
        dt = raw
    return raw, tl.where(mask, dt, 0.0)


@triton.jit
def phi1_real(x, ex):
    """(exp(x) - 1)/x given ex = exp(x); Taylor series near 0, where the division cancels."""
    small = tl.abs(x) < 0.5
    safe = tl.where(small, 1.0, x)
    p = 1.0 / 40320.0
    p = p * x + 1.0 / 5040.0
    p = p * x + 1.0 / 720.0
    p = p * x + 1.0 / 120.0
    p = p * x + 1.0 / 24.0
    p = p * x + 1.0 / 6.0
    p = p * x + 0.5
    p = p * x + 1.0
    return tl.where(small, p, (ex - 1.0) / safe)


@triton.jit
def dphi1_real(x, ex, phi):
    """phi1'(x) = (exp(x) - phi1(x))/x, by its Taylor series near 0."""
    small = tl.abs(x) < 0.5
    safe = tl.where(small, 1.0, x)
    # phi1'(x) = sum_k k x^(k-1)/(k+1)!
    p = 8.0 / 362880.0
    p = p * x + 7.0 / 40320.0
    p = p * x + 6.0 / 5040.0
    p = p * x + 5.0 / 720.0
    p = p * x + 4.0 / 120.0
    p = p * x + 3.0 / 24.0
    p = p * x + 2.0 / 6.0
    p = p * x + 0.5
    return tl.where(small, p, (ex - phi) / safe)


@triton.jit
def phi1_complex(xr, xi, er, ei):
    """phi1 of x = xr + i xi given exp(x) = er + i ei; Taylor series for |x| < 0.5."""
    small = xr * xr + xi * xi < 0.25
    pr = tl.full(xr.shape, 1.0 / 40320.0, tl.float32)
    pi = tl.zeros(xr.shape, tl.float32)
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 1.0 / 5040.0
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 1.0 / 720.0
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 1.0 / 120.0
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 1.0 / 24.0
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 1.0 / 6.0
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 0.5
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 1.0
    # (e - 1)/x = (e - 1) conj(x)/|x|^2
    inv = 1.0 / tl.where(small, 1.0, xr * xr + xi * xi)
    qr, qi = cmul(er - 1.0, ei, xr * inv, -xi * inv)
    return tl.where(small, pr, qr), tl.where(small, pi, qi)


@triton.jit
def dphi1_complex(xr, xi, er, ei, phr, phi):
    """phi1'(x) for complex x, given exp(x) and phi1(x); Taylor series for |x| < 0.5."""
    small = xr * xr + xi * xi < 0.25
    pr = tl.full(xr.shape, 8.0 / 362880.0, tl.float32)
    pi = tl.zeros(xr.shape, tl.float32)
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 7.0 / 40320.0
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 6.0 / 5040.0
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 5.0 / 720.0
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 4.0 / 120.0
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 3.0 / 24.0
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 2.0 / 6.0
    pr, pi = cmul(pr, pi, xr, xi)
    pr += 0.5
    inv = 1.0 / tl.where(small, 1.0, xr * xr + xi * xi)
    qr, qi = cmul(er - phr, ei - phi, xr * inv, -xi * inv)
    return tl.where(small, pr, qr), tl.where(small, pi, qi)
