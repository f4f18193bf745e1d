"""Complex arithmetic on pairs of real tensors (re, im; im None for real) for the chunked
selective scan (``_scan_fn``): products, conjugate products and steps of the recurrence, the
decays exp(Δ A) and their expm1, reductions to a parameter's shape, and the chunk's reusable
buffers. Pairs keep every operation on torch's plain float path (complex ``addcmul`` on a CPU
runs about 3x slower than the four real ones)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG2E = 1.4426950408889634

Pair = tuple[Tensor, "Tensor | None"]

__all__ = ["LOG2E", "Pair", "_Work", "_add", "_addmulc_", "_at", "_block_decay", "_contract_y", "_exp", "_exp_expm1", "_expand", "_full_sum", "_map", "_map_pairs", "_mul", "_mulc", "_mulc_into", "_pair", "_re_mulc", "_reduce_pair", "_step", "_step_conj"]


# ---- pair arithmetic (im None: real) ----------------------------------------------------------
def _add(a: Pair | None, b: Pair | None) -> Pair | None:
    if a is None or b is None:
        return a if b is None else b
    im = a[1] if b[1] is None else b[1] if a[1] is None else a[1] + b[1]
    return a[0] + b[0], im


def _mul(a: Pair, b: Pair, out: Pair | None = None) -> Pair:
    """a·b, into ``out`` when given (which must alias neither)."""
    (ar, ai), (br, bi) = a, b
    o0, o1 = out if out is not None else (None, None)
    if ai is None and bi is None:
        return torch.mul(ar, br, out=o0), None
    if ai is None:
        assert bi is not None
        return torch.mul(ar, br, out=o0), torch.mul(ar, bi, out=o1)
    if bi is None:
        return torch.mul(ar, br, out=o0), torch.mul(ai, br, out=o1)
    return (torch.mul(ar, br, out=o0).addcmul_(ai, bi, value=-1),
            torch.mul(ar, bi, out=o1).addcmul_(ai, br))


def _mulc(a: Pair, b: Pair, out: Pair | None = None) -> Pair:
    """a·conj(b), into ``out`` when given (which must alias neither)."""
    (ar, ai), (br, bi) = a, b
    if bi is None:
        return _mul(a, b, out)
    o0, o1 = out if out is not None else (None, None)
    if ai is None:
        return torch.mul(ar, br, out=o0), torch.mul(ar, bi, out=o1).neg_()
    return (torch.mul(ar, br, out=o0).addcmul_(ai, bi),
            torch.mul(ai, br, out=o1).addcmul_(ar, bi, value=-1))


def _re_mulc(a: Pair, b: Pair, out: Tensor | None = None) -> Tensor:
    """Re(a·conj(b)) = a.re·b.re + a.im·b.im, into ``out`` when given."""
    res = torch.mul(a[0], b[0], out=out)
    if a[1] is not None and b[1] is not None:
        res.addcmul_(a[1], b[1])
    return res


def _step(x: Pair, a: Pair, h: Pair, out: Pair | None = None) -> Pair:
    """a·h + x, into ``out`` when given (which must not alias h)."""
    nr = torch.addcmul(x[0], a[0], h[0], out=out[0]) if out else torch.addcmul(x[0], a[0], h[0])
    if h[1] is None:
        return nr, None
    assert x[1] is not None and a[1] is not None
    nr.addcmul_(a[1], h[1], value=-1)
    ni = torch.addcmul(x[1], a[0], h[1], out=out[1]) if out else torch.addcmul(x[1], a[0], h[1])
    ni.addcmul_(a[1], h[0])
    return nr, ni


def _step_conj(x: Pair, a: Pair, h: Pair, out: Pair | None = None) -> Pair:
    """conj(a)·h + x, into ``out`` when given (which must not alias h)."""
    o0, o1 = out if out is not None else (None, None)
    nr = torch.addcmul(x[0], a[0], h[0], out=o0)
    if h[1] is None:
        return nr, None
    assert x[1] is not None and a[1] is not None
    nr.addcmul_(a[1], h[1])
    ni = torch.addcmul(x[1], a[0], h[1], out=o1).addcmul_(a[1], h[0], value=-1)
    return nr, ni


def _at(p: Pair, i: int | slice) -> Pair:
    return p[0][:, i], (p[1][:, i] if p[1] is not None else None)


def _exp(E_dt: Tensor, A: Pair, out: Pair | None = None, tmp: Tensor | None = None) -> Pair:
    """exp(Δ·A) for Δ (..., 1, g, r) and A (n, g, r): |.| by exp2, the phase by cos/sin."""
    o0, o1 = out if out is not None else (None, None)
    mag = torch.mul(E_dt, A[0] * LOG2E, out=o0).exp2_()
    if A[1] is None:
        return mag, None
    ang = torch.mul(E_dt, A[1], out=o1)
    c = torch.cos(ang, out=tmp)
    ang.sin_().mul_(mag)
    return mag.mul_(c), ang


def _block_decay(dt: Tensor, A: Pair) -> Pair:
    """exp((Σ_i Δ_i)·A), a whole sub-block's decay, for Δ (b, q, J, 1, g, r) and A (n, g, r).

    The sum and the exponent are formed in float64 and the phase reduced modulo 2π before the float32 cos/sin:
    a sub-block's phase is q times a step's, and in float32 its rounding (|Σ Δ·Im A|·2⁻²⁴, e.g.
    8e-6 rad at 100 rad) would put the transported state a decade further from the float64 scan
    than the step-by-step product that a sequential loop forms. Only (b, J, n, g, r) numbers, a
    q-th of a chunk's; on a device without float64 (MPS) the float32 form is kept.
    """
    if dt.dtype != torch.float32 or dt.device.type == "mps":
        return _exp(dt.sum(1), A)
    t = dt.sum(1, dtype=torch.float64)  # (b, J, 1, g, r)
    mag = torch.exp2(t * (A[0].double() * LOG2E)).float()
    if A[1] is None:
        return mag, None
    ang = torch.remainder(t * A[1].double(), 2 * math.pi).float()
    return mag * torch.cos(ang), mag * torch.sin(ang)


def _exp_expm1(dt: Tensor, A: Pair, ws: _Work) -> tuple[Pair, Pair]:
    """(exp(Δ·A), expm1(Δ·A)); complex by the half-angle form, accurate near 0:
    with s, c = sin(b/2), cos(b/2) and w = 2 e^a s, exp(a + ib) - 1 = (expm1(a) - s w) + i c w.
    The two share their imaginary part."""
    cplx = A[1] is not None
    ar, _ = ws("a", False)
    emr, emi = ws("em", cplx)
    ea = torch.mul(dt, A[0], out=emr).expm1_()
    if A[1] is None:
        return (torch.add(ea, 1, out=ar), None), (ea, None)
    assert emi is not None
    half = torch.mul(dt, 0.5 * A[1], out=emi)
    s = torch.sin(half, out=ws("t1", False)[0])
    c = half.cos_()
    w = torch.add(ea, 1, out=ar).mul_(s).mul_(2)  # 2 e^a sin(b/2)
    emr = ea.addcmul_(s, w, value=-1)
    emi = c.mul_(w)
    return (torch.add(emr, 1, out=ar), emi), (emr, emi)


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    return t.sum_to_size(shape) if t.shape != shape else t.clone()  # never a work buffer


def _reduce_pair(p: Pair | None, shape: torch.Size) -> Pair | None:
    if p is None:
        return None
    return _sum_to(p[0], shape), (_sum_to(p[1], shape) if p[1] is not None else None)


# ---- one chunk -----------------------------------------------------------------------------
class _Work:
    """Full-size scratch buffers (b, q, J, n, g, r) of one call, reused by every chunk: on a CPU,
    fresh large allocations come back from the OS as page faults, which cost more than the
    arithmetic done in them. Memory stays O(b·d·n·chunk)."""

    def __init__(self) -> None:
        self.bufs: dict[str, Pair] = {}
        self.shape: torch.Size | None = None
        self.like: Tensor | None = None

    def reset(self, shape: torch.Size, like: Tensor) -> None:
        if shape != self.shape:
            self.bufs.clear()  # a shorter last chunk: new buffers, the old ones freed
        self.shape, self.like = shape, like

    def __call__(self, name: str, cplx: bool, step: bool = False) -> Pair:
        """The buffer ``name``: full size, or one step's slice (b, J, n, g, r) when ``step``."""
        buf = self.bufs.get(name)
        if buf is None or (buf[1] is None) == cplx:
            assert self.shape is not None and self.like is not None
            shape = self.shape[:1] + self.shape[2:] if step else self.shape
            new = lambda: self.like.new_empty(shape)  # noqa: E731
            buf = (new(), new() if cplx else None)
            self.bufs[name] = buf
        return buf


