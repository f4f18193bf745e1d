"""``classifier`` and ``regressor``: sequence -> vector models (S4's LRA setup) around any mixer."""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from torch import Tensor, nn

from ssmzoo.hparams import Fraction, PositiveInt, check_hparams
from ssmzoo.models.backbone import Encoder, Layer, make_norm, pool
from ssmzoo.models.checks import (
    ValueBounds,
    check_features,
    check_lengths,
    check_ranges,
    check_token_ids,
    length_bounds,
    token_id_bounds,
)
from ssmzoo.models.io import Saveable
from ssmzoo.spec import Spec, parse

S4D_SPEC = parse("s4d")  # the default mixer, as a spec

__all__ = ["SequenceModel", "Classifier", "Regressor"]


class SequenceModel(Saveable, nn.Module):
    """Encoder, residual stack, (final norm when pre-norm), pooling and a decoder."""

    def __init__(self, owner: str, *, mixer: Spec | str, d_model: int, n_layers: int,
                 d_output: int, d_input: int, vocab_size: int | None, pool: str,
                 bidirectional: bool, norm: str, prenorm: bool, pos: str, max_len: int,
                 dropout: float, mixer_out: str, pair: bool = False,
                 output_key: str = "d_output") -> None:
        super().__init__()
        self.owner = owner  # "model 'classifier'", for the input checks' messages
        self.d_model, self.n_layers, self.pool_kind, self.pair = d_model, n_layers, pool, pair
        self.encoder = Encoder(d_model, vocab_size=vocab_size, d_input=d_input, pos=pos,
                               max_len=max_len)
        self.layers = nn.ModuleList(
            Layer(mixer, d_model, norm=norm, prenorm=prenorm, dropout=dropout,
                  mixer_out=mixer_out, bidirectional=bidirectional) for _ in range(n_layers))
        self.norm_f = make_norm(norm, d_model) if prenorm else nn.Identity()
        if pair:  # LRA retrieval: [a, b, a*b, a-b] through a small MLP (S4's retrieval decoder)
            self.decoder: nn.Module = nn.Sequential(nn.Linear(4 * d_model, d_model), nn.GELU(),
                                                    nn.Linear(d_model, d_output))
        else:
            self.decoder = nn.Linear(d_model, d_output)

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x: (batch, length) long or (batch, length[, d_input]) float -> pooled (batch, d_model)."""
        h = self.encoder(x)                                                   # (b, l, d)
        for layer in self.layers:
            h = layer(h)
        return pool(self.norm_f(h), self.pool_kind, lengths)                  # (b, d)

    def check_input(self, x: Tensor, lengths: Tensor | None = None) -> None:
        """What :meth:`forward` checks: x's shape and dtype, ``lengths``' shape, and the values of
        token ids and lengths (in one host transfer); raises :class:`~ssmzoo.errors.InputError`."""
        vocab_size, d_input = self.encoder.vocab_size, self.encoder.d_input
        dims: tuple[int | str, ...] = ("batch", 2, "length") if self.pair else ("batch", "length")
        bounds: list[ValueBounds] = []
        if vocab_size is not None:
            check_token_ids(self.owner, x, vocab_size, dims=dims, name="x", check_range=False)
            bounds.append(token_id_bounds(x, vocab_size, name="x"))
        else:  # any float precision: the encoder reads x in its own
            check_features(self.owner, x, d_input, dims=dims, name="x")
        if lengths is not None:
            n = len(dims) - 1  # the batch axes: (batch,) or (batch, 2)
            check_lengths(self.owner, lengths, tuple(x.shape[:n]), x.shape[n], check_range=False)
            bounds.append(length_bounds(lengths, x.shape[n]))
        check_ranges(self.owner, *bounds)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x as :meth:`encode` (with a pair axis of 2 after batch when ``pair``) -> (batch, out)."""
        self.check_input(x, lengths)
        if not self.pair:
            return self.decoder(self.encode(x, lengths))
        flat = rearrange(x, "b two ... -> (two b) ...")                      # (2b, l[, d_in])
        flat_len = None if lengths is None else rearrange(lengths, "b two -> (two b)")
        a, b = self.encode(flat, flat_len).chunk(2, dim=0)                    # (b, d) each
        return self.decoder(torch.cat([a, b, a * b, a - b], dim=-1))

    def state_size(self) -> int:
        """Floats of recurrent state per sequence, summed over layers (both directions)."""
        return sum(layer.state_size() for layer in self.layers)


