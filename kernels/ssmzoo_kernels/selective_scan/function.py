"""Host side of the Triton selective scan: argument layout, launches, and the autograd Function.

``selective_scan_triton`` takes the public function's arguments (mamba_ssm's layout, see
``ssmzoo.selective_scan``) and returns what it returns. ``_fwd`` and ``_bwd`` are plain functions
around the two kernels, testable alone; ``SelectiveScanTritonFn`` only does the ctx bookkeeping.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import triton
from einops import rearrange
from torch import Tensor

from ssmzoo.errors import did_you_mean
from ssmzoo_kernels.selective_scan._bwd import selective_scan_bwd_kernel
from ssmzoo_kernels.selective_scan._bwd3 import selective_scan_bwd3_kernel
from ssmzoo_kernels.selective_scan._fwd import selective_scan_fwd_kernel


@dataclass(frozen=True)
class KernelConfig:
    """One launch's shape: channels per program, time steps per chunk (0: one 16-byte load of the
    input dtype, so that a thread's chunk is one vector load), warps per program, and for the
    forward the number of time segments run in parallel (two passes; 0: automatic)."""

    block_d: int
    block_t: int = 0
    num_warps: int = 1
    segments: int = 0  # forward only: time segments in parallel (0: automatic, 1: none)
    # forward only: the d_state loop is unrolled up to this d_state, rolled above it (the
    # unrolled complex forward at d_state 64 took minutes to compile: docs/developer/
    # selective-scan-notes.md, "compile time")
    unroll_dstate: int = 16


# Measured on an H100 with benchmarks/gpu_selective_scan.py (docs/developer/selective-scan-notes.md, v2.4): fastest of the
# shapes tried for (8, 2048, 4096, 16) bf16: forward 32 channels, chunks of 32 steps, 4 warps,
# i.e. 8 steps per thread and 4 lanes per channel; backward (16, 32, 2) real, (32, 8, 1) complex. Any power-of-two sizes are correct;
# block_d is capped so that a program never straddles two B/C groups. The forward's time
# segments are automatic: none while the grid already gives every SM ~16 warps (the main case),
# several for long sequences of few channels (4 x 1024 x 16384: 512 warps without them).
FWD_CONFIG = {False: KernelConfig(32, 32, 4, 0), True: KernelConfig(32, 32, 4, 0)}  # by is_complex
# backward: complex A at (16, 32, 2) since v3 with the asm stores runs it (faster than v2 at
# (32, 8, 1): docs/developer/selective-scan-notes.md, "v3.1"), and it holds a quarter of
# (32, 8, 1)'s chunk states
BWD_CONFIG = {False: KernelConfig(16, 32, 2), True: KernelConfig(16, 32, 2)}
# forward: the carried state enters after the scan (h = X + P h_in) instead of being folded into
# the chunk's first step; an A/B switch of benchmarks/gpu_selective_scan.py sweep (docs/developer/selective-scan-notes.md)
CARRY_AFTER_SCAN = True  # measured faster (docs/developer/selective-scan-notes.md, "v2.2")
# backward kernel: "v2" (_bwd.py, per-state carries in (channels, d_state) register tiles) or "v3"
# (_bwd3.py, per-state carries in memory; docs/developer/selective-scan-notes.md "v3"), by is_complex, or one name for
# both. v3 won the sweep for real and complex A (docs/developer/selective-scan-notes.md, "v3.1").
# SSMZOO_BWD_KERNEL overrides both.
BWD_KERNEL: dict[bool, str] | str = (os.environ["SSMZOO_BWD_KERNEL"]
                                     if "SSMZOO_BWD_KERNEL" in os.environ
                                     else {False: "v3", True: "v3"})
# v3 only: variable dB/dC summed over channels once per chunk through a per-program scratch
# (True) or state by state with shuffles (False); and a register cap for ptxas (None: none)
BWD3_SUM_SCRATCH = os.environ.get("SSMZOO_BWD3_SUM_SCRATCH", "1") == "1"
BWD3_MAXNREG: int | None = None
# v3 only: its per-state stores by inline assembly in the values' own layout (no conversion to the
# store's coalesced layout first); the interpreter always takes tl.store. Faster than tl.store for
# real and complex A (docs/developer/selective-scan-notes.md, "v3.1"). SSMZOO_BWD3_ASM_STORES=0
# turns it off.
BWD3_ASM_STORES = os.environ.get("SSMZOO_BWD3_ASM_STORES", "1") == "1"
# the autograd forward also writes the chunk-start states (and, without BWD_RECOMPUTE_Y, the
# un-gated output) when a gradient is needed, so that the backward skips its state-recomputing
# pass (when the forward's block_t is the backward's); costs their memory between forward and
# backward (268 MB for (8, 2048, 4096, 16) bf16 with z). Off until timed (docs/developer/selective-scan-notes.md "v3").
# SSMZOO_SAVE_STATES=1 turns it on.
SAVE_STATES = os.environ.get("SSMZOO_SAVE_STATES", "0") == "1"
# with z, by backward kernel: the backward sums the un-gated output y + D·u (which dz needs) from
# the states it recomputes anyway, one multiply-add per state update, instead of reading a
# (batch, dim, length) copy that the state-recomputing pass wrote (134 MB for (8, 2048, 4096)
# bf16; docs/developer/selective-scan-notes.md "v3.1"). Off for v2, whose complex build already spills and spills more
# with the extra accumulator (offline sm_90 builds). SSMZOO_BWD_RECOMPUTE_Y=1/0 sets both.
BWD_RECOMPUTE_Y: dict[str, bool] = (
    dict.fromkeys(("v2", "v3"), os.environ["SSMZOO_BWD_RECOMPUTE_Y"] == "1")
    if "SSMZOO_BWD_RECOMPUTE_Y" in os.environ else {"v2": False, "v3": True})
TARGET_WARPS = 132 * 16  # the forward splits time until the grid has about this many warps
MAX_D_STATE = 64  # the d_state loop is unrolled; states and gradient sums live in registers


def _fast() -> bool:
    """The SFU's sin/cos (inline assembly) on a GPU; the interpreter runs libdevice's instead."""
    return os.environ.get("TRITON_INTERPRET", "0") in ("", "0")


def _block_t(cfg: KernelConfig, dtype: torch.dtype) -> int:
    return cfg.block_t or max(2, 16 // torch.tensor([], dtype=dtype).element_size())


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
        if per_group != self.dim:
            return _pow2_divisor(per_group, cap)
        return min(cap, max(2, triton.next_power_of_2(self.dim)))


def _time_contiguous(t: Tensor) -> Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _pairs(t: Tensor, cplx: bool) -> Tensor:
    """A fixed (dim, d_state) or (batch, dim, d_state) tensor as contiguous float32, complex ones
    as (..., 2) real pairs."""
    if cplx:
        return torch.view_as_real(t.to(torch.complex64).resolve_conj().contiguous())
    return t.float().contiguous()


def _variable(t: Tensor) -> Tensor:
    """A variable B/C as a contiguous (batch, groups, d_state, length') tensor in its own dtype
    (converting it to float32 here made the forward 2x slower on an H100: docs/developer/selective-scan-notes.md v2.4)."""
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
                ypre: Tensor | None, cfg: KernelConfig, block_t: int, *,
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
        STORE_STATES=ws is not None, SEG_SUMS=dts is not None, ZOH=p.zoh, FAST=_fast(), BD=bd,
        BN=max(2, triton.next_power_of_2(p.dstate)), BT=block_t, CARRY_AFTER=CARRY_AFTER_SCAN,
        STORE_Y=ypre is not None, UNROLL=p.dstate <= cfg.unroll_dstate, num_warps=cfg.num_warps,
    )
    return n_chunks


def _segments(p: _Prepared, cfg: KernelConfig, block_t: int) -> int:
    """Time segments for the forward: enough programs to give every SM ~16 warps (0 in the
    config: automatic), never segments shorter than 64 chunks."""
    if cfg.segments:
        return cfg.segments
    programs = triton.cdiv(p.dim, p.block_d(cfg.block_d)) * p.batch * cfg.num_warps
    want = max(1, TARGET_WARPS // programs)
    return max(1, min(want, triton.cdiv(p.length, block_t) // 64))


def _chain_segments(p: _Prepared, ends: Tensor, dts: Tensor) -> Tensor:
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


def _state_shape(p: _Prepared, *lead: int) -> tuple[int, ...]:
    return (*lead, p.dim, p.dstate, 2) if p.is_complex else (*lead, p.dim, p.dstate)


@dataclass
class SavedStates:
    """What the backward's state-recomputing pass would write, written by the forward instead:
    the state before every chunk of ``block_t`` steps and, with z, the un-gated output."""

    ws: Tensor  # (batch, n_chunks, dim, d_state[, 2]) float32
    ypre: Tensor | None  # (batch, dim, length) in u's dtype; None unless z and not BWD_RECOMPUTE_Y
    block_t: int


def _bwd_kernel(p: _Prepared) -> str:
    """The backward kernel this call runs: "v2" or "v3" (BWD_KERNEL)."""
    kernel = BWD_KERNEL[p.is_complex] if isinstance(BWD_KERNEL, dict) else BWD_KERNEL
    if kernel not in ("v2", "v3"):
        raise ValueError(f"BWD_KERNEL (or SSMZOO_BWD_KERNEL) must be 'v2' or 'v3', not {kernel!r}"
                         + did_you_mean(str(kernel), ("v2", "v3")))
    return kernel


def _ypre_buffer(p: _Prepared) -> Tensor | None:
    """The un-gated output's buffer for the backward, when it reads one (z, and its kernel does
    not recompute it: BWD_RECOMPUTE_Y)."""
    if p.z is None or BWD_RECOMPUTE_Y[_bwd_kernel(p)]:
        return None
    return torch.empty(p.u.shape, dtype=p.u.dtype, device=p.u.device)


def _fwd(p: _Prepared, return_last_state: bool, cfg: KernelConfig | None = None,
         ) -> tuple[Tensor, Tensor | None]:
    """out (batch, dim, length) in u's dtype, and the last state (batch, dim, d_state[, 2]) float32."""
    out, last, _saved = _fwd_saving(p, return_last_state, cfg, save=False)
    return out, last


