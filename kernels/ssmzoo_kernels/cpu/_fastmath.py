"""exp, expm1 and sincos for the compiled loops: vectorisable polynomials in float32, libm in float64.

The scan's inner loop runs over the d_state modes of one step, which the compiler turns into
SIMD code only if every call in it can be vectorised; libm's ``expf``/``sinf`` cannot (Numba has
no vector math library here), so in float32 these are written out:

- ``exp``/``expm1``: x = k·ln2 + r with |r| <= ln2/2 (ln2 in two parts, Cody–Waite), e^r - 1 by
  its Taylor polynomial to degree 7 (truncation < 6e-9 relative), 2^k built in the exponent bits;
  expm1 = 2^k·(e^r - 1) + (2^k - 1) keeps full relative precision near 0. Arguments are clamped
  to [-87, 88] (below, the result is ~1e-38 instead of a denormal or 0).
- ``sincos``: θ = q·π/2 + r with |r| <= π/4 (r formed in float64, the one step that needs more
  than float32: a float32 Cody–Waite split of π/2 is refolded by fast-math's reassociation), the
  Taylor polynomials of sin and cos on r (degrees 9 and 10: < 3e-9), the quadrant q mod 4 chosen
  by selects. Accurate to float32 rounding for |θ| up to ~1e6 (beyond that the phase itself
  carries little float32 information).

Float64 calls go to libm unchanged, so the float64 results keep the 1e-10 agreement with the
sequential loop that the tests ask for.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

LOG2E = 1.4426950408889634
LN2_HI = 0.693359375          # ln 2 = LN2_HI + LN2_LO, LN2_HI exact in 9 bits
LN2_LO = -2.12194440e-4
TWO_OVER_PI = 0.6366197723675814
PIO2 = math.pi / 2

f32 = np.float32


def exp_(x):  # pragma: no cover - replaced inside compiled code
    """e^x (compiled code only)."""
    return math.exp(x)


def expm1_(x):  # pragma: no cover
    """e^x - 1 (compiled code only)."""
    return math.expm1(x)


def sincos_(x):  # pragma: no cover
    """(sin x, cos x) (compiled code only)."""
    return math.sin(x), math.cos(x)


@numba.njit(inline="always")
def _split_exp(x):
    """(2^k, e^r - 1) with x = k ln2 + r."""
    x = min(max(x, f32(-87.0)), f32(88.0))
    k = np.floor(x * f32(LOG2E) + f32(0.5))
    r = (x - k * f32(LN2_HI)) - k * f32(LN2_LO)
    p = r * (f32(1.0) + r * (f32(0.5) + r * (f32(1 / 6) + r * (f32(1 / 24) + r * (
        f32(1 / 120) + r * (f32(1 / 720) + r * f32(1 / 5040)))))))
    s = np.int32((np.int32(k) + np.int32(127)) << np.int32(23)).view(np.float32)
    return s, p


@overload(exp_)
def _exp_impl(x):
    if x == types.float32:
        def impl(x):
            s, p = _split_exp(x)
            return s + s * p
        return impl
    return lambda x: math.exp(x)


@overload(expm1_)
def _expm1_impl(x):
    if x == types.float32:
        def impl(x):
            s, p = _split_exp(x)
            return s * p + (s - f32(1.0))
        return impl
    return lambda x: math.expm1(x)


@overload(sincos_)
def _sincos_impl(x):
    if x == types.float32:
        def impl(x):
            q = np.floor(x * f32(TWO_OVER_PI) + f32(0.5))
            # the reduction in float64: one product and one difference, which fast-math's
            # reassociation cannot undo (it folded float32 Cody-Waite's three parts of pi/2 back
            # into one, an error of |x|·3e-8: 2.7e-6 at |x| = 100)
            r = f32(np.float64(x) - np.float64(q) * PIO2)
            r2 = r * r
            s = r + r * r2 * (f32(-1 / 6) + r2 * (f32(1 / 120) + r2 * (
                f32(-1 / 5040) + r2 * f32(1 / 362880))))
            c = f32(1.0) + r2 * (f32(-0.5) + r2 * (f32(1 / 24) + r2 * (
                f32(-1 / 720) + r2 * f32(1 / 40320))))
            quad = np.int32(q) & np.int32(3)
            odd = (quad & np.int32(1)) != 0
            sn = c if odd else s
            cs = s if odd else c
            if (quad & np.int32(2)) != 0:
                sn = -sn
            if ((quad + np.int32(1)) & np.int32(2)) != 0:
                cs = -cs
            return sn, cs
        return impl
    return lambda x: (math.sin(x), math.cos(x))


# phi1'(x) = (x e^x - expm1(x))/x² = sum_j (j+1)/(j+2)! x^j: the series on |x| < 1 (float32: 11
# terms, float64: 18, each past the last below the dtype's rounding), the closed form
# (e^x - expm1(x)/x)/x only for |x| >= 1, where it does not cancel
_DPHI1 = [(j + 1) / math.factorial(j + 2) for j in range(18)]
_DPHI1_32 = np.array(_DPHI1[:11], dtype=np.float32)
_DPHI1_64 = np.array(_DPHI1, dtype=np.float64)


def dphi1_(x, a, em):  # pragma: no cover - replaced inside compiled code
    """phi1'(x) for real x, given a = e^x and em = e^x - 1 (compiled code only)."""
    return (a - em / x) / x if x != 0 else 0.5


