"""The pieces every model is made of: norms, residual layers around a mixer, encoders, pooling.

A :class:`Layer` is one residual layer: ``x + dropout(out(mixer(norm(x))))`` (pre-norm) or
``norm(x + dropout(out(mixer(x))))`` (post-norm), where the mixer is any registered unit (or two,
for a bidirectional layer) and ``out`` is S4's output mixing (GELU, Linear(d, 2d), GLU) or nothing.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ssmzoo.errors import HyperparameterTypeError, SSMZooError
from ssmzoo.spec import Spec, parse

__all__ = ["Layer", "Bidirectional", "GLUOut", "SeqBatchNorm", "make_norm", "Encoder", "pool",
           "sinusoidal_positions", "resolve_mixer", "prefill_mixer", "conv_window"]

NormKind = Literal["layer", "batch", "rms"]
MixerOut = Literal["auto", "glu", "none"]


class SeqBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channels of (batch, length, d) (or (batch, d) in a recurrent step)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return super().forward(x)
        return rearrange(super().forward(rearrange(x, "b l d -> b d l")), "b d l -> b l d")


def make_norm(kind: str, d: int, eps: float = 1e-5) -> nn.Module:
    """``layer`` (LayerNorm), ``rms`` (RMSNorm) or ``batch`` (BatchNorm over channels)."""
    if kind == "layer":
        return nn.LayerNorm(d, eps=eps)
    if kind == "rms":
        return nn.RMSNorm(d, eps=eps)
    if kind == "batch":
        return SeqBatchNorm(d, eps=eps)
    raise HyperparameterTypeError("model", "norm", "'layer' | 'batch' | 'rms'", kind)


class GLUOut(nn.Module):
    """S4's output mixing: GELU, then Linear(d, 2d) and a GLU; (..., d) -> (..., d)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d, 2 * d)

    def forward(self, x: Tensor) -> Tensor:
        return F.glu(self.linear(F.gelu(x)), dim=-1)


class Bidirectional(nn.Module):
    """Two mixers, one on the sequence and one on its reverse, summed (as S4 does it)."""

    def __init__(self, forward_mixer: nn.Module, backward_mixer: nn.Module) -> None:
        super().__init__()
        self.fwd, self.bwd = forward_mixer, backward_mixer

    def forward(self, x: Tensor) -> Tensor:
        """x: (batch, length, d) -> (batch, length, d)."""
        return self.fwd(x) + self.bwd(x.flip(1)).flip(1)

    def state_size(self) -> int:
        return int(self.fwd.state_size()) + int(self.bwd.state_size())


def resolve_mixer(mixer: Spec | str) -> tuple[Spec, str]:
    """A mixer spec, validated, and its unit's role ("core" or "block")."""
    from ssmzoo.registry import get_registry

    reg = get_registry()
    spec = reg.resolve(parse(mixer) if isinstance(mixer, str) else mixer)
    return spec, reg.units[spec.name].role