def _fwd_saving(p: _Prepared, return_last_state: bool, cfg: KernelConfig | None = None, *,
                save: bool = True) -> tuple[Tensor, Tensor | None, SavedStates | None]:
    """``_fwd``, and with ``save`` the chunk-start states and un-gated output for the backward
    (``SAVE_STATES``: the backward then skips its recomputing pass when its block_t matches)."""
    cfg = cfg or FWD_CONFIG[p.is_complex]
    bt = _block_t(cfg, p.u.dtype)
    dev = p.u.device
    out = torch.empty(p.u.shape, dtype=p.u.dtype, device=dev)
    saved = None
    if save:
        n_chunks = triton.cdiv(p.length, bt)
        saved = SavedStates(
            ws=torch.empty(_state_shape(p, p.batch, n_chunks), dtype=torch.float32, device=dev),
            ypre=_ypre_buffer(p), block_t=bt)
    ws = saved.ws if saved is not None else None
    ypre = saved.ypre if saved is not None else None
    n_seg = _segments(p, cfg, bt)
    if n_seg == 1:
        last = None
        if return_last_state:
            last = torch.empty(_state_shape(p, p.batch), dtype=torch.float32, device=dev)
        _launch_fwd(p, out, last, ws, ypre, cfg, bt)
        return out, last, saved
    ends = torch.empty(_state_shape(p, p.batch, n_seg), dtype=torch.float32, device=dev)
    dts = torch.empty(p.batch, n_seg, p.dim, dtype=torch.float32, device=dev)
    _launch_fwd(p, None, ends, None, None, cfg, bt, n_seg=n_seg, dts=dts)
    starts = _chain_segments(p, ends, dts)
    lasts = torch.empty_like(ends) if return_last_state else None
    _launch_fwd(p, out, lasts, ws, ypre, cfg, bt, h0=starts, n_seg=n_seg)
    return out, (lasts[:, -1] if lasts is not None else None), saved


