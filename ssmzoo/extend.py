"""Length extension: scale A's spectrum per layer (Mamba Modulation) or Δ (MambaExtend).

A model trained at one context length often fails at a longer one because the recurrent state
leaves the range it saw in training. Mamba Modulation (Lu et al., NeurIPS 2025, official code
``gnepul-ace/mamba_modulation``) rescales the spectrum of each layer's state matrix A by a scalar
s_l found on a calibration split; MambaExtend (``ArminAzizi98/LongContextMamba``) rescales Δ
instead. Both are one call here, on any model whose units own an A (see :mod:`ssmzoo.models`,
"Spectrum scaling"):

- :func:`modulate` sets the per-layer scales and the mode (``power``: A -> -|A|^s, ``linear``:
  A -> s·A, ``delta``: Δ -> s·Δ). It is reversible (scales back to 1 restore the model bit for
  bit) and is saved with the model by ``model.save`` / ``ssmzoo.load``.
- :func:`naive_delta_scaling` is the position-interpolation control Δ -> Δ·L_train/L_test.
- :func:`calibrate_scales` finds per-layer scales by SPSA, following the paper's loop with its one
  quirk fixed (every candidate is compared on the calibration split).
- :func:`lm_perplexity` is the objective for language models.

>>> import ssmzoo, torch
>>> model = ssmzoo.build_model("lm(mixer=s4d(d_state=4), d_model=8, n_layers=2, vocab_size=16)")
>>> ids = torch.randint(0, 16, (1, 12))
>>> before = model(ids)
>>> _ = ssmzoo.modulate(model, [0.5, 0.9])
>>> [round(s, 2) for s in current_scales(model)]
[0.5, 0.9]
>>> _ = ssmzoo.modulate(model, 1.0)
>>> bool((model(ids) == before).all())
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssmzoo.errors import ConfigError, HyperparameterTypeError, did_you_mean

__all__ = ["modulate", "naive_delta_scaling", "calibrate_scales", "lm_perplexity",
           "current_scales", "spectral_layers", "Calibration", "MODES"]

MODES = ("power", "linear", "delta")

ScaleValue = float | int | Tensor
Scales = ScaleValue | Sequence[ScaleValue] | Mapping[str, ScaleValue]
Objective = Callable[[nn.Module], float]


def spectral_layers(model: nn.Module) -> list[tuple[str, Any]]:
    """The modules of ``model`` that own a state matrix A, in layer order, with their names.

    One entry per such module: a ``mamba`` block delegates to its core, a bidirectional layer has
    two. These are the "layers" that :func:`modulate` and :func:`calibrate_scales` scale.
    """
    from ssmzoo.models import spectral_modules

    return spectral_modules(model)


def _layers_or_raise(model: nn.Module, function: str) -> list[tuple[str, Any]]:
    layers = spectral_layers(model)
    if not layers:
        raise ConfigError(f"{function}: {type(model).__name__} has no module that owns a state "
                          "matrix A (effective_A() and a spectrum_scale buffer); build the model "
                          "with ssmzoo.build_model or ssmzoo.build from a built-in unit")
    return layers


def _check_mode(mode: str, function: str) -> None:
    if mode not in MODES:
        raise HyperparameterTypeError(function, "mode", " | ".join(repr(m) for m in MODES)
                                      + did_you_mean(str(mode), MODES), mode)


def _as_scale(value: ScaleValue, name: str, module: Any, mode: str,
              function: str) -> Tensor:
    """One layer's scale as a float32 tensor, checked: finite, positive, broadcastable to A."""
    buf = module.spectrum_scale
    if isinstance(value, bool) or not isinstance(value, (int, float, Tensor)):
        raise HyperparameterTypeError(function, f"scales[{name!r}]",
                                      "a positive float or a tensor of them", value)
    s = torch.as_tensor(value, dtype=torch.float32).detach().to(buf.device).clone()
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise HyperparameterTypeError(function, f"scales[{name!r}]",
                                      "finite values > 0", value if s.dim() == 0 else "a tensor "
                                      f"with min {float(s.min()):g}")
    if s.dim() > 0:
        with torch.no_grad():
            a_shape = tuple(module.effective_A().shape)
        target = a_shape[:1] if mode == "delta" else a_shape
        ok = (s.dim() == 1 and s.shape[0] == target[0]) if mode == "delta" else True
        if ok and mode != "delta":
            try:
                ok = torch.broadcast_shapes(tuple(s.shape), a_shape) == a_shape
            except RuntimeError:
                ok = False
        if not ok:
            want = f"(), or ({target[0]},) per channel" if mode == "delta" else \
                f"a shape broadcastable to A's {a_shape}"
            raise HyperparameterTypeError(function, f"scales[{name!r}]",
                                          f"a scalar or a tensor of shape {want}",
                                          f"a tensor of shape {tuple(s.shape)}")
        if bool((s == 1).all()):
            s = torch.ones((), device=buf.device)
    return s


