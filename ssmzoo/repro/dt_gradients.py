"""Gradient growth in Δ's parameters: S6 against S4D (B2S6 paper, Theorem 3 and App. E.1).

Yu & Erichson analyse S6 as in Algorithm 2 of the Mamba paper, at width d = 1: with the scalar
input u_k and a diagonal A of n modes,

    S6:  Δ_k = softplus(w·u_k + b),  x_k = exp(Δ_k A) x_{k-1} + (exp(Δ_k A) - 1)/A · B u_k · u_k,
         y = 2 Re(u_L C · x_L)                      (B_k = B u_k and C_k = u_k C: selective)
    S4D: Δ = softplus(b),            x_k = exp(Δ A) x_{k-1} + (exp(Δ A) - 1)/A · B · u_k,
         y = 2 Re(C · x_L)

and show that with inputs u_k ~ N(0, c²) the gradient of the output with respect to S6's Δ
parameters outgrows S4D's: E|∂y_S6/∂w| / E|∂y_S4D/∂b| ~ c³ and E|∂y_S6/∂b| / E|∂y_S4D/∂b| ~ c²;
and with w = 0 and L·e^b held fixed (long memory), E|∂y_S6/∂b| / E|∂y_S4D/∂b| ~ √L. App. E.1
checks the slopes on a log-log plot over 30 random draws of A (left half plane), B and C.

Both models run through :func:`ssmzoo.selective_scan` (zero-order hold, complex A, float64): the
trials are the channels of one call (each its own row of A, B, C), the input draws its batch, and
per-draw gradients come from per-draw copies of w and b.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

__all__ = ["DrawSpec", "draw", "gradient_means", "scale_sweep", "length_sweep", "loglog_slope",
           "PAPER_SLOPES"]

PAPER_SLOPES = {"scale/ratio_w": 3.0, "scale/ratio_b": 2.0, "length/ratio_b": 0.5}


@dataclass(frozen=True)
class DrawSpec:
    """How the random S6/S4D pairs of one measurement are drawn.

    Args:
        trials: independent draws of (A, B, C, w, b), one channel each.
        samples: input sequences per trial.
        n_modes: complex modes of A per channel (2 n_modes real state dimensions, 2·Re read-out).
        w_std: standard deviation of w (0: w = 0, Part 2 of the theorem).
        dt_min: smallest Δ = softplus(b) drawn (log-uniform).
        dt_max: largest Δ drawn.
    """

    trials: int = 30
    samples: int = 32
    n_modes: int = 8
    w_std: float = 0.05
    dt_min: float = 0.01
    dt_max: float = 0.1


def _inv_softplus(x: Tensor) -> Tensor:
    return x + torch.log(-torch.expm1(-x))


def draw(spec: DrawSpec, seed: int) -> dict[str, Tensor]:
    """Random parameters: A, B, C (trials, n_modes) complex128, A in the left half plane; w, b
    (trials,) float64."""
    g = torch.Generator().manual_seed(seed)
    t, n = spec.trials, spec.n_modes

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    A = torch.complex(-(0.1 + 0.9 * rand(t, n)), math.pi * (2 * rand(t, n) - 1))  # (t, n)
    B = torch.complex(randn(t, n), randn(t, n)) / math.sqrt(2)                          # (t, n)
    C = torch.complex(randn(t, n), randn(t, n)) / math.sqrt(2 * n)                      # (t, n)
    log_dt = math.log(spec.dt_min) + rand(t) * math.log(spec.dt_max / spec.dt_min)
    b = _inv_softplus(torch.exp(log_dt))                                                # (t,)
    w = spec.w_std * randn(t)                                                           # (t,)
    return {"A": A, "B": B, "C": C, "w": w, "b": b}


def _interleave(z: Tensor) -> Tensor:
    """Complex (..., l) -> real (..., 2l) with real and imaginary parts interleaved (the scan's
    layout for a variable B or C with complex A)."""
    return rearrange(torch.view_as_real(z), "... l two -> ... (l two)")


def gradient_means(u: Tensor, params: dict[str, Tensor]) -> dict[str, float]:
    """E|∂y_S6/∂w|, E|∂y_S6/∂b| and E|∂y_S4D/∂b| over every trial and input.

    Args:
        u: inputs (samples, trials, length) float64; trial j uses row j of every parameter.
        params: from :func:`draw`.
    """
    import ssmzoo

    s, t, _ = u.shape
    A, B, C = params["A"], params["B"], params["C"]
    w = params["w"][None].expand(s, t).clone().requires_grad_(True)     # (s, t): one copy per draw
    b6 = params["b"][None].expand(s, t).clone().requires_grad_(True)    # (s, t)
    b4 = params["b"][None].expand(s, t).clone().requires_grad_(True)    # (s, t)
    u_c = u.to(torch.complex128)
    B_t = _interleave(B[None, :, :, None] * u_c[:, :, None, :])  # (s, t, n, 2l): B_k = B u_k
    C_t = _interleave(C[None, :, :, None] * u_c[:, :, None, :])  # (s, t, n, 2l): C_k = u_k C
    delta6 = w[..., None] * u + b6[..., None]                   # (s, t, l)
    y6 = ssmzoo.selective_scan(u, delta6, A, B_t, C_t, delta_softplus=True,
                               discretization="zoh")            # (s, t, l)
    delta4 = b4[..., None].expand_as(u)                         # (s, t, l)
    y4 = ssmzoo.selective_scan(u, delta4, A, B, C, delta_softplus=True,
                               discretization="zoh")            # (s, t, l)
    gw, gb6 = torch.autograd.grad(y6[..., -1].sum(), (w, b6))
    (gb4,) = torch.autograd.grad(y4[..., -1].sum(), (b4,))
    return {"s6_w": float(gw.abs().mean()), "s6_b": float(gb6.abs().mean()),
            "s4d_b": float(gb4.abs().mean())}


def scale_sweep(scales: Sequence[float], *, length: int = 100, spec: DrawSpec | None = None,
                seed: int = 0) -> list[dict[str, float]]:
    """Theorem 3, Part 1: the gradient ratios against the input scale c (inputs N(0, c²)).

    The same parameters and the same standard-normal draws are used at every c, so the curve
    shows the effect of c alone. Returns one row per c: c, length, the three means and the
    ratios ``ratio_w`` = E|∂y_S6/∂w| / E|∂y_S4D/∂b| and ``ratio_b`` = E|∂y_S6/∂b| / E|∂y_S4D/∂b|.
    """
    spec = spec or DrawSpec()
    params = draw(spec, seed)
    g = torch.Generator().manual_seed(seed + 1)
    xi = torch.randn(spec.samples, spec.trials, length, generator=g, dtype=torch.float64)
    rows = []
    for c in scales:
        m = gradient_means(c * xi, params)
        rows.append({"c": float(c), "length": float(length), **m,
                     "ratio_w": m["s6_w"] / m["s4d_b"], "ratio_b": m["s6_b"] / m["s4d_b"]})
    return rows


def length_sweep(lengths: Sequence[int], *, memory: float = 1.0, scale: float = 1.0,
                 spec: DrawSpec | None = None, seed: int = 0) -> list[dict[str, float]]:
    """Theorem 3, Part 2: the ratio E|∂y_S6/∂b| / E|∂y_S4D/∂b| against L, with w = 0 and
    L·e^{b(L)} = ``memory`` held fixed (b(L) = log(memory / L): the memory spans the sequence).

    Returns one row per L: c, length, b, the three means and ``ratio_b``.
    """
    spec = spec or DrawSpec()
    params = draw(spec, seed)
    g = torch.Generator().manual_seed(seed + 1)
    xi = torch.randn(spec.samples, spec.trials, max(lengths), generator=g, dtype=torch.float64)
    rows = []
    for L in lengths:
        b = math.log(memory / L)
        p = dict(params, w=torch.zeros(spec.trials, dtype=torch.float64),
                 b=torch.full((spec.trials,), b, dtype=torch.float64))
        m = gradient_means(scale * xi[..., :L], p)
        rows.append({"c": float(scale), "length": float(L), "b": b, **m,
                     "ratio_b": m["s6_b"] / m["s4d_b"]})
    return rows


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """The least-squares slope of log y against log x."""
    lx = torch.log(torch.tensor(x, dtype=torch.float64))
    ly = torch.log(torch.tensor(y, dtype=torch.float64))
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx * ly).sum() / (lx * lx).sum())

