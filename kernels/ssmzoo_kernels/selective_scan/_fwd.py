"""Forward selective-scan kernel: one program per (block of channels, batch element).

The program keeps its channels' states, a (channels, d_state) tile (two for complex A), in
registers and walks the sequence in chunks of ``BT`` steps. Within a chunk the recurrence
h_t = a_t h_{t-1} + x_t is an associative scan over (a, x) pairs along time (log-depth instead of a
sequential chain), and the state carried in from the previous chunk is applied afterwards:
h_t = X_t + A_t h_in, with (A_t, X_t) the scanned pairs. B_t and C_t of a step are loaded once per
program and shared by all its channels (the channels of one program always lie in one group).

The same kernel, with ``STORE_STATES`` and without ``WRITE_OUT``, recomputes the state at the start
of every chunk for the backward pass (the only states ever written to memory: (batch, chunks,
dim, d_state), never (batch, dim, length, d_state)).
"""

from __future__ import annotations

import triton
import triton.language as tl

from ssmzoo_kernels.selective_scan._common import (
    LOG2E,
    cmul,
    combine_complex,
    combine_real,
    load_dt,
    phi1_complex,
    phi1_real,
)


@triton.jit
def decay_and_input(
    dt, u, A_re, A_im, A2, Bt_re, Bt_im, IS_COMPLEX: tl.constexpr, ZOH: tl.constexpr,
):
    """a = exp(ΔA) and x = coef·B_t·u for a (channels, d_state, time) tile.

    dt, u: (channels, time); A_re, A_im, A2 = A_re·log2(e): (channels, d_state); Bt_re, Bt_im:
    (channels or 1, d_state, time or 1). Returns (a_re, a_im, x_re, x_im); the imaginary parts
    are 0-d placeholders for real A.
    """
    dt3 = dt[:, None, :]  # (channels, 1, time)
    a_im = 0.0
    x_im = 0.0
    if IS_COMPLEX:
        mag = tl.exp2(dt3 * A2[:, :, None])
        ang = dt3 * A_im[:, :, None]  # (channels, d_state, time)
        a_re = mag * tl.cos(ang)
        a_im = mag * tl.sin(ang)
        if ZOH:
            pr, pi = phi1_complex(dt3 * A_re[:, :, None], ang, a_re, a_im)
            br, bi = cmul(pr * dt3, pi * dt3, Bt_re, Bt_im)
            u3 = u[:, None, :]
            x_re = br * u3
            x_im = bi * u3
        else:
            du3 = (dt * u)[:, None, :]
            x_re = du3 * Bt_re
            x_im = du3 * Bt_im
    else:
        a_re = tl.exp2(dt3 * A2[:, :, None])  # (channels, d_state, time)
        if ZOH:
            coef = phi1_real(dt3 * A_re[:, :, None], a_re) * dt3
            x_re = coef * Bt_re * u[:, None, :]
        else:
            x_re = (dt * u)[:, None, :] * Bt_re
    return a_re, a_im, x_re, x_im


@triton.jit
def load_bc(
    fix_re, fix_im, var_base, bias_re, bias_im, t, mask_n, mask_t,
    VAR: tl.constexpr, IS_COMPLEX: tl.constexpr, HAS_BIAS: tl.constexpr,
):
    """B_t (or C_t) for a chunk: (1, d_state, time) when variable, else the fixed (channels, d_state, 1).

    A complex variable B is stored with real and imaginary parts interleaved along time.
    """
    im = 0.0
    if VAR:
        CPLX: tl.constexpr = 2 if IS_COMPLEX else 1
        m = mask_n[:, None] & mask_t[None, :]
        ptrs = var_base + t[None, :] * CPLX  # (d_state, time)
        re = tl.load(ptrs, mask=m, other=0.0).to(tl.float32)[None, :, :]
        if IS_COMPLEX:
            im = tl.load(ptrs + 1, mask=m, other=0.0).to(tl.float32)[None, :, :]
        if HAS_BIAS:
            re = re + bias_re[:, :, None]  # (channels, d_state, time)
            if IS_COMPLEX:
                im = im + bias_im[:, :, None]
    else:
        re = fix_re[:, :, None]
        if IS_COMPLEX:
            im = fix_im[:, :, None]
    return re, im


