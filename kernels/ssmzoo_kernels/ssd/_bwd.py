"""Backward kernels of the chunked SSD.

With dy the gradient of the output before the gate, per head and chunk (notation of _common):

- dH_c^out = sum_t exp(cum_t) dy_t^T C_t (``chunk_state`` with MODE 1);
- ``_state_passing_bwd_kernel`` runs the recurrence backwards: dS_c = dH_{c+1}, dH_c =
  dH_c^out + exp(cum_end) dH_{c+1}, dinitial = dH_0; the gradient of chunk c's total log-decay
  is sum(dS_c * H_{c+1}) (chunk state and recurrence together);
- ``_bwd_dx_db_kernel`` (one program per block of s, looping over the heads of a group):
  d(dt x)_s = sum_{t>=s} (C_t . B_s) exp(cum_t - cum_s) dy_t + exp(cum_end - cum_s) dS B_s and
  dB_s = sum_{t>=s} (dy_t . dt_s x_s) exp(cum_t - cum_s) C_t + exp(cum_end - cum_s) dS^T dt_s x_s;
- ``_bwd_dc_kernel`` (per block of t): dC_t = exp(cum_t) dy_t H_c + sum_{s<=t} (dy_t . dt_s x_s)
  exp(cum_t - cum_s) B_s.

The log-decays get d cum_t = C_t . dC_t - B_t . dB_t per head (plus the chunk-end term), the
identity that needs no (Q, Q) matrix kept; ``_dt_bwd_kernel`` then takes them through the reverse
cumsum, clamp, softplus and bias to dt, A and dt_bias in one launch.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ssmzoo_kernels.ssd._fwd import _mm, _softplus


@triton.jit
def _state_passing_bwd_kernel(
    dstates_ptr, states_ptr, final_ptr, dfinal_ptr, cum_ptr, dinit_ptr, dend_ptr,
    H, Q, nchunks, PN, n_blocks,
    s_s_b, s_s_c, s_s_h,
    HAS_DFINAL: tl.constexpr, BLOCK: tl.constexpr, CARRIED: tl.constexpr = False,
):
    """dstates: dH^out in, dS out (in place); dend[b, h, c, block]: partial sums of dS_c H_{c+1}
    (the gradient of chunk c's total log-decay through its state and the carried state), or with
    ``CARRIED`` of dS_c exp(cum_end) H_c (through the carried state only; the chunk state's part is
    then summed position by position by the caller)."""
    pid_e = tl.program_id(0)
    b = tl.program_id(1)
    h = tl.program_id(2)
    offs = pid_e * BLOCK + tl.arange(0, BLOCK)
    m = offs < PN
    bh = (b * H + h) * PN + offs
    if HAS_DFINAL:
        grad = tl.load(dfinal_ptr + bh, mask=m, other=0.0).to(tl.float32)
    else:
        grad = tl.zeros((BLOCK,), dtype=tl.float32)
    nxt = tl.load(final_ptr + bh, mask=m, other=0.0)
    dbase = dstates_ptr + b * s_s_b + h * s_s_h + offs
    sbase = states_ptr + b * s_s_b + h * s_s_h + offs
    cum_row = cum_ptr + (b * H + h) * nchunks * Q
    for i in range(nchunks):
        c = nchunks - 1 - i
        d_out = tl.load(dbase + c * s_s_c, mask=m, other=0.0)
        cur = tl.load(sbase + c * s_s_c, mask=m, other=0.0).to(tl.float32)
        decay = tl.exp(tl.load(cum_row + c * Q + Q - 1))
        if CARRIED:
            part = decay * tl.sum(grad * cur)
        else:
            part = tl.sum(grad * nxt)
        tl.store(dend_ptr + ((b * H + h) * nchunks + c) * n_blocks + pid_e, part)
        tl.store(dbase + c * s_s_c, grad, mask=m)
        grad = d_out + decay * grad
        nxt = cur
    tl.store(dinit_ptr + bh, grad, mask=m)


@triton.jit
def _bwd_dx_db_kernel(
    x_ptr, dy_ptr, b_ptr, c_ptr, dt_ptr, cum_ptr, dstates_ptr, D_ptr,
    dx_ptr, db_ptr, ddt_ptr, ddab_ptr, dD_ptr, tsb_ptr,
    L, H, Q, nchunks, P, N, heads_per_group, heads_per_prog, split, n_blocks_s,
    s_x_b, s_x_l, s_x_h, s_x_p,
    s_y_b, s_y_l, s_y_h, s_y_p,
    s_b_b, s_b_l, s_b_g, s_b_n,
    s_c_b, s_c_l, s_c_g, s_c_n,
    s_s_b, s_s_c, s_s_h, s_s_p, s_s_n,
    s_dx_b, s_dx_l, s_dx_h, s_dx_p,
    s_db_b, s_db_l, s_db_g, s_db_n,
    HAS_D: tl.constexpr, D_PER_CHANNEL: tl.constexpr, DOT_PREC: tl.constexpr,
    ORDER: tl.constexpr,
    BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    STABLE: tl.constexpr = False,
):
    """One block of s positions of one chunk, for heads_per_prog heads of group g (program axis 2
    is group * split + part); dB of those heads is summed into db[..., axis 2 index, :].
    ddab: B_s . dB_s per head; with ``STABLE`` only its within-chunk part, summed pair by pair in
    float32, and the chunk-state part B_s . dB_s^state goes to tsb (same layout)."""
    if ORDER == 2:
        pid_s = tl.program_id(0) % n_blocks_s  # blocks of a chunk adjacent, then the head parts
        pid_gs = tl.program_id(0) // n_blocks_s
    else:  # v1: axis 0 the blocks, axis 2 the head parts
        pid_s = tl.program_id(0)
        pid_gs = tl.program_id(2)
    pid_bc = tl.program_id(1)
    g = pid_gs // split
    h0 = g * heads_per_group + (pid_gs % split) * heads_per_prog
    b = pid_bc // nchunks
    c = pid_bc % nchunks
    offs_s = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_p = tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    pos_s = c * Q + offs_s
    ms = (offs_s < Q) & (pos_s < L)
    mp = offs_p < P
    mn = offs_n < N
    b_base = b_ptr + b * s_b_b + g * s_b_g
    c_base = c_ptr + b * s_c_b + g * s_c_g
    bs = tl.load(b_base + pos_s[:, None] * s_b_l + offs_n[None, :] * s_b_n,
                 mask=ms[:, None] & mn[None, :], other=0.0)  # (S, N)
    db_acc = tl.zeros((BLOCK_S, BLOCK_N), dtype=tl.float32)
    msp = ms[:, None] & mp[None, :]
    for hh in range(heads_per_prog):
        h = h0 + hh
        row = ((b * H + h) * nchunks + c) * Q
        cum_s = tl.load(cum_ptr + row + offs_s, mask=ms, other=0.0)
        dt_s = tl.load(dt_ptr + row + offs_s, mask=ms, other=0.0)
        cum_end = tl.load(cum_ptr + row + Q - 1)
        xs = tl.load(x_ptr + b * s_x_b + h * s_x_h + pos_s[:, None] * s_x_l
                     + offs_p[None, :] * s_x_p, mask=msp, other=0.0)  # (S, P)
        xdt = (xs.to(tl.float32) * dt_s[:, None]).to(xs.dtype)
        ds = tl.load(dstates_ptr + b * s_s_b + c * s_s_c + h * s_s_h + offs_p[:, None] * s_s_p
                     + offs_n[None, :] * s_s_n, mask=mp[:, None] & mn[None, :], other=0.0)
        ds = ds.to(xs.dtype)  # (P, N)
        w_end = tl.where(ms, tl.exp(cum_end - cum_s), 0.0)
        # from the chunk's state
        dxdt = _mm(bs, tl.trans(ds), DOT_PREC) * w_end[:, None]  # (S, P)
        db_h = _mm(xdt, ds, DOT_PREC) * w_end[:, None]  # (S, N)
        if STABLE:  # the chunk-state part on its own; the pairs (s, t) in float32 below
            tl.store(tsb_ptr + row + offs_s, tl.sum(bs.to(tl.float32) * db_h, axis=1),
                     mask=offs_s < Q)
            dab = tl.zeros((BLOCK_S,), dtype=tl.float32)
        # from the outputs of the same chunk at t >= s
        y_base = dy_ptr + b * s_y_b + h * s_y_h
        for t0 in range(pid_s * BLOCK_S, Q, BLOCK_S):
            offs_t = t0 + tl.arange(0, BLOCK_S)
            pos_t = c * Q + offs_t
            mt = (offs_t < Q) & (pos_t < L)
            ct = tl.load(c_base + pos_t[:, None] * s_c_l + offs_n[None, :] * s_c_n,
                         mask=mt[:, None] & mn[None, :], other=0.0)  # (T, N)
            dyt = tl.load(y_base + pos_t[:, None] * s_y_l + offs_p[None, :] * s_y_p,
                          mask=mt[:, None] & mp[None, :], other=0.0)  # (T, P)
            cum_t = tl.load(cum_ptr + row + offs_t, mask=mt, other=0.0)
            causal = (offs_t[None, :] >= offs_s[:, None]) & mt[None, :] & ms[:, None]
            decay = tl.exp(tl.where(causal, cum_t[None, :] - cum_s[:, None], float("-inf")))
            cb = _mm(bs, tl.trans(ct), DOT_PREC)  # (S, T)
            dxdt += _mm((cb * decay).to(dyt.dtype), dyt, DOT_PREC)
            dm = _mm(xdt, tl.trans(dyt), DOT_PREC)  # (S, T)
            dmd = dm * decay
            db_h += _mm(dmd.to(ct.dtype), ct, DOT_PREC)
            if STABLE:
                dab += tl.sum(dmd * cb, axis=1)
        dys = tl.load(y_base + pos_s[:, None] * s_y_l + offs_p[None, :] * s_y_p,
                      mask=msp, other=0.0).to(tl.float32)
        xf = xs.to(tl.float32)
        dx = dxdt * dt_s[:, None]
        if HAS_D:
            if D_PER_CHANNEL:
                d = tl.load(D_ptr + h * P + offs_p, mask=mp, other=0.0).to(tl.float32)[None, :]
            else:
                d = tl.load(D_ptr + h).to(tl.float32)
            dx += dys * d
            part = dD_ptr + ((pid_bc * n_blocks_s + pid_s) * H + h) * BLOCK_P
            tl.store(part + offs_p, tl.sum(dys * xf, axis=0))
        tl.store(dx_ptr + b * s_dx_b + h * s_dx_h + pos_s[:, None] * s_dx_l
                 + offs_p[None, :] * s_dx_p, dx, mask=msp)
        tl.store(ddt_ptr + row + offs_s, tl.sum(dxdt * xf, axis=1), mask=offs_s < Q)
        if not STABLE:
            dab = tl.sum(bs.to(tl.float32) * db_h, axis=1)
        tl.store(ddab_ptr + row + offs_s, dab, mask=offs_s < Q)
        db_acc += db_h
    tl.store(db_ptr + b * s_db_b + pid_gs * s_db_g + pos_s[:, None] * s_db_l
             + offs_n[None, :] * s_db_n, db_acc, mask=ms[:, None] & mn[None, :])


@triton.jit
def _bwd_dc_kernel(
    x_ptr, dy_ptr, b_ptr, c_ptr, dt_ptr, cum_ptr, states_ptr, dc_ptr, ddac_ptr, cb_ptr,
    L, H, Q, nchunks, P, N, heads_per_group, heads_per_prog, split, n_blocks_t,
    s_x_b, s_x_l, s_x_h, s_x_p,
    s_y_b, s_y_l, s_y_h, s_y_p,
    s_b_b, s_b_l, s_b_g, s_b_n,
    s_c_b, s_c_l, s_c_g, s_c_n,
    s_s_b, s_s_c, s_s_h, s_s_p, s_s_n,
    s_dc_b, s_dc_l, s_dc_g, s_dc_n,
    DOT_PREC: tl.constexpr, ORDER: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    STABLE: tl.constexpr = False, CB_ONCE: tl.constexpr = False,
):
    """One block of t positions of one chunk, for heads_per_prog heads of group g; dC of those
    heads summed into dc[..., axis 2 index, :], C_t . dC_t per head into ddac. With ``STABLE`` and
    ``CB_ONCE`` the pairs' C_t . B_s come from cb (batch, nchunks, groups, Q, Q)."""
    if ORDER == 2:
        pid_t = tl.program_id(0) % n_blocks_t
        pid_gs = tl.program_id(0) // n_blocks_t
    else:
        pid_t = tl.program_id(0)
        pid_gs = tl.program_id(2)
    pid_bc = tl.program_id(1)
    g = pid_gs // split
    h0 = g * heads_per_group + (pid_gs % split) * heads_per_prog
    b = pid_bc // nchunks
    c = pid_bc % nchunks
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_p = tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    pos_t = c * Q + offs_t
    mt = (offs_t < Q) & (pos_t < L)
    mp = offs_p < P
    mn = offs_n < N
    b_base = b_ptr + b * s_b_b + g * s_b_g
    cb_base = cb_ptr + ((b * nchunks + c) * (H // heads_per_group) + g).to(tl.int64) * Q * Q
    c_in = tl.load(c_ptr + b * s_c_b + g * s_c_g + pos_t[:, None] * s_c_l
                   + offs_n[None, :] * s_c_n, mask=mt[:, None] & mn[None, :], other=0.0)  # (T, N)
    ct = c_in.to(tl.float32)
    dc_acc = tl.zeros((BLOCK_T, BLOCK_N), dtype=tl.float32)
    hi = tl.minimum((pid_t + 1) * BLOCK_T, Q)
    for hh in range(heads_per_prog):
        h = h0 + hh
        row = ((b * H + h) * nchunks + c) * Q
        cum_t = tl.load(cum_ptr + row + offs_t, mask=mt, other=0.0)
        dyt = tl.load(dy_ptr + b * s_y_b + h * s_y_h + pos_t[:, None] * s_y_l
                      + offs_p[None, :] * s_y_p, mask=mt[:, None] & mp[None, :], other=0.0)
        hs = tl.load(states_ptr + b * s_s_b + c * s_s_c + h * s_s_h + offs_p[:, None] * s_s_p
                     + offs_n[None, :] * s_s_n, mask=mp[:, None] & mn[None, :], other=0.0)
        dc_h = _mm(dyt, hs.to(dyt.dtype), DOT_PREC)
        dc_h = dc_h * tl.where(mt, tl.exp(cum_t), 0.0)[:, None]  # (T, N)
        if STABLE:  # C_t . dC_t: the chunk-state part here, the pairs (t, s) in float32 below
            dac = tl.sum(ct * dc_h, axis=1)
        x_base = x_ptr + b * s_x_b + h * s_x_h
        for s0 in range(0, hi, BLOCK_T):
            offs_s = s0 + tl.arange(0, BLOCK_T)
            pos_s = c * Q + offs_s
            ms = (offs_s < Q) & (pos_s < L)
            xs = tl.load(x_base + pos_s[:, None] * s_x_l + offs_p[None, :] * s_x_p,
                         mask=ms[:, None] & mp[None, :], other=0.0)  # (S, P)
            dt_s = tl.load(dt_ptr + row + offs_s, mask=ms, other=0.0)
            cum_s = tl.load(cum_ptr + row + offs_s, mask=ms, other=0.0)
            xdt = (xs.to(tl.float32) * dt_s[:, None]).to(xs.dtype)
            bs = tl.load(b_base + pos_s[:, None] * s_b_l + offs_n[None, :] * s_b_n,
                         mask=ms[:, None] & mn[None, :], other=0.0)  # (S, N)
            dm = _mm(dyt, tl.trans(xdt), DOT_PREC)  # (T, S)
            causal = (offs_t[:, None] >= offs_s[None, :]) & ms[None, :] & mt[:, None]
            decay = tl.exp(tl.where(causal, cum_t[:, None] - cum_s[None, :], float("-inf")))
            dmd = dm * decay
            dc_h += _mm(dmd.to(bs.dtype), bs, DOT_PREC)
            if STABLE:
                if CB_ONCE:
                    cbt = tl.load(cb_base + offs_t[:, None] * Q + offs_s[None, :],
                                  mask=causal, other=0.0)  # (T, S)
                else:
                    cbt = _mm(c_in, tl.trans(bs), DOT_PREC)
                dac += tl.sum(dmd * cbt, axis=1)
        if not STABLE:
            dac = tl.sum(ct * dc_h, axis=1)
        tl.store(ddac_ptr + row + offs_t, dac, mask=offs_t < Q)
        dc_acc += dc_h
    tl.store(dc_ptr + b * s_dc_b + pid_gs * s_dc_g + pos_t[:, None] * s_dc_l
             + offs_n[None, :] * s_dc_n, dc_acc, mask=mt[:, None] & mn[None, :])


@triton.jit
def _chunk_cb_kernel(
    b_ptr, c_ptr, out_ptr, L, Q, N, G, nchunks, n_blocks_s,
    s_b_b, s_b_l, s_b_g, s_b_n,
    s_c_b, s_c_l, s_c_g, s_c_n,
    DOT_PREC: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """One (T, S) tile of C_t . B_s for chunk c of batch row b and group g, float32."""
    pid_t = tl.program_id(0) // n_blocks_s
    pid_s = tl.program_id(0) % n_blocks_s
    pid_bc = tl.program_id(1)
    g = tl.program_id(2)
    b = pid_bc // nchunks
    c = pid_bc % nchunks
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_s = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    pos_t = c * Q + offs_t
    pos_s = c * Q + offs_s
    mt = (offs_t < Q) & (pos_t < L)
    ms = (offs_s < Q) & (pos_s < L)
    acc = tl.zeros((BLOCK_T, BLOCK_S), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mn = offs_n < N
        ct = tl.load(c_ptr + b * s_c_b + g * s_c_g + pos_t[:, None] * s_c_l
                     + offs_n[None, :] * s_c_n, mask=mt[:, None] & mn[None, :], other=0.0)
        bs = tl.load(b_ptr + b * s_b_b + g * s_b_g + pos_s[:, None] * s_b_l
                     + offs_n[None, :] * s_b_n, mask=ms[:, None] & mn[None, :], other=0.0)
        acc += _mm(ct, tl.trans(bs), DOT_PREC)
    out = out_ptr + ((b * nchunks + c) * G + g).to(tl.int64) * Q * Q
    tl.store(out + offs_t[:, None] * Q + offs_s[None, :], acc,
             mask=(offs_t < Q)[:, None] & (offs_s < Q)[None, :])


@triton.jit
def _dt_bwd_kernel(
    ddt_ptr, ddac_ptr, ddab_ptr, dend_ptr, tsb_ptr, dtp_ptr, dt_ptr, A_ptr, bias_ptr,
    g_ptr, dA_ptr, dbias_ptr,
    L, H, Q, nchunks,
    s_dt_b, s_dt_l, s_dt_h,
    dt_min, dt_max,
    HAS_TSB: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_H: tl.constexpr,
):
    """One chunk of one batch row for BLOCK_H heads: d cum (C . dC - B . dB, plus the chunk-end
    term at the chunk's last step), the per-step log-decay gradient (its reverse cumsum, plus the
    chunk-state terms' exclusive cumsum), then dt's gradient through clamp, softplus and bias,
    stored in dt's layout; dA and d dt_bias summed over the chunk into this program's row of the
    partial sums."""
    pid_b = tl.program_id(0)
    pid_c = tl.program_id(1)
    offs_t = tl.arange(0, BLOCK_Q)
    offs_h = tl.program_id(2) * BLOCK_H + tl.arange(0, BLOCK_H)
    pos = pid_c * Q + offs_t
    mh = offs_h < H
    mq = (offs_t < Q)[:, None] & mh[None, :]  # the whole chunk: its last step carries the end term
    ml = mq & (pos < L)[:, None]
    row = ((pid_b * H + offs_h[None, :]) * nchunks + pid_c) * Q + offs_t[:, None]  # (Q, heads)
    dcum = (tl.load(ddac_ptr + row, mask=mq, other=0.0)
            - tl.load(ddab_ptr + row, mask=mq, other=0.0))
    dend = tl.load(dend_ptr + (pid_b * H + offs_h) * nchunks + pid_c, mask=mh, other=0.0)
    dcum += tl.where((offs_t == Q - 1)[:, None], dend[None, :], 0.0)
    da = tl.cumsum(dcum, axis=0, reverse=True)
    if HAS_TSB:
        tsb = tl.load(tsb_ptr + row, mask=mq, other=0.0)
        da += tl.cumsum(tsb, axis=0) - tsb
    A = tl.load(A_ptr + offs_h, mask=mh, other=0.0).to(tl.float32)
    dtp = tl.load(dtp_ptr + row, mask=mq, other=0.0)
    g = tl.load(ddt_ptr + row, mask=mq, other=0.0) + da * A[None, :]
    raw = tl.load(dt_ptr + pid_b * s_dt_b + pos[:, None] * s_dt_l + offs_h[None, :] * s_dt_h,
                  mask=ml, other=0.0).to(tl.float32)
    if HAS_BIAS:
        raw += tl.load(bias_ptr + offs_h, mask=mh, other=0.0).to(tl.float32)[None, :]
    if SOFTPLUS:
        val = _softplus(raw)
    else:
        val = raw
    g = tl.where((val < dt_min) | (val > dt_max) | (ml == 0), 0.0, g)
    if SOFTPLUS:
        g = tl.where(raw <= 20.0, g * tl.sigmoid(raw), g)
    tl.store(g_ptr + (pid_b * L + pos[:, None]) * H + offs_h[None, :],
             g.to(g_ptr.dtype.element_ty), mask=ml)
    part = (pid_b * nchunks + pid_c) * H + offs_h
    tl.store(dA_ptr + part, tl.sum(da * dtp, axis=0), mask=mh)
    tl.store(dbias_ptr + part, tl.sum(g, axis=0), mask=mh)