def _bwd(p: _Prepared, dout: Tensor, dlast: Tensor | None, cfg: KernelConfig | None = None,
         saved: SavedStates | None = None) -> dict[str, Tensor]:
    """Gradients in the kernels' layout (float32 partial sums over the batch still to be reduced).
    ``saved``: the forward's chunk-start states, used when their chunk matches the backward's."""
    cfg = cfg or BWD_CONFIG[p.is_complex]
    dev = p.u.device
    bt = _block_t(cfg, p.u.dtype)
    bd = p.block_d(cfg.block_d)
    n_chunks = triton.cdiv(p.length, bt)
    if saved is not None and saved.block_t == bt:
        ws, ypre = saved.ws, saved.ypre
    else:
        ws = torch.empty(_state_shape(p, p.batch, n_chunks), dtype=torch.float32, device=dev)
        ypre = _ypre_buffer(p)
        # the state-recomputing pass runs in the backward's own tile (same channels and chunk)
        _launch_fwd(p, None, None, ws, ypre, cfg, bt)
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
    if _bwd_kernel(p) == "v3":
        _launch_bwd3(p, dout, dlast, g, ws, ypre, cfg, bd, bt, n_chunks)
        return g
    selective_scan_bwd_kernel[grid](
        p.u, p.delta, p.A, p.B, p.C,
        p.D if p.D is not None else dummy, p.z if p.z is not None else dummy,
        p.delta_bias if p.delta_bias is not None else dummy,
        p.B_bias if p.B_bias is not None else dummy,
        p.C_bias if p.C_bias is not None else dummy,
        ws, ypre if ypre is not None else dummy, dout,
        dlast.contiguous() if dlast is not None else dummy,
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
        HAS_DLAST=dlast is not None, ZOH=p.zoh, FAST=_fast(), BD=bd,
        BN=max(2, triton.next_power_of_2(p.dstate)), BT=bt, RECOMPUTE_Y=ypre is None,
        num_warps=cfg.num_warps,
    )
    return g