@triton.jit
def load_dn(ptr, dn, mask_dn, IS_COMPLEX: tl.constexpr):
    """A (channels, d_state) tile of a contiguous (dim, d_state) tensor, real or complex (as pairs)."""
    im = 0.0
    re = tl.load(ptr + dn, mask=mask_dn, other=0.0).to(tl.float32)
    if IS_COMPLEX:
        im = tl.load(ptr + dn + 1, mask=mask_dn, other=0.0).to(tl.float32)
    return re, im


@triton.jit
def selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, dbias_ptr, Bb_ptr, Cb_ptr, h0_ptr,
    out_ptr, last_ptr, ws_ptr,
    dim, dstate, length, n_chunks,
    s_ub, s_ud, s_db, s_dd, s_zb, s_zd, s_ob, s_od,
    s_Bb, s_Bg, s_Bn, s_Cb, s_Cg, s_Cn, B_per_group, C_per_group,
    IS_COMPLEX: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr, HAS_D: tl.constexpr,
    HAS_Z: tl.constexpr, HAS_DBIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_BBIAS: tl.constexpr, HAS_CBIAS: tl.constexpr, HAS_H0: tl.constexpr,
    WRITE_OUT: tl.constexpr, STORE_LAST: tl.constexpr, STORE_STATES: tl.constexpr,
    ZOH: tl.constexpr, BD: tl.constexpr, BN: tl.constexpr, BT: tl.constexpr,
):
    """Grid (cdiv(dim, BD), batch). Tensors (time stride 1): u, delta, z, out: (batch, dim, length);
    A, fixed B/C, B_bias, C_bias: contiguous (dim, d_state[, 2]); variable B/C: (batch, groups,
    d_state, length·(2 if complex)); h0, last: contiguous (batch, dim, d_state[, 2]); ws: contiguous
    (batch, n_chunks, dim, d_state[, 2]), the state before each chunk.
    """
    CPLX: tl.constexpr = 2 if IS_COMPLEX else 1
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BD + tl.arange(0, BD)
    offs_n = tl.arange(0, BN)
    offs_t = tl.arange(0, BT)
    mask_d = offs_d < dim
    mask_n = offs_n < dstate
    mask_dn = mask_d[:, None] & mask_n[None, :]
    dn = (offs_d[:, None] * dstate + offs_n[None, :]) * CPLX  # (channels, d_state)

    A_re, A_im = load_dn(A_ptr, dn, mask_dn, IS_COMPLEX)
    A2 = A_re * LOG2E
    Bb_re, Bb_im = 0.0, 0.0
    Cb_re, Cb_im = 0.0, 0.0
    if HAS_BBIAS:
        Bb_re, Bb_im = load_dn(Bb_ptr, dn, mask_dn, IS_COMPLEX)
    if HAS_CBIAS:
        Cb_re, Cb_im = load_dn(Cb_ptr, dn, mask_dn, IS_COMPLEX)
    Bf_re, Bf_im = Bb_re, Bb_im
    Cf_re, Cf_im = Cb_re, Cb_im
    if not B_VAR:
        Bf_re, Bf_im = load_dn(B_ptr, dn, mask_dn, IS_COMPLEX)
        if HAS_BBIAS:
            Bf_re += Bb_re
            Bf_im += Bb_im
    if not C_VAR:
        Cf_re, Cf_im = load_dn(C_ptr, dn, mask_dn, IS_COMPLEX)
        if HAS_CBIAS:
            Cf_re += Cb_re
            Cf_im += Cb_im
    dbias = 0.0
    if HAS_DBIAS:
        dbias = tl.load(dbias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dv = 0.0
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)

    h_re = tl.zeros((BD, BN), tl.float32)
    h_im = tl.zeros((BD, BN), tl.float32)
    hdn = pid_b * dim * dstate * CPLX + dn  # (channels, d_state) offsets in (batch, dim, d_state)
    if HAS_H0:
        h_re = tl.load(h0_ptr + hdn, mask=mask_dn, other=0.0).to(tl.float32)
        if IS_COMPLEX:
            h_im = tl.load(h0_ptr + hdn + 1, mask=mask_dn, other=0.0).to(tl.float32)

    u_base = u_ptr + pid_b * s_ub + offs_d[:, None] * s_ud  # (channels, 1)
    dl_base = delta_ptr + pid_b * s_db + offs_d[:, None] * s_dd
    z_base = z_ptr + pid_b * s_zb + offs_d[:, None] * s_zd
    o_base = out_ptr + pid_b * s_ob + offs_d[:, None] * s_od
    gB = (pid_d * BD) // B_per_group
    gC = (pid_d * BD) // C_per_group
    Bv_base = B_ptr + pid_b * s_Bb + gB * s_Bg + offs_n[:, None] * s_Bn  # (d_state, 1)
    Cv_base = C_ptr + pid_b * s_Cb + gC * s_Cg + offs_n[:, None] * s_Cn
    last_t = (offs_t == BT - 1)[None, None, :]

    for c in range(n_chunks):
        if STORE_STATES:
            wdn = (pid_b * n_chunks + c) * dim * dstate * CPLX + dn
            tl.store(ws_ptr + wdn, h_re, mask=mask_dn)
            if IS_COMPLEX:
                tl.store(ws_ptr + wdn + 1, h_im, mask=mask_dn)
        t = c * BT + offs_t
        mask_t = t < length
        mask_dt = mask_d[:, None] & mask_t[None, :]  # (channels, time)
        u = tl.load(u_base + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
        raw, dt = load_dt(dl_base + t[None, :], mask_dt, dbias, HAS_DBIAS, SOFTPLUS)
        Bt_re, Bt_im = load_bc(Bf_re, Bf_im, Bv_base, Bb_re, Bb_im, t, mask_n, mask_t,
                               B_VAR, IS_COMPLEX, HAS_BBIAS)
        a_re, a_im, x_re, x_im = decay_and_input(dt, u, A_re, A_im, A2, Bt_re, Bt_im,
                                                 IS_COMPLEX, ZOH)
        if IS_COMPLEX:
            Pr, Pi, Xr, Xi = tl.associative_scan((a_re, a_im, x_re, x_im), 2, combine_complex)
            hr = Xr + Pr * h_re[:, :, None] - Pi * h_im[:, :, None]  # (channels, d_state, time)
            hi = Xi + Pr * h_im[:, :, None] + Pi * h_re[:, :, None]
        else:
            Pr, Xr = tl.associative_scan((a_re, x_re), 2, combine_real)
            hr = Xr + Pr * h_re[:, :, None]  # (channels, d_state, time)
        if WRITE_OUT:
            Ct_re, Ct_im = load_bc(Cf_re, Cf_im, Cv_base, Cb_re, Cb_im, t, mask_n, mask_t,
                                   C_VAR, IS_COMPLEX, HAS_CBIAS)
            if IS_COMPLEX:
                y = 2.0 * tl.sum(Ct_re * hr - Ct_im * hi, axis=1)  # (channels, time)
            else:
                y = tl.sum(Ct_re * hr, axis=1)  # (channels, time)
            if HAS_D:
                y += Dv[:, None] * u
            if HAS_Z:
                zv = tl.load(z_base + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
                y = y * zv / (1.0 + tl.exp(-zv))
            tl.store(o_base + t[None, :], y.to(out_ptr.dtype.element_ty), mask=mask_dt)
        h_re = tl.sum(tl.where(last_t, hr, 0.0), axis=2)  # (channels, d_state)
        if IS_COMPLEX:
            h_im = tl.sum(tl.where(last_t, hi, 0.0), axis=2)

    if STORE_LAST:
        tl.store(last_ptr + hdn, h_re, mask=mask_dn)
        if IS_COMPLEX:
            tl.store(last_ptr + hdn + 1, h_im, mask=mask_dn)
