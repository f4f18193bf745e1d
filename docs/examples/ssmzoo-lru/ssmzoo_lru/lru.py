"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for
Long Sequences"), as an ssmzoo core unit.

Notation: batch = b, length = l, d_model = d, d_state = n (complex modes).
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from einops import rearrange
from torch import Tensor, nn

from ssmzoo.hparams import Ge, Le, PositiveFloat, PositiveInt, Rule, check_hparams
from ssmzoo.models.checks import check_sequence, check_step
from ssmzoo.models.io import Saveable
from ssmzoo.models.spectrum import SpectrumScaled


def ring_init(d_state: int, r_min: float, r_max: float, max_phase: float,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The LRU's eigenvalue initialisation (Orvieto et al. 2023, Lemma 3.2): lambda uniform on
    the ring ``r_min <= |lambda| <= r_max`` with phase in ``[0, max_phase]``.

    Returns ``(nu_log, theta_log)``, each (d_state,), with
    ``lambda = exp(-exp(nu_log) + i * exp(theta_log))``.
    """
    u1 = torch.rand(d_state, generator=generator)
    u2 = torch.rand(d_state, generator=generator)
    # |lambda|^2 uniform in [r_min^2, r_max^2] gives a uniform density on the ring's area
    nu = -0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2)
    theta = max_phase * u2
    return torch.log(nu), torch.log(theta.clamp_min(1e-8))


class LRU(SpectrumScaled, Saveable, nn.Module):
    """Linear Recurrent Unit: a diagonal complex linear recurrence with a normalised input.

    .. math::

        x_t = \\lambda \\odot x_{t-1} + \\gamma \\odot (B u_t), \\qquad
        y_t = \\operatorname{Re}(C x_t) + D \\odot u_t,

    with :math:`\\lambda = \\exp(-e^{\\nu} + i e^{\\theta})` (stable for every real
    :math:`\\nu, \\theta`) and :math:`\\gamma = \\sqrt{1 - |\\lambda|^2}`, so that a white-noise
    input keeps unit variance in the state. :math:`B` is (d_state, d_model) complex, :math:`C` is
    (d_model, d_state) complex, :math:`D` is (d_model,) real.

    The recurrence is time invariant, so ``forward`` computes it as a causal convolution with
    the kernel :math:`\\lambda^k` by FFT in O(l log l); ``step`` runs it one token at a time. The
    paper's parallel scan gives the same result.

    Choices where the paper leaves room: :math:`\\gamma` is a trained parameter initialised from
    :math:`\\lambda` (as in the paper's code), and :math:`\\nu, \\theta, \\gamma` carry the
    optimiser hint ``_ssmzoo_optim = {"weight_decay": 0.0}`` that ``ssmzoo.param_groups``
    reads. The unit follows ssmzoo's unit protocol: read as a discretised diagonal SSM with
    :math:`\\lambda = \\exp(\\Delta A)`, :math:`A = -e^{\\nu} + i e^{\\theta}` and
    :math:`\\Delta = 1`, it exposes :math:`A` to ``ssmzoo.modulate`` (``SpectrumScaled``), and
    ``save`` comes from ``Saveable``.

    Args:
        d_model: width of the input and output (d).
        d_state: number of complex modes (n).
        r_min: smallest initial eigenvalue modulus.
        r_max: largest initial eigenvalue modulus (below 1).
        max_phase: largest initial eigenvalue phase, in radians.

    Shapes: ``forward``: (batch, length, d_model) -> (batch, length, d_model);
    ``step``: (batch, d_model) and a state (batch, d_state) complex -> the same.

    >>> import torch
    >>> unit = LRU(d_model=8, d_state=16)
    >>> unit(torch.randn(2, 10, 8)).shape
    torch.Size([2, 10, 8])
    """

    # Checked with the ranges in the annotations wherever a spec is validated (resolve,
    # describe, grid run --check) and, through check_hparams, when the class is built directly.
    hparam_rules = (Rule("r_min < r_max", lambda r_min, r_max: r_min < r_max),)

    def __init__(self, d_model: PositiveInt, d_state: PositiveInt = 64,
                 r_min: Annotated[float, Ge(0), Le(1)] = 0.0,
                 r_max: Annotated[float, Ge(0), Le(1)] = 1.0,
                 max_phase: PositiveFloat = 2 * math.pi) -> None:
        check_hparams(LRU, "unit 'lru'", locals())
        super().__init__()
        self.init_spectrum()  # spectrum_scale (a buffer, 1) and spectrum_mode ("power")
        self.d_model, self.d_state = d_model, d_state
        nu_log, theta_log = ring_init(d_state, r_min, r_max, max_phase)
        self.nu_log = nn.Parameter(nu_log)  # (n,)
        self.theta_log = nn.Parameter(theta_log)  # (n,)
        modulus = torch.exp(-torch.exp(nu_log))  # (n,)
        self.gamma_log = nn.Parameter(0.5 * torch.log1p(-modulus**2))  # (n,)
        for p in (self.nu_log, self.theta_log, self.gamma_log):
            p._ssmzoo_optim = {"weight_decay": 0.0}  # type: ignore[attr-defined]
        # Glorot-like scales from the paper: B ~ N(0, 1/(2d)), C ~ N(0, 1/n), per real part
        self.B = nn.Parameter(torch.randn(d_state, d_model, 2) / math.sqrt(2 * d_model))
        self.C = nn.Parameter(torch.randn(d_model, d_state, 2) / math.sqrt(d_state))
        self.D = nn.Parameter(torch.randn(d_model))

    def effective_A(self) -> Tensor:
        """A = -exp(nu_log) + i exp(theta_log) after spectrum scaling: (d_state,) complex."""
        return self.scaled_A(self.nu_log, torch.exp(self.theta_log))

    def eigenvalues(self) -> Tensor:
        """lambda = exp(Delta A), Delta = 1 (scaled in ``delta`` mode): (d_state,) complex, every
        modulus below 1."""
        delta = self.scaled_delta(torch.ones((), dtype=self.nu_log.dtype,
                                             device=self.nu_log.device))
        return torch.exp(delta * self.effective_A())

    def _input(self, u: Tensor) -> Tensor:
        """gamma * (B u): (..., d_model) real -> (..., d_state) complex."""
        B = torch.view_as_complex(self.B) * torch.exp(self.gamma_log)[:, None]  # (n, d)
        return u.to(B.dtype) @ B.transpose(0, 1)  # (..., n)

    def _output(self, x: Tensor, u: Tensor) -> Tensor:
        """Re(C x) + D u: (..., d_state) complex and (..., d_model) -> (..., d_model)."""
        C = torch.view_as_complex(self.C)  # (d, n)
        return (x @ C.transpose(0, 1)).real + self.D * u  # (..., d)

    def forward(self, u: Tensor) -> Tensor:
        """(batch, length, d_model) -> (batch, length, d_model), in the parameters' precision."""
        # a clear error for a wrong shape, an empty sequence, or u in another dtype than the
        # parameters (or on another device), as the built-in units give
        check_sequence("unit 'lru'", u, self.d_model, dtype_of=self.nu_log, name="u")
        if u.shape[0] == 0:  # an FFT of no sequences fails (oneMKL)
            return u * self.D
        length, dtype = u.shape[1], self.nu_log.dtype
        bu = rearrange(self._input(u.to(dtype)), "b l n -> b n l")
        powers = torch.arange(length, device=u.device, dtype=dtype)  # (l,)
        kernel = self.eigenvalues()[:, None] ** powers  # (n, l): lambda^k
        fft_len = 2 * length
        x = torch.fft.ifft(torch.fft.fft(bu, n=fft_len) * torch.fft.fft(kernel, n=fft_len),
                           n=fft_len)[..., :length]  # (b, n, l): causal convolution
        x = rearrange(x, "b n l -> b l n")
        return self._output(x, u.to(dtype)).to(u.dtype)  # (b, l, d)

    def init_state(self, batch: int) -> Tensor:
        """The zero state: (batch, d_state) complex."""
        complex_dtype = torch.complex128 if self.nu_log.dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.d_state, dtype=complex_dtype, device=self.nu_log.device)

    def step(self, u_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One token: (batch, d_model) and (batch, d_state) -> (output, new state)."""
        # u_t as forward's u, and the state shaped as init_state(batch) gives it
        check_step("unit 'lru'", self, u_t, state, self.d_model, dtype_of=self.nu_log, name="u_t")
        dtype = self.nu_log.dtype
        state = self.eigenvalues() * state + self._input(u_t.to(dtype))  # (b, n)
        return self._output(state, u_t.to(dtype)).to(u_t.dtype), state

    def state_size(self) -> int:
        """Floats of recurrent state per sequence: two (real, imaginary) per mode."""
        return 2 * self.d_state
