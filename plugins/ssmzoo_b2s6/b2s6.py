"""B2S6: block-biased selective state space (Yu & Erichson, "Block-Biased Mamba for Long-Range
Sequence Processing", NeurIPS 2025, arXiv 2505.09022), Algorithm 2.

The d channels are split into h blocks of p = d/h. Block j, from its own inputs ʲu_t (p,) only:

    Δ_t^(i) = softplus(ʲw · ʲu_t + ʲb^(i))                rank-1 selection, per-channel bias
    B_t     = ʲB_weight ʲu_t            (n,)              input-dependent, shared by the block
    C_t     = ʲu_tᵀ ʲC                  (n,)
    h_t^(i) = exp(Δ_t^(i) A) h_{t-1}^(i) + (exp(Δ_t^(i) A) - 1)/A (B_t + ʲB_bias^(i)) u_t^(i)
    y_t^(i) = 2 Re(C_t · h_t^(i)) + D^(i) u_t^(i)

with one complex diagonal A (n,) shared by every channel, and the channel-specific,
input-independent ʲB_bias^(i) added to B before discretisation. It runs as one call of
``ssmzoo.selective_scan`` with B and C grouped (groups = h) and ``B_bias``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from ssmzoo.errors import HyperparameterTypeError
from ssmzoo.hparams import PositiveFloat, PositiveInt, Rule, check_hparams
from ssmzoo.models.checks import check_sequence, check_step
from ssmzoo.models.inits import as_complex, dt_bias_init, no_weight_decay, optim_hint, s4d_A_init
from ssmzoo.models.io import Saveable
from ssmzoo.models.spectrum import SpectrumScaled

__all__ = ["B2S6"]


def _uniform(*shape: int, bound: float) -> Tensor:
    return (torch.rand(*shape) * 2 - 1) * bound


class B2S6(SpectrumScaled, Saveable, nn.Module):
    """B2S6 core: h blocks with their own Δ, B, C; a per-channel B bias; one shared complex A.

    (batch, length, d_model) -> (batch, length, d_model). Special cases: h=1 with bias=false is
    S6 with a rank-1 broadcast Δ (``s6-alg2``); B_weight = 0 leaves each channel its own fixed
    input matrix B_bias^(i), as in S4D, while Δ and C stay selective.

    Choices the paper leaves open (it gives no initialisation and no Δ learning rate), made here: A
    is S4D-Lin (-1/2 + i pi n) by default, S4D-Inv as an option; B_bias is complex randn / sqrt(n)
    (``bias_init=ones`` for ones); B_weight and C take PyTorch's Linear init, U(±1/sqrt(p)), on
    each of the real and imaginary parts, and C is complex like B (read out as 2 Re, as s4d.py);
    the Δ bias is log-uniform on [dt_min, dt_max] through the inverse softplus and w ~
    U(±1/sqrt(p)); D is ones; w and the Δ bias train at ``dt_lr_scale`` times the base learning
    rate (0.1: the paper lowers it for LRA without saying by how much), and A, D, Δ bias and B_bias
    have no weight decay. Each channel keeps d_state/2 complex modes, which with the 2·Re read-out
    stand for d_state real dimensions.

    Args:
        h: number of blocks (each of p = d_model / h channels with its own Δ, B and C)
        d_state: real state size per channel (d_state/2 complex modes when complex)
        bias: add the channel-specific, input-independent B_bias to B
        complex: complex A, B_weight, B_bias and C (the paper's LRA setup) instead of real
        discretization: input coefficient: zoh ((exp(ΔA) - 1)/A, the paper) or euler (Δ, mamba_ssm)
        init: A's initialisation; auto = lin (S4D-Lin) when complex, real (S4D-Real) when real
        bias_init: B_bias initialisation: randn (complex randn / sqrt(modes)) or ones
        dt_lr_scale: learning-rate factor of the Δ selection parameters w and Δ bias
        train_dt: false freezes w and the Δ bias (the stable setting of the paper's App. E.2)
        dt_min: smallest initial Δ (log-uniform, through the inverse-softplus bias)
        dt_max: largest initial Δ
    """

    hparam_rules = (
        Rule("dt_min <= dt_max", lambda dt_min, dt_max: dt_min <= dt_max),
        Rule("an even d_state when complex=true", lambda complex, d_state: not complex or d_state % 2 == 0),
        Rule("init=real or auto when complex=false (S4D-Lin and S4D-Inv need complex=true)",
             lambda complex, init: complex or init in ("real", "auto")),
    )

    def __init__(self, d_model: PositiveInt, *, h: PositiveInt = 8, d_state: PositiveInt = 16,
                 bias: bool = True, complex: bool = True,
                 discretization: Literal["zoh", "euler"] = "zoh",
                 init: Literal["auto", "lin", "inv", "real"] = "auto",
                 bias_init: Literal["randn", "ones"] = "randn", dt_lr_scale: PositiveFloat = 0.1,
                 train_dt: bool = True, dt_min: PositiveFloat = 1e-3,
                 dt_max: PositiveFloat = 0.1) -> None:
        check_hparams(B2S6, "unit 'b2s6'", locals())
        super().__init__()
        if d_model % h:
            divisors = [k for k in range(1, d_model + 1) if d_model % k == 0]
            raise HyperparameterTypeError("unit 'b2s6'", "h", f"a divisor of d_model={d_model} "
                                          f"({', '.join(map(str, divisors))})", h)
        init = ("lin" if complex else "real") if init == "auto" else init
        self.d_model, self.h, self.p, self.d_state = d_model, h, d_model // h, d_state
        self.is_complex, self.discretization = complex, discretization
        self.has_bias = bias
        m = d_state // 2 if complex else d_state  # modes per channel
        self.n_modes = m
        cshape = (2,) if complex else ()
        bound = 1 / math.sqrt(self.p)
        self.B_weight = nn.Parameter(_uniform(h, m, self.p, *cshape, bound=bound))  # (h, m, p[, 2])
        self.C_weight = nn.Parameter(_uniform(h, self.p, m, *cshape, bound=bound))  # (h, p, m[, 2])
        if bias:
            if bias_init == "ones":
                b0 = torch.ones(d_model, m, *cshape)
                if complex:
                    b0[..., 1] = 0
            else:
                b0 = torch.randn(d_model, m, *cshape) / math.sqrt(m * (2 if complex else 1))
            self.B_bias = no_weight_decay(nn.Parameter(b0))                    # (d, m[, 2])
        else:
            self.register_parameter("B_bias", None)
        self.dt_weight = nn.Parameter(_uniform(h, self.p, bound=bound))            # (h, p)
        self.dt_bias = nn.Parameter(dt_bias_init((d_model,), dt_min, dt_max))       # (d,)
        optim_hint(self.dt_weight, lr_scale=dt_lr_scale)
        optim_hint(self.dt_bias, lr_scale=dt_lr_scale, weight_decay=0.0)
        self.dt_weight.requires_grad_(train_dt)
        self.dt_bias.requires_grad_(train_dt)
        log_re, im = s4d_A_init(m, init)
        self.A_log = no_weight_decay(nn.Parameter(log_re))                          # (m,)
        if complex:
            self.A_imag = no_weight_decay(nn.Parameter(im))                          # (m,)
        self.D = no_weight_decay(nn.Parameter(torch.ones(d_model)))                  # (d,)
        self.init_spectrum()

    # ---- parameters ---------------------------------------------------------------------------
    def _c(self, t: Tensor) -> Tensor:
        return as_complex(t) if self.is_complex else t

    def effective_A(self) -> Tensor:
        """A: (d_model, modes), the one diagonal shared by every channel; spectrum-scaled."""
        shape = (self.d_model, self.n_modes)  # a per-channel scale may differ between channels
        imag = self.A_imag.expand(shape) if self.is_complex else None
        return self.scaled_A(self.A_log.expand(shape), imag)                      # (d, m)

    def _selection(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (..., d) -> Δ before bias (..., d), B (..., h, m), C (..., h, m), per block."""
        xb = rearrange(x, "... (h p) -> ... h p", h=self.h)                        # (..., h, p)
        dt = torch.einsum("...hp,hp->...h", xb, self.dt_weight)                    # (..., h)
        dt = repeat(dt, "... h -> ... (h p)", p=self.p)                            # (..., d)
        B = torch.einsum("...hp,hmp->...hm", xb.to(self._c(self.B_weight).dtype),
                         self._c(self.B_weight))                                   # (..., h, m)
        C = torch.einsum("...hp,hpm->...hm", xb.to(self._c(self.C_weight).dtype),
                         self._c(self.C_weight))                                   # (..., h, m)
        return dt, B, C

    def _scan_selection(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (b, l, d) -> Δ before bias (b, d, l) and B, C straight in the scan's layout:
        (b, h, m, l), or (b, h, m, 2l) with real and imaginary parts interleaved along time.

        The same products as :meth:`_selection`, as real einsums over the (..., 2) real storage
        of the complex weights: no complex copy of x, and the einsum writes the interleaved
        layout itself."""
        xb = rearrange(x, "b l (h p) -> b l h p", h=self.h)
        dt = torch.einsum("blhp,hp->bhl", xb, self.dt_weight)                     # (b, h, l)
        dt = repeat(dt, "b h l -> b (h p) l", p=self.p)                            # (b, d, l)
        if not self.is_complex:
            B = torch.einsum("blhp,hmp->bhml", xb, self.B_weight)                  # (b, h, m, l)
            C = torch.einsum("blhp,hpm->bhml", xb, self.C_weight)                  # (b, h, m, l)
            return dt, B, C
        # complex weights: products in the weights' precision (at least float32) whatever the
        # autocast dtype, as the complex ones were
        with torch.autocast(x.device.type, enabled=False):
            dtype = torch.promote_types(self.B_weight.dtype, torch.float32)
            xf = xb.to(dtype)
            B = torch.einsum("blhp,hmpc->bhmlc", xf, self.B_weight.to(dtype))     # (b,h,m,l,2)
            C = torch.einsum("blhp,hpmc->bhmlc", xf, self.C_weight.to(dtype))
        return dt, B.flatten(3), C.flatten(3)                                      # (b,h,m,2l)

    # ---- sequence and step -----------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """x: (batch, length, d_model) -> (batch, length, d_model)."""
        check_sequence("unit 'b2s6'", x, self.d_model, dtype_of=self.dt_weight)
        return self._scan(x, last=False)

    def prefill(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``forward(x)`` and the state after its last step (as ``step`` would leave it), from
        one full-sequence scan."""
        check_sequence("unit 'b2s6'", x, self.d_model, dtype_of=self.dt_weight)
        y, state = self._scan(x, last=True)
        return y, state.to(self.init_state(0).dtype)  # the scan's accumulation dtype -> step's

    def _scan(self, x: Tensor, *, last: bool) -> Tensor | tuple[Tensor, Tensor]:
        import ssmzoo

        delta, B, C = self._scan_selection(x)         # (b, d, l), (b, h, m, l or 2l) x2
        bias, softplus = self.dt_bias, True
        if self.delta_scale() is not None:  # MambaExtend: scale Δ after the softplus
            delta = self.scaled_delta(F.softplus(delta + bias[:, None]), channel_dim=1)
            bias, softplus = None, False
        B_bias = None if self.B_bias is None else self._c(self.B_bias)
        u = rearrange(x, "b l d -> b d l")
        # under autocast the projections give a half-precision Δ while x may be float32: the
        # scan takes u and Δ in one dtype (as mamba_ssm's kernel does)
        out = ssmzoo.selective_scan(u, delta.to(u.dtype), self.effective_A(), B, C,
                                    D=self.D, delta_bias=bias, delta_softplus=softplus,
                                    B_bias=B_bias, discretization=self.discretization,
                                    return_last_state=last)
        if last:
            return rearrange(out[0], "b d l -> b l d"), out[1]
        return rearrange(out, "b d l -> b l d")

    def init_state(self, batch: int) -> Tensor:
        """Zero state: (batch, d_model, modes), complex when ``complex``."""
        p = self.A_log
        dtype = p.dtype
        if self.is_complex:
            dtype = torch.complex128 if p.dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.d_model, self.n_modes, dtype=dtype, device=p.device)

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One token: x_t (batch, d_model) -> (y_t (batch, d_model), state)."""
        check_step("unit 'b2s6'", self, x_t, state, self.d_model, dtype_of=self.dt_weight)
        raw, B, C = self._selection(x_t)                          # (b, d), (b, h, m), (b, h, m)
        dt = self.scaled_delta(F.softplus(raw + self.dt_bias))   # (b, d)
        A = self.effective_A()                                    # (d, m)
        B = repeat(B, "b h m -> b (h p) m", p=self.p)             # (b, d, m)
        C = repeat(C, "b h m -> b (h p) m", p=self.p)             # (b, d, m)
        if self.B_bias is not None:
            B = B + self._c(self.B_bias)
        dA = torch.exp(dt[:, :, None] * A)                        # (b, d, m)
        coef = (dA - 1) / A if self.discretization == "zoh" else dt[:, :, None]
        state = dA * state + coef * B * x_t[:, :, None]           # (b, d, m)
        y = (state * C).sum(-1)                                   # (b, d)
        y = 2 * y.real if self.is_complex else y
        return (y + self.D * x_t).to(x_t.dtype), state

    def state_size(self) -> int:
        """Floats of recurrent state per sequence: d_model * d_state."""
        return self.d_model * self.d_state

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, h={self.h}, p={self.p}, d_state={self.d_state}, "
                f"bias={self.has_bias}, complex={self.is_complex}, "
                f"discretization={self.discretization!r}")