def _per_layer(scales: Scales, layers: list[tuple[str, Any]],
               function: str) -> list[ScaleValue]:
    names = [name for name, _ in layers]
    if isinstance(scales, Mapping):
        unknown = [k for k in scales if k not in names]
        if unknown:
            raise HyperparameterTypeError(function, "scales", "a mapping whose keys are layer "
                                          f"names ({', '.join(map(repr, names))})"
                                          + did_you_mean(str(unknown[0]), names), unknown[0])
        return [scales.get(name, 1.0) for name in names]
    if isinstance(scales, Tensor) and scales.dim() == 0 or isinstance(scales, (int, float)):
        return [scales] * len(layers)  # type: ignore[list-item]
    if isinstance(scales, Tensor) and scales.dim() >= 1:
        values: Sequence[ScaleValue] = list(scales.unbind(0))
    elif isinstance(scales, Sequence) and not isinstance(scales, str):
        values = list(scales)
    else:
        raise HyperparameterTypeError(function, "scales", "a float, a sequence of one scale per "
                                      "layer, or a mapping from layer name to scale", scales)
    values = list(values)
    if len(values) != len(layers):
        raise HyperparameterTypeError(function, "scales", f"one scale per layer ({len(layers)}: "
                                      f"{', '.join(names)})", f"{len(values)} scales")
    return values


def modulate(model: nn.Module, scales: Scales, mode: str = "power") -> nn.Module:
    """Scale the spectrum of A (or Δ) of every layer of ``model``, in place; returns ``model``.

    Args:
        model: any model or unit built by ssmzoo whose units own an A (all built-ins).
        scales: a float for every layer, a sequence with one scale per layer (in the order of
            :func:`spectral_layers`), or a mapping from layer name to scale (layers left out get
            1). A layer's scale may also be a tensor broadcastable to its A, e.g. (d_inner,
            d_state), as the paper's passkey variant trains; in ``delta`` mode a scalar or one
            value per channel. Every value must be finite and > 0.
        mode: ``power`` (Mamba Modulation: A -> -exp(s·log|Re A|) = -|Re A|^s, frequencies
            kept), ``linear`` (A -> s·A) or ``delta`` (MambaExtend: Δ -> s·Δ after the softplus,
            A untouched). Δ, B and C are never touched by ``power`` and ``linear``.

    Setting every scale back to 1 restores the model's outputs exactly, whatever the mode.
    """
    function = "ssmzoo.modulate"
    _check_mode(mode, function)
    layers = _layers_or_raise(model, function)
    values = _per_layer(scales, layers, function)
    checked = [_as_scale(v, name, m, mode, function) for (name, m), v in zip(layers, values)]
    for (_, m), s in zip(layers, checked):
        m.spectrum_scale = s  # replaces the registered buffer (any broadcastable shape)
        m.spectrum_mode = mode
    return model


def current_scales(model: nn.Module) -> list[Any]:
    """Each layer's scale: a float for a scalar scale, the tensor otherwise."""
    out: list[Any] = []
    for _, m in spectral_layers(model):
        s = m.spectrum_scale.detach()
        out.append(float(s) if s.dim() == 0 else s.clone())
    return out