def _contract_y(h: Pair, C: Pair, out: Tensor, tmp: Tensor) -> None:
    """y = Σ_n h·C, or 2 Re(Σ_n h·C) for pairs, into ``out`` (b, q, J, g, r)."""
    b, q, J, n, g, r = h[0].shape
    if g == 1 and C[0].shape == (b, q, J, n, 1, 1):  # variable C, no groups: one batched matmul
        def mm(hh: Tensor, cc: Tensor) -> Tensor:
            return torch.bmm(cc.reshape(b * q * J, 1, n), hh.view(b * q * J, n, r))

        y = mm(h[0], C[0])
        if h[1] is not None:
            assert C[1] is not None
            y = y.sub_(mm(h[1], C[1])).mul_(2)
        out.copy_(y.view(out.shape))
        return
    torch.sum(torch.mul(h[0], C[0], out=tmp), 3, out=out)
    if h[1] is not None:
        assert C[1] is not None
        out.sub_(torch.mul(h[1], C[1], out=tmp).sum(3)).mul_(2)


def _expand(p: Pair, shape: torch.Size) -> Pair:
    return p[0].expand(shape), (p[1].expand(shape) if p[1] is not None else None)


def _full_sum(v: Pair | None, f: Pair | None, out: Pair) -> Pair:
    """v + f (the variable and the fixed part of B or C) at full size when both are given, else
    the one given, left to broadcast."""
    if v is None or f is None:
        res = v if f is None else f
        assert res is not None
        return res
    re = torch.add(v[0], f[0], out=out[0])
    vi, fi = v[1], f[1]
    if vi is None and fi is None:
        return re, None
    assert vi is not None and fi is not None
    return re, torch.add(vi, fi, out=out[1])


