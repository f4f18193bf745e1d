"""Host side of the Triton selective scan: the launches of the forward and backward kernels.

``_fwd`` and ``_bwd`` are plain functions of a :class:`~ssmzoo_kernels.selective_scan.prepare.
Prepared` call and a :class:`~ssmzoo_kernels.selective_scan.tuning.Tuning`, testable alone; the
autograd Function in ``interface.py`` only does the ctx bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
from torch import Tensor

from ssmzoo_kernels._env import interpreting
from ssmzoo_kernels.selective_scan._bwd import selective_scan_bwd_kernel
from ssmzoo_kernels.selective_scan._fwd import selective_scan_fwd_kernel
from ssmzoo_kernels.selective_scan.prepare import Prepared, block_t_of
from ssmzoo_kernels.selective_scan.tuning import DEFAULT, KernelConfig, Tuning

MAX_D_STATE = 64  # states and gradient sums live in registers


def _var_strides(t: Tensor, var: bool) -> tuple[int, int, int]:
    return (t.stride(0), t.stride(1), t.stride(2)) if var else (0, 0, 0)


def _launch_fwd(p: Prepared, out: Tensor | None, last: Tensor | None, ws: Tensor | None,
                ypre: Tensor | None, cfg: KernelConfig, block_t: int, tuning: Tuning, *,
                h0: Tensor | None = None, n_seg: int = 1, dts: Tensor | None = None) -> int:
    """Run the forward kernel over ``n_seg`` time segments; returns the number of chunks.

    ``h0`` (default: the call's initial state) and ``last`` are (batch, n_seg, dim, d_state[, 2])
    when ``n_seg`` > 1; with ``dts`` the launch is the segment-sums pass (see the kernel).
    """
    bd = p.block_d(cfg.block_d)
    n_chunks = triton.cdiv(p.length, block_t)
    seg_chunks = triton.cdiv(n_chunks, n_seg)
    if ws is not None and ws.shape[1] != n_chunks:
        raise RuntimeError(f"state workspace has {ws.shape[1]} chunks, the launch needs {n_chunks}")
    h0 = p.h0 if h0 is None and dts is None else h0
    dummy = p.u
    z = p.z if p.z is not None else dummy
    o = out if out is not None else dummy
    grid = (triton.cdiv(p.dim, bd), p.batch, n_seg)
    selective_scan_fwd_kernel[grid](
        p.u, p.delta, p.A, p.B, p.C,
        p.D if p.D is not None else dummy, z,
        p.delta_bias if p.delta_bias is not None else dummy,
        p.B_bias if p.B_bias is not None else dummy,
        p.C_bias if p.C_bias is not None else dummy,
        h0 if h0 is not None else dummy, o,
        last if last is not None else dummy, ws if ws is not None else dummy,
        ypre if ypre is not None else dummy, dts if dts is not None else dummy,
        p.dim, p.length, n_chunks, n_seg, seg_chunks,
        p.u.stride(0), p.u.stride(1), p.delta.stride(0), p.delta.stride(1),
        z.stride(0), z.stride(1), o.stride(0), o.stride(1),
        *_var_strides(p.B, p.B_var), *_var_strides(p.C, p.C_var), p.B_per_group, p.C_per_group,
        DSTATE=p.dstate, IS_COMPLEX=p.is_complex, B_VAR=p.B_var, C_VAR=p.C_var,
        HAS_D=p.D is not None, HAS_Z=p.z is not None, HAS_DBIAS=p.delta_bias is not None,
        SOFTPLUS=p.softplus, HAS_BBIAS=p.B_bias is not None, HAS_CBIAS=p.C_bias is not None,
        HAS_H0=h0 is not None, WRITE_OUT=out is not None, STORE_LAST=last is not None,
        STORE_STATES=ws is not None, SEG_SUMS=dts is not None, ZOH=p.zoh, FAST=not interpreting(), BD=bd,
        BN=max(2, triton.next_power_of_2(p.dstate)), BT=block_t, CARRY_AFTER=tuning.carry_after_scan,
        STORE_Y=ypre is not None, UNROLL=p.dstate <= cfg.unroll_dstate, num_warps=cfg.num_warps,
    )
    return n_chunks


def _segments(p: Prepared, cfg: KernelConfig, block_t: int, target_warps: int) -> int:
    """Time segments for the forward: enough programs to give every SM ~16 warps (0 in the
    config: automatic), never segments shorter than 64 chunks."""
    if cfg.segments:
        return cfg.segments
    programs = triton.cdiv(p.dim, p.block_d(cfg.block_d)) * p.batch * cfg.num_warps
    want = max(1, target_warps // programs)
    return max(1, min(want, triton.cdiv(p.length, block_t) // 64))


def _chain_segments(p: Prepared, ends: Tensor, dts: Tensor) -> Tensor:
    """Start state of every segment from each one's end state (from zero) and Σ Δ.

    ends: (batch, n_seg, dim, d_state[, 2]); dts: (batch, n_seg, dim). The decay over segment s
    is exp(A Σ Δ_s), so start_{s+1} = exp(A Σ Δ_s) start_s + end_s. Returns starts, same shape.
    """
    A = torch.view_as_complex(p.A) if p.is_complex else p.A  # (dim, d_state)
    E = torch.view_as_complex(ends) if p.is_complex else ends
    decay = torch.exp(dts[..., None] * A)  # (batch, n_seg, dim, d_state)
    h = torch.zeros_like(E[:, 0])
    if p.h0 is not None:
        h = torch.view_as_complex(p.h0) if p.is_complex else p.h0
    starts = []
    for s in range(E.shape[1]):
        starts.append(h)
        h = decay[:, s] * h + E[:, s]
    out = torch.stack(starts, dim=1)  # (batch, n_seg, dim, d_state)
    return torch.view_as_real(out).contiguous() if p.is_complex else out.contiguous()


def _state_shape(p: Prepared, *lead: int) -> tuple[int, ...]:
    return (*lead, p.dim, p.dstate, 2) if p.is_complex else (*lead, p.dim, p.dstate)


@dataclass
class SavedStates:
    """What the backward's state-recomputing pass would write, written by the forward instead:
    the state before every chunk of ``block_t`` steps and, with z, the un-gated output."""

    ws: Tensor  # (batch, n_chunks, dim, d_state[, 2]) float32
    ypre: Tensor | None  # (batch, dim, length) in u's dtype; None unless z and not recompute_y
    block_t: int


def _ypre_buffer(p: Prepared, tuning: Tuning) -> Tensor | None:
    """The un-gated output's buffer for the backward, when it reads one (z, and
    ``tuning.recompute_y`` off)."""
    if p.z is None or tuning.recompute_y:
        return None
    return torch.empty(p.u.shape, dtype=p.u.dtype, device=p.u.device)


def _fwd(p: Prepared, return_last_state: bool, tuning: Tuning = DEFAULT
         ) -> tuple[Tensor, Tensor | None]:
    """out (batch, dim, length) in u's dtype, and the last state (batch, dim, d_state[, 2]) float32."""
    out, last, _saved = _fwd_saving(p, return_last_state, tuning, save=False)
    return out, last