def naive_delta_scaling(model: nn.Module, train_length: int, test_length: int) -> nn.Module:
    """The naive control Δ -> Δ·L_train/L_test in every layer (position interpolation's analogue).

    Neither paper uses it; it asks whether slowing every clock by the length ratio alone extends
    the context. Equivalent to ``modulate(model, train_length / test_length, mode="delta")``.
    """
    for key, value in (("train_length", train_length), ("test_length", test_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise HyperparameterTypeError("ssmzoo.extend.naive_delta_scaling", key,
                                          "an int >= 1", value)
    return modulate(model, train_length / test_length, mode="delta")


# ---- the objective ---------------------------------------------------------------------------
def _lm_windows(data: Any, length: int) -> tuple[Tensor, Tensor]:
    """(inputs, targets), each (n, length) int64, from a tensor of windows or a Split."""
    function = "ssmzoo.extend.lm_perplexity"
    if isinstance(data, Tensor):
        if data.dim() != 2 or data.is_floating_point():
            raise HyperparameterTypeError(function, "data", "token ids of shape (n, length + 1)",
                                          f"a {data.dtype} tensor of shape {tuple(data.shape)}")
        if data.shape[1] < length + 1:
            raise HyperparameterTypeError(function, "data", f"windows of at least length + 1 = "
                                          f"{length + 1} tokens", f"{data.shape[1]}")
        return data[:, :length].long(), data[:, 1:length + 1].long()  # (n, length) each
    inputs, targets = getattr(data, "inputs", None), getattr(data, "targets", None)
    if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor):
        raise HyperparameterTypeError(function, "data", "a tensor of token windows (n, length + "
                                      "1), a Split of an lm task, or a callable objective",
                                      type(data).__name__)
    if inputs.dim() != 2 or inputs.shape[1] < length:
        raise HyperparameterTypeError(function, "data", f"a Split of token ids (n, >= {length})",
                                      f"inputs of shape {tuple(inputs.shape)}")
    return inputs[:, :length].long(), targets[:, :length].long()


@torch.no_grad()
def lm_perplexity(model: nn.Module, data: Any, length: int, *, batch_size: int = 4,
                  max_windows: int = 0) -> float:
    """Perplexity of a language model on windows of ``length`` tokens (loss over every position).

    Args:
        model: maps token ids (batch, length) to logits (batch, length, vocab).
        data: token windows (n, >= length + 1) (inputs are the first ``length``, targets the next),
            or a Split of an ``lm`` task (inputs and targets (n, >= length)).
        length: context length to evaluate at.
        batch_size: windows per forward pass.
        max_windows: use at most this many windows (0: all).
    """
    inputs, targets = _lm_windows(data, length)
    if max_windows:
        inputs, targets = inputs[:max_windows], targets[:max_windows]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    nll, count = 0.0, 0
    for start in range(0, len(inputs), batch_size):
        x = inputs[start:start + batch_size].to(device)   # (b, length)
        y = targets[start:start + batch_size].to(device)  # (b, length)
        logits = model(x).float()                          # (b, length, vocab)
        mask = y >= 0
        nll += float(F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100,
                                     reduction="sum"))
        count += int(mask.sum())
    model.train(was_training)
    if count == 0:
        raise HyperparameterTypeError("ssmzoo.extend.lm_perplexity", "data", "at least one "
                                      "labelled token", "none")
    return math.exp(min(nll / count, 700.0))


# ---- calibration -----------------------------------------------------------------------------
@dataclass
class Calibration:
    """What :func:`calibrate_scales` found.

    Attributes:
        scales: the per-layer scales now set on the model (order of :func:`spectral_layers`).
        value: the calibration objective at ``scales``.
        start_value: the objective at the random starting point.
        identity_value: the objective with every scale 1 (None when not evaluated).
        mode: the spectrum mode used.
        length: the context length calibrated for.
        evaluations: how many times the objective was evaluated.
        history: one dict per SPSA step (step, c, alpha, t, value, plus, minus, best).
    """

    scales: list[float]
    value: float
    start_value: float
    identity_value: float | None
    mode: str
    length: int
    evaluations: int
    history: list[dict[str, Any]] = field(default_factory=list)