def _addmulc_(acc: Pair, a: Pair, b: Pair) -> None:
    """acc += a·conj(b) in place."""
    acc[0].addcmul_(a[0], b[0])
    if acc[1] is not None:
        assert a[1] is not None and b[1] is not None
        acc[0].addcmul_(a[1], b[1])
        acc[1].addcmul_(a[1], b[0]).addcmul_(a[0], b[1], value=-1)


def _mulc_into(a: Pair, b: Pair, out: Pair) -> None:
    """out = a·conj(b) (out must alias neither)."""
    torch.mul(a[0], b[0], out=out[0])
    if out[1] is not None:
        assert a[1] is not None and b[1] is not None
        out[0].addcmul_(a[1], b[1])
        torch.mul(a[1], b[0], out=out[1]).addcmul_(a[0], b[1], value=-1)


def _mulc_reduce(a: Pair, b: Pair, shape: torch.Size, out: Pair) -> Pair:
    """Σ a·conj(b) down to ``shape``; when b already has that shape, sum a first."""
    if b[0].shape == shape:
        return _mulc(_reduce_pair(a, shape), b)  # type: ignore[arg-type]
    return _mulc(a, _expand(b, a[0].shape), out=out)


def _map(p, f):  # type: ignore[no-untyped-def]
    if p is None:
        return None
    return f(p[0]), (f(p[1]) if p[1] is not None else None)


def _map_pairs(ps: list[Pair], f) -> Pair:  # type: ignore[no-untyped-def]
    return f([p[0] for p in ps]), (f([p[1] for p in ps]) if ps[0][1] is not None else None)


def _pair(re: Tensor | None, im: Tensor | None) -> Pair | None:
    return None if re is None else (re, im)