def _fwd_saving(p: Prepared, return_last_state: bool, tuning: Tuning = DEFAULT, *,
                save: bool = True) -> tuple[Tensor, Tensor | None, SavedStates | None]:
    """``_fwd``, and with ``save`` the chunk-start states and un-gated output for the backward
    (``tuning.save_states``: the backward then skips its recomputing pass when its block_t
    matches)."""
    cfg = tuning.fwd(p.is_complex)
    bt = block_t_of(cfg, p.u.dtype)
    dev = p.u.device
    out = torch.empty(p.u.shape, dtype=p.u.dtype, device=dev)
    saved = None
    if save:
        n_chunks = triton.cdiv(p.length, bt)
        saved = SavedStates(
            ws=torch.empty(_state_shape(p, p.batch, n_chunks), dtype=torch.float32, device=dev),
            ypre=_ypre_buffer(p, tuning), block_t=bt)
    ws = saved.ws if saved is not None else None
    ypre = saved.ypre if saved is not None else None
    n_seg = _segments(p, cfg, bt, tuning.target_warps)
    if n_seg == 1:
        last = None
        if return_last_state:
            last = torch.empty(_state_shape(p, p.batch), dtype=torch.float32, device=dev)
        _launch_fwd(p, out, last, ws, ypre, cfg, bt, tuning)
        return out, last, saved
    ends = torch.empty(_state_shape(p, p.batch, n_seg), dtype=torch.float32, device=dev)
    dts = torch.empty(p.batch, n_seg, p.dim, dtype=torch.float32, device=dev)
    _launch_fwd(p, None, ends, None, None, cfg, bt, tuning, n_seg=n_seg, dts=dts)
    starts = _chain_segments(p, ends, dts)
    lasts = torch.empty_like(ends) if return_last_state else None
    _launch_fwd(p, out, lasts, ws, ypre, cfg, bt, tuning, h0=starts, n_seg=n_seg)
    return out, (lasts[:, -1] if lasts is not None else None), saved


def _bwd(p: Prepared, dout: Tensor, dlast: Tensor | None, tuning: Tuning = DEFAULT,
         saved: SavedStates | None = None) -> dict[str, Tensor]:
    """Gradients in the kernels' layout (float32 partial sums over the batch still to be reduced).
    ``saved``: the forward's chunk-start states, used when their chunk matches the backward's."""
    cfg = tuning.bwd(p.is_complex)
    dev = p.u.device
    bt = block_t_of(cfg, p.u.dtype)
    bd = p.block_d(cfg.block_d)
    n_chunks = triton.cdiv(p.length, bt)
    if saved is not None and saved.block_t == bt:
        ws, ypre = saved.ws, saved.ypre
    else:
        ws = torch.empty(_state_shape(p, p.batch, n_chunks), dtype=torch.float32, device=dev)
        ypre = _ypre_buffer(p, tuning)
        # the state-recomputing pass runs in the backward's own tile (same channels and chunk)
        _launch_fwd(p, None, None, ws, ypre, cfg, bt, tuning)
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
    _launch_bwd(p, dout, dlast, g, ws, ypre, cfg, tuning, bd, bt, n_chunks)
    return g