class Layer(nn.Module):
    """One residual layer around a mixer: (batch, length, d) -> (batch, length, d)."""

    def __init__(self, mixer: Spec | str, d_model: int, *, norm: str = "layer",
                 norm_eps: float = 1e-5, prenorm: bool = True, dropout: float = 0.0,
                 mixer_out: str = "auto", bidirectional: bool = False,
                 residual_in_fp32: bool = False) -> None:
        super().__init__()
        import ssmzoo

        spec, role = resolve_mixer(mixer)
        if mixer_out == "auto":
            mixer_out = "none" if role == "block" else "glu"
        fwd = ssmzoo.build(spec, d_model=d_model)
        self.mixer = Bidirectional(fwd, ssmzoo.build(spec, d_model=d_model)) if bidirectional \
            else fwd
        self.out = GLUOut(d_model) if mixer_out == "glu" else nn.Identity()
        self.norm = make_norm(norm, d_model, norm_eps)
        self.prenorm, self.bidirectional = prenorm, bidirectional
        self.residual_in_fp32 = residual_in_fp32
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def _residual(self, x: Tensor, y: Tensor) -> Tensor:
        # mamba_ssm's residual_in_fp32: a half-precision model keeps its residual stream in
        # float32 (the mixer still reads its own dtype); float32 and float64 are unchanged
        if self.residual_in_fp32 and x.dtype in (torch.float16, torch.bfloat16):
            return x.float() + y.float()
        return x + y

    def forward(self, x: Tensor) -> Tensor:
        if self.prenorm:
            dtype = self.norm.weight.dtype if getattr(self.norm, "weight", None) is not None \
                else x.dtype
            return self._residual(x, self.dropout(self.out(self.mixer(self.norm(x.to(dtype))))))
        return self.norm(x + self.dropout(self.out(self.mixer(x))))

    def _recurrent(self) -> None:
        if self.bidirectional:
            raise SSMZooError("a bidirectional layer reads the whole sequence: it has no "
                              "recurrent step (build the model with bidirectional=false)")

    def init_state(self, batch: int) -> Any:
        self._recurrent()
        return self.mixer.init_state(batch)

    def step(self, x_t: Tensor, state: Any) -> tuple[Tensor, Any]:
        """x_t: (batch, d) -> (y_t (batch, d), state)."""
        if self.prenorm:
            dtype = self.norm.weight.dtype if getattr(self.norm, "weight", None) is not None \
                else x_t.dtype
            y, state = self.mixer.step(self.norm(x_t.to(dtype)), state)
            return self._residual(x_t, self.dropout(self.out(y))), state
        y, state = self.mixer.step(x_t, state)
        return self.norm(x_t + self.dropout(self.out(y))), state

    def prefill(self, x: Tensor, *, state: bool = True) -> tuple[Tensor, Any]:
        """A whole prompt at once: x (batch, length, d) -> (y (batch, length, d), the state after
        its last position, as :meth:`init_state` then :meth:`step` over it would leave it).

        The mixer's own ``prefill(x) -> (y, state)`` runs when it has one (a full-sequence pass
        that also returns its last state); otherwise the mixer steps through the sequence, since
        its ``forward`` returns no state. Everything around the mixer (norm, output mixing,
        residual) runs once over the whole sequence. ``state=False``: the plain parallel
        ``forward`` and ``None`` for the state.
        """
        if not state:
            return self(x), None
        self._recurrent()
        inp = x
        if self.prenorm:
            dtype = self.norm.weight.dtype if getattr(self.norm, "weight", None) is not None \
                else x.dtype
            inp = self.norm(x.to(dtype))
        y, last = prefill_mixer(self.mixer, inp)                                # (b, l, d)
        if self.prenorm:
            return self._residual(x, self.dropout(self.out(y))), last
        return self.norm(x + self.dropout(self.out(y))), last

    def state_size(self) -> int:
        size = getattr(self.mixer, "state_size", None)
        if size is None:
            raise SSMZooError(f"mixer {type(self.mixer).__name__} does not report state_size()")
        return int(size())


def prefill_mixer(mixer: nn.Module, x: Tensor) -> tuple[Tensor, Any]:
    """x (batch, length, d) -> (the mixer's output (batch, length, d), its state after the last
    position): the mixer's ``prefill`` when it has one, else ``init_state`` and ``step`` per
    position (the unit protocol's ``forward`` returns no state)."""
    own = getattr(mixer, "prefill", None)
    if callable(own):
        return own(x)
    state = mixer.init_state(x.shape[0])
    ys = []
    for t in range(x.shape[1]):
        y_t, state = mixer.step(x[:, t], state)                                 # (b, d)
        ys.append(y_t)
    return torch.stack(ys, dim=1), state                                        # (b, l, d)


