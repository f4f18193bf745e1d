"""Per-layer spectrum scaling of A, shared by every unit that owns a state matrix.

A unit that owns A mixes in :class:`SpectrumScaled`, calls :meth:`~SpectrumScaled.init_spectrum`
in its constructor, builds its A with :meth:`~SpectrumScaled.scaled_A` and its Δ with
:meth:`~SpectrumScaled.scaled_delta`. Length extension then only sets ``spectrum_scale`` (a buffer)
and ``spectrum_mode`` (``power``, ``linear`` or ``delta``) on each such module; see
:mod:`ssmzoo.models` for the contract.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssmzoo.errors import HyperparameterTypeError

__all__ = ["SpectrumScaled", "SPECTRUM_MODES"]

SPECTRUM_MODES = ("power", "linear", "delta")


class SpectrumScaled:
    """Mixin for an ``nn.Module`` that owns A: ``spectrum_scale`` (buffer) and ``spectrum_mode``."""

    spectrum_scale: Tensor
    _spectrum_mode: str = "power"

    def init_spectrum(self) -> None:
        self.register_buffer("spectrum_scale", torch.ones(()))  # type: ignore[attr-defined]
        self._spectrum_mode = "power"

    @property
    def spectrum_mode(self) -> str:
        return self._spectrum_mode

    @spectrum_mode.setter
    def spectrum_mode(self, mode: str) -> None:
        if mode not in SPECTRUM_MODES:
            raise HyperparameterTypeError(type(self).__name__, "spectrum_mode",
                                          " | ".join(repr(m) for m in SPECTRUM_MODES), mode)
        self._spectrum_mode = mode

    def scaled_A(self, log_neg_real: Tensor, imag: Tensor | None = None) -> Tensor:
        """A = -exp(log_neg_real) (+ i * imag), after the spectrum scaling of this layer.

        power: Re A -> -exp(s * log_neg_real) = -|Re A|^s, Im A kept; linear: A -> s * A;
        delta: A unchanged (Δ is scaled instead). Shapes as the inputs (imag like log_neg_real).
        """
        # no test of s == 1 (that would sync a GPU every call): s * x is exact for s = 1
        s = self.spectrum_scale.to(log_neg_real.dtype)
        mode = self._spectrum_mode
        if mode == "delta":
            re = -torch.exp(log_neg_real)
            im = imag
        elif mode == "power":
            re = -torch.exp(s * log_neg_real)
            im = imag
        else:  # linear
            re = -torch.exp(log_neg_real) * s
            im = None if imag is None else imag * s
        if im is None:
            return re
        re, im = torch.broadcast_tensors(re, im)
        return torch.complex(re, im)

    def delta_scale(self) -> Tensor | None:
        """The factor Δ is multiplied by (after the softplus), or None when Δ is not scaled."""
        if self._spectrum_mode != "delta":
            return None
        return self.spectrum_scale

    def scaled_delta(self, delta: Tensor, channel_dim: int = -1) -> Tensor:
        """Δ (after the softplus) times the scale in ``delta`` mode; a (channels,) scale is laid
        along ``channel_dim``."""
        s = self.delta_scale()
        if s is None:
            return delta
        s = s.to(delta.dtype)
        if s.dim() == 1:
            shape = [1] * delta.dim()
            shape[channel_dim] = -1
            s = s.reshape(shape)
        return delta * s
