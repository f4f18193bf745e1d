"""Backward selective-scan kernel: one program per (block of channels, batch element), time reversed.

Before it runs, the forward kernel has written the state at the start of every chunk (``ws``).
This kernel walks the chunks from last to first. For each it recomputes a, x and the states h_t
from the chunk's start state (a forward associative scan), and the adjoint g_t = dL/dh_t by a
reverse associative scan of g_t = v_t + conj(a_{t+1}) g_{t+1}, v_t = dL/dy_t · conj(C_t) (·2 for
complex A), with g carried in from the following chunk. a_{t+1} comes from Δ loaded one step
ahead, so no tile is ever shifted in registers. Then, element by element (complex numbers as
real pairs; gradients in PyTorch's convention dL/dRe + i dL/dIm):

- dB_t = g · conj(coef) · u, dC_t = dy · conj(h) (·2), reduced over the program's channels for a
  variable B/C (atomic adds across programs) or over time for a fixed B/C and the biases;
- du = Σ_n Re(g · conj(coef B_t)) + D dy;
- through the decay, with a_t h_{t-1} = h_t - x_t: G = g · conj(h_t - x_t), dΔ += Σ_n Re(G conj A),
  dA += Σ_t G Δ; through the input coefficient (ZOH: coef = Δ phi1(ΔA), d coef/dΔ = a,
  d coef/dA = Δ² phi1'(ΔA)); then softplus and delta_bias;
- d(initial_state) = conj(a_0) g_0.
Per-program partial sums ((batch, dim, ...) buffers) are reduced over the batch by the caller.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ssmzoo_kernels.selective_scan._common import (
    LOG2E,
    combine_complex,
    combine_real,
    dphi1_complex,
    dphi1_real,
    load_dt,
    phi1_complex,
    phi1_real,
    sigmoid,
)
from ssmzoo_kernels.selective_scan._fwd import decay_and_input, load_bc, load_dn


@triton.jit
def _store_dn(ptr, off, re, im, mask, IS_COMPLEX: tl.constexpr):
    tl.store(ptr + off, re, mask=mask)
    if IS_COMPLEX:
        tl.store(ptr + off + 1, im, mask=mask)


@triton.jit
def _atomic_bc(base, t, mask_n, mask_t, re, im, IS_COMPLEX: tl.constexpr):
    """Sum a (channels, d_state, time) tile over its channels and add it into a variable dB/dC
    buffer (real and imaginary parts interleaved along time when complex)."""
    CPLX: tl.constexpr = 2 if IS_COMPLEX else 1
    m = mask_n[:, None] & mask_t[None, :]
    ptrs = base + t[None, :] * CPLX  # (d_state, time)
    tl.atomic_add(ptrs, tl.sum(re, axis=0), mask=m, sem="relaxed")
    if IS_COMPLEX:
        tl.atomic_add(ptrs + 1, tl.sum(im, axis=0), mask=m, sem="relaxed")


@triton.jit
def selective_scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, dbias_ptr, Bb_ptr, Cb_ptr, ws_ptr,
    dout_ptr, dlast_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dBv_ptr, dCv_ptr, dBf_ptr, dCf_ptr, dD_ptr, ddbias_ptr,
    dh0_ptr,
    dim, dstate, length, n_chunks,
    s_ub, s_ud, s_db, s_dd, s_zb, s_zd, s_gb, s_gd,
    s_Bb, s_Bg, s_Bn, s_Cb, s_Cg, s_Cn, B_per_group, C_per_group,
    IS_COMPLEX: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr, HAS_D: tl.constexpr,
    HAS_Z: tl.constexpr, HAS_DBIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_BBIAS: tl.constexpr, HAS_CBIAS: tl.constexpr, HAS_DLAST: tl.constexpr,
    ZOH: tl.constexpr, BD: tl.constexpr, BN: tl.constexpr, BT: tl.constexpr,
):
    """Grid (cdiv(dim, BD), batch). Inputs as in the forward kernel; dout: (batch, dim, length)
    with strides s_gb, s_gd, shared by du, ddelta and dz (the caller allocates all four alike); dlast, dh0, and the partial buffers dA, dBf, dCf: contiguous
    (batch, dim, d_state[, 2]); dD, ddbias: (batch, dim); dBv, dCv: float32 buffers with B's and
    C's variable layout and strides.
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
    hdn = pid_b * dim * dstate * CPLX + dn

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

    u_base = u_ptr + pid_b * s_ub + offs_d[:, None] * s_ud  # (channels, 1)
    dl_base = delta_ptr + pid_b * s_db + offs_d[:, None] * s_dd
    z_base = z_ptr + pid_b * s_zb + offs_d[:, None] * s_zd
    g_base = dout_ptr + pid_b * s_gb + offs_d[:, None] * s_gd
    du_base = du_ptr + pid_b * s_gb + offs_d[:, None] * s_gd
    ddl_base = ddelta_ptr + pid_b * s_gb + offs_d[:, None] * s_gd
    dz_base = dz_ptr + pid_b * s_gb + offs_d[:, None] * s_gd
    gB = (pid_d * BD) // B_per_group
    gC = (pid_d * BD) // C_per_group
    Bv_base = B_ptr + pid_b * s_Bb + gB * s_Bg + offs_n[:, None] * s_Bn  # (d_state, 1)
    Cv_base = C_ptr + pid_b * s_Cb + gC * s_Cg + offs_n[:, None] * s_Cn
    dBv_base = dBv_ptr + pid_b * s_Bb + gB * s_Bg + offs_n[:, None] * s_Bn
    dCv_base = dCv_ptr + pid_b * s_Cb + gC * s_Cg + offs_n[:, None] * s_Cn
    first_t = (offs_t == 0)[None, None, :]

    # adjoint carried in from the following chunk (from d(last_state) at the end)
    gc_re = tl.zeros((BD, BN), tl.float32)
    gc_im = tl.zeros((BD, BN), tl.float32)
    if HAS_DLAST:
        gc_re = tl.load(dlast_ptr + hdn, mask=mask_dn, other=0.0).to(tl.float32)
        if IS_COMPLEX:
            gc_im = tl.load(dlast_ptr + hdn + 1, mask=mask_dn, other=0.0).to(tl.float32)
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
        mask_t1 = (t + 1) < length
        u = tl.load(u_base + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
        raw, dt = load_dt(dl_base + t[None, :], mask_dt, dbias, HAS_DBIAS, SOFTPLUS)
        _raw1, dt1 = load_dt(dl_base + t[None, :] + 1, mask_d[:, None] & mask_t1[None, :], dbias,
                             HAS_DBIAS, SOFTPLUS)  # Δ_{t+1}
        dt3 = dt[:, None, :]  # (channels, 1, time)
        Bt_re, Bt_im = load_bc(Bf_re, Bf_im, Bv_base, Bb_re, Bb_im, t, mask_n, mask_t,
                               B_VAR, IS_COMPLEX, HAS_BBIAS)
        Ct_re, Ct_im = load_bc(Cf_re, Cf_im, Cv_base, Cb_re, Cb_im, t, mask_n, mask_t,
                               C_VAR, IS_COMPLEX, HAS_CBIAS)
        a_re, a_im, x_re, x_im = decay_and_input(dt, u, A_re, A_im, A2, Bt_re, Bt_im,
                                                 IS_COMPLEX, ZOH)
        wdn = (pid_b * n_chunks + c) * dim * dstate * CPLX + dn
        h_re = tl.load(ws_ptr + wdn, mask=mask_dn, other=0.0)
        dout = tl.load(g_base + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
        if IS_COMPLEX:
            h_im = tl.load(ws_ptr + wdn + 1, mask=mask_dn, other=0.0)
            Pr, Pi, Xr, Xi = tl.associative_scan((a_re, a_im, x_re, x_im), 2, combine_complex)
            hr = Xr + Pr * h_re[:, :, None] - Pi * h_im[:, :, None]  # (channels, d_state, time)
            hi = Xi + Pr * h_im[:, :, None] + Pi * h_re[:, :, None]
            y = 2.0 * tl.sum(Ct_re * hr - Ct_im * hi, axis=1)  # (channels, time)
        else:
            Pr, Xr = tl.associative_scan((a_re, x_re), 2, combine_real)
            hr = Xr + Pr * h_re[:, :, None]  # (channels, d_state, time)
            y = tl.sum(Ct_re * hr, axis=1)  # (channels, time)
        # output gate and skip
        if HAS_D:
            y += Dv[:, None] * u
        dy = dout
        if HAS_Z:
            zv = tl.load(z_base + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
            sz = sigmoid(zv)
            dz = dout * y * sz * (1.0 + zv * (1.0 - sz))
            tl.store(dz_base + t[None, :], dz.to(dz_ptr.dtype.element_ty), mask=mask_dt)
            dy = dout * zv * sz
        du = tl.zeros((BD, BT), tl.float32)
        if HAS_D:
            dD_acc += tl.sum(dy * u, axis=1)
            du = Dv[:, None] * dy
        dy3 = dy[:, None, :]
        # adjoint: reverse scan of g_t = v_t + conj(a_{t+1}) g_{t+1}
        an_re, an_im, _x1, _x2 = decay_and_input(dt1, u, A_re, A_im, A2, 0.0, 0.0,
                                                 IS_COMPLEX, False)
        if IS_COMPLEX:
            v_re = 2.0 * dy3 * Ct_re
            v_im = -2.0 * dy3 * Ct_im
            Wr, Wi, Vr, Vi = tl.associative_scan((an_re, -an_im, v_re, v_im), 2,
                                                 combine_complex, reverse=True)
            g_re = Vr + Wr * gc_re[:, :, None] - Wi * gc_im[:, :, None]
            g_im = Vi + Wr * gc_im[:, :, None] + Wi * gc_re[:, :, None]
            gc_im = tl.sum(tl.where(first_t, g_im, 0.0), axis=2)
        else:
            Wr, Vr = tl.associative_scan((an_re, dy3 * Ct_re), 2, combine_real, reverse=True)
            g_re = Vr + Wr * gc_re[:, :, None]  # (channels, d_state, time)
        gc_re = tl.sum(tl.where(first_t, g_re, 0.0), axis=2)

        # C
        if IS_COMPLEX:
            dCt_re = 2.0 * dy3 * hr
            dCt_im = -2.0 * dy3 * hi
        else:
            dCt_re = dy3 * hr
            dCt_im = 0.0
        if C_VAR:
            _atomic_bc(dCv_base, t, mask_n, mask_t, dCt_re, dCt_im, IS_COMPLEX)
            if HAS_CBIAS:
                dCf_re += tl.sum(dCt_re, axis=2)
                if IS_COMPLEX:
                    dCf_im += tl.sum(dCt_im, axis=2)
        else:
            dCf_re += tl.sum(dCt_re, axis=2)
            if IS_COMPLEX:
                dCf_im += tl.sum(dCt_im, axis=2)

        # B, u and Δ through the input x = coef B_t u, and Δ, A through the decay
        ddt = tl.zeros((BD, BT), tl.float32)
        u3 = u[:, None, :]
        if IS_COMPLEX:
            if ZOH:
                xr3 = dt3 * A_re[:, :, None]
                xi3 = dt3 * A_im[:, :, None]
                pr, pim = phi1_complex(xr3, xi3, a_re, a_im)
                cr = pr * dt3
                ci = pim * dt3
            else:
                cr = dt3
                ci = 0.0
            # dB_t = g conj(coef) u
            dBt_re = (g_re * cr + g_im * ci) * u3
            dBt_im = (g_im * cr - g_re * ci) * u3
            # g conj(B_t)
            gb_re = g_re * Bt_re + g_im * Bt_im
            gb_im = g_im * Bt_re - g_re * Bt_im
            # du = sum_n Re(g conj(coef B)) = sum_n Re(g conj(B) conj(coef))
            du += tl.sum(gb_re * cr + gb_im * ci, axis=1)
            # decay: G = g conj(h - x)
            er = hr - x_re
            ei = hi - x_im
            Gr = g_re * er + g_im * ei
            Gi = g_im * er - g_re * ei
            if ZOH:
                # d coef = g conj(B) u; dΔ += Re(dcoef conj(a)); dA += dcoef conj(Δ² phi1'(ΔA))
                qr = gb_re * u3
                qi = gb_im * u3
                ddt += tl.sum(qr * a_re + qi * a_im, axis=1)
                sr, si = dphi1_complex(xr3, xi3, a_re, a_im, pr, pim)
                dt2 = dt3 * dt3
                dA_re += tl.sum((qr * sr + qi * si) * dt2, axis=2)
                dA_im += tl.sum((qi * sr - qr * si) * dt2, axis=2)
            else:
                ddt += u * tl.sum(gb_re, axis=1)
            ddt += tl.sum(Gr * A_re[:, :, None] + Gi * A_im[:, :, None], axis=1)
            dA_re += tl.sum(Gr * dt3, axis=2)
            dA_im += tl.sum(Gi * dt3, axis=2)
        else:
            if ZOH:
                xr3 = dt3 * A_re[:, :, None]
                ph = phi1_real(xr3, a_re)
                coef = ph * dt3
            else:
                coef = dt3
            dBt_re = g_re * coef * u3
            dBt_im = 0.0
            gb = g_re * Bt_re
            du += tl.sum(gb * coef, axis=1)
            G = g_re * (hr - x_re)
            if ZOH:
                q = gb * u3
                ddt += tl.sum(q * a_re, axis=1)
                dA_re += tl.sum(q * dphi1_real(xr3, a_re, ph) * dt3 * dt3, axis=2)
            else:
                ddt += u * tl.sum(gb, axis=1)
            ddt += tl.sum(G * A_re[:, :, None], axis=1)
            dA_re += tl.sum(G * dt3, axis=2)
        if B_VAR:
            _atomic_bc(dBv_base, t, mask_n, mask_t, dBt_re, dBt_im, IS_COMPLEX)
            if HAS_BBIAS:
                dBf_re += tl.sum(dBt_re, axis=2)
                if IS_COMPLEX:
                    dBf_im += tl.sum(dBt_im, axis=2)
        else:
            dBf_re += tl.sum(dBt_re, axis=2)
            if IS_COMPLEX:
                dBf_im += tl.sum(dBt_im, axis=2)
        if SOFTPLUS:
            ddt = ddt * sigmoid(raw)
        ddt = tl.where(mask_dt, ddt, 0.0)
        ddb_acc += tl.sum(ddt, axis=1)
        tl.store(ddl_base + t[None, :], ddt.to(ddelta_ptr.dtype.element_ty), mask=mask_dt)
        tl.store(du_base + t[None, :], du.to(du_ptr.dtype.element_ty), mask=mask_dt)

    # d(initial_state) = conj(a_0) g_0
    _r0, dt0 = load_dt(dl_base + offs_t[None, :] * 0, mask_d[:, None] & (offs_t < 1)[None, :],
                       dbias, HAS_DBIAS, SOFTPLUS)
    a0_re, a0_im, _x1, _x2 = decay_and_input(dt0, dt0, A_re, A_im, A2, 0.0, 0.0, IS_COMPLEX,
                                             False)
    a0_re = tl.sum(tl.where(first_t, a0_re, 0.0), axis=2)  # (channels, d_state)
    if IS_COMPLEX:
        a0_im = tl.sum(tl.where(first_t, a0_im, 0.0), axis=2)
        _store_dn(dh0_ptr, hdn, a0_re * gc_re + a0_im * gc_im, a0_re * gc_im - a0_im * gc_re,
                  mask_dn, True)
    else:
        tl.store(dh0_ptr + hdn, a0_re * gc_re, mask=mask_dn)
    _store_dn(dA_ptr, hdn, dA_re, dA_im, mask_dn, IS_COMPLEX)
    _store_dn(dBf_ptr, hdn, dBf_re, dBf_im, mask_dn, IS_COMPLEX)
    _store_dn(dCf_ptr, hdn, dCf_re, dCf_im, mask_dn, IS_COMPLEX)
    dbd = pid_b * dim + offs_d
    tl.store(dD_ptr + dbd, dD_acc, mask=mask_d)
    tl.store(ddbias_ptr + dbd, ddb_acc, mask=mask_d)
