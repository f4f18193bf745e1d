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

import torch
import triton
import triton.language as tl

from ssmzoo_kernels.ssd._common import block, dot_precision, dt_heads_per_program, interpreting
from ssmzoo_kernels.ssd.tuning import DEFAULT, SSDTuning


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


def dt_cumsum(dt: torch.Tensor, A: torch.Tensor, dt_bias: torch.Tensor | None, Q: int,
              softplus: bool, limit: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """dt after bias/softplus/clamp and its within-chunk cumulative log-decay.

    dt: (batch, length, heads) -> both (batch, heads, nchunks, Q) float32.
    """
    bsz, L, H = dt.shape
    nc = triton.cdiv(L, Q)
    dt_out = torch.empty(bsz, H, nc, Q, device=dt.device, dtype=torch.float32)
    cum = torch.empty_like(dt_out)
    block_h = dt_heads_per_program(block(Q, lo=1))
    _dt_cumsum_kernel[(bsz, nc, triton.cdiv(H, block_h))](
        dt, A, dt_bias if dt_bias is not None else dt, dt_out, cum,
        L, H, Q, nc, *dt.stride(), float(limit[0]), float(limit[1]),
        HAS_BIAS=dt_bias is not None, SOFTPLUS=softplus,
        BLOCK_Q=block(Q, lo=1), BLOCK_H=block_h,
    )
    return dt_out, cum


def _grid(order_: int, tiles: int, H: int, bc: int) -> tuple[int, ...]:
    return (tiles * H, bc) if order_ == 2 else (tiles, bc, H)


def chunk_state(x: torch.Tensor, B: torch.Tensor, dt: torch.Tensor, cum: torch.Tensor,
                mode: int, tuning: SSDTuning = DEFAULT) -> torch.Tensor:
    """sum_s w_s x_s^T B_s per chunk and head: (batch, nchunks, heads, headdim, d_state) float32.

    x: (batch, length, heads, headdim); B: (batch, length, groups, d_state). Mode 1 runs in the
    backward and takes the backward's launch order.
    """
    bsz, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    nc, Q = cum.shape[2], cum.shape[3]
    out = torch.empty(bsz, nc, H, P, N, device=x.device, dtype=torch.float32)
    bp, bn = block(P, hi=64), block(N, hi=64)
    cfg = tuning.config("state", Q, N)
    od = tuning.order("fwd" if mode == 0 else "bwd", N)
    grid = _grid(od, triton.cdiv(P, bp) * triton.cdiv(N, bn), H, bsz * nc)
    _chunk_state_kernel[grid](
        x, B, dt, cum, out, L, H, Q, nc, P, N, H // G,
        *x.stride(), *B.stride(), *out.stride(),
        MODE=mode, DOT_PREC=dot_precision(x.dtype), ORDER=od,
        BLOCK_P=bp, BLOCK_N=bn, BLOCK_S=cfg["BLOCK"],
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )
    return out


def state_passing(states: torch.Tensor, cum: torch.Tensor, initial_states: torch.Tensor | None,
                  out_dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """From the chunk states S_c (float32): the states entering each chunk, in ``out_dtype``
    (float32: in place, over ``states``), and the final state (batch, heads, headdim, d_state)
    float32."""
    bsz, nc, H, P, N = states.shape
    Q = cum.shape[3]
    final = torch.empty(bsz, H, P, N, device=states.device, dtype=torch.float32)
    out = states if out_dtype == states.dtype else torch.empty_like(states, dtype=out_dtype)
    init = initial_states.float().contiguous() if initial_states is not None else None
    blk = 256 if interpreting() else 1024
    _state_passing_fwd_kernel[(triton.cdiv(P * N, blk), bsz, H)](
        states, cum, init if init is not None else final, final, out,
        H, Q, nc, P * N, states.stride(0), states.stride(1), states.stride(2),
        HAS_INIT=init is not None, BLOCK=blk,
    )
    return out, final


def fused_state_passing(x: torch.Tensor, B: torch.Tensor, dt: torch.Tensor, cum: torch.Tensor,
                        initial_states: torch.Tensor | None,
                        out_dtype: torch.dtype = torch.float32, tuning: SSDTuning = DEFAULT
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``chunk_state`` (mode 0) and ``state_passing`` in one launch: the states entering each
    chunk (batch, nchunks, heads, headdim, d_state) in ``out_dtype`` and the final state
    (batch, heads, headdim, d_state) float32."""
    bsz, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    nc, Q = cum.shape[2], cum.shape[3]
    out = torch.empty(bsz, nc, H, P, N, device=x.device, dtype=out_dtype)
    final = torch.empty(bsz, H, P, N, device=x.device, dtype=torch.float32)
    init = initial_states.float().contiguous() if initial_states is not None else None
    cfg = tuning.config("fused_state", Q, N)
    # default tiles: the whole d_state (x read once), headdim in blocks of 32 (more programs:
    # the launch has only batch * heads * tiles of them, each walking every chunk)
    # headdim 16 at d_state > 64 (faster at N 128: docs/developer/ssd-notes.md, "v3 — measured")
    bp = min(block(P), cfg.get("BLOCK_P", 16 if interpreting() or N > 64 else 32))
    bn = min(block(N), cfg.get("BLOCK_N", 256))
    if "num_warps" not in tuning.tiles.get("fused_state", {}) and not interpreting():
        # sm_90 build of (32, 128) tiles: 255 registers and a stack with 4 warps, 199 and none
        # with 8 (cuobjdump --dump-resource-usage)
        cfg["num_warps"] = 8 if bp * bn >= 32 * 128 else 4
    grid = (triton.cdiv(P, bp) * triton.cdiv(N, bn), H, bsz)
    _fused_state_kernel[grid](
        x, B, dt, cum, init if init is not None else final, out, final,
        L, H, Q, nc, P, N, H // G,
        *x.stride(), *B.stride(), *out.stride(),
        HAS_INIT=init is not None, DOT_PREC=dot_precision(x.dtype),
        SCALE_X=bn > bp if tuning.fused_scale == "auto" else tuning.fused_scale == "x",
        BLOCK_P=bp, BLOCK_N=bn, BLOCK_S=cfg["BLOCK"],
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )
    return out, final


def chunk_scan(x: torch.Tensor, B: torch.Tensor, C: torch.Tensor, dt: torch.Tensor,
               cum: torch.Tensor, states: torch.Tensor, D: torch.Tensor | None,
               z: torch.Tensor | None, tuning: SSDTuning = DEFAULT
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The outputs (batch, length, heads, headdim) in x's dtype, and, when z is given, the
    output before the gate (kept for the backward)."""
    bsz, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    nc, Q = cum.shape[2], cum.shape[3]
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    ypre = torch.empty_like(out) if z is not None else None
    cfg = tuning.config("scan_fwd", Q, N)
    bt, bp = cfg["BLOCK"], block(P, hi=64)
    od = tuning.order("fwd", N)
    grid = _grid(od, triton.cdiv(Q, bt) * triton.cdiv(P, bp), H, bsz * nc)
    zz = z if z is not None else x
    _chunk_scan_fwd_kernel[grid](
        x, zz, B, C, dt, cum, states, D if D is not None else x, out,
        ypre if ypre is not None else out,
        L, H, Q, nc, P, N, H // G,
        *x.stride(), *zz.stride(), *B.stride(), *C.stride(), *states.stride(), *out.stride(),
        HAS_D=D is not None, D_PER_CHANNEL=D is not None and D.dim() == 2, HAS_Z=z is not None,
        DOT_PREC=dot_precision(x.dtype), ORDER=od,
        BLOCK_T=bt, BLOCK_P=bp, BLOCK_N=block(N),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )
    return out, ypre
