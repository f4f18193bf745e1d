"""Backward selective-scan kernel: one program per (block of channels, batch element), time reversed.

Before it runs, the forward kernel (``STORE_STATES``) has written the state at the start of every
chunk (``ws``) and, unless the backward recomputes it (``RECOMPUTE_Y``), the un-gated output
y + D·u (``ypre``). This kernel walks the chunks from last to
first, in the forward kernel's layout (one channel per thread, a chunk of time in the thread, the
d_state loop unrolled). For every state n it recomputes a, x and h_t from the chunk's start state
(a forward scan), and the adjoint g_t = dL/dh_t by a reverse scan of
g_t = v_t + conj(a_{t+1}) g_{t+1}, v_t = dy_t·conj(C_t) (·2 for complex A), with g carried in from
the following chunk and folded into v at the chunk's last step; a_{t+1} comes from Δ loaded one
step ahead. Then, element by element (complex numbers as real pairs; gradients in PyTorch's
convention dL/dRe + i dL/dIm):

- dB_t = g·conj(coef)·u and dC_t = dy·conj(h) (·2): summed over the program's channels and added
  atomically (float32) for a variable B/C, or summed over time for a fixed B/C and the biases;
- du = Σ_n Re(g·conj(coef·B_t)) + D·dy;
- through the decay, with a_t h_{t-1} = h_t - x_t: G = g·conj(h_t - x_t), dΔ += Σ_n Re(G·conj A),
  dA += Σ_t G·Δ; through the input coefficient (ZOH: coef = Δ·phi1(ΔA), d coef/dΔ = a,
  d coef/dA = Δ²·phi1'(ΔA)); then softplus and delta_bias;
- d(initial_state) = conj(a_0)·g_0.
Per-program partial sums ((batch, dim, ...) buffers) are reduced over the batch by the caller.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ssmzoo_kernels.selective_scan._common import (
    combine_complex,
    combine_real,
    dphi1_complex,
    dphi1_real,
    load_dt,
    next_in_time,
    phi1_complex,
    phi1_real,
    sigmoid,
    softplus,
    store_dz,
    ungated_output,
)
from ssmzoo_kernels.selective_scan._fwd import column, decay_input_n, load_state_n, scan_n


@triton.jit
def _add_col(T, is_n, v):
    """T with v (channels,) added to the column selected by is_n (resolved at compile time)."""
    return tl.where(is_n, T + v[:, None], T)


@triton.jit
def _store_pair(ptr, off, re, im, mask, IS_COMPLEX: tl.constexpr):
    tl.store(ptr + off, re, mask=mask)
    if IS_COMPLEX:
        tl.store(ptr + off + 1, im, mask=mask)


@triton.jit
def _atomic_pair(ptrs, re, im, mask, IS_COMPLEX: tl.constexpr):
    """Add the channel sums of (channels, time) tiles into a variable dB/dC row (interleaved)."""
    tl.atomic_add(ptrs, tl.sum(re, axis=0), mask=mask, sem="relaxed")
    if IS_COMPLEX:
        tl.atomic_add(ptrs + 1, tl.sum(im, axis=0), mask=mask, sem="relaxed")


@triton.jit
def selective_scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, dbias_ptr, Bb_ptr, Cb_ptr, ws_ptr,
    ypre_ptr, dout_ptr, dlast_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dBv_ptr, dCv_ptr, dBf_ptr, dCf_ptr, dD_ptr, ddbias_ptr,
    dh0_ptr,
    dim, length, n_chunks,
    s_ub, s_ud, s_db, s_dd, s_zb, s_zd, s_gb, s_gd,
    s_Bb, s_Bg, s_Bn, s_Cb, s_Cg, s_Cn, B_per_group, C_per_group,
    DSTATE: tl.constexpr, IS_COMPLEX: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_DBIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_BBIAS: tl.constexpr, HAS_CBIAS: tl.constexpr, HAS_DLAST: tl.constexpr,
    ZOH: tl.constexpr, FAST: tl.constexpr, BD: tl.constexpr, BN: tl.constexpr,
    BT: tl.constexpr, RECOMPUTE_Y: tl.constexpr = True,
):
    """Grid (cdiv(dim, BD), batch). Inputs as in the forward kernel; dout: (batch, dim, length)
    with strides s_gb, s_gd, shared by du, ddelta and dz (the caller allocates all four alike);
    ypre: contiguous (batch, dim, length); dlast, dh0, and the partial buffers dA, dBf, dCf:
    contiguous (batch, dim, d_state[, 2]); dD, ddbias: (batch, dim); dBv, dCv: float32 buffers
    with B's and C's variable layout and strides. ``RECOMPUTE_Y`` (with z): the un-gated output
    that dz needs is summed from the recomputed states in the d_state loop (Σ_n Re(C_n h_n) + D·u,
    in float32) instead of read from ``ypre``, which then is not allocated.
    """
    CPLX: tl.constexpr = 2 if IS_COMPLEX else 1
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BD + tl.arange(0, BD)
    offs_n = tl.arange(0, BN)
    offs_t = tl.arange(0, BT)
    mask_d = offs_d < dim
    mask_dn = mask_d[:, None] & (offs_n < DSTATE)[None, :]
    dn = (offs_d[:, None] * DSTATE + offs_n[None, :]) * CPLX  # (channels, d_state)
    hdn = pid_b * dim * DSTATE * CPLX + dn
    first = (offs_t == 0)[None, :]
    last = (offs_t == BT - 1)[None, :]

    dbias = 0.0
    if HAS_DBIAS:
        dbias = tl.load(dbias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dv = 0.0
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)

    u_base = u_ptr + pid_b * s_ub + offs_d[:, None] * s_ud  # (channels, 1)
    dl_base = delta_ptr + pid_b * s_db + offs_d[:, None] * s_dd
    z_base = z_ptr + pid_b * s_zb + offs_d[:, None] * s_zd
    g_base = dout_ptr + pid_b * s_gb + offs_d[:, None] * s_gd
    yp_base = ypre_ptr + (pid_b * dim + offs_d[:, None]) * length
    du_base = du_ptr + pid_b * s_gb + offs_d[:, None] * s_gd
    ddl_base = ddelta_ptr + pid_b * s_gb + offs_d[:, None] * s_gd
    dz_base = dz_ptr + pid_b * s_gb + offs_d[:, None] * s_gd
    gB = (pid_d * BD) // B_per_group
    gC = (pid_d * BD) // C_per_group
    Bv_base = B_ptr + pid_b * s_Bb + gB * s_Bg
    Cv_base = C_ptr + pid_b * s_Cb + gC * s_Cg
    dBv_base = dBv_ptr + pid_b * s_Bb + gB * s_Bg
    dCv_base = dCv_ptr + pid_b * s_Cb + gC * s_Cg

    # adjoint carried in from the following chunk (from d(last_state) at the end), per state
    Gc_re = tl.zeros((BD, BN), tl.float32)
    Gc_im = tl.zeros((BD, BN), tl.float32)
    if HAS_DLAST:
        Gc_re = tl.load(dlast_ptr + hdn, mask=mask_dn, other=0.0).to(tl.float32)
        if IS_COMPLEX:
            Gc_im = tl.load(dlast_ptr + hdn + 1, mask=mask_dn, other=0.0).to(tl.float32)
    dA_re = tl.zeros((BD, BN), tl.float32)
    dA_im = tl.zeros((BD, BN), tl.float32)
    dBf_re = tl.zeros((BD, BN), tl.float32)
    dBf_im = tl.zeros((BD, BN), tl.float32)
    dCf_re = tl.zeros((BD, BN), tl.float32)
    dCf_im = tl.zeros((BD, BN), tl.float32)
    dD_acc = tl.zeros((BD,), tl.float32)
    ddb_acc = tl.zeros((BD,), tl.float32)

    for i in range(n_chunks):
        c = n_chunks - 1 - i
        t = c * BT + offs_t
        mask_t = t < length
        mask_dt = mask_d[:, None] & mask_t[None, :]  # (channels, time)
        u = tl.load(u_base + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
        raw, dt = load_dt(dl_base + t[None, :], mask_dt, dbias, HAS_DBIAS, SOFTPLUS)
        # Δ_{t+1}: shifted in registers, the next chunk's first step loaded (0 past the end)
        has_next = mask_d[:, None] & ((c * BT + BT + tl.zeros((BD, 1), tl.int32)) < length)
        nraw = tl.load(dl_base + c * BT + BT, mask=has_next, other=0.0).to(tl.float32)
        if HAS_DBIAS:
            nraw = nraw + dbias[:, None]
        if SOFTPLUS:
            nraw = softplus(nraw)
        nraw = tl.where(has_next, nraw, 0.0)  # (channels, 1)
        dt1 = next_in_time(dt, tl.sum(nraw, axis=1))
        dout = tl.load(g_base + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
        dy = dout
        if HAS_Z:
            zv = tl.load(z_base + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
            sz = sigmoid(zv)
            if not RECOMPUTE_Y:
                yp = tl.load(yp_base + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
                store_dz(dz_base + t[None, :], mask_dt, dout, yp, zv, sz)
            dy = dout * zv * sz
        y = tl.zeros((BD, BT), tl.float32)  # Σ_n Re(C_n h_n) (RECOMPUTE_Y)
        du = tl.zeros((BD, BT), tl.float32)
        if HAS_D:
            dD_acc += tl.sum(dy * u, axis=1)
            du = Dv[:, None] * dy
        wdn = (pid_b * n_chunks + c) * dim * DSTATE * CPLX + dn
        H_re = tl.load(ws_ptr + wdn, mask=mask_dn, other=0.0)
        H_im = 0.0
        if IS_COMPLEX:
            H_im = tl.load(ws_ptr + wdn + 1, mask=mask_dn, other=0.0)
        ddt = tl.zeros((BD, BT), tl.float32)
        Gn_re = Gc_re
        Gn_im = Gc_im
        for n in range(DSTATE):  # a loop, not unrolled: one state's temporaries live at a time
            is_n = offs_n[None, :] == n
            dnn = (offs_d * DSTATE + n) * CPLX
            Ar = tl.load(A_ptr + dnn, mask=mask_d, other=0.0)
            Ai = 0.0
            hin_im = 0.0
            gin_im = 0.0
            if IS_COMPLEX:
                Ai = tl.load(A_ptr + dnn + 1, mask=mask_d, other=0.0)
                hin_im = column(H_im, offs_n, n)
                gin_im = column(Gc_im, offs_n, n)
            Bre, Bim = load_state_n(B_ptr, Bv_base + n * s_Bn, Bb_ptr, offs_d, mask_d, n, t,
                                    mask_t, DSTATE, B_VAR, IS_COMPLEX, HAS_BBIAS)
            Cre, Cim = load_state_n(C_ptr, Cv_base + n * s_Cn, Cb_ptr, offs_d, mask_d, n, t,
                                    mask_t, DSTATE, C_VAR, IS_COMPLEX, HAS_CBIAS)
            a_re, a_im, x_re, x_im = decay_input_n(dt, u, Ar, Ai, Bre, Bim, IS_COMPLEX, ZOH,
                                                   FAST)
            h_re, h_im = scan_n(a_re, a_im, x_re, x_im, column(H_re, offs_n, n), hin_im, first,
                                IS_COMPLEX)
            if HAS_Z and RECOMPUTE_Y:
                if IS_COMPLEX:
                    y += Cre * h_re - Cim * h_im
                else:
                    y += Cre * h_re
            an_re, an_im, _x1, _x2 = decay_input_n(dt1, u, Ar, Ai, 0.0, 0.0, IS_COMPLEX, False,
                                                   FAST)
            gin_re = column(Gc_re, offs_n, n)
            # adjoint: reverse scan of g_t = v_t + conj(a_{t+1}) g_{t+1}, carry folded in at the end
            if IS_COMPLEX:
                v_re = 2.0 * dy * Cre
                v_im = -2.0 * dy * Cim
                v_re += tl.where(last, an_re * gin_re[:, None] + an_im * gin_im[:, None], 0.0)
                v_im += tl.where(last, an_re * gin_im[:, None] - an_im * gin_re[:, None], 0.0)
                _w1, _w2, g_re, g_im = tl.associative_scan((an_re, -an_im, v_re, v_im), 1,
                                                           combine_complex, reverse=True)
                Gn_im = tl.where(is_n, column(g_im, offs_t, 0)[:, None], Gn_im)
                dCt_re = 2.0 * dy * h_re
                dCt_im = -2.0 * dy * h_im
            else:
                v_re = dy * Cre + tl.where(last, an_re * gin_re[:, None], 0.0)
                _w, g_re = tl.associative_scan((an_re, v_re), 1, combine_real, reverse=True)
                g_im = 0.0
                dCt_re = dy * h_re
                dCt_im = 0.0
            Gn_re = tl.where(is_n, column(g_re, offs_t, 0)[:, None], Gn_re)
            if C_VAR:
                _atomic_pair(dCv_base + n * s_Cn + t * CPLX, dCt_re, dCt_im, mask_t, IS_COMPLEX)
            if C_VAR == 0 or HAS_CBIAS:
                dCf_re = _add_col(dCf_re, is_n, tl.sum(dCt_re, axis=1))
                if IS_COMPLEX:
                    dCf_im = _add_col(dCf_im, is_n, tl.sum(dCt_im, axis=1))
            # B, u and Δ through x = coef·B·u; Δ and A through the decay
            if IS_COMPLEX:
                if ZOH:
                    xr = dt * Ar[:, None]
                    xi = dt * Ai[:, None]
                    pr, pim = phi1_complex(xr, xi, a_re, a_im)
                    cr = pr * dt
                    ci = pim * dt
                else:
                    cr = dt
                    ci = 0.0
                dBt_re = (g_re * cr + g_im * ci) * u
                dBt_im = (g_im * cr - g_re * ci) * u
                gb_re = g_re * Bre + g_im * Bim  # g·conj(B)
                gb_im = g_im * Bre - g_re * Bim
                du += gb_re * cr + gb_im * ci
                er = h_re - x_re
                ei = h_im - x_im
                Gr = g_re * er + g_im * ei  # g·conj(h - x)
                Gi = g_im * er - g_re * ei
                if ZOH:
                    qr = gb_re * u
                    qi = gb_im * u
                    ddt += qr * a_re + qi * a_im
                    sr, si = dphi1_complex(xr, xi, a_re, a_im, pr, pim)
                    dt2 = dt * dt
                    dA_re = _add_col(dA_re, is_n, tl.sum((qr * sr + qi * si) * dt2, axis=1))
                    dA_im = _add_col(dA_im, is_n, tl.sum((qi * sr - qr * si) * dt2, axis=1))
                else:
                    ddt += gb_re * u
                ddt += Gr * Ar[:, None] + Gi * Ai[:, None]
                dA_re = _add_col(dA_re, is_n, tl.sum(Gr * dt, axis=1))
                dA_im = _add_col(dA_im, is_n, tl.sum(Gi * dt, axis=1))
            else:
                if ZOH:
                    xr = dt * Ar[:, None]
                    ph = phi1_real(xr, a_re)
                    coef = ph * dt
                else:
                    coef = dt
                dBt_re = g_re * coef * u
                dBt_im = 0.0
                gb = g_re * Bre
                du += gb * coef
                G = g_re * (h_re - x_re)
                if ZOH:
                    q = gb * u
                    ddt += q * a_re
                    dA_re = _add_col(dA_re, is_n,
                                     tl.sum(q * dphi1_real(xr, a_re, ph) * dt * dt, axis=1))
                else:
                    ddt += gb * u
                ddt += G * Ar[:, None]
                dA_re = _add_col(dA_re, is_n, tl.sum(G * dt, axis=1))
            if B_VAR:
                _atomic_pair(dBv_base + n * s_Bn + t * CPLX, dBt_re, dBt_im, mask_t, IS_COMPLEX)
            if B_VAR == 0 or HAS_BBIAS:
                dBf_re = _add_col(dBf_re, is_n, tl.sum(dBt_re, axis=1))
                if IS_COMPLEX:
                    dBf_im = _add_col(dBf_im, is_n, tl.sum(dBt_im, axis=1))
        Gc_re = Gn_re
        Gc_im = Gn_im
        if HAS_Z and RECOMPUTE_Y:
            store_dz(dz_base + t[None, :], mask_dt, dout, ungated_output(y, u, Dv, IS_COMPLEX, HAS_D),
                     zv, sz)
        if SOFTPLUS:
            ddt = ddt * sigmoid(raw)
        ddt = tl.where(mask_dt, ddt, 0.0)
        ddb_acc += tl.sum(ddt, axis=1)
        tl.store(ddl_base + t[None, :], ddt.to(ddelta_ptr.dtype.element_ty), mask=mask_dt)
        tl.store(du_base + t[None, :], du.to(du_ptr.dtype.element_ty), mask=mask_dt)

    # d(initial_state) = conj(a_0) g_0, per state
    _r0, dt0 = load_dt(dl_base + offs_t[None, :] * 0, mask_d[:, None] & first, dbias, HAS_DBIAS,
                       SOFTPLUS)
    dh0_re = tl.zeros((BD, BN), tl.float32)
    dh0_im = tl.zeros((BD, BN), tl.float32)
    for n in tl.static_range(DSTATE):
        is_n = offs_n[None, :] == n
        dnn = (offs_d * DSTATE + n) * CPLX
        Ar = tl.load(A_ptr + dnn, mask=mask_d, other=0.0)
        Ai = 0.0
        if IS_COMPLEX:
            Ai = tl.load(A_ptr + dnn + 1, mask=mask_d, other=0.0)
        a_re, a_im, _x1, _x2 = decay_input_n(dt0, dt0, Ar, Ai, 0.0, 0.0, IS_COMPLEX, False,
                                             FAST)
        a0r = column(a_re, offs_t, 0)
        gr = column(Gc_re, offs_n, n)
        if IS_COMPLEX:
            a0i = column(a_im, offs_t, 0)
            gi = column(Gc_im, offs_n, n)
            dh0_re = _add_col(dh0_re, is_n, a0r * gr + a0i * gi)
            dh0_im = _add_col(dh0_im, is_n, a0r * gi - a0i * gr)
        else:
            dh0_re = _add_col(dh0_re, is_n, a0r * gr)
    _store_pair(dh0_ptr, hdn, dh0_re, dh0_im, mask_dn, IS_COMPLEX)
    _store_pair(dA_ptr, hdn, dA_re, dA_im, mask_dn, IS_COMPLEX)
    _store_pair(dBf_ptr, hdn, dBf_re, dBf_im, mask_dn, IS_COMPLEX)
    _store_pair(dCf_ptr, hdn, dCf_re, dCf_im, mask_dn, IS_COMPLEX)
    dbd = pid_b * dim + offs_d
    tl.store(dD_ptr + dbd, dD_acc, mask=mask_d)
    tl.store(ddbias_ptr + dbd, ddb_acc, mask=mask_d)