def _vec16(p: _Prepared, dout: Tensor, bt: int, bd: int, num_warps: int) -> bool:
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


def _launch_bwd3(p: _Prepared, dout: Tensor, dlast: Tensor | None, g: dict[str, Tensor],
                 ws: Tensor, ypre: Tensor | None, cfg: KernelConfig, bd: int, bt: int,
                 n_chunks: int) -> None:
    """The v3 backward kernel (``_bwd3.py``) into ``g``: its in-place sums start from zero, the
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
    scratch = BWD3_SUM_SCRATCH and (p.B_var or p.C_var)
    scr = (torch.empty(grid[0] * grid[1] * cplx * 2 * bn * bd * bt, dtype=torch.float32,
                       device=dev) if scratch else gc)
    extra = {} if BWD3_MAXNREG is None or not _fast() else {"maxnreg": BWD3_MAXNREG}
    dummy = p.u
    selective_scan_bwd3_kernel[grid](
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
        ZOH=p.zoh, FAST=_fast(), BD=bd, BN=bn, BT=bt, SUM_SCRATCH=scratch,
        ASM=BWD3_ASM_STORES and _fast(),
        ASM4=BWD3_ASM_STORES and _fast() and _vec16(p, dout, bt, bd, cfg.num_warps),
        RECOMPUTE_Y=ypre is None, num_warps=cfg.num_warps, **extra,
    )
