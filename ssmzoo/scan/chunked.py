"""The fast pure-PyTorch selective scan: chunks, sub-blocks, and a short recurrence between them.

The sequence is cut into chunks of ``chunk_size`` steps, processed one after the other, so that
memory is O(batch·dim·d_state·chunk_size) and not O(batch·dim·d_state·length). Inside a chunk the
steps are grouped into J sub-blocks of q = ``block_size`` steps (chunk_size = J·q), laid out as
(batch, q, J, d_state, dim) so that step i of every sub-block is one contiguous slice and dim is
innermost (broadcasts and the sum over d_state vectorise), and:

1. every step's decay Ā_t = exp(Δ_t A) and input B̄_t u_t are formed at once;
2. all J sub-blocks are scanned together from a zero state (q vectorised multiply-adds), which
   gives each sub-block's local end state h̃_j;
3. a short recurrence over the sub-block boundaries carries the true state across them:
   H_j = exp((Σ_{t∈j} Δ_t) A) H_{j-1} + h̃_j (A does not depend on the step, so a sub-block's
   whole decay is one exponential), from the chunk's entering state; H_J leaves the chunk;
4. all sub-blocks are scanned again, each from its true entering state H_{j-1}, into one
   buffer of the chunk's states, which is then contracted with C (a batched matmul when C is
   variable and ungrouped).

Only products of decays appear (never a quotient such as exp(-Σ a)), so nothing overflows
however strong the decay, and nothing assumes Re(A) < 0. Why not SSD's quadratic form: in SSD one
decay is shared by a head's whole headdim × d_state state, so the (t, s) decay matrix of a chunk
is reused by a matmul; here every state entry of every channel has its own decay, and
exp(segsum) would cost q exponentials per element where the scans cost one. Python steps per
chunk: 2q + J, instead of one per token. Decays are computed as exp2(Δ·A·log2 e), which torch
evaluates about twice as fast as exp on CPUs (the CUDA kernel of mamba_ssm does the same).

The work itself is :mod:`ssmzoo.scan._scan_fn`: one autograd Function whose backward is written
by hand (a reverse scan of the state adjoint with the same sub-block scheme, each chunk's forward
recomputed from its saved entering state, so only chunk-boundary states are kept and memory stays
O(chunk)); complex states are carried as real (re, im) pairs. The Function stays traceable by
torch.compile. ZOH with some A = 0 (where 1/A is not finite) takes the older path below
(:func:`_chunk`: phi1(ΔA)·Δ, plain autograd, chunks under
:func:`torch.utils.checkpoint.checkpoint`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ssmzoo.scan._math import acc_dtype, complex_of, exp_and_expm1, interleaved_to_complex, phi1
from ssmzoo.scan._scan_fn import ScanFn, run_forward
from ssmzoo.scan.naive import selective_scan_naive

CHUNK_SIZE = 256  # the longest chunk chosen by default
# default chunk: about this many floats in one full-size (batch, chunk, d_state, dim) tensor, so
# that the dozen such work buffers of a chunk stay in a CPU's cache
CHUNK_FLOATS = 1 << 21
BLOCK_SIZE = 16
LOG2E = 1.4426950408889634


def _decay(dt: Tensor, AT: Tensor) -> Tensor:
    """exp(Δ A) for Δ (..., 1, dim) and Aᵀ (n, dim) -> (..., n, dim), real or complex, via exp2."""
    mag = torch.exp2(dt * (AT.real * LOG2E))  # (..., n, dim)
    return torch.polar(mag, dt * AT.imag) if AT.is_complex() else mag


def _block_decay(dtr: Tensor, AT: Tensor) -> Tensor:
    """exp((Σ_i Δ_i) A), each sub-block's whole decay, for Δ (b, q, J, 1, dim) -> (b, J, n, dim).

    Summed and multiplied in float64, the phase reduced modulo 2π, as in
    :func:`ssmzoo.scan._scan_fn._block_decay` (a float32 sum of q steps' Δ, times a large Im A,
    is the scan's largest rounding error); float32 on devices without float64 (MPS).
    """
    if dtr.dtype != torch.float32 or dtr.device.type == "mps":
        return _decay(dtr.sum(1), AT)
    t = dtr.sum(1, dtype=torch.float64)  # (b, J, 1, d)
    mag = torch.exp2(t * (AT.real.double() * LOG2E)).float()  # (b, J, n, d)
    if not AT.is_complex():
        return mag
    return torch.polar(mag, torch.remainder(t * AT.imag.double(), 2 * math.pi).float())


def _contract(h: Tensor, C: Tensor) -> Tensor:
    """Σ_n h·C over axis 2, or 2·Re of it for complex states: (b, J, n, g, r) -> (b, J, g·r).

    For complex states only the real part is formed: Re(h·C) = h.re·C.re - h.im·C.im.
    """
    if h.is_complex():
        y = 2 * (h.real * C.real - h.imag * C.imag).sum(2)
    else:
        y = (h * C).sum(2)
    return rearrange(y, "b j g r -> b j (g r)")


def _time_major(X: Tensor, cplx: bool, dtype: torch.dtype) -> Tensor:
    """Variable/grouped B or C -> (batch, length, d_state, groups), complex when A is complex."""
    X = interleaved_to_complex(X, dtype) if cplx else X.to(dtype)
    if X.dim() == 3:
        return rearrange(X, "b n l -> b l n 1")  # (batch, length, d_state, 1)
    return rearrange(X, "b g n l -> b l n g")  # (batch, length, d_state, groups)


def _chunk(h0: Tensor, dt: Tensor, u: Tensor, AT: Tensor, Bv: Tensor | None,
           BfT: Tensor | None, Cv: Tensor | None, CfT: Tensor | None, q: int,
           zoh: bool, invAT: Tensor | None) -> tuple[Tensor, Tensor]:
    """One chunk of T = J·q steps from state h0; returns y (batch, T, dim) and the last state.

    h0: (batch, n, dim); dt, u: (batch, T, dim); AT: (n, dim); Bv, Cv: (batch, T, n, groups) or
    None; BfT, CfT: (n, dim) or None (the step-independent part, biases included); invAT: 1/Aᵀ
    (n, dim) for ZOH when every A is nonzero, else None. Works in the
    layout (batch, q, J, n, dim): step i of every sub-block is one contiguous slice, and dim,
    the longest axis, is the innermost, so that broadcasts and the sum over n vectorise.
    """
    dtr = rearrange(dt, "b (j i) d -> b i j 1 d", i=q).contiguous()  # (b, q, J, 1, d)
    ur = rearrange(u, "b (j i) d -> b i j 1 d", i=q)  # (b, q, J, 1, d)
    if zoh and invAT is not None:
        # ZOH's B̄u = (exp(ΔA) - 1)/A · B u: the decay and expm1 come from one pass
        decay, em = exp_and_expm1(dtr, AT)  # (b, q, J, n, d)
        cu = em * ur  # (b, q, J, n, d)
    else:
        decay = _decay(dtr, AT)  # (b, q, J, n, d)
        cu = dtr * ur  # (b, q, J, 1, d)
        if zoh:  # some A is 0: the phi1 form, finite there
            cu = cu * phi1(dtr * AT)  # (b, q, J, n, d)

    # the input coefficient of every state entry: B_t (grouped) plus the fixed part, over A
    # for ZOH; one full-size product with cu
    g = Bv.shape[3] if Bv is not None else 1
    Bf6 = rearrange(BfT, "n (g r) -> n g r", g=g) if BfT is not None else None  # (n, g, r)
    Bt = (rearrange(Bv, "b (j i) n g -> b i j n g 1", i=q)
          if Bv is not None else None)  # (b, q, J, n, g, 1)
    Bin = Bf6 if Bt is None else Bt if Bf6 is None else Bt + Bf6
    assert Bin is not None  # B is given, fixed or variable
    if invAT is not None:
        Bin = Bin * rearrange(invAT, "n (g r) -> n g r", g=g)
    cu6 = rearrange(cu, "b i j n (g r) -> b i j n g r", g=g)
    x = rearrange(cu6 * Bin, "b i j n g r -> b i j n (g r)")  # (b, q, J, n, d)
    xs, decays = x.unbind(1), decay.unbind(1)  # q x (b, J, n, d)

    # 2. every sub-block scanned from a zero state, all at once: its local end state
    h_end = xs[0]
    for i in range(1, q):
        h_end = torch.addcmul(xs[i], decays[i], h_end)  # (b, J, n, d)
    # 3. the sub-block recurrence: states entering each sub-block, and the chunk's last state;
    #    a sub-block's decay is exp((Σ_i Δ_i) A), since A does not depend on the step
    P_end = _block_decay(dtr, AT)  # (b, J, n, d)
    H = h0
    H_in = []
    for h_e, P_e in zip(h_end.unbind(1), P_end.unbind(1)):  # J x (b, n, d)
        H_in.append(H)
        H = torch.addcmul(h_e, P_e, H)  # (b, n, d)
    # 4. every sub-block scanned again from its true entering state, contracted with C per step
    #    while the step's states are in cache
    g = Cv.shape[3] if Cv is not None else 1
    Cf6 = rearrange(CfT, "n (g r) -> n g r", g=g) if CfT is not None else None
    Cs: list[Tensor | None] = (list(rearrange(Cv, "b (j i) n g -> b i j n g 1", i=q).unbind(1))
                               if Cv is not None else [None] * q)  # q x (b, J, n, g, 1)
    h = torch.stack(H_in, dim=1)  # (b, J, n, d)
    ys = []
    for i in range(q):
        h = torch.addcmul(xs[i], decays[i], h)  # (b, J, n, d)
        Cv_i = Cs[i]
        Ci = (Cf6 if Cv_i is None else Cv_i if Cf6 is None else Cv_i + Cf6)
        assert Ci is not None  # C is given, fixed or variable
        ys.append(_contract(rearrange(h, "b j n (g r) -> b j n g r", g=g), Ci))  # (b, J, d)
    y = torch.stack(ys, dim=1)  # (b, q, J, d)
    return rearrange(y, "b i j d -> b (j i) d"), H  # (b, T, d), (b, n, d)


def selective_scan_chunked(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
    z: Tensor | None = None, delta_bias: Tensor | None = None, delta_softplus: bool = False,
    return_last_state: bool = False, *, B_bias: Tensor | None = None,
    C_bias: Tensor | None = None, initial_state: Tensor | None = None,
    discretization: str = "euler", chunk_size: int | None = None, block_size: int = BLOCK_SIZE,
) -> Tensor | tuple[Tensor, Tensor]:
    """``selective_scan`` by chunks; same arguments and results as :func:`selective_scan_naive`.

    ``chunk_size`` (rounded to a multiple of ``block_size``) bounds the memory; by default it is
    as many steps as keep one (batch, chunk, d_state, dim) work buffer near ``CHUNK_FLOATS``
    floats (at most ``CHUNK_SIZE`` steps) on a CPU, which keeps a chunk's buffers in its cache,
    and ``CHUNK_SIZE`` on other devices.
    ``block_size`` is the sub-block length q. Neither changes the result beyond rounding.
    """
    if u.numel() == 0 or A.numel() == 0:  # batch, dim or d_state 0: empty or zero-state math,
        # which the sequential loop does on empty tensors (right shapes, zero gradients)
        return selective_scan_naive(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
            B_bias=B_bias, C_bias=C_bias, initial_state=initial_state,
            discretization=discretization)
    real = acc_dtype(u, delta, A, B, C, D, z, delta_bias, B_bias, C_bias, initial_state)
    cplx = A.is_complex()
    state_dtype = complex_of(real) if cplx else real
    b, d, L = u.shape
    n = A.shape[1]
    q = max(1, min(block_size, L))
    if chunk_size is None:  # on a CPU as many steps as fit CHUNK_FLOATS, at most CHUNK_SIZE
        per_step = b * d * n * (2 if cplx else 1)
        chunk_size = (min(CHUNK_SIZE, max(q, CHUNK_FLOATS // per_step // q * q))
                      if u.device.type == "cpu" else CHUNK_SIZE)
    J = max(1, chunk_size // q)
    Lp = -(-L // q) * q  # padded to whole sub-blocks: padded steps have Δ = 0, u = 0 (identity)

    uf = u.to(real)
    dt = delta.to(real)
    if delta_bias is not None:
        dt = dt + delta_bias.to(real)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    AT = rearrange(A.to(state_dtype), "d n -> n d").contiguous()  # (n, d)
    Bv = _time_major(B, cplx, real) if B.dim() > 2 else None  # (b, L, n, g)
    Cv = _time_major(C, cplx, real) if C.dim() > 2 else None  # (b, L, n, g)
    BfT = _fixed_part(B, B_bias, state_dtype)  # (n, d)
    CfT = _fixed_part(C, C_bias, state_dtype)  # (n, d)
    dt_t = rearrange(dt, "b d l -> b l d")  # (b, L, d)
    u_t = rearrange(uf, "b d l -> b l d")  # (b, L, d)
    if Lp != L:
        pad = (0, 0, 0, Lp - L)
        dt_t, u_t = F.pad(dt_t, pad), F.pad(u_t, pad)  # (b, Lp, d)
        Bv = F.pad(Bv, (0, 0) + pad) if Bv is not None else None  # (b, Lp, n, g)
        Cv = F.pad(Cv, (0, 0) + pad) if Cv is not None else None  # (b, Lp, n, g)
    h = (rearrange(initial_state.to(state_dtype), "b d n -> b n d") if initial_state is not None
         else torch.zeros(b, n, d, dtype=state_dtype, device=u.device))  # (b, n, d)

    zoh = discretization == "zoh"
    invAT = None
    if zoh:  # ZOH as expm1(ΔA)/A wherever 1/A is finite; phi1(ΔA)·Δ otherwise
        inv = 1 / AT  # (n, d)
        invAT = inv if bool(torch.isfinite(inv).all()) else None

    if zoh and invAT is None:  # some A is 0: the phi1 form, through autograd
        y_t, h = _run_phi1(h, dt_t, u_t, AT, Bv, BfT, Cv, CfT, q, J, Lp, (
            u, delta, A, B, C, delta_bias, B_bias, C_bias, initial_state))
    else:
        y_t, h = _run_fast(h, dt_t, u_t, AT, Bv, BfT, Cv, CfT, q, J, invAT, (
            u, delta, A, B, C, delta_bias, B_bias, C_bias, initial_state))
    y = rearrange(y_t[:, :L], "b l d -> b d l")  # (b, d, L)
    if D is not None:
        y = torch.addcmul(y, D.to(real)[:, None], uf)
    if z is not None:
        gate = F.silu(z.to(real))
        y = gate.mul_(y) if not (torch.is_grad_enabled() and gate.requires_grad | y.requires_grad) \
            else y * gate
    out = y.to(u.dtype)
    return (out, rearrange(h, "b n d -> b d n")) if return_last_state else out


def _fixed_part(X: Tensor, bias: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """The step-independent part of B or C (fixed matrix and/or bias), transposed: (d_state, dim)."""
    parts = [t.to(dtype) for t in ((X if X.dim() == 2 else None), bias) if t is not None]
    if not parts:
        return None
    total = parts[0] if len(parts) == 1 else parts[0] + parts[1]
    return rearrange(total, "d n -> n d").contiguous()


def _parts(t: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    if t is None:
        return None, None
    return (t.real, t.imag) if t.is_complex() else (t, None)


def _run_fast(h: Tensor, dt_t: Tensor, u_t: Tensor, AT: Tensor, Bv: Tensor | None,
              BfT: Tensor | None, Cv: Tensor | None, CfT: Tensor | None, q: int, J: int,
              invAT: Tensor | None, inputs: tuple[Tensor | None, ...]) -> tuple[Tensor, Tensor]:
    """The scan of :mod:`ssmzoo.scan._scan_fn`: real arithmetic, hand-written backward."""
    gB = Bv.shape[3] if Bv is not None else 1
    gC = Cv.shape[3] if Cv is not None else 1
    g = math.lcm(gB, gC)  # one group axis for both: B and C repeated to g groups
    if Bv is not None and gB != g:
        Bv = Bv.repeat_interleave(g // gB, dim=3)
    if Cv is not None and gC != g:
        Cv = Cv.repeat_interleave(g // gC, dim=3)
    meta = (q, J, g, invAT is not None)
    args: tuple[Any, ...] = (meta, dt_t, u_t, *_parts(AT), *_parts(Bv), *_parts(BfT), *_parts(Cv), *_parts(CfT),
            *_parts(invAT), *_parts(h))
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        y_t, last = ScanFn.apply(*args)
    else:
        y_t, last, _ = run_forward(*args)
    h = torch.complex(last[..., 0], last[..., 1]) if h.is_complex() else last[..., 0]
    return y_t, h


def _run_phi1(h: Tensor, dt_t: Tensor, u_t: Tensor, AT: Tensor, Bv: Tensor | None,
              BfT: Tensor | None, Cv: Tensor | None, CfT: Tensor | None, q: int, J: int,
              Lp: int, inputs: tuple[Tensor | None, ...]) -> tuple[Tensor, Tensor]:
    """ZOH with some A = 0 (phi1(ΔA)·Δ, finite there): plain autograd, chunks checkpointed."""
    step = J * q
    # recompute chunks in the backward only when there are several: a single chunk's saved
    # intermediates are already O(chunk), and recomputing it would only cost time
    use_ckpt = Lp > step and torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in inputs)
    ys = []
    for c0 in range(0, Lp, step):
        c1 = min(c0 + step, Lp)
        args = (h, dt_t[:, c0:c1], u_t[:, c0:c1], AT,
                Bv[:, c0:c1] if Bv is not None else None, BfT,
                Cv[:, c0:c1] if Cv is not None else None, CfT, q, True, None)
        if use_ckpt:
            y_c, h = checkpoint(_chunk, *args, use_reentrant=False)
        else:
            y_c, h = _chunk(*args)
        ys.append(y_c)
    return (torch.cat(ys, dim=1) if len(ys) > 1 else ys[0]), h