def conv_window(x: Tensor, width: int) -> Tensor:
    """The state of a causal depthwise convolution after x (batch, channels, length): its last
    ``width - 1`` inputs (batch, channels, width - 1), zeros before the first step (as the
    convolution's own left padding)."""
    k = width - 1
    padded = F.pad(x, (k, 0))                                                  # (b, c, k + l)
    return padded[..., padded.shape[-1] - k:]                                   # (b, c, k)


def sinusoidal_positions(length: int, d: int, *, device: Any = None,
                         dtype: torch.dtype = torch.float32) -> Tensor:
    """Transformer sinusoidal positions: (length, d), sin on even channels, cos on odd."""
    pos = torch.arange(length, device=device, dtype=torch.float64)[:, None]     # (l, 1)
    freq = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float64)
                     * (-math.log(10000.0) / d))                                 # (ceil(d/2),)
    pe = torch.zeros(length, d, device=device, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return pe.to(dtype)


class Encoder(nn.Module):
    """Tokens (batch, length) long via an embedding, or floats (batch, length, d_input) via a
    linear map, to (batch, length, d_model); plus optional positional encodings."""

    def __init__(self, d_model: int, *, vocab_size: int | None, d_input: int,
                 pos: str = "none", max_len: int = 4096) -> None:
        super().__init__()
        self.vocab_size, self.d_input, self.pos_kind, self.max_len = vocab_size, d_input, pos, max_len
        if vocab_size is not None:
            self.embed: nn.Module = nn.Embedding(vocab_size, d_model)
        else:
            self.embed = nn.Linear(d_input, d_model)
        if pos == "learned":
            self.pos = nn.Parameter(torch.randn(max_len, d_model) * 0.02)          # (max_len, d)
        elif pos not in ("none", "sinusoidal"):
            raise HyperparameterTypeError("model", "pos", "'none' | 'sinusoidal' | 'learned'", pos)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x: (batch, length) long or (batch, length[, d_input]) float -> (batch, length, d_model)."""
        if self.vocab_size is not None:
            if x.dtype not in (torch.long, torch.int32, torch.int16, torch.uint8):
                raise SSMZooError(f"this model embeds tokens (vocab_size={self.vocab_size}): "
                                  f"expected an integer tensor (batch, length), got {x.dtype}")
            h = self.embed(x.long())
        else:
            if not x.is_floating_point():
                raise SSMZooError(f"this model reads floats (d_input={self.d_input}): expected a "
                                  f"float tensor (batch, length, {self.d_input}), got {x.dtype}; "
                                  "give vocab_size to embed tokens")
            if x.dim() == 2 and self.d_input == 1:
                x = x[..., None]                                                    # (b, l, 1)
            h = self.embed(x.to(self.embed.weight.dtype))
        length = h.shape[1]
        if self.pos_kind == "sinusoidal":
            h = h + sinusoidal_positions(offset + length, h.shape[-1], device=h.device,
                                         dtype=h.dtype)[offset:]
        elif self.pos_kind == "learned":
            if offset + length > self.max_len:
                raise SSMZooError(f"sequence of length {offset + length} exceeds the learned "
                                  f"positions' max_len={self.max_len}")
            h = h + self.pos[offset: offset + length]
        return h


def pool(h: Tensor, how: str, lengths: Tensor | None = None) -> Tensor:
    """(batch, length, d) -> (batch, d): mean over valid positions or the last valid one."""
    if lengths is None:
        return h.mean(1) if how == "mean" else h[:, -1]
    lengths = lengths.to(h.device).long().clamp(min=1, max=h.shape[1])
    if how == "mean":
        mask = torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]  # (b, l)
        # where, not a product with the mask: a non-finite value at a padded position (which
        # nothing trains to stay finite) must not reach the mean as inf * 0 = nan
        return torch.where(mask[..., None], h, 0.0).sum(1) / lengths[:, None].to(h.dtype)
    idx = (lengths - 1)[:, None, None].expand(-1, 1, h.shape[-1])                      # (b, 1, d)
    return h.gather(1, idx)[:, 0]
