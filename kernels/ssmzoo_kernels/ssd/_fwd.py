"""Forward kernels of the chunked SSD (shared/PAPERS.md 0.2), four launches (three with
``SSDTuning.fused_state``, where ``_fused_state_kernel`` does 2 and 3 in one):

1. ``_dt_cumsum_kernel``: dt after bias, softplus and clamping, and its within-chunk cumulative
   log-decay ``cum``;
2. ``_chunk_state_kernel``: each chunk's own state, every input decayed to the chunk's end
   (``x^T @ (w * B)`` on the tensor cores); with ``MODE=1`` the same product gives, in the backward,
   the gradient of each chunk's entering state from that chunk's outputs;
3. ``_state_passing_fwd_kernel``: the inter-chunk recurrence H_{c+1} = exp(cum_end) H_c + S_c,
   written in place, so that the buffer then holds the state *entering* each chunk;
4. ``_chunk_scan_fwd_kernel``: the outputs, y_t = exp(cum_t) C_t H_c + sum_{s<=t} (C_t . B_s)
   exp(cum_t - cum_s) dt_s x_s + D x_t, gated by SiLU(z). C_t . B_s is recomputed per head on the
   tensor cores instead of being stored per group.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _mm(a, b, DOT_PREC: tl.constexpr):
    """a @ b on the tensor cores, float32 accumulation. ``"upcast"``: in fp32, for bfloat16 under
    the interpreter, whose tl.dot multiplies bfloat16 bit patterns (triton-lang/triton#11584)."""
    if DOT_PREC == "upcast":
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision=DOT_PREC)


@triton.jit
def _softplus(v):
    # log(1 + e^v) with log1p's accuracy for small e^v; identity above 20 as in torch
    e = tl.exp(v)
    small = e - 0.5 * e * e
    return tl.where(v > 20.0, v, tl.where(e < 1e-4, small, tl.log(1.0 + e)))


