"""Backbones: a language model, a classifier and a regressor around any registered mixer.

Every model is built from a spec by ``ssmzoo.build_model``; the mixer is any unit spec (a core
such as ``s4d``, ``s6``, ``b2s6``, a block such as ``mamba(core=b2s6)`` or ``mamba2``, or a named
variant). The hyperparameter names below are stable (tasks and grid files rely on them).

Models
------
``lm(mixer, d_model, n_layers, vocab_size, ...)``
    Token embedding, a pre-norm residual stack (Add -> Norm -> mixer, as mamba_ssm's ``Block``),
    a final norm and a head tied to the embedding. ``forward(ids)``: ids (batch, length) long ->
    logits (batch, length, vocab_size). ``init_state(batch)`` / ``step(ids_t, state)`` with ids_t
    (batch,) long -> (logits (batch, vocab_size), state); ``prefill(prompt)`` -> (logits after
    the prompt's last token, state there); ``generate(prompt, n_new, temperature=0.0, top_k=0,
    top_p=1.0)`` -> (batch, length + n_new) long (:mod:`ssmzoo.models.sampling`).
    Hyperparameters: ``mixer`` (default ``mamba``), ``d_model`` (64), ``n_layers`` (2),
    ``vocab_size`` (required), ``norm`` (``rms`` | ``layer``), ``norm_eps`` (1e-5), ``dropout``
    (0.0), ``mixer_out`` (``auto`` | ``glu`` | ``none``), ``tie_embeddings`` (true).

``classifier(mixer, d_model, n_layers, n_classes, d_input or vocab_size, ...)``
    The LRA setup: encoder, residual stack, pooling, linear decoder. Input: token ids
    (batch, length) long when ``vocab_size`` is given, otherwise floats (batch, length, d_input)
    (a (batch, length) float tensor is accepted when d_input is 1). ``forward(x, lengths=None)``
    -> logits (batch, n_classes); ``lengths`` (batch,) long marks padded inputs (mean pooling then
    averages the valid positions only, last pooling takes the last valid one). With ``pair=true``
    (LRA retrieval) x is (batch, 2, length[, d_input]) and lengths (batch, 2): both sequences are
    encoded by the same stack and the head reads [a, b, a*b, a-b], as S4 does. Hyperparameters:
    ``mixer`` (default ``s4d``), ``d_model`` (64), ``n_layers`` (2), ``n_classes`` (required),
    ``d_input`` (1), ``vocab_size`` (none), ``pool`` (``mean`` | ``last``), ``bidirectional``
    (false; a second mixer runs on the reversed sequence and the outputs are summed, as S4 does),
    ``norm`` (``layer`` | ``batch`` | ``rms``), ``prenorm`` (true), ``pos`` (``none`` |
    ``sinusoidal`` | ``learned``), ``max_len`` (4096, for learned positions), ``dropout`` (0.0),
    ``mixer_out`` (``auto`` | ``glu`` | ``none``), ``pair`` (false).

``regressor(mixer, d_model, n_layers, d_input, d_output, ...)``
    Sequence -> vector, for the synthetic function-approximation tasks: floats
    (batch, length, d_input) (or (batch, length) when d_input is 1) -> (batch, d_output).
    ``forward(x, lengths=None)``. Hyperparameters: ``mixer`` (default ``s4d``), ``d_model`` (64),
    ``n_layers`` (1), ``d_input`` (1), ``d_output`` (1), ``pool`` (``last`` | ``mean``), and
    ``bidirectional``, ``norm``, ``prenorm``, ``pos``, ``max_len``, ``dropout``, ``mixer_out`` as
    for the classifier.

``mixer_out`` says what follows the mixer inside each layer: ``glu`` is S4's output mixing (GELU,
then Linear(d, 2d) and a GLU); ``none`` adds nothing; ``auto`` (the default) is ``glu`` for a core
(which has no output projection of its own) and ``none`` for a block (``mamba``, ``mamba2``).

Every model has ``state_size()`` (floats of recurrent state per sequence of the batch, summed over
layers, as zoology counts it; complex entries count 2), ``save(dir)`` (``config.json`` with the
spec, hyperparameters and ssmzoo version, and ``model.safetensors``; reloaded by ``ssmzoo.load``)
and carries ``ssmzoo_spec``, the canonical spec string it was built from.

The unit protocol
-----------------
Every built-in unit (core or block) maps (batch, length, d_model) to the same and has:

- ``d_model`` (int), ``forward(x)``, ``init_state(batch)`` and ``step(x_t, state) -> (y_t, state)``
  with x_t, y_t (batch, d_model); stepping token by token equals ``forward``.
- ``state_size()``: floats of recurrent state per sequence (SSM state and convolution window).
- optionally ``prefill(x) -> (y, state)``: ``forward(x)`` that also returns the state after the
  last position, as ``init_state`` and ``step`` over x would leave it; a language model's prompt
  then runs in one full-sequence pass per layer instead of a step per token (without it the
  layer steps the unit through the prompt).
- ``save(dir)``, like models (``ssmzoo.load`` rebuilds it at the saved width).
- Checked inputs: ``forward`` and ``step`` first call :mod:`ssmzoo.models.checks`
  (``check_sequence``, ``check_step``), so that a wrong shape, an empty sequence, a dtype or
  device other than the weights' (autocast allowed) or a state unlike ``init_state(batch)``'s
  raises :class:`~ssmzoo.errors.InputError` naming the argument, the expected and the actual
  value. Models check token ids (integers in [0, vocab_size)), float inputs and ``lengths`` alike.

Spectrum scaling (length extension)
-----------------------------------
Every module that owns a state matrix A (the cores ``s4d``, ``s6``, ``b2s6`` and the ``mamba2``
block; ``mamba`` delegates to its core) exposes it the same way, so that Mamba-Modulation-style
length extension is a loop over :func:`ssmzoo.models.spectral_modules`:

- ``effective_A()`` -> the A the scan uses, after spectrum scaling: (channels, d_state) real or
  complex, or (heads,) for ``mamba2``.
- ``spectrum_scale``: a float32 buffer, shape () by default (any shape broadcastable to A is
  accepted), initially 1; saved with the weights.
- ``spectrum_mode``: a str attribute, ``"power"`` (A -> -|Re A|^s + i Im A, i.e. -exp(s * A_log)
  for a real A, frequencies kept), ``"linear"`` (A -> s * A) or ``"delta"`` (A unchanged,
  Δ -> s * Δ after the softplus, the MambaExtend baseline). Saved in ``config.json``.

Optimiser hints
---------------
Parameters may carry ``p._ssmzoo_optim``, a dict with any of ``weight_decay`` (float),
``lr_scale`` (float, times the base lr) and ``lr_max`` (float, a cap on the lr).
:func:`ssmzoo.param_groups` turns them into AdamW groups; parameters without hints get the base lr
and the base weight decay if they have two or more dimensions, no weight decay otherwise (biases,
norm weights), as mamba_ssm and timm do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["spectral_modules"]

if TYPE_CHECKING:
    from torch import nn


def spectral_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules of ``model`` that own a state matrix A, in layer order, with their names."""
    return [(name, m) for name, m in model.named_modules()
            if hasattr(m, "effective_A") and hasattr(m, "spectrum_scale")]