def dphi1c_(xr, xi, ar, ai, emr, emi):  # pragma: no cover
    """phi1'(x) for complex x = xr + i xi, as (re, im), given e^x and e^x - 1 (compiled only)."""
    x = complex(xr, xi)
    v = (complex(ar, ai) - complex(emr, emi) / x) / x if x != 0 else 0.5
    return v.real, v.imag


def _horner_src(name: str, terms: int, cplx: bool) -> str:
    """Source of a loop-free Horner evaluation of the first ``terms`` coefficients (a loop here,
    inside the kernels' parallel loops, would be mistaken for a reduction by the parallelizer)."""
    if not cplx:
        lines = [f"def {name}(x, C):", f"    p = C[{terms - 1}]"]
        lines += [f"    p = p * x + C[{j}]" for j in range(terms - 2, -1, -1)]
        return "\n".join(lines + ["    return p"])
    lines = [f"def {name}(xr, xi, C):", f"    pr = C[{terms - 1}]", "    pi = xr - xr"]
    for j in range(terms - 2, -1, -1):
        lines += [f"    pr, pi = pr * xr - pi * xi + C[{j}], pr * xi + pi * xr"]
    return "\n".join(lines + ["    return pr, pi"])


# phi1(x) = (e^x - 1)/x = sum_j x^j/(j+1)!, by series on |x| < 1/2 (float32: 9 terms, float64:
# 16): expm1(x)/x from the polynomial expm1 is not reliable near 0 once the compiler reassociates
_PHI1 = [1 / math.factorial(j + 1) for j in range(16)]
_PHI1_32 = np.array(_PHI1[:9], dtype=np.float32)
_PHI1_64 = np.array(_PHI1, dtype=np.float64)


def phi1_(x, em):  # pragma: no cover - replaced inside compiled code
    """(e^x - 1)/x for real x, given em = e^x - 1 (compiled code only)."""
    return em / x if x != 0 else 1.0


_HORNER: dict[str, object] = {}
for _name, _terms, _cplx in (("_h32", 11, False), ("_h64", 18, False), ("_hc32", 11, True),
                             ("_hc64", 18, True), ("_p32", 9, False), ("_p64", 16, False)):
    exec(_horner_src(_name, _terms, _cplx), _HORNER)  # noqa: S102 - generated polynomial
    _HORNER[_name] = numba.njit(_HORNER[_name])


@overload(dphi1_)
def _dphi1_impl(x, a, em):
    f32_ = x == types.float32
    C = _DPHI1_32 if f32_ else _DPHI1_64
    horner = _HORNER["_h32" if f32_ else "_h64"]

    def impl(x, a, em):
        p = horner(x, C)
        one = x - x + C[0] * 2  # 1 in x's dtype
        small = abs(x) < one
        s = one if small else x
        closed = (a - em / s) / s
        return p if small else closed
    return impl


@overload(dphi1c_)
def _dphi1c_impl(xr, xi, ar, ai, emr, emi):
    f32_ = xr == types.float32
    C = _DPHI1_32 if f32_ else _DPHI1_64
    horner = _HORNER["_hc32" if f32_ else "_hc64"]

    def impl(xr, xi, ar, ai, emr, emi):
        pr, pi = horner(xr, xi, C)
        one = xr - xr + C[0] * 2
        small = xr * xr + xi * xi < one
        sr = one if small else xr
        si = pi - pi if small else xi
        dn = sr * sr + si * si
        # closed form: (e^x - em / x) / x
        qr = (emr * sr + emi * si) / dn
        qi = (emi * sr - emr * si) / dn
        tr = ar - qr
        ti = ai - qi
        cr = (tr * sr + ti * si) / dn
        ci = (ti * sr - tr * si) / dn
        return (pr, pi) if small else (cr, ci)
    return impl


@overload(phi1_)
def _phi1_impl(x, em):
    f32_ = x == types.float32
    C = _PHI1_32 if f32_ else _PHI1_64
    horner = _HORNER["_p32" if f32_ else "_p64"]

    def impl(x, em):
        p = horner(x, C)
        one = x - x + C[0]
        small = abs(x) < C[1]  # 1/2 in x's dtype
        s = one if small else x
        closed = em / s
        return p if small else closed
    return impl
