"""S4D: a diagonal state-space layer with fixed (input-independent) Δ, B and C.

Gu, Gupta, Goel & Ré, "On the Parameterization and Initialization of Diagonal State Space Models"
(NeurIPS 2022); the layout follows ``state-spaces/s4:models/s4/s4d.py``. Per channel c and mode n:

    h_t = exp(Δ_c A_cn) h_{t-1} + (exp(Δ_c A_cn) - 1) / A_cn * B_cn u_t      (zero-order hold)
    y_t = 2 Re(sum_n C_cn h_t) + D_c u_t

which is the convolution y = K * u + D u with the Vandermonde kernel
K_l = 2 Re sum_n C_cn B_cn (exp(Δ_c A_cn) - 1) / A_cn exp(l Δ_c A_cn).
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from ssmzoo.hparams import (
    EvenPositiveInt,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Rule,
    check_hparams,
)
from ssmzoo.models.checks import check_sequence, check_step
from ssmzoo.models.inits import as_complex, log_dt_init, no_weight_decay, optim_hint, s4d_A_init
from ssmzoo.models.io import Saveable
from ssmzoo.models.spectrum import SpectrumScaled

__all__ = ["S4D"]



def _powers(dtA: Tensor, pos: Tensor) -> Tensor:
    """exp(ΔA · pos) for ΔA (d, m) complex and positions (l,): (d, m, l), as |.| by a real exp
    and the phase by cos/sin (torch.polar), 2.5x faster than a complex exp on a CPU."""
    return torch.polar(torch.exp(dtA.real[:, :, None] * pos), dtA.imag[:, :, None] * pos)

class S4D(SpectrumScaled, Saveable, nn.Module):
    """S4D core: per-channel Δ, complex diagonal A, complex B and C, ZOH; FFT convolution.

    (batch, length, d_model) -> (batch, length, d_model). No activation or output mixing: models
    add S4's GELU + GLU output (``mixer_out``). Each channel keeps d_state/2 complex modes, which
    with the 2·Re read-out stand for d_state real state dimensions (S4's convention).

    Args:
        d_state: real state size N per channel (N/2 complex conjugate-pair modes), as s4d.py's N
        init: A's initialisation: S4D-Lin (-1/2 + i pi n), S4D-Inv or S4D-Real (-(n+1))
        dt_min: smallest initial Δ (log-uniform initialisation)
        dt_max: largest initial Δ (log-uniform initialisation)
        mode: fft trains by FFT convolution with the Vandermonde kernel, scan runs selective_scan
        ssm_lr: cap on the learning rate of Δ, A and B (S4's convention, 0.001); 0 = base lr
    """

    hparam_rules = (Rule("dt_min <= dt_max", lambda dt_min, dt_max: dt_min <= dt_max),)

    def __init__(self, d_model: PositiveInt, *, d_state: EvenPositiveInt = 64,
                 init: Literal["lin", "inv", "real"] = "lin", dt_min: PositiveFloat = 1e-3,
                 dt_max: PositiveFloat = 0.1, mode: Literal["fft", "scan"] = "fft",
                 ssm_lr: NonNegativeFloat = 1e-3) -> None:
        check_hparams(S4D, "unit 's4d'", locals())
        super().__init__()
        self.d_model, self.d_state, self.n_modes, self.mode = d_model, d_state, d_state // 2, mode
        m = self.n_modes
        log_re, im = s4d_A_init(m, init)
        self.log_dt = nn.Parameter(log_dt_init((d_model,), dt_min, dt_max))            # (d,)
        self.log_A_real = nn.Parameter(repeat(log_re, "n -> d n", d=d_model).clone())  # (d, m)
        self.A_imag = nn.Parameter(repeat(im, "n -> d n", d=d_model).clone())          # (d, m)
        self.B = nn.Parameter(torch.stack([torch.ones(d_model, m), torch.zeros(d_model, m)], -1))
        self.C = nn.Parameter(torch.randn(d_model, m, 2) * 0.5 ** 0.5)  # complex randn (d, m)
        self.D = nn.Parameter(torch.randn(d_model))                                    # (d,)
        ssm_hint = {"weight_decay": 0.0} | ({"lr_max": ssm_lr} if ssm_lr > 0 else {})
        for p in (self.log_dt, self.log_A_real, self.A_imag, self.B):
            optim_hint(p, **ssm_hint)
        no_weight_decay(self.D)
        self.init_spectrum()

    # ---- parameters -> discretisation ----------------------------------------------------------
    def effective_A(self) -> Tensor:
        """A: (d_model, d_state/2) complex, after this layer's spectrum scaling."""
        return self.scaled_A(self.log_A_real, self.A_imag)

    def dt(self) -> Tensor:
        """Δ: (d_model,), after the spectrum scaling in ``delta`` mode."""
        return self.scaled_delta(torch.exp(self.log_dt))

    def _discrete(self) -> tuple[Tensor, Tensor, Tensor]:
        """(dA, dB, C): exp(ΔA), (exp(ΔA) - 1)/A * B and C, each (d_model, d_state/2) complex."""
        A = self.effective_A()                                    # (d, m)
        dtA = self.dt()[:, None] * A                              # (d, m)
        dA = torch.exp(dtA)
        dB = (dA - 1) / A * as_complex(self.B)
        return dA, dB, as_complex(self.C)

    def kernel(self, length: int) -> Tensor:
        """The convolution kernel K: (d_model, length), by a Vandermonde product."""
        A = self.effective_A()
        dtA = self.dt()[:, None] * A                                         # (d, m)
        dB = (torch.exp(dtA) - 1) / A * as_complex(self.B)                   # (d, m)
        pos = torch.arange(length, device=A.device, dtype=dtA.real.dtype)
        vander = _powers(dtA, pos)                                           # (d, m, l)
        return 2 * torch.einsum("dm,dml->dl", as_complex(self.C) * dB, vander).real  # (d, l)

    # ---- sequence and step -----------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """x: (batch, length, d_model) -> (batch, length, d_model)."""
        check_sequence("unit 's4d'", x, self.d_model, dtype_of=self.D)
        u = rearrange(x, "b l d -> b d l")
        length = u.shape[-1]
        if self.mode == "fft" and u.shape[0] == 0:  # an FFT of no sequences fails (oneMKL)
            return x * self.D
        if self.mode == "fft":
            k = self.kernel(length)                                          # (d, l)
            n = 2 * length
            y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :length]
            y = y + u * self.D[:, None]                                      # (b, d, l)
        else:
            import ssmzoo

            A = self.effective_A()
            delta = repeat(self.dt(), "d -> b d l", b=u.shape[0], l=length).to(u.dtype)
            y = ssmzoo.selective_scan(u, delta, A, as_complex(self.B), as_complex(self.C),
                                      D=self.D, discretization="zoh")
        return rearrange(y, "b d l -> b l d")

    def prefill(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``forward(x)`` and the state after its last step, in parallel: the recurrence is time
        invariant, so h_L = Σ_t exp(ΔA)^(L-1-t) B̄ u_t, one contraction with the powers of the
        decay (as the convolution kernel is)."""
        y = self.forward(x)
        u = rearrange(x, "b l d -> b d l")
        A = self.effective_A()
        dtA = self.dt()[:, None] * A                                         # (d, m)
        dB = (torch.exp(dtA) - 1) / A * as_complex(self.B)                   # (d, m)
        back = torch.arange(u.shape[-1] - 1, -1, -1, device=A.device, dtype=dtA.real.dtype)
        W = dB[:, :, None] * _powers(dtA, back)                              # (d, m, l)
        # u is real: two real batched matmuls over the channels, not a complex einsum
        ud = rearrange(u, "b d l -> d b l").to(W.real.dtype)
        re = torch.bmm(ud, W.real.transpose(1, 2))                           # (d, b, m)
        im = torch.bmm(ud, W.imag.transpose(1, 2))                           # (d, b, m)
        state = rearrange(torch.complex(re, im), "d b m -> b d m")
        return y, state.to(self.init_state(0).dtype)

    def init_state(self, batch: int) -> Tensor:
        """Zero state: (batch, d_model, d_state/2) complex."""
        p = self.log_A_real
        cdtype = torch.complex128 if p.dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.d_model, self.n_modes, dtype=cdtype, device=p.device)

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One token: x_t (batch, d_model), state (batch, d_model, d_state/2) -> (y_t, state)."""
        check_step("unit 's4d'", self, x_t, state, self.d_model, dtype_of=self.D)
        dA, dB, C = self._discrete()
        state = dA * state + dB * x_t[:, :, None]                            # (b, d, m)
        y = 2 * torch.einsum("bdm,dm->bd", state, C).real + self.D * x_t     # (b, d)
        return y.to(x_t.dtype), state

    def state_size(self) -> int:
        """Floats of recurrent state per sequence: d_model * d_state."""
        return self.d_model * self.d_state

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, d_state={self.d_state}, mode={self.mode!r}"
