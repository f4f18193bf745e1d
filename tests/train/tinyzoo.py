"""A tiny, fast stand-in zoo for testing the loop and the grid runner without the real families.

``make_registry()`` gives a fresh Registry with the built-in tasks, a causal ``tiny`` unit (a
learned mix of the input and its running mean), a ``broken`` unit whose factory raises, and the
three model kinds (``lm``, ``classifier``, ``regressor``) under the hyperparameter names that
ssmzoo.models documents. The runner must not care which models exist.
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from torch import nn

from ssmzoo.registry import Registry
from ssmzoo.spec import Spec
from ssmzoo.tasks import _plugin as tasks_plugin

TINY = Spec("tiny")


class Tiny(nn.Module):
    """A causal mixer: y_t = W1 x_t + W2 mean(x_1..x_t).

    Args:
        scale: multiplies the running mean.
    """

    def __init__(self, d_model: int, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.now = nn.Linear(d_model, d_model)
        self.past = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)
        mean = x.cumsum(1) / rearrange(t, "l -> 1 l 1")  # (b, l, d)
        return self.now(x) + self.scale * self.past(mean)


def broken(d_model: int, reason: str = "boom") -> nn.Module:
    """A unit that cannot be built.

    Args:
        reason: the message of the error it raises.
    """
    raise RuntimeError(f"broken unit: {reason}")


def make_registry() -> Registry:
    reg = Registry()
    reg.current_plugin = "tinyzoo"
    tasks_plugin.ssmzoo_register_tasks(reg)
    reg.unit("tiny", Tiny, doc="test mixer")
    reg.unit("broken", broken, doc="raises when built")
    reg.variant("tiny-half", "tiny(scale=0.5)", doc="half scale")

    class _Stack(nn.Module):
        def __init__(self, mixer: Spec, d_model: int, n_layers: int):
            super().__init__()
            self.layers = nn.ModuleList(reg.build(mixer, d_model) for _ in range(n_layers))
            self.norm = nn.LayerNorm(d_model)

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:
                h = h + torch.tanh(layer(h))
            return self.norm(h)

    def lm(mixer: Spec = TINY, d_model: int = 16, n_layers: int = 1,
           vocab_size: int = 16) -> nn.Module:
        """Tiny language model.

        Args:
            mixer: sequence mixer.
            d_model: width.
            n_layers: layers.
            vocab_size: vocabulary.
        """
        return nn.Sequential(nn.Embedding(vocab_size, d_model), _Stack(mixer, d_model, n_layers),
                             nn.Linear(d_model, vocab_size))

    class _Pooled(nn.Module):
        def __init__(self, mixer: Spec, d_model: int, n_layers: int, d_in: int | None,
                     vocab: int | None, d_out: int, pool: str):
            super().__init__()
            self.enc = nn.Embedding(vocab, d_model) if vocab else nn.Linear(d_in or 1, d_model)
            self.stack, self.pool = _Stack(mixer, d_model, n_layers), pool
            self.dec = nn.Linear(d_model, d_out)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
            h = self.stack(self.enc(x))  # (b, l, d)
            return self.dec(h[:, -1] if self.pool == "last" else h.mean(1))

    def classifier(mixer: Spec = TINY, d_model: int = 16, n_layers: int = 1,
                   n_classes: int = 2, d_input: int = 1, vocab_size: int | None = None,
                   pool: Literal["mean", "last"] = "mean") -> nn.Module:
        """Tiny classifier.

        Args:
            mixer: sequence mixer.
            d_model: width.
            n_layers: layers.
            n_classes: classes.
            d_input: input features.
            vocab_size: vocabulary when inputs are tokens.
            pool: mean or last.
        """
        return _Pooled(mixer, d_model, n_layers, d_input, vocab_size, n_classes, pool)

    def regressor(mixer: Spec = TINY, d_model: int = 16, n_layers: int = 1,
                  d_input: int = 1, d_output: int = 1,
                  pool: Literal["mean", "last"] = "last") -> nn.Module:
        """Tiny regressor.

        Args:
            mixer: sequence mixer.
            d_model: width.
            n_layers: layers.
            d_input: input features.
            d_output: outputs.
            pool: mean or last.
        """
        return _Pooled(mixer, d_model, n_layers, d_input, None, d_output, pool)

    reg.model("lm", lm)
    reg.model("classifier", classifier)
    reg.model("regressor", regressor)
    reg.current_plugin = "<direct>"
    return reg
