"""Host side of the Triton selective scan: argument layout, launches, and the autograd Function.

``selective_scan_triton`` takes the public function's arguments (mamba_ssm's layout, see
``ssmzoo.selective_scan``) and returns what it returns. ``_fwd`` and ``_bwd`` are plain functions
around the two kernels, testable alone; ``SelectiveScanTritonFn`` only does the ctx bookkeeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
from einops import rearrange
from torch import Tensor

from ssmzoo_kernels.selective_scan._bwd import selective_scan_bwd_kernel
from ssmzoo_kernels.selective_scan._fwd import selective_scan_fwd_kernel


@dataclass(frozen=True)
class KernelConfig:
    """Tile sizes of one launch: channels per program, time steps per chunk, warps per program."""

    block_d: int
    block_t: int
    num_warps: int = 4


# Chosen on an H100 with benchmarks/gpu_selective_scan.py (see KERNEL_NOTES.md); any power-of-two
# sizes are correct. block_d is further capped so that a program never straddles two B/C groups.
FWD_CONFIG = {False: KernelConfig(8, 64, 4), True: KernelConfig(4, 64, 4)}  # by is_complex
BWD_CONFIG = {False: KernelConfig(4, 32, 4), True: KernelConfig(2, 32, 4)}


def _fit(cfg: KernelConfig, bn: int, block_d: int) -> tuple[int, int]:
    """(block_d, block_t) shrunk so that a (channels, d_state, time) tile holds no more elements
    than the config was tuned for at d_state 16 (larger d_state: fewer channels, then shorter
    chunks)."""
    budget = cfg.block_d * 16 * cfg.block_t
    bd, bt = block_d, cfg.block_t
    while bd * bn * bt > budget and (bd > 1 or bt > 16):
        if bd > 1:
            bd //= 2
        else:
            bt //= 2
    return bd, bt


def _pow2_divisor(k: int, cap: int) -> int:
    """The largest power of two that divides k, at most cap."""
    p = 1
    while p < cap and k % (2 * p) == 0:
        p *= 2
    return p


@dataclass
class _Prepared:
    """The arguments in the layout the kernels read (see the kernels' docstrings)."""

    u: Tensor
    delta: Tensor
    A: Tensor
    B: Tensor
    C: Tensor
    D: Tensor | None
    z: Tensor | None
    delta_bias: Tensor | None
    B_bias: Tensor | None
    C_bias: Tensor | None
    h0: Tensor | None
    is_complex: bool
    B_var: bool
    C_var: bool
    B_per_group: int
    C_per_group: int
    softplus: bool
    zoh: bool

    @property
    def batch(self) -> int:
        return self.u.shape[0]

    @property
    def dim(self) -> int:
        return self.u.shape[1]

    @property
    def length(self) -> int:
        return self.u.shape[2]

    @property
    def dstate(self) -> int:
        return self.A.shape[1]

    def block_d(self, cap: int) -> int:
        per_group = math.gcd(self.B_per_group, self.C_per_group)
        return _pow2_divisor(per_group, cap) if per_group != self.dim else cap


def _time_contiguous(t: Tensor) -> Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _pairs(t: Tensor, cplx: bool) -> Tensor:
    """A fixed (dim, d_state) or (batch, dim, d_state) tensor as contiguous float32, complex ones
    as (..., 2) real pairs."""
    if cplx:
        return torch.view_as_real(t.to(torch.complex64).resolve_conj().contiguous())
    return t.float().contiguous()


def _variable(t: Tensor) -> Tensor:
    """A variable B/C as a contiguous (batch, groups, d_state, length') tensor."""
    if t.dim() == 3:
        t = rearrange(t, "b n l -> b 1 n l")  # (batch, 1, d_state, length')
    return t.contiguous()


def _prepare(u, delta, A, B, C, D, z, delta_bias, B_bias, C_bias, initial_state, softplus,
             zoh) -> _Prepared:
    cplx = A.is_complex()
    dim = u.shape[1]
    B_var, C_var = B.dim() >= 3, C.dim() >= 3
    return _Prepared(
        u=_time_contiguous(u), delta=_time_contiguous(delta), A=_pairs(A, cplx),
        B=_variable(B) if B_var else _pairs(B, cplx), C=_variable(C) if C_var else _pairs(C, cplx),
        D=None if D is None else D.float().contiguous(),
        z=None if z is None else _time_contiguous(z),
        delta_bias=None if delta_bias is None else delta_bias.float().contiguous(),
        B_bias=None if B_bias is None else _pairs(B_bias, cplx),
        C_bias=None if C_bias is None else _pairs(C_bias, cplx),
        h0=None if initial_state is None else _pairs(initial_state, cplx),
        is_complex=cplx, B_var=B_var, C_var=C_var,
        B_per_group=dim // B.shape[1] if B.dim() == 4 else dim,
        C_per_group=dim // C.shape[1] if C.dim() == 4 else dim,
        softplus=bool(softplus), zoh=zoh == "zoh",
    )


def _var_strides(t: Tensor, var: bool) -> tuple[int, int, int]:
    return (t.stride(0), t.stride(1), t.stride(2)) if var else (0, 0, 0)


def _launch_fwd(p: _Prepared, out: Tensor | None, last: Tensor | None, ws: Tensor | None,
                cfg: KernelConfig) -> int:
    """Run the forward kernel; returns the number of chunks (for ``ws``)."""
    bn = max(2, triton.next_power_of_2(p.dstate))
    bd, bt = _fit(cfg, bn, p.block_d(cfg.block_d))
    if ws is not None:
        bt = cfg.block_t  # the backward's chunks
    n_chunks = triton.cdiv(p.length, bt)
    if ws is not None and ws.shape[1] != n_chunks:
        raise RuntimeError(f"state workspace has {ws.shape[1]} chunks, the launch needs {n_chunks}")
    dummy = p.u
    z = p.z if p.z is not None else dummy
    o = out if out is not None else dummy
    grid = (triton.cdiv(p.dim, bd), p.batch)
    selective_scan_fwd_kernel[grid](
        p.u, p.delta, p.A, p.B, p.C,
        p.D if p.D is not None else dummy, z,
        p.delta_bias if p.delta_bias is not None else dummy,
        p.B_bias if p.B_bias is not None else dummy,
        p.C_bias if p.C_bias is not None else dummy,
        p.h0 if p.h0 is not None else dummy, o,
        last if last is not None else dummy, ws if ws is not None else dummy,
        p.dim, p.dstate, p.length, n_chunks,
        p.u.stride(0), p.u.stride(1), p.delta.stride(0), p.delta.stride(1),
        z.stride(0), z.stride(1), o.stride(0), o.stride(1),
        *_var_strides(p.B, p.B_var), *_var_strides(p.C, p.C_var), p.B_per_group, p.C_per_group,
        IS_COMPLEX=p.is_complex, B_VAR=p.B_var, C_VAR=p.C_var, HAS_D=p.D is not None,
        HAS_Z=p.z is not None, HAS_DBIAS=p.delta_bias is not None, SOFTPLUS=p.softplus,
        HAS_BBIAS=p.B_bias is not None, HAS_CBIAS=p.C_bias is not None,
        HAS_H0=p.h0 is not None, WRITE_OUT=out is not None, STORE_LAST=last is not None,
        STORE_STATES=ws is not None, ZOH=p.zoh, BD=bd, BN=bn, BT=bt, num_warps=cfg.num_warps,
    )
    return n_chunks


def _state_shape(p: _Prepared, *lead: int) -> tuple[int, ...]:
    return (*lead, p.dim, p.dstate, 2) if p.is_complex else (*lead, p.dim, p.dstate)


def _fwd(p: _Prepared, return_last_state: bool, cfg: KernelConfig | None = None,
         ) -> tuple[Tensor, Tensor | None]:
    """out (batch, dim, length) in u's dtype, and the last state (batch, dim, d_state[, 2]) float32."""
    cfg = cfg or FWD_CONFIG[p.is_complex]
    out = torch.empty(p.u.shape, dtype=p.u.dtype, device=p.u.device)
    last = None
    if return_last_state:
        last = torch.empty(_state_shape(p, p.batch), dtype=torch.float32, device=p.u.device)
    _launch_fwd(p, out, last, None, cfg)
    return out, last


def _bwd(p: _Prepared, dout: Tensor, dlast: Tensor | None, cfg: KernelConfig | None = None,
         ) -> dict[str, Tensor]:
    """Gradients in the kernels' layout (float32 partial sums over the batch still to be reduced)."""
    cfg = cfg or BWD_CONFIG[p.is_complex]
    dev = p.u.device
    bn = max(2, triton.next_power_of_2(p.dstate))
    bd, bt = _fit(cfg, bn, p.block_d(cfg.block_d))
    n_chunks = triton.cdiv(p.length, bt)
    ws = torch.empty(_state_shape(p, p.batch, n_chunks), dtype=torch.float32, device=dev)
    _launch_fwd(p, None, None, ws, KernelConfig(FWD_CONFIG[p.is_complex].block_d, bt,
                                                FWD_CONFIG[p.is_complex].num_warps))
    dout = dout.contiguous()
    f32 = {"dtype": torch.float32, "device": dev}
    g = {
        "u": torch.empty(p.u.shape, dtype=p.u.dtype, device=dev),
        "delta": torch.empty(p.delta.shape, dtype=p.delta.dtype, device=dev),
        "z": torch.empty(p.z.shape, dtype=p.z.dtype, device=dev) if p.z is not None else None,
        "A": torch.empty(_state_shape(p, p.batch), **f32),
        "Bv": torch.zeros(p.B.shape, **f32) if p.B_var else None,
        "Cv": torch.zeros(p.C.shape, **f32) if p.C_var else None,
        "Bf": torch.empty(_state_shape(p, p.batch), **f32),
        "Cf": torch.empty(_state_shape(p, p.batch), **f32),
        "D": torch.empty(p.batch, p.dim, **f32),
        "delta_bias": torch.empty(p.batch, p.dim, **f32),
        "h0": torch.empty(_state_shape(p, p.batch), **f32),
    }
    dummy = p.u
    grid = (triton.cdiv(p.dim, bd), p.batch)
    selective_scan_bwd_kernel[grid](
        p.u, p.delta, p.A, p.B, p.C,
        p.D if p.D is not None else dummy, p.z if p.z is not None else dummy,
        p.delta_bias if p.delta_bias is not None else dummy,
        p.B_bias if p.B_bias is not None else dummy,
        p.C_bias if p.C_bias is not None else dummy,
        ws, dout, dlast.contiguous() if dlast is not None else dummy,
        g["u"], g["delta"], g["z"] if g["z"] is not None else dummy, g["A"],
        g["Bv"] if g["Bv"] is not None else dummy, g["Cv"] if g["Cv"] is not None else dummy,
        g["Bf"], g["Cf"], g["D"], g["delta_bias"], g["h0"],
        p.dim, p.dstate, p.length, n_chunks,
        p.u.stride(0), p.u.stride(1), p.delta.stride(0), p.delta.stride(1),
        *((p.z.stride(0), p.z.stride(1)) if p.z is not None else (0, 0)),
        dout.stride(0), dout.stride(1),
        *_var_strides(p.B, p.B_var), *_var_strides(p.C, p.C_var), p.B_per_group, p.C_per_group,
        IS_COMPLEX=p.is_complex, B_VAR=p.B_var, C_VAR=p.C_var, HAS_D=p.D is not None,
        HAS_Z=p.z is not None, HAS_DBIAS=p.delta_bias is not None, SOFTPLUS=p.softplus,
        HAS_BBIAS=p.B_bias is not None, HAS_CBIAS=p.C_bias is not None,
        HAS_DLAST=dlast is not None, ZOH=p.zoh, BD=bd, BN=bn, BT=bt, num_warps=cfg.num_warps,
    )
    return g
