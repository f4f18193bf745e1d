"""The scans every unit shares: ``selective_scan`` and ``ssd_scan``, and their backends.

Both functions validate their arguments once, pack them into a call object
(:class:`~ssmzoo.scan.backend.SelectiveScanCall`, :class:`~ssmzoo.scan.backend.SSDCall`) and hand
it to a backend chosen by :func:`ssmzoo.scan.dispatch.choose`. The ``reference`` backend (pure
PyTorch) runs everything everywhere; faster backends register through the
``ssmzoo_register_backends`` hook. :mod:`ssmzoo.scan.naive` holds the sequential loops that
specify both scans.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor

from ssmzoo.scan._validate import check_selective_scan, check_ssd_scan
from ssmzoo.scan.backend import ScanBackend, SelectiveScanCall, SSDCall
from ssmzoo.scan.dispatch import run

__all__ = ["selective_scan", "ssd_scan", "ScanBackend", "SelectiveScanCall", "SSDCall"]


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    B_bias: Tensor | None = None,
    C_bias: Tensor | None = None,
    initial_state: Tensor | None = None,
    discretization: Literal["euler", "zoh"] = "euler",
    backend: str | ScanBackend = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """The selective scan, in mamba_ssm's ``selective_scan_fn`` layout and semantics.

    Per channel, with state h of d_state entries: Δ_t = softplus(delta_t + delta_bias) (bias and
    softplus optional), h_t = exp(Δ_t A) h_{t-1} + B̄_t u_t, y_t = <C_t, h_t> (2·Re when A is
    complex), out_t = (y_t + D u_t) · silu(z_t); B̄_t = Δ_t B_t for ``discretization="euler"``
    (mamba_ssm) or (exp(Δ_t A) - 1)/A · B_t for ``"zoh"`` (S4D, B2S6).

    Args:
        u: input, (batch, dim, length).
        delta: step before bias and softplus, (batch, dim, length), u's dtype.
        A: state matrix diagonal, (dim, d_state), real or complex.
        B: input matrix: fixed (dim, d_state), variable (batch, d_state, length) or grouped
            (batch, groups, d_state, length), groups dividing dim. When A is complex, a fixed B is
            complex and a variable one is real with a last axis of 2·length (real and imaginary
            parts interleaved).
        C: output matrix, same layouts as B.
        D: skip connection, (dim,).
        z: gate, (batch, dim, length), u's dtype; the output is multiplied by silu(z).
        delta_bias: added to delta before the softplus, (dim,).
        delta_softplus: apply softplus to delta + delta_bias.
        return_last_state: also return the state after the last step.
        B_bias: (dim, d_state), complex when A is, added to B at every step (B2S6).
        C_bias: (dim, d_state), complex when A is, added to C at every step.
        initial_state: state before the first step, (batch, dim, d_state), complex when A is.
        discretization: ``"euler"`` or ``"zoh"``: the input coefficient.
        backend: a registered backend name, ``"auto"`` for the fastest that supports the call,
            or a backend instance (e.g. ``TritonBackend(tuning=...)`` for an A/B sweep).

    Returns:
        out (batch, dim, length) in u's dtype, accumulated in float32 (float64 for double
        inputs); with ``return_last_state``, ``(out, last_state)`` with last_state
        (batch, dim, d_state) in the accumulation dtype (complex when A is).

    Raises:
        ScanArgumentError: an argument with the wrong shape, dtype, device or value.
        UnknownBackendError: ``backend`` is not a registered name.
        BackendUnavailableError: the named backend cannot run this call (the reason is given).
        NoBackendError: ``"auto"`` found no backend for the call.
    """
    call = check_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                return_last_state, B_bias, C_bias, initial_state, discretization)
    return run("selective_scan", call, backend)


def ssd_scan(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int = 256,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    initial_states: Tensor | None = None,
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = (0.0, math.inf),
    return_final_states: bool = False,
    *,
    backend: str | ScanBackend = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """SSD (Mamba-2's scan), in mamba_ssm's ``mamba_chunk_scan_combined`` layout and semantics.

    Per head h, with state H (headdim × d_state): Δ_t = clamp(softplus(dt_t + dt_bias), dt_limit)
    (bias and softplus optional; the clamp always applies), H_t = exp(Δ_t A_h) H_{t-1} +
    Δ_t x_t B_tᵀ, y_t = H_t C_t + D x_t, out_t = y_t · silu(z_t). B and C are shared by the
    heads/groups heads of a group.

    Args:
        x: input, (batch, length, heads, headdim).
        dt: step before bias and softplus, (batch, length, heads).
        A: one real decay rate per head, (heads,).
        B: input matrix, (batch, length, groups, d_state), groups dividing heads.
        C: output matrix, (batch, length, groups, d_state).
        chunk_size: chunk length of the chunked algorithm (any positive int; the length need not
            be a multiple of it). Results do not depend on it beyond rounding.
        D: skip connection, (heads,) or (heads, headdim).
        z: gate, (batch, length, heads, headdim); the output is multiplied by silu(z).
        dt_bias: added to dt before the softplus, (heads,).
        initial_states: state before the first step, (batch, heads, headdim, d_state).
        dt_softplus: apply softplus to dt + dt_bias.
        dt_limit: (min, max) that Δ is clamped to.
        return_final_states: also return the state after the last step.
        backend: a registered backend name, ``"auto"``, or a backend instance.

    Returns:
        out (batch, length, heads, headdim) in x's dtype; with ``return_final_states``,
        ``(out, final_states)`` with final_states (batch, heads, headdim, d_state) in the
        accumulation dtype (float32, or float64 for double inputs).
    """
    call = check_ssd_scan(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, dt_softplus,
                          dt_limit, return_final_states)
    return run("ssd_scan", call, backend)
