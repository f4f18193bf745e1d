"""Initialisation recipes shared by the families, each named after the paper it comes from.

Complex parameters are stored as real tensors with a trailing axis of 2 (real, imaginary), as
s4d.py does, so that ``module.to(torch.float64)`` keeps their imaginary part, AdamW treats both
parts alike and safetensors stores them; :func:`as_complex` views them as complex.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

__all__ = ["inv_softplus", "dt_bias_init", "log_dt_init", "s4d_A_init", "s4d_real_A_log",
           "as_complex", "no_weight_decay", "optim_hint", "AInit"]

AInit = Literal["lin", "inv", "real"]


def inv_softplus(x: Tensor) -> Tensor:
    """softplus^{-1}(x) = x + log(-expm1(-x)), for x > 0 (mamba_ssm's dt bias recipe)."""
    return x + torch.log(-torch.expm1(-x))


def _log_uniform(shape: tuple[int, ...], lo: float, hi: float) -> Tensor:
    return torch.exp(torch.rand(shape) * (math.log(hi) - math.log(lo)) + math.log(lo))


def dt_bias_init(shape: tuple[int, ...], dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4) -> Tensor:
    """Δ bias such that softplus(bias) is log-uniform on [dt_min, dt_max] (Gu & Dao 2023, mamba_ssm).

    Returns the bias (pre-softplus), of the given shape.
    """
    dt = _log_uniform(shape, dt_min, dt_max).clamp(min=dt_init_floor)
    return inv_softplus(dt)


def log_dt_init(shape: tuple[int, ...], dt_min: float = 1e-3, dt_max: float = 0.1) -> Tensor:
    """log Δ uniform on [log dt_min, log dt_max] (S4D, Gu et al. 2022, ``S4DKernel``)."""
    return torch.rand(shape) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)


def s4d_A_init(n_modes: int, init: AInit = "lin") -> tuple[Tensor, Tensor]:
    """Diagonal A = -exp(log_A_real) + i * A_imag, as (log_A_real, A_imag), each (n_modes,).

    From Gu, Gupta, Goel & Ré, "On the Parameterization and Initialization of Diagonal State
    Space Models" (S4D, 2022): ``lin`` A_n = -1/2 + i*pi*n (S4D-Lin); ``inv`` A_n = -1/2 +
    i*(N/pi)*(N/(1+2n) - 1) with N = 2*n_modes real dimensions (S4D-Inv); ``real`` A_n = -(n+1)
    (S4D-Real, imaginary part 0, the init of mamba_ssm's A_log).
    """
    n = torch.arange(n_modes, dtype=torch.float32)
    if init == "lin":
        return torch.full((n_modes,), math.log(0.5)), math.pi * n
    if init == "inv":
        N = 2 * n_modes
        return torch.full((n_modes,), math.log(0.5)), (N / math.pi) * (N / (1 + 2 * n) - 1)
    if init == "real":
        return torch.log(n + 1), torch.zeros(n_modes)
    from ssmzoo.errors import HyperparameterTypeError

    raise HyperparameterTypeError("s4d_A_init", "init", "'lin' | 'inv' | 'real'", init)


def s4d_real_A_log(channels: int, n: int) -> Tensor:
    """mamba_ssm's A_log: log(1..n) for every channel, (channels, n) (S4D-Real)."""
    return torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(channels, 1)


def as_complex(t: Tensor) -> Tensor:
    """View a real (..., 2) parameter as complex (...)."""
    return torch.view_as_complex(t if t.stride(-1) == 1 else t.contiguous())


def optim_hint(p: torch.nn.Parameter, **hint: float) -> torch.nn.Parameter:
    """Attach optimiser hints (``weight_decay``, ``lr_scale``, ``lr_max``) to a parameter."""
    merged = dict(getattr(p, "_ssmzoo_optim", {}))
    merged.update(hint)
    p._ssmzoo_optim = merged  # type: ignore[attr-defined]
    return p


def no_weight_decay(p: torch.nn.Parameter) -> torch.nn.Parameter:
    """Mark a parameter as exempt from weight decay (A, D, Δ bias, B_bias: the S4 convention)."""
    return optim_hint(p, weight_decay=0.0)