@triton.jit
def _dt_cumsum_kernel(
    dt_ptr, A_ptr, bias_ptr, dt_out_ptr, cum_ptr,
    L, H, Q, nchunks,
    s_dt_b, s_dt_l, s_dt_h,
    dt_min, dt_max,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_H: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_c = tl.program_id(1)
    pid_h = tl.program_id(2)
    offs_t = tl.arange(0, BLOCK_Q)
    offs_h = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    pos = pid_c * Q + offs_t
    mask_t = (offs_t < Q) & (pos < L)
    mask_h = offs_h < H
    m = mask_t[:, None] & mask_h[None, :]
    dt = tl.load(dt_ptr + pid_b * s_dt_b + pos[:, None] * s_dt_l + offs_h[None, :] * s_dt_h,
                 mask=m, other=0.0).to(tl.float32)  # (Q, heads)
    if HAS_BIAS:
        dt += tl.load(bias_ptr + offs_h, mask=mask_h, other=0.0).to(tl.float32)[None, :]
    if SOFTPLUS:
        dt = _softplus(dt)
    dt = tl.minimum(tl.maximum(dt, dt_min), dt_max)
    dt = tl.where(m, dt, 0.0)  # past the end: no step, no decay
    A = tl.load(A_ptr + offs_h, mask=mask_h, other=0.0).to(tl.float32)
    cum = tl.cumsum(dt * A[None, :], axis=0)
    out = ((pid_b * H + offs_h[None, :]) * nchunks + pid_c) * Q + offs_t[:, None]
    ms = (offs_t < Q)[:, None] & mask_h[None, :]
    tl.store(dt_out_ptr + out, dt, mask=ms)
    tl.store(cum_ptr + out, cum, mask=ms)


@triton.jit
def _chunk_state_kernel(
    x_ptr, b_ptr, dt_ptr, cum_ptr, out_ptr,
    L, H, Q, nchunks, P, N, heads_per_group,
    s_x_b, s_x_l, s_x_h, s_x_p,
    s_b_b, s_b_l, s_b_g, s_b_n,
    s_o_b, s_o_c, s_o_h, s_o_p, s_o_n,
    MODE: tl.constexpr, DOT_PREC: tl.constexpr, ORDER: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr,
):
    """out[b, c, h] = sum_s w_s x_s^T B_s over chunk c: (headdim, d_state).

    MODE 0: w_s = exp(cum_end - cum_s) dt_s (the chunk's state); MODE 1: w_s = exp(cum_s)
    (x = dout, B = C: the gradient of the state entering the chunk, from the chunk's outputs).
    """
    if ORDER == 2:
        # axis 0: (head, tile) with the tiles of a head adjacent and the heads of a chunk next, so
        # that programs reading the same x and the same group's B run together (L2 reuse)
        n_tiles = tl.cdiv(P, BLOCK_P) * tl.cdiv(N, BLOCK_N)
        pid_pn = tl.program_id(0) % n_tiles
        h = tl.program_id(0) // n_tiles
    else:  # v1: axis 0 the tiles, axis 2 the heads
        pid_pn = tl.program_id(0)
        h = tl.program_id(2)
    pid_bc = tl.program_id(1)
    n_blocks_n = tl.cdiv(N, BLOCK_N)
    pid_p = pid_pn // n_blocks_n
    pid_n = pid_pn % n_blocks_n
    b = pid_bc // nchunks
    c = pid_bc % nchunks
    g = h // heads_per_group
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mp = offs_p < P
    mn = offs_n < N
    row = ((b * H + h) * nchunks + c) * Q
    cum_end = tl.load(cum_ptr + row + Q - 1)
    x_base = x_ptr + b * s_x_b + h * s_x_h
    b_base = b_ptr + b * s_b_b + g * s_b_g
    acc = tl.zeros((BLOCK_P, BLOCK_N), dtype=tl.float32)
    for s0 in range(0, Q, BLOCK_S):
        offs_s = s0 + tl.arange(0, BLOCK_S)
        pos = c * Q + offs_s
        ms = (offs_s < Q) & (pos < L)
        xt = tl.load(x_base + pos[None, :] * s_x_l + offs_p[:, None] * s_x_p,
                     mask=mp[:, None] & ms[None, :], other=0.0)  # (P, S)
        bs = tl.load(b_base + pos[:, None] * s_b_l + offs_n[None, :] * s_b_n,
                     mask=ms[:, None] & mn[None, :], other=0.0)  # (S, N)
        cum_s = tl.load(cum_ptr + row + offs_s, mask=ms, other=0.0)
        if MODE == 0:
            dt_s = tl.load(dt_ptr + row + offs_s, mask=ms, other=0.0)
            w = tl.exp(cum_end - cum_s) * dt_s
        else:
            w = tl.exp(cum_s)
        w = tl.where(ms, w, 0.0)
        bs = (bs.to(tl.float32) * w[:, None]).to(xt.dtype)
        acc += _mm(xt, bs, DOT_PREC)  # (P, N)
    o = out_ptr + b * s_o_b + c * s_o_c + h * s_o_h
    tl.store(o + offs_p[:, None] * s_o_p + offs_n[None, :] * s_o_n, acc,
             mask=mp[:, None] & mn[None, :])


@triton.jit
def _state_passing_fwd_kernel(
    states_ptr, cum_ptr, init_ptr, final_ptr, out_ptr,
    H, Q, nchunks, PN,
    s_s_b, s_s_c, s_s_h,
    HAS_INIT: tl.constexpr, BLOCK: tl.constexpr,
):
    """out[b, c, h] <- H_c (entering chunk c, in out's dtype), from the chunk states S_c in states
    (out may be states itself: each S_c is read before H_c is written over it); final H_nc."""
    pid_e = tl.program_id(0)
    b = tl.program_id(1)
    h = tl.program_id(2)
    offs = pid_e * BLOCK + tl.arange(0, BLOCK)
    m = offs < PN
    if HAS_INIT:
        state = tl.load(init_ptr + (b * H + h) * PN + offs, mask=m, other=0.0).to(tl.float32)
    else:
        state = tl.zeros((BLOCK,), dtype=tl.float32)
    base = states_ptr + b * s_s_b + h * s_s_h + offs
    obase = out_ptr + b * s_s_b + h * s_s_h + offs  # out has states' (contiguous) layout
    cum_row = cum_ptr + (b * H + h) * nchunks * Q
    for c in range(nchunks):
        s = tl.load(base + c * s_s_c, mask=m, other=0.0)
        decay = tl.exp(tl.load(cum_row + c * Q + Q - 1))
        tl.store(obase + c * s_s_c, state.to(out_ptr.dtype.element_ty), mask=m)
        state = decay * state + s
    tl.store(final_ptr + (b * H + h) * PN + offs, state, mask=m)


@triton.jit
def _fused_state_kernel(
    x_ptr, b_ptr, dt_ptr, cum_ptr, init_ptr, out_ptr, final_ptr,
    L, H, Q, nchunks, P, N, heads_per_group,
    s_x_b, s_x_l, s_x_h, s_x_p,
    s_b_b, s_b_l, s_b_g, s_b_n,
    s_o_b, s_o_c, s_o_h, s_o_p, s_o_n,
    HAS_INIT: tl.constexpr, DOT_PREC: tl.constexpr, SCALE_X: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr,
):
    """Chunk states and state passing in one launch: one program per (headdim block, d_state
    block) of one (batch, head) walks the chunks; per chunk it writes the entering state H_c to
    out (out's dtype), computes the chunk's own state S_c = sum_s exp(cum_end - cum_s) dt_s x_s^T
    B_s on the tensor cores (as ``_chunk_state_kernel`` MODE 0) and carries H_{c+1} =
    exp(cum_end) H_c + S_c in float32; final H_nc (float32). No S_c buffer is written or read.
    SCALE_X: the weights w_s multiply x's tile (rounded to the input dtype) instead of B's, when
    x's is the smaller (d_state tiles wider than headdim tiles); B's tile then needs no registers
    for the scaling (at N 128 the (s, d_state) tile and its pointers spilled)."""
    n_blocks_n = tl.cdiv(N, BLOCK_N)
    pid_p = tl.program_id(0) // n_blocks_n
    pid_n = tl.program_id(0) % n_blocks_n
    h = tl.program_id(1)  # the heads of a batch row adjacent: they share B in L2
    b = tl.program_id(2)
    g = h // heads_per_group
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mp = offs_p < P
    mn = offs_n < N
    mpn = mp[:, None] & mn[None, :]
    fin = (b * H + h) * P * N + offs_p[:, None] * N + offs_n[None, :]  # (batch, heads, P, N)
    if HAS_INIT:
        state = tl.load(init_ptr + fin, mask=mpn, other=0.0).to(tl.float32)
    else:
        state = tl.zeros((BLOCK_P, BLOCK_N), dtype=tl.float32)
    x_base = x_ptr + b * s_x_b + h * s_x_h
    b_base = b_ptr + b * s_b_b + g * s_b_g
    o_base = out_ptr + b * s_o_b + h * s_o_h + offs_p[:, None] * s_o_p + offs_n[None, :] * s_o_n
    for c in range(nchunks):
        tl.store(o_base + c * s_o_c, state.to(out_ptr.dtype.element_ty), mask=mpn)
        row = ((b * H + h) * nchunks + c) * Q
        cum_end = tl.load(cum_ptr + row + Q - 1)
        acc = tl.zeros((BLOCK_P, BLOCK_N), dtype=tl.float32)
        for s0 in range(0, Q, BLOCK_S):
            offs_s = s0 + tl.arange(0, BLOCK_S)
            pos = c * Q + offs_s
            ms = (offs_s < Q) & (pos < L)
            xt = tl.load(x_base + pos[None, :] * s_x_l + offs_p[:, None] * s_x_p,
                         mask=mp[:, None] & ms[None, :], other=0.0)  # (P, S)
            bs = tl.load(b_base + pos[:, None] * s_b_l + offs_n[None, :] * s_b_n,
                         mask=ms[:, None] & mn[None, :], other=0.0)  # (S, N)
            cum_s = tl.load(cum_ptr + row + offs_s, mask=ms, other=0.0)
            dt_s = tl.load(dt_ptr + row + offs_s, mask=ms, other=0.0)
            w = tl.where(ms, tl.exp(cum_end - cum_s) * dt_s, 0.0)
            if SCALE_X:  # weight the smaller tile; B then goes straight from memory to the dot
                xt = (xt.to(tl.float32) * w[None, :]).to(bs.dtype)
            else:
                bs = (bs.to(tl.float32) * w[:, None]).to(xt.dtype)
            acc += _mm(xt, bs, DOT_PREC)  # (P, N)
        state = tl.exp(cum_end) * state + acc
    tl.store(final_ptr + fin, state, mask=mpn)


@triton.jit
def _chunk_scan_fwd_kernel(
    x_ptr, z_ptr, b_ptr, c_ptr, dt_ptr, cum_ptr, states_ptr, D_ptr, out_ptr, ypre_ptr,
    L, H, Q, nchunks, P, N, heads_per_group,
    s_x_b, s_x_l, s_x_h, s_x_p,
    s_z_b, s_z_l, s_z_h, s_z_p,
    s_b_b, s_b_l, s_b_g, s_b_n,
    s_c_b, s_c_l, s_c_g, s_c_n,
    s_s_b, s_s_c, s_s_h, s_s_p, s_s_n,
    s_o_b, s_o_l, s_o_h, s_o_p,
    HAS_D: tl.constexpr, D_PER_CHANNEL: tl.constexpr, HAS_Z: tl.constexpr,
    DOT_PREC: tl.constexpr, ORDER: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
):
    if ORDER == 2:
        # axis 0: (head, tile), tiles of a head adjacent, then the heads of the chunk (see above)
        n_tiles = tl.cdiv(Q, BLOCK_T) * tl.cdiv(P, BLOCK_P)
        pid_tp = tl.program_id(0) % n_tiles
        h = tl.program_id(0) // n_tiles
    else:  # v1: axis 0 the tiles, axis 2 the heads
        pid_tp = tl.program_id(0)
        h = tl.program_id(2)
    pid_bc = tl.program_id(1)
    n_blocks_p = tl.cdiv(P, BLOCK_P)
    pid_t = pid_tp // n_blocks_p
    pid_p = pid_tp % n_blocks_p
    b = pid_bc // nchunks
    c = pid_bc % nchunks
    g = h // heads_per_group
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    pos_t = c * Q + offs_t
    mt = (offs_t < Q) & (pos_t < L)
    mp = offs_p < P
    mn = offs_n < N
    row = ((b * H + h) * nchunks + c) * Q
    cum_t = tl.load(cum_ptr + row + offs_t, mask=offs_t < Q, other=0.0)
    ct = tl.load(c_ptr + b * s_c_b + g * s_c_g + pos_t[:, None] * s_c_l + offs_n[None, :] * s_c_n,
                 mask=mt[:, None] & mn[None, :], other=0.0)  # (T, N)
    # the state entering the chunk, decayed to each position
    hs = tl.load(states_ptr + b * s_s_b + c * s_s_c + h * s_s_h
                 + offs_n[:, None] * s_s_n + offs_p[None, :] * s_s_p,
                 mask=mn[:, None] & mp[None, :], other=0.0)  # (N, P)
    acc = _mm(ct, hs.to(ct.dtype), DOT_PREC) * tl.exp(cum_t)[:, None]  # (T, P)
    # within the chunk: causal (C_t . B_s) exp(cum_t - cum_s) dt_s x_s
    x_base = x_ptr + b * s_x_b + h * s_x_h
    b_base = b_ptr + b * s_b_b + g * s_b_g
    hi = tl.minimum((pid_t + 1) * BLOCK_T, Q)
    for s0 in range(0, hi, BLOCK_T):
        offs_s = s0 + tl.arange(0, BLOCK_T)
        pos_s = c * Q + offs_s
        ms = (offs_s < Q) & (pos_s < L)
        bs = tl.load(b_base + pos_s[None, :] * s_b_l + offs_n[:, None] * s_b_n,
                     mask=mn[:, None] & ms[None, :], other=0.0)  # (N, S)
        cb = _mm(ct, bs, DOT_PREC)  # (T, S)
        cum_s = tl.load(cum_ptr + row + offs_s, mask=ms, other=0.0)
        dt_s = tl.load(dt_ptr + row + offs_s, mask=ms, other=0.0)
        causal = (offs_t[:, None] >= offs_s[None, :]) & ms[None, :]
        decay = tl.exp(tl.where(causal, cum_t[:, None] - cum_s[None, :], float("-inf")))
        xs = tl.load(x_base + pos_s[:, None] * s_x_l + offs_p[None, :] * s_x_p,
                     mask=ms[:, None] & mp[None, :], other=0.0)  # (S, P)
        w = (cb * decay * dt_s[None, :]).to(xs.dtype)
        acc += _mm(w, xs, DOT_PREC)
    if HAS_D:
        xt = tl.load(x_base + pos_t[:, None] * s_x_l + offs_p[None, :] * s_x_p,
                     mask=mt[:, None] & mp[None, :], other=0.0).to(tl.float32)
        if D_PER_CHANNEL:
            d = tl.load(D_ptr + h * P + offs_p, mask=mp, other=0.0).to(tl.float32)[None, :]
        else:
            d = tl.load(D_ptr + h).to(tl.float32)
        acc += xt * d
    o = b * s_o_b + h * s_o_h + pos_t[:, None] * s_o_l + offs_p[None, :] * s_o_p
    mo = mt[:, None] & mp[None, :]
    if HAS_Z:
        tl.store(ypre_ptr + o, acc, mask=mo)
        zt = tl.load(z_ptr + b * s_z_b + h * s_z_h + pos_t[:, None] * s_z_l
                     + offs_p[None, :] * s_z_p, mask=mo, other=0.0).to(tl.float32)
        acc = acc * zt * tl.sigmoid(zt)
    tl.store(out_ptr + o, acc, mask=mo)