class Classifier(SequenceModel):
    """Sequence classifier (the LRA setup): tokens or floats -> logits (batch, n_classes).

    Input: token ids (batch, length) long when ``vocab_size`` is given, else floats
    (batch, length, d_input) ((batch, length) when d_input is 1); ``forward(x, lengths=None)``.

    Args:
        mixer: the sequence mixer of every layer (any unit spec)
        d_model: width of the residual stream
        n_layers: number of residual layers
        n_classes: number of classes
        d_input: features per input position (float inputs; ignored when vocab_size is given)
        vocab_size: embed token ids from this vocabulary instead of reading floats
        pool: mean over positions (valid ones, given lengths) or the last (valid) position
        bidirectional: a second mixer reads the reversed sequence, outputs summed (as S4)
        norm: layer, batch (S4's LRA choice) or rms normalisation in each layer
        prenorm: normalise before the mixer (true) or after the residual sum (false)
        pos: positional encoding added to the inputs: none, sinusoidal or learned
        max_len: longest sequence for learned positions
        dropout: dropout on each mixer's output
        mixer_out: after the mixer: glu (S4's GELU + GLU), none, or auto (glu for a core only)
        pair: two sequences per example (LRA retrieval), x (batch, 2, length); head on [a, b, a*b, a-b]
    """

    def __init__(self, *, mixer: Spec = S4D_SPEC, d_model: PositiveInt = 64,
                 n_layers: PositiveInt = 2, n_classes: PositiveInt, d_input: PositiveInt = 1,
                 vocab_size: PositiveInt | None = None,
                 pool: Literal["mean", "last"] = "mean", bidirectional: bool = False,
                 norm: Literal["layer", "batch", "rms"] = "layer", prenorm: bool = True,
                 pos: Literal["none", "sinusoidal", "learned"] = "none",
                 max_len: PositiveInt = 4096, dropout: Fraction = 0.0,
                 mixer_out: Literal["auto", "glu", "none"] = "auto", pair: bool = False) -> None:
        check_hparams(Classifier, "model 'classifier'", locals())
        super().__init__("model 'classifier'", mixer=mixer, d_model=d_model, n_layers=n_layers,
                         d_output=n_classes, d_input=d_input, vocab_size=vocab_size, pool=pool,
                         bidirectional=bidirectional, norm=norm, prenorm=prenorm, pos=pos,
                         max_len=max_len, dropout=dropout, mixer_out=mixer_out, pair=pair,
                         output_key="n_classes")
        self.n_classes = n_classes


class Regressor(SequenceModel):
    """Sequence -> vector regressor: floats (batch, length, d_input) -> (batch, d_output).

    A (batch, length) float input is accepted when d_input is 1; ``forward(x, lengths=None)``.

    Args:
        mixer: the sequence mixer of every layer (any unit spec)
        d_model: width of the residual stream
        n_layers: number of residual layers
        d_input: features per input position
        d_output: size of the predicted vector
        pool: the last (valid) position, as the B2S6 paper's theory reads out, or the mean
        bidirectional: a second mixer reads the reversed sequence, outputs summed (as S4)
        norm: layer, batch or rms normalisation in each layer
        prenorm: normalise before the mixer (true) or after the residual sum (false)
        pos: positional encoding added to the inputs: none, sinusoidal or learned
        max_len: longest sequence for learned positions
        dropout: dropout on each mixer's output
        mixer_out: after the mixer: glu (S4's GELU + GLU), none, or auto (glu for a core only)
    """

    def __init__(self, *, mixer: Spec = S4D_SPEC, d_model: PositiveInt = 64,
                 n_layers: PositiveInt = 1, d_input: PositiveInt = 1, d_output: PositiveInt = 1,
                 pool: Literal["last", "mean"] = "last",
                 bidirectional: bool = False, norm: Literal["layer", "batch", "rms"] = "layer",
                 prenorm: bool = True, pos: Literal["none", "sinusoidal", "learned"] = "none",
                 max_len: PositiveInt = 4096, dropout: Fraction = 0.0,
                 mixer_out: Literal["auto", "glu", "none"] = "auto") -> None:
        check_hparams(Regressor, "model 'regressor'", locals())
        super().__init__("model 'regressor'", mixer=mixer, d_model=d_model, n_layers=n_layers,
                         d_output=d_output, d_input=d_input, vocab_size=None, pool=pool,
                         bidirectional=bidirectional, norm=norm, prenorm=prenorm, pos=pos,
                         max_len=max_len, dropout=dropout, mixer_out=mixer_out)
        self.d_output = d_output
