"""S6: the selective state-space core of Mamba (Gu & Dao 2023), with Δ, B and C from the input.

Per channel c, mode n, with Δ_t = softplus(s_Δ(u_t) + bias), B_t = W_B u_t, C_t = W_C u_t shared by
every channel:

    h_t = exp(Δ_tc A_cn) h_{t-1} + Δ_tc B_tn u_tc          (Euler input, as mamba_ssm)
    y_t = sum_n C_tn h_tn + D_c u_tc                         (2 Re(.) when A is complex)

s_Δ is mamba_ssm's low-rank map Linear_d(Linear_r(u)) with r = ``dt_rank`` ("auto" = ceil(d/16)),
or, with ``dt_broadcast``, Algorithm 2 of the Mamba paper: Broadcast_d(Linear_1(u)), the S6 that
the B2S6 paper analyses (variant ``s6-alg2``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from ssmzoo.hparams import PositiveFloat, PositiveInt, Rule, check_hparams
from ssmzoo.models.checks import check_sequence, check_step
from ssmzoo.models.inits import (
    dt_bias_init,
    no_weight_decay,
    s4d_A_init,
    s4d_real_A_log,
)
from ssmzoo.models.io import Saveable
from ssmzoo.models.spectrum import SpectrumScaled

__all__ = ["S6"]


class S6(SpectrumScaled, Saveable, nn.Module):
    """S6 core: input-dependent Δ, B, C; A S4D-Real (mamba_ssm) or complex; D skip.

    (batch, length, d_model) -> (batch, length, d_model); no expansion, convolution or gate (the
    ``mamba`` block adds those). With ``complex``, each channel keeps d_state/2 complex modes and
    B_t, C_t are complex (the same count of real numbers), read out as 2·Re.

    Args:
        d_state: real state size per channel (d_state/2 complex modes when complex)
        dt_rank: rank of the Δ projection; "auto" = ceil(d_model / 16) as mamba_ssm, 1 = Algorithm 2
        dt_broadcast: Δ = softplus(Broadcast(w·u) + bias), no per-channel up-projection (needs dt_rank=1)
        complex: complex diagonal A, B and C (2·Re read-out) instead of real
        init: A's initialisation; auto = real (S4D-Real) when real, lin (S4D-Lin) when complex
        discretization: input coefficient: euler (Δ·B, mamba_ssm) or zoh ((exp(ΔA) - 1)/A·B)
        dt_min: smallest initial Δ (log-uniform, through the inverse-softplus bias)
        dt_max: largest initial Δ
        dt_init_floor: lower clamp of the initial Δ
        dt_scale: scale of the Δ projection's initial weights
    """

    hparam_rules = (
        Rule("dt_min <= dt_max", lambda dt_min, dt_max: dt_min <= dt_max),
        Rule("dt_rank=1 when dt_broadcast=true",
             lambda dt_broadcast, dt_rank: not dt_broadcast or dt_rank == 1),
        Rule("an even d_state when complex=true", lambda complex, d_state: not complex or d_state % 2 == 0),
        Rule("init=real or auto when complex=false (S4D-Lin and S4D-Inv need complex=true)",
             lambda complex, init: complex or init in ("real", "auto")),
    )

    def __init__(self, d_model: PositiveInt, *, d_state: PositiveInt = 16,
                 dt_rank: PositiveInt | Literal["auto"] = "auto", dt_broadcast: bool = False,
                 complex: bool = False, init: Literal["auto", "lin", "inv", "real"] = "auto",
                 discretization: Literal["euler", "zoh"] = "euler", dt_min: PositiveFloat = 1e-3,
                 dt_max: PositiveFloat = 0.1, dt_init_floor: PositiveFloat = 1e-4,
                 dt_scale: PositiveFloat = 1.0) -> None:
        check_hparams(S6, "unit 's6'", locals())
        super().__init__()
        rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        init = ("lin" if complex else "real") if init == "auto" else init
        self.d_model, self.d_state, self.dt_rank = d_model, d_state, rank
        self.dt_broadcast, self.is_complex, self.discretization = dt_broadcast, complex, discretization
        self.x_proj = nn.Linear(d_model, rank + 2 * d_state, bias=False)
        if not dt_broadcast:
            self.dt_proj = nn.Linear(rank, d_model, bias=False)
            std = rank ** -0.5 * dt_scale
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        self.dt_bias = no_weight_decay(nn.Parameter(
            dt_bias_init((d_model,), dt_min, dt_max, dt_init_floor)))              # (d,)
        if complex:
            log_re, im = s4d_A_init(d_state // 2, init)
            self.A_log = nn.Parameter(repeat(log_re, "m -> d m", d=d_model).clone())  # (d, m)
            self.A_imag = no_weight_decay(nn.Parameter(repeat(im, "m -> d m", d=d_model).clone()))
        else:
            self.A_log = nn.Parameter(s4d_real_A_log(d_model, d_state))               # (d, n)
        no_weight_decay(self.A_log)
        self.D = no_weight_decay(nn.Parameter(torch.ones(d_model)))                   # (d,)
        self.init_spectrum()

    def effective_A(self) -> Tensor:
        """A: (d_model, d_state) real, or (d_model, d_state/2) complex; spectrum-scaled."""
        return self.scaled_A(self.A_log, self.A_imag if self.is_complex else None)

    def _selection(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (..., d) -> Δ before bias (..., d), B (..., n) and C (..., n) (complex (..., n/2))."""
        raw, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], -1)
        if self.dt_broadcast:
            delta = raw.expand(*raw.shape[:-1], self.d_model)                     # (..., d)
        else:
            delta = self.dt_proj(raw)                                             # (..., d)
        if self.is_complex:
            # a copy, not .contiguous(): with batch 1 the split's slice already counts as
            # contiguous, at an odd storage offset, which view_as_complex refuses
            pairs = "... (m two) -> ... m two"
            B = torch.view_as_complex(rearrange(B, pairs, two=2).clone(
                memory_format=torch.contiguous_format))
            C = torch.view_as_complex(rearrange(C, pairs, two=2).clone(
                memory_format=torch.contiguous_format))
        return delta, B, C

    def forward(self, x: Tensor) -> Tensor:
        """x: (batch, length, d_model) -> (batch, length, d_model)."""
        check_sequence("unit 's6'", x, self.d_model, dtype_of=self.x_proj.weight)
        return self._scan(x, last=False)

    def prefill(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``forward(x)`` and the state after its last step (as ``step`` would leave it), from
        one full-sequence scan: a prompt costs one scan, not a step per token."""
        check_sequence("unit 's6'", x, self.d_model, dtype_of=self.x_proj.weight)
        y, state = self._scan(x, last=True)
        return y, state.to(self.init_state(0).dtype)  # the scan's accumulation dtype -> step's

    def _scan(self, x: Tensor, *, last: bool) -> Tensor | tuple[Tensor, Tensor]:
        import ssmzoo

        raw, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], -1)
        if self.dt_broadcast:
            delta = repeat(raw[..., 0], "b l -> b d l", d=self.d_model)
        else:
            delta = rearrange(self.dt_proj(raw), "b l d -> b d l")
        pattern = "b l (m two) -> b m (l two)" if self.is_complex else "b l n -> b n l"
        B = rearrange(B, pattern, two=2) if self.is_complex else rearrange(B, pattern)
        C = rearrange(C, pattern, two=2) if self.is_complex else rearrange(C, pattern)
        bias, softplus = self.dt_bias, True
        if self.delta_scale() is not None:  # MambaExtend: scale Δ after the softplus
            delta = self.scaled_delta(F.softplus(delta + bias[:, None]), channel_dim=1)
            bias, softplus = None, False
        u = rearrange(x, "b l d -> b d l")
        # under autocast the projections give a half-precision Δ while x may be float32: the
        # scan takes u and Δ in one dtype (as mamba_ssm's kernel does)
        out = ssmzoo.selective_scan(u, delta.to(u.dtype), self.effective_A(), B, C,
                                    D=self.D, delta_bias=bias, delta_softplus=softplus,
                                    discretization=self.discretization, return_last_state=last)
        if last:
            return rearrange(out[0], "b d l -> b l d"), out[1]
        return rearrange(out, "b d l -> b l d")

    def init_state(self, batch: int) -> Tensor:
        """Zero state: (batch, d_model, d_state) real or (batch, d_model, d_state/2) complex."""
        p = self.A_log
        if not self.is_complex:
            return torch.zeros(batch, self.d_model, self.d_state, dtype=p.dtype, device=p.device)
        cdtype = torch.complex128 if p.dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.d_model, self.d_state // 2, dtype=cdtype, device=p.device)

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One token: x_t (batch, d_model) -> (y_t (batch, d_model), state)."""
        check_step("unit 's6'", self, x_t, state, self.d_model, dtype_of=self.x_proj.weight)
        raw, B, C = self._selection(x_t)                                  # (b, d), (b, n), (b, n)
        dt = self.scaled_delta(F.softplus(raw + self.dt_bias))            # (b, d)
        A = self.effective_A()                                            # (d, n)
        dA = torch.exp(dt[:, :, None] * A)                                # (b, d, n)
        if self.discretization == "zoh":
            dB = (dA - 1) / A * B[:, None, :]                             # (b, d, n)
        else:
            dB = dt[:, :, None] * B[:, None, :]                           # (b, d, n)
        state = dA * state + dB * x_t[:, :, None]                         # (b, d, n)
        y = torch.einsum("bdn,bn->bd", state, C)                          # (b, d)
        y = 2 * y.real if self.is_complex else y
        return (y + self.D * x_t).to(x_t.dtype), state

    def state_size(self) -> int:
        """Floats of recurrent state per sequence: d_model * d_state."""
        return self.d_model * self.d_state

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
                f"complex={self.is_complex}, discretization={self.discretization!r}")