def calibrate_scales(model: nn.Module, data: Any, length: int, steps: int = 30, *,
                     mode: str = "power", seed: int = 0, init: tuple[float, float] = (0.75, 1.0),
                     bounds: tuple[float, float] = (0.01, 1.0), c0: float = 0.1,
                     lr0: float = 1e-3, keep_identity: bool = True, batch_size: int = 4,
                     objective: Objective | None = None,
                     callback: Callable[[dict[str, Any]], None] | None = None) -> Calibration:
    """Find per-layer scales by SPSA on a calibration split and set the best on ``model``.

    The loop of the paper's ``eval.py`` (one scale per layer, t ~ U(init) to start; at step x:
    c = c0/(1+x)^0.1, α = lr0·cos(xπ/198), a random ±1 direction δ, t± = clip(t ± cδ),
    g = (f(t+) - f(t-))·δ/(2c), t = clip(t - αg)), then the best of (t, t+, t-) goes on. The
    paper's code compared t's score on the *evaluation* set with t±'s on the calibration set;
    here all three are compared on the calibration split, and the best point seen over the whole
    run is returned. With ``keep_identity`` the unscaled model is a candidate too, so the result
    is never worse than identity on the calibration split.

    Args:
        model: a model whose units own an A; left modulated with the best scales found.
        data: the calibration split: token windows (n, >= length + 1) or a Split of an lm task,
            scored by :func:`lm_perplexity` at ``length`` (ignored when ``objective`` is given).
        length: the target context length.
        steps: SPSA steps (3 objective evaluations each, plus one or two at the start).
        mode: ``power`` (Mamba Modulation), ``linear`` or ``delta`` (MambaExtend's search).
        seed: seeds the starting point and the directions.
        init: the range of the uniform random starting scales.
        bounds: scales are clipped to this range ([0.01, 1] in the paper).
        c0: the perturbation size at step 0.
        lr0: the step size at step 0.
        keep_identity: also evaluate every scale = 1 and keep it if nothing beats it.
        batch_size: windows per forward pass of the perplexity.
        objective: any ``f(model) -> float`` to minimise instead of the perplexity on ``data``.
        callback: called with each step's history entry.
    """
    function = "ssmzoo.calibrate_scales"
    _check_mode(mode, function)
    layers = _layers_or_raise(model, function)
    lo, hi = bounds
    if not (0 < lo <= hi) or not (lo <= init[0] <= init[1] <= hi):
        raise HyperparameterTypeError(function, "bounds/init", "0 < bounds[0] <= init[0] <= "
                                      "init[1] <= bounds[1]", (bounds, init))
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise HyperparameterTypeError(function, "steps", "an int >= 0", steps)
    if objective is None:
        windows = _lm_windows(data, length)
        split = type("Windows", (), {"inputs": windows[0], "targets": windows[1]})()

        def objective(m: nn.Module) -> float:
            return lm_perplexity(m, split, length, batch_size=batch_size)

    n = len(layers)
    gen = torch.Generator().manual_seed(seed)
    count = 0

    def f(t: Tensor) -> float:
        nonlocal count
        count += 1
        modulate(model, [float(v) for v in t], mode=mode)
        value = float(objective(model))
        return value if math.isfinite(value) else math.inf

    t = init[0] + (init[1] - init[0]) * torch.rand(n, generator=gen, dtype=torch.float64)
    start_value = f(t)
    best_t, best_value = t.clone(), start_value
    identity_value = f(torch.ones(n, dtype=torch.float64)) if keep_identity else None
    if identity_value is not None and identity_value < best_value:
        best_t, best_value = torch.ones(n, dtype=torch.float64), identity_value
    history: list[dict[str, Any]] = []
    for x in range(steps):
        c = c0 / (1 + x) ** 0.1
        alpha = lr0 * math.cos(x * math.pi / 198)
        delta = torch.randint(0, 2, (n,), generator=gen).double() * 2 - 1  # (n,) in {-1, +1}
        t_plus, t_minus = (t + c * delta).clamp(lo, hi), (t - c * delta).clamp(lo, hi)
        p_plus, p_minus = f(t_plus), f(t_minus)
        if math.isfinite(p_plus) and math.isfinite(p_minus):
            g = (p_plus - p_minus) * delta / (2 * c)
            t = (t - alpha * g).clamp(lo, hi)
        p_t = f(t)
        p_t, t = min((p_t, t), (p_plus, t_plus), (p_minus, t_minus), key=lambda pair: pair[0])
        if p_t < best_value:
            best_t, best_value = t.clone(), p_t
        entry = {"step": x, "c": c, "alpha": alpha, "t": [float(v) for v in t], "value": p_t,
                 "plus": p_plus, "minus": p_minus, "best": best_value}
        history.append(entry)
        if callback is not None:
            callback(entry)
    scales = [float(v) for v in best_t]
    modulate(model, scales, mode=mode)
    return Calibration(scales=scales, value=best_value, start_value=start_value,
                       identity_value=identity_value, mode=mode, length=length,
                       evaluations=count, history=history)
