"""Choosing the next token from logits: greedy, or sampling with temperature, top-k and top-p.

>>> import torch
>>> logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])      # (batch, vocab)
>>> next_token(logits, temperature=0.0)                # greedy: the argmax
tensor([1])
>>> next_token(logits, temperature=1.0, top_p=1e-6)    # the nucleus holds the top token only
tensor([1])

The filters run in the order of Hugging Face's ``generate``: divide by the temperature, keep the
``top_k`` largest logits, then keep the smallest set of most likely tokens whose probabilities sum
to at least ``top_p`` (Holtzman et al., The Curious Case of Neural Text Degeneration, ICLR 2020),
and sample from what is left. The most likely token always stays, so ``top_p`` close to 0 is
greedy decoding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ssmzoo.errors import ConfigError

__all__ = ["check_sampling", "next_token"]


def check_sampling(owner: str, *, temperature: float, top_k: int, top_p: float,
                   n_new: int | None = None, options: bool = False) -> None:
    """Refuse a setting out of range, naming it: temperature >= 0 (0: greedy), top_k an int >= 0
    (0: no limit), top_p in (0, 1] (1: no limit), n_new an int >= 0. ``options``: name them as
    command-line options (``--top-p``)."""
    def bad(name: str, expected: str, value: object) -> ConfigError:
        shown = "--" + name.replace("_", "-") if options else name
        return ConfigError(f"{owner}: {shown} expects {expected}, got {value!r}")

    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature < 0:
        raise bad("temperature", "a finite float >= 0 (0: greedy)", temperature)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise bad("top_k", "an int >= 0 (0: no limit)", top_k)
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise bad("top_p", "a float in (0, 1] (1: no limit)", top_p)
    if n_new is not None and (isinstance(n_new, bool) or not isinstance(n_new, int) or n_new < 0):
        raise bad("n_new", "an int >= 0", n_new)


def _keep_top_p(scaled: Tensor, top_p: float) -> Tensor:
    """Set to -inf every logit outside the nucleus of probability ``top_p``; (b, v) -> (b, v)."""
    # stable: among equal logits the lower id comes first, as argmax picks it
    order = scaled.sort(dim=-1, descending=True, stable=True)
    probs = order.values.softmax(-1)                                            # (b, v) sorted
    before = probs.cumsum(-1) - probs          # probability of the tokens ranked above each one
    drop_sorted = before >= top_p              # the first token has 0 before it: always kept
    drop = drop_sorted.scatter(-1, order.indices, drop_sorted)                  # (b, v) by id
    return scaled.masked_fill(drop, float("-inf"))


def next_token(logits: Tensor, *, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
    """logits (batch, vocab) -> the next token ids (batch,) long.

    temperature 0 is greedy (the argmax; deterministic, no generator used); otherwise a sample
    from softmax(logits / temperature) restricted to the ``top_k`` largest (when > 0) and then to
    the nucleus of probability ``top_p`` (when < 1). Settings are checked by
    :func:`check_sampling`, which a caller runs once before a loop of calls.
    """
    if temperature <= 0:
        return logits.argmax(-1)                                                # (b,)
    scaled = logits.float() / temperature                                      # (b, v)
    if 0 < top_k < scaled.shape[-1]:
        kth = scaled.topk(top_k, dim=-1).values[:, -1:]                         # (b, 1)
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if top_p < 1:
        scaled = _keep_top_p(scaled, top_p)
    return torch.multinomial(scaled.softmax(-1), 1, generator=generator)[:, 0]  # (b,)
