"""``lm``: a language model around any mixer (mamba_ssm's ``MixerModel`` + tied head)."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssmzoo.hparams import Fraction, PositiveFloat, PositiveInt, check_hparams
from ssmzoo.models.backbone import Layer, make_norm
from ssmzoo.models.checks import check_state, check_token_ids, expected_state
from ssmzoo.models.io import Saveable
from ssmzoo.models.sampling import check_sampling, next_token
from ssmzoo.spec import Spec, parse

MAMBA_SPEC = parse("mamba")  # the default mixer, as a spec
OWNER = "model 'lm'"

__all__ = ["LM"]


class LM(Saveable, nn.Module):
    """Language model: embedding, pre-norm residual stack of mixers, final norm, tied head.

    ``forward(ids)``: (batch, length) long -> logits (batch, length, vocab_size). Recurrent
    inference: ``init_state(batch)``, ``step(ids_t, state)``, ``prefill(prompt)``,
    ``generate(prompt, n_new, temperature=, top_k=, top_p=)``.
    Initialisation follows mamba_ssm's ``_init_weights``: embedding std 0.02, Linear biases zero,
    every ``out_proj`` weight Kaiming-uniform divided by sqrt(n_layers).

    Args:
        mixer: the sequence mixer of every layer (any unit spec)
        d_model: width of the residual stream
        n_layers: number of residual layers
        vocab_size: number of token ids
        norm: normalisation before each mixer and at the end: rms (mamba_ssm) or layer
        norm_eps: epsilon of the norms
        dropout: dropout on each mixer's output
        mixer_out: after the mixer: glu (S4's GELU + GLU), none, or auto (glu for a core only)
        tie_embeddings: the output head shares the embedding matrix
        residual_in_fp32: keep the residual stream in float32 under half precision (mamba_ssm)
    """

    def __init__(self, *, mixer: Spec = MAMBA_SPEC, d_model: PositiveInt = 64,
                 n_layers: PositiveInt = 2, vocab_size: PositiveInt,
                 norm: Literal["rms", "layer"] = "rms", norm_eps: PositiveFloat = 1e-5,
                 dropout: Fraction = 0.0, mixer_out: Literal["auto", "glu", "none"] = "auto",
                 tie_embeddings: bool = True, residual_in_fp32: bool = True) -> None:
        check_hparams(LM, "model 'lm'", locals())
        super().__init__()
        self.d_model, self.n_layers, self.vocab_size = d_model, n_layers, vocab_size
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(
            Layer(mixer, d_model, norm=norm, norm_eps=norm_eps, prenorm=True, dropout=dropout,
                  mixer_out=mixer_out, residual_in_fp32=residual_in_fp32)
            for _ in range(n_layers))
        self.norm_f = make_norm(norm, d_model, norm_eps)
        self.head = None if tie_embeddings else nn.Linear(d_model, vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.embedding.weight, std=0.02)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if name.endswith("out_proj") and isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
                with torch.no_grad():
                    module.weight /= math.sqrt(self.n_layers)

    def _logits(self, h: Tensor) -> Tensor:
        h = self.norm_f(h.to(self.embedding.weight.dtype))
        return self.head(h) if self.head is not None else F.linear(h, self.embedding.weight)

    def forward(self, ids: Tensor) -> Tensor:
        """ids: (batch, length) long -> logits (batch, length, vocab_size)."""
        # shape and dtype, and the range of the ids (one host transfer: an id out of range would
        # otherwise fail inside the embedding, on CUDA as an opaque device-side assert)
        check_token_ids(OWNER, ids, self.vocab_size)
        h = self.embedding(self._ids(ids))                                    # (b, l, d)
        for layer in self.layers:
            h = layer(h)
        return self._logits(h)                                                # (b, l, vocab)

    def init_state(self, batch: int) -> list[Any]:
        """One state per layer, for :meth:`step`."""
        return [layer.init_state(batch) for layer in self.layers]

    def step(self, ids_t: Tensor, state: list[Any]) -> tuple[Tensor, list[Any]]:
        """One token per sequence: ids_t (batch,) long -> (logits (batch, vocab_size), state)."""
        check_token_ids(OWNER, ids_t, self.vocab_size, dims=("batch",), name="ids_t",
                        what="step input")
        batch = ids_t.shape[0]
        check_state(OWNER, state, expected_state(self, batch), batch=batch)
        return self._step(ids_t, state)

    def _ids(self, ids: Tensor) -> Tensor:
        # nn.Embedding takes int32 and int64 only; the checks accept every integer dtype
        return ids if ids.dtype in (torch.int64, torch.int32) else ids.long()

    def _step(self, ids_t: Tensor, state: list[Any]) -> tuple[Tensor, list[Any]]:
        """:meth:`step` without the model-level checks (``generate`` feeds it valid ids)."""
        h = self.embedding(self._ids(ids_t))                                  # (b, d)
        new = []
        for layer, s in zip(self.layers, state):
            h, s = layer.step(h, s)
            new.append(s)
        return self._logits(h), new

    def prefill(self, prompt: Tensor, *, state: bool = True) -> tuple[Tensor, list[Any] | None]:
        """A whole prompt at once: prompt (batch, length) long -> (the logits after its last token
        (batch, vocab_size), the state there, as :meth:`init_state` and :meth:`step` over every
        token would leave it; ``None`` with ``state=False``).

        Each layer runs its norm, output mixing and residual once over the whole prompt, and its
        mixer's full-sequence ``prefill(x) -> (y, state)`` where the mixer has one; a mixer
        without one steps through the prompt (its ``forward`` returns no state). With
        ``state=False`` the prompt goes through the parallel :meth:`forward` path only.
        """
        check_token_ids(OWNER, prompt, self.vocab_size, name="prompt")
        return self._prefill(prompt, state=state)

    def _prefill(self, prompt: Tensor, *, state: bool) -> tuple[Tensor, list[Any] | None]:
        h = self.embedding(self._ids(prompt))                                 # (b, l, d)
        states = []
        for layer in self.layers:
            h, s = layer.prefill(h, state=state)
            states.append(s)
        return self._logits(h[:, -1]), states if state else None             # (b, vocab)

    @torch.no_grad()
    def generate(self, prompt: Tensor, n_new: int, *, temperature: float = 0.0, top_k: int = 0,
                 top_p: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Continue ``prompt`` (batch, length) long by ``n_new`` tokens.

        The prompt goes through :meth:`prefill` (the whole sequence at once), then each new
        token through :meth:`step`. temperature 0 is greedy (deterministic); otherwise sample
        from softmax(logits / temperature), restricted to the ``top_k`` most likely tokens when
        top_k > 0 and then to the nucleus of probability ``top_p`` when top_p < 1 (see
        :func:`ssmzoo.models.sampling.next_token`). Returns (batch, length + n_new) long.
        """
        check_sampling("LM.generate", temperature=temperature, top_k=top_k, top_p=top_p,
                       n_new=n_new)
        check_token_ids(OWNER, prompt, self.vocab_size, name="prompt")
        # the new tokens come from the logits, in range by construction: no check (and no host
        # transfer) per generated token
        logits, state = self._prefill(prompt, state=n_new > 1)
        out = [prompt.long()]
        for i in range(n_new):
            nxt = next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p,
                             generator=generator)                             # (b,)
            out.append(nxt[:, None])
            if i + 1 < n_new:  # the state after the last new token is never used
                logits, state = self._step(nxt, state)  # type: ignore[arg-type]
        return torch.cat(out, dim=1)

    def state_size(self) -> int:
        """Floats of recurrent state per sequence, summed over layers."""
        return sum(layer.state_size() for layer in self.layers)