def _vec16(p: Prepared, dout: Tensor, bt: int, bd: int, num_warps: int) -> bool:
    """Whether the backward's scratch tiles may be stored by 16-byte vectors (``ASM4``): every
    thread must hold runs of 4 consecutive, 16-byte aligned time steps of each (channels, time)
    tile, for every program (rows past ``dim`` included: they store into the program's own
    scratch, which has all ``bd`` rows).

    The tile's layout follows its loads: Triton gives a thread min(v, bd·bt / (32·num_warps))
    consecutive steps, v the vector its alignment analysis proves (8 for 16-byte loads of
    16-bit values). So: 16-bit inputs, chunks of at least 8 steps, a length, every channel/batch
    stride and base pointer that Triton specialises as divisible by 16 (else the time mask or
    the row starts break the vectors), and a tile with at least 4 elements per thread (a
    (4, 32) tile of 2 warps has 2 per thread, whose v4 stores then fault with a misaligned
    address: dim 4, mamba_ssm's test shape; offline sm_90 builds: (4, 32) [1, 2], (8, 32)
    [1, 4], (16, 32) [1, 8] per thread)."""
    ts = [p.u, p.delta, dout] + ([p.z] if p.z is not None else [])
    if bt < 8 or any(t.element_size() != 2 for t in ts):
        return False
    if bd * bt < 4 * 32 * num_warps:
        return False
    ints = [p.length] + [s for t in ts for s in (t.stride(0), t.stride(1))]
    return all(i % 16 == 0 for i in ints) and all(t.data_ptr() % 16 == 0 for t in ts)


def _launch_bwd(p: Prepared, dout: Tensor, dlast: Tensor | None, g: dict[str, Tensor],
                ws: Tensor, ypre: Tensor | None, cfg: KernelConfig, tuning: Tuning, bd: int,
                bt: int, n_chunks: int) -> None:
    """The backward kernel (``_bwd.py``) into ``g``: its in-place sums start from zero, the
    adjoint carry's first buffer from d(last_state)."""
    dev = p.u.device
    for k in ("A", "Bf", "Cf"):
        g[k].zero_()
    gc = torch.zeros((2, *_state_shape(p, p.batch)), dtype=torch.float32, device=dev)
    if dlast is not None:
        gc[0].copy_(dlast)
    grid = (triton.cdiv(p.dim, bd), p.batch)
    bn = max(2, triton.next_power_of_2(p.dstate))
    cplx = 2 if p.is_complex else 1
    scratch = tuning.sum_scratch and (p.B_var or p.C_var)
    scr = (torch.empty(grid[0] * grid[1] * cplx * 2 * bn * bd * bt, dtype=torch.float32,
                       device=dev) if scratch else gc)
    extra = {} if tuning.maxnreg is None or interpreting() else {"maxnreg": tuning.maxnreg}
    dummy = p.u
    selective_scan_bwd_kernel[grid](
        p.u, p.delta, p.A, p.B, p.C,
        p.D if p.D is not None else dummy, p.z if p.z is not None else dummy,
        p.delta_bias if p.delta_bias is not None else dummy,
        p.B_bias if p.B_bias is not None else dummy,
        p.C_bias if p.C_bias is not None else dummy,
        ws, ypre if ypre is not None else dummy, dout, gc, scr,
        g["u"], g["delta"], g["z"] if g["z"] is not None else dummy, g["A"],
        g["Bv"] if g["Bv"] is not None else dummy, g["Cv"] if g["Cv"] is not None else dummy,
        g["Bf"], g["Cf"], g["D"], g["delta_bias"], g["h0"],
        p.dim, p.length, n_chunks,
        p.u.stride(0), p.u.stride(1), p.delta.stride(0), p.delta.stride(1),
        *((p.z.stride(0), p.z.stride(1)) if p.z is not None else (0, 0)),
        dout.stride(0), dout.stride(1),
        *_var_strides(p.B, p.B_var), *_var_strides(p.C, p.C_var), p.B_per_group, p.C_per_group,
        DSTATE=p.dstate, IS_COMPLEX=p.is_complex, B_VAR=p.B_var, C_VAR=p.C_var,
        HAS_D=p.D is not None, HAS_Z=p.z is not None, HAS_DBIAS=p.delta_bias is not None,
        SOFTPLUS=p.softplus, HAS_BBIAS=p.B_bias is not None, HAS_CBIAS=p.C_bias is not None,
        ZOH=p.zoh, FAST=not interpreting(), BD=bd, BN=bn, BT=bt, SUM_SCRATCH=scratch,
        ASM=tuning.asm_stores and not interpreting(),
        ASM4=tuning.asm_stores and not interpreting() and _vec16(p, dout, bt, bd, cfg.num_warps),
        RECOMPUTE_Y=ypre is None, num_warps=cfg.num_warps, **extra,
    )
