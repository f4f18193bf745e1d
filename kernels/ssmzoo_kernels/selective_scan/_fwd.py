"""Forward selective-scan kernel: one program per (block of channels, batch element).

Layout (the point of the design): a program's tiles are (channels, time) with one channel per
thread and a whole chunk of ``BT`` steps inside the thread (``BT`` = one 16-byte load of the input
dtype). The d_state axis is walked by a loop (unrolled at compile time up to the launch's
``unroll_dstate``; a rolled loop above it, whose compile time does not grow with d_state: the
unrolled complex forward at d_state 64 took minutes to build), so that for every state n:

- a = exp2(Δ·A_n·log2 e) and x = coef·B_t,n·u are (channels, time) tiles;
- the recurrence h_t = a_t h_{t-1} + x_t over the chunk is ``tl.associative_scan`` along an axis
  that lies entirely in one thread, i.e. a sequential chain of multiply-adds with no shuffles;
  the state carried in from the previous chunk is folded into x at the chunk's first step;
- y += C_t,n·h accumulates in the thread (no reduction across threads).

The carried state is a (channels, d_state) tile that also lives in one thread per channel; its
columns are read and written with masks that the compiler resolves at compile time. B_t and C_t of
a step are one broadcast load per program (every channel of a program lies in one B/C group).
With ``STORE_STATES`` (and no ``WRITE_OUT``) the kernel instead writes the state at the start of
every chunk, and the un-gated output y + D·u, for the backward pass.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ssmzoo_kernels.selective_scan._common import (
    LOG2E,
    cmul,
    combine_complex,
    combine_real,
    cos_sin,
    load_dt,
    phi1_complex,
    phi1_real,
    ungated_output,
)


@triton.jit
def column(T, offs, j):
    """Column j of a (channels, k) tile whose k axis lies in one thread (a register pick when j is
    known at compile time, k selects otherwise)."""
    return tl.sum(tl.where(offs[None, :] == j, T, -0.0), axis=1)


@triton.jit
def load_state_n(fix_ptr, var_base, bias_ptr, offs_d, mask_d, n, t, mask_t, dstate,
                 VAR: tl.constexpr, IS_COMPLEX: tl.constexpr, HAS_BIAS: tl.constexpr):
    """B (or C) for state n over a chunk: (1, time) when variable, (channels, 1) when fixed; plus
    the per-channel bias, broadcast to (channels, time). Complex parts come back as a pair; the
    imaginary part is 0 for real A. Variable complex B is interleaved along time."""
    CPLX: tl.constexpr = 2 if IS_COMPLEX else 1
    im = 0.0
    dn = (offs_d * dstate + n) * CPLX  # (channels,)
    if VAR:
        ptrs = var_base + t * CPLX  # var_base points at state n of this batch element and group
        re = tl.load(ptrs, mask=mask_t, other=0.0).to(tl.float32)[None, :]  # (1, time)
        if IS_COMPLEX:
            im = tl.load(ptrs + 1, mask=mask_t, other=0.0).to(tl.float32)[None, :]
        if HAS_BIAS:
            re = re + tl.load(bias_ptr + dn, mask=mask_d, other=0.0)[:, None]
            if IS_COMPLEX:
                im = im + tl.load(bias_ptr + dn + 1, mask=mask_d, other=0.0)[:, None]
    else:
        re = tl.load(fix_ptr + dn, mask=mask_d, other=0.0)[:, None]  # (channels, 1)
        if IS_COMPLEX:
            im = tl.load(fix_ptr + dn + 1, mask=mask_d, other=0.0)[:, None]
        if HAS_BIAS:
            re = re + tl.load(bias_ptr + dn, mask=mask_d, other=0.0)[:, None]
            if IS_COMPLEX:
                im = im + tl.load(bias_ptr + dn + 1, mask=mask_d, other=0.0)[:, None]
    return re, im


@triton.jit
def decay_input_n(dt, u, Ar, Ai, Bre, Bim, IS_COMPLEX: tl.constexpr, ZOH: tl.constexpr,
                  FAST: tl.constexpr):
    """For one state n: a = exp(ΔA_n) and x = coef·B·u, (channels, time) tiles (re, im pairs;
    im parts are 0 for real A). Ar, Ai: (channels,)."""
    a_im = 0.0
    x_im = 0.0
    if IS_COMPLEX:
        mag = tl.exp2(dt * (Ar * LOG2E)[:, None])
        ang = dt * Ai[:, None]
        cs, sn = cos_sin(ang, FAST)
        a_re = mag * cs
        a_im = mag * sn
        if ZOH:
            pr, pi = phi1_complex(dt * Ar[:, None], ang, a_re, a_im)
            br, bi = cmul(pr * dt, pi * dt, Bre, Bim)
            x_re = br * u
            x_im = bi * u
        else:
            du = dt * u
            x_re = du * Bre
            x_im = du * Bim
    else:
        a_re = tl.exp2(dt * (Ar * LOG2E)[:, None])
        if ZOH:
            x_re = phi1_real(dt * Ar[:, None], a_re) * dt * Bre * u
        else:
            x_re = dt * u * Bre
    return a_re, a_im, x_re, x_im


@triton.jit
def scan_n(a_re, a_im, x_re, x_im, hin_re, hin_im, first, IS_COMPLEX: tl.constexpr,
           CARRY_AFTER: tl.constexpr = False):
    """States of one chunk for one n. The state carried in is folded into x at the chunk's first
    step, then the sequential scan; or, with ``CARRY_AFTER``, the scan runs from a zero state and
    h_in enters as h_t = X_t + P_t h_in with P_t the scan's cumulative decay (an A/B switch for
    the GPU sweep: fewer selects, but P stays live)."""
    h_im = 0.0
    if CARRY_AFTER:
        if IS_COMPLEX:
            p_re, p_im, h_re, h_im = tl.associative_scan((a_re, a_im, x_re, x_im), 1,
                                                         combine_complex)
            hr = hin_re[:, None]
            hi = hin_im[:, None]
            h_re = h_re + p_re * hr - p_im * hi
            h_im = h_im + p_re * hi + p_im * hr
        else:
            p_re, h_re = tl.associative_scan((a_re, x_re), 1, combine_real)
            h_re = h_re + p_re * hin_re[:, None]
    else:
        if IS_COMPLEX:
            ir, ii = cmul(a_re, a_im, hin_re[:, None], hin_im[:, None])
            x_re = x_re + tl.where(first, ir, 0.0)
            x_im = x_im + tl.where(first, ii, 0.0)
            _pr, _pi, h_re, h_im = tl.associative_scan((a_re, a_im, x_re, x_im), 1,
                                                       combine_complex)
        else:
            x_re = x_re + tl.where(first, a_re * hin_re[:, None], 0.0)
            _p, h_re = tl.associative_scan((a_re, x_re), 1, combine_real)
    return h_re, h_im


@triton.jit
def _state_n(n, y, Hn_re, Hn_im, H_re, H_im, dt, u, A_ptr, B_ptr, Bv_n, Bb_ptr, C_ptr, Cv_n,
             Cb_ptr, offs_d, mask_d, offs_n, offs_t, t, mask_t, first, DSTATE: tl.constexpr,
             BT: tl.constexpr, IS_COMPLEX: tl.constexpr, B_VAR: tl.constexpr,
             C_VAR: tl.constexpr, HAS_BBIAS: tl.constexpr, HAS_CBIAS: tl.constexpr,
             ZOH: tl.constexpr, FAST: tl.constexpr, CARRY_AFTER: tl.constexpr,
             NEED_Y: tl.constexpr):
    """State n over one chunk: its scan from the carried state (column n of H), its term of y,
    and its end state written into column n of Hn. ``Bv_n``/``Cv_n``: variable B/C at state n."""
    CPLX: tl.constexpr = 2 if IS_COMPLEX else 1
    dnn = (offs_d * DSTATE + n) * CPLX
    Ar = tl.load(A_ptr + dnn, mask=mask_d, other=0.0)
    Ai = 0.0
    if IS_COMPLEX:
        Ai = tl.load(A_ptr + dnn + 1, mask=mask_d, other=0.0)
    Bre, Bim = load_state_n(B_ptr, Bv_n, Bb_ptr, offs_d, mask_d, n, t, mask_t, DSTATE, B_VAR,
                            IS_COMPLEX, HAS_BBIAS)
    a_re, a_im, x_re, x_im = decay_input_n(dt, u, Ar, Ai, Bre, Bim, IS_COMPLEX, ZOH, FAST)
    hin_im = 0.0
    if IS_COMPLEX:
        hin_im = column(H_im, offs_n, n)
    h_re, h_im = scan_n(a_re, a_im, x_re, x_im, column(H_re, offs_n, n), hin_im, first,
                        IS_COMPLEX, CARRY_AFTER)
    if NEED_Y:
        Cre, Cim = load_state_n(C_ptr, Cv_n, Cb_ptr, offs_d, mask_d, n, t, mask_t, DSTATE, C_VAR,
                                IS_COMPLEX, HAS_CBIAS)
        if IS_COMPLEX:
            y += Cre * h_re - Cim * h_im
        else:
            y += Cre * h_re
    is_n = offs_n[None, :] == n
    Hn_re = tl.where(is_n, column(h_re, offs_t, BT - 1)[:, None], Hn_re)
    if IS_COMPLEX:
        Hn_im = tl.where(is_n, column(h_im, offs_t, BT - 1)[:, None], Hn_im)
    return y, Hn_re, Hn_im


@triton.jit
def selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, dbias_ptr, Bb_ptr, Cb_ptr, h0_ptr,
    out_ptr, last_ptr, ws_ptr, ypre_ptr, dts_ptr,
    dim, length, n_chunks, n_seg, seg_chunks,
    s_ub, s_ud, s_db, s_dd, s_zb, s_zd, s_ob, s_od,
    s_Bb, s_Bg, s_Bn, s_Cb, s_Cg, s_Cn, B_per_group, C_per_group,
    DSTATE: tl.constexpr, IS_COMPLEX: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_DBIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_BBIAS: tl.constexpr, HAS_CBIAS: tl.constexpr, HAS_H0: tl.constexpr,
    WRITE_OUT: tl.constexpr, STORE_LAST: tl.constexpr, STORE_STATES: tl.constexpr,
    SEG_SUMS: tl.constexpr, ZOH: tl.constexpr, FAST: tl.constexpr, BD: tl.constexpr,
    BN: tl.constexpr, BT: tl.constexpr, CARRY_AFTER: tl.constexpr = False,
    STORE_Y: tl.constexpr = False, UNROLL: tl.constexpr = True,
):
    """Grid (cdiv(dim, BD), batch). Tensors (time stride 1): u, delta, z, out: (batch, dim, length);
    A, fixed B/C, B_bias, C_bias: contiguous (dim, d_state[, 2]); variable B/C: (batch, groups,
    d_state, length·(2 if complex)); h0, last: contiguous (batch, dim, d_state[, 2]); ws: contiguous
    (batch, n_chunks, dim, d_state[, 2]), the state before each chunk; ypre: contiguous
    (batch, dim, length), y + D·u before the gate (written with ``STORE_Y``, for a backward that
    reads it instead of recomputing it).

    Time segments (grid axis 2, ``n_seg`` of ``seg_chunks`` chunks each) give the GPU more
    programs than channels: h0 and last are then (batch, n_seg, dim, d_state[, 2]), the state at
    the start and end of each segment. ``SEG_SUMS`` is the first of two passes: from a zero state,
    write each segment's end state (into ``last``) and its Σ Δ (dts: (batch, n_seg, dim)), from
    which the caller chains the segments' start states (the decay over a segment is exp(A Σ Δ));
    the second pass is the ordinary kernel with those start states as h0.
    """
    CPLX: tl.constexpr = 2 if IS_COMPLEX else 1
    NEED_Y: tl.constexpr = WRITE_OUT or STORE_Y
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    pid_s = tl.program_id(2)
    offs_d = pid_d * BD + tl.arange(0, BD)
    offs_n = tl.arange(0, BN)
    offs_t = tl.arange(0, BT)
    mask_d = offs_d < dim
    mask_dn = mask_d[:, None] & (offs_n < DSTATE)[None, :]
    dn = (offs_d[:, None] * DSTATE + offs_n[None, :]) * CPLX  # (channels, d_state)
    hdn = (pid_b * n_seg + pid_s) * dim * DSTATE * CPLX + dn
    first = (offs_t == 0)[None, :]
    dt_sum = tl.zeros((BD,), tl.float32)

    dbias = 0.0
    if HAS_DBIAS:
        dbias = tl.load(dbias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dv = 0.0
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    H_re = tl.zeros((BD, BN), tl.float32)
    H_im = tl.zeros((BD, BN), tl.float32)
    if HAS_H0:
        H_re = tl.load(h0_ptr + hdn, mask=mask_dn, other=0.0).to(tl.float32)
        if IS_COMPLEX:
            H_im = tl.load(h0_ptr + hdn + 1, mask=mask_dn, other=0.0).to(tl.float32)

    u_base = u_ptr + pid_b * s_ub + offs_d[:, None] * s_ud  # (channels, 1)
    dl_base = delta_ptr + pid_b * s_db + offs_d[:, None] * s_dd
    z_base = z_ptr + pid_b * s_zb + offs_d[:, None] * s_zd
    o_base = out_ptr + pid_b * s_ob + offs_d[:, None] * s_od
    yp_base = ypre_ptr + (pid_b * dim + offs_d[:, None]) * length
    gB = (pid_d * BD) // B_per_group
    gC = (pid_d * BD) // C_per_group
    Bv_base = B_ptr + pid_b * s_Bb + gB * s_Bg
    Cv_base = C_ptr + pid_b * s_Cb + gC * s_Cg

    for c in range(pid_s * seg_chunks, tl.minimum(pid_s * seg_chunks + seg_chunks, n_chunks)):
        if STORE_STATES:
            wdn = (pid_b * n_chunks + c) * dim * DSTATE * CPLX + dn
            tl.store(ws_ptr + wdn, H_re, mask=mask_dn)
            if IS_COMPLEX:
                tl.store(ws_ptr + wdn + 1, H_im, mask=mask_dn)
        t = c * BT + offs_t
        mask_t = t < length
        mask_dt = mask_d[:, None] & mask_t[None, :]  # (channels, time)
        u = tl.load(u_base + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
        _raw, dt = load_dt(dl_base + t[None, :], mask_dt, dbias, HAS_DBIAS, SOFTPLUS)
        if SEG_SUMS:
            dt_sum += tl.sum(dt, axis=1)
        y = tl.zeros((BD, BT), tl.float32)
        Hn_re = H_re
        Hn_im = H_im
        if UNROLL:  # registers picked at compile time; compile time grows fast with d_state
            for n in tl.static_range(DSTATE):
                y, Hn_re, Hn_im = _state_n(
                    n, y, Hn_re, Hn_im, H_re, H_im, dt, u, A_ptr, B_ptr, Bv_base + n * s_Bn,
                    Bb_ptr, C_ptr, Cv_base + n * s_Cn, Cb_ptr, offs_d, mask_d, offs_n, offs_t,
                    t, mask_t, first, DSTATE, BT, IS_COMPLEX, B_VAR, C_VAR, HAS_BBIAS,
                    HAS_CBIAS, ZOH, FAST, CARRY_AFTER, NEED_Y)
        else:
            for n in range(DSTATE):
                y, Hn_re, Hn_im = _state_n(
                    n, y, Hn_re, Hn_im, H_re, H_im, dt, u, A_ptr, B_ptr, Bv_base + n * s_Bn,
                    Bb_ptr, C_ptr, Cv_base + n * s_Cn, Cb_ptr, offs_d, mask_d, offs_n, offs_t,
                    t, mask_t, first, DSTATE, BT, IS_COMPLEX, B_VAR, C_VAR, HAS_BBIAS,
                    HAS_CBIAS, ZOH, FAST, CARRY_AFTER, NEED_Y)
        H_re = Hn_re
        H_im = Hn_im
        if NEED_Y:
            y = ungated_output(y, u, Dv, IS_COMPLEX, HAS_D)
            if STORE_Y:
                tl.store(yp_base + t[None, :], y.to(ypre_ptr.dtype.element_ty), mask=mask_dt)
            if WRITE_OUT:
                if HAS_Z:
                    zv = tl.load(z_base + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
                    y = y * zv / (1.0 + tl.exp(-zv))
                tl.store(o_base + t[None, :], y.to(out_ptr.dtype.element_ty), mask=mask_dt)

    if STORE_LAST:
        tl.store(last_ptr + hdn, H_re, mask=mask_dn)
        if IS_COMPLEX:
            tl.store(last_ptr + hdn + 1, H_im, mask=mask_dn)
    if SEG_SUMS:
        tl.store(dts_ptr + (pid_b * n_seg + pid_s) * dim + offs_d, dt_sum, mask=mask_d)
