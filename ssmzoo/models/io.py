"""Saving and loading models and units: ``model.save(dir)`` and ``ssmzoo.load(dir)``.

A saved directory holds ``config.json`` (the canonical spec the object was built from, every
hyperparameter with its value, the width for a unit, each layer's spectrum mode, the ssmzoo and
torch versions, the dtype) and ``model.safetensors`` (the state dict). Loading rebuilds the object
through the registry and loads the weights strictly; every way this can go wrong raises
:class:`~ssmzoo.errors.CheckpointError` saying which file and what is wrong.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssmzoo.errors import CheckpointError, SSMZooError
from ssmzoo.spec import Spec

__all__ = ["save", "load", "checkpoint_spec", "Saveable", "CONFIG_NAME", "WEIGHTS_NAME", "FORMAT"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "ssmzoo-checkpoint/1"


def _jsonable(v: Any) -> Any:
    if isinstance(v, Spec):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return str(v)
    return v


def _hyperparameters(kind: str, spec: Spec) -> dict[str, Any]:
    from ssmzoo.registry import get_registry

    reg = get_registry()
    entry = reg.get_model(spec.name) if kind == "model" else reg.units[spec.name]
    out = {}
    for hp in entry.hparams:
        value = spec.args.get(hp.name, None if hp.required else hp.default)
        out[hp.name] = _jsonable(value)
    return out


def _dtype_of(module: nn.Module) -> torch.dtype:
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def save(obj: nn.Module, path: str | os.PathLike[str], format: str = "ssmzoo") -> Path:
    """Write ``config.json`` and the weights of a model or unit into directory ``path``.

    ``format="ssmzoo"`` (``model.safetensors``): ``obj`` must have been built by
    ``ssmzoo.build_model`` or ``ssmzoo.build`` (it carries ``ssmzoo_spec``). ``format="hf"``: a
    directory that ``transformers.AutoModelForCausalLM.from_pretrained`` loads with the same
    logits; a model with no HF counterpart (a b2s6 core, say) raises
    :class:`~ssmzoo.errors.CheckpointError` saying why. Returns the directory.
    """
    from safetensors.torch import save_file

    import ssmzoo

    if format != "ssmzoo":
        from ssmzoo.models.interchange import save_foreign

        return save_foreign(obj, Path(path), format)

    text = getattr(obj, "ssmzoo_spec", None)
    if not text:
        raise CheckpointError(f"cannot save {type(obj).__name__}: it has no ssmzoo_spec; build it "
                              "with ssmzoo.build_model(...) or ssmzoo.build(...) so it can be rebuilt")
    spec = ssmzoo.parse_spec(text)
    from ssmzoo.registry import get_registry

    kind = "model" if spec.name in get_registry().models else "unit"
    config: dict[str, Any] = {
        "format": FORMAT,
        "kind": kind,
        "spec": str(spec),
        "hyperparameters": _hyperparameters(kind, spec),
        "ssmzoo_version": ssmzoo.__version__,
        "torch_version": torch.__version__,
        "dtype": str(_dtype_of(obj)).removeprefix("torch."),
    }
    if kind == "unit":
        d_model = getattr(obj, "d_model", None)
        if not isinstance(d_model, int):
            raise CheckpointError(f"cannot save unit {spec.name!r}: it has no integer d_model "
                                  "attribute to rebuild it at the same width")
        config["d_model"] = d_model
    modes = {name: m.spectrum_mode for name, m in obj.named_modules()
             if hasattr(m, "spectrum_mode") and m.spectrum_mode != "power"}
    if modes:
        config["spectrum_modes"] = modes
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in obj.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": FORMAT, "spec": str(spec)})
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    return out


def _read_json(root: Path) -> dict[str, Any]:
    if not root.exists():
        raise CheckpointError(f"ssmzoo.load: no such directory {str(root)!r}")
    if not root.is_dir():
        raise CheckpointError(f"ssmzoo.load: {str(root)!r} is a file; expected a checkpoint "
                              f"directory holding {CONFIG_NAME} and its weights")
    cfg_path = root / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"ssmzoo.load: {str(root)!r} has no {CONFIG_NAME}; expected a "
                              "directory written by model.save(dir), HF transformers' "
                              "save_pretrained or mamba_ssm's")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"ssmzoo.load: {str(cfg_path)!r} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"ssmzoo.load: {str(cfg_path)!r} holds a {type(config).__name__}, "
                              "expected a JSON object")
    return config


def is_own(config: dict[str, Any]) -> bool:
    """Whether a config.json is ssmzoo's own (written by :func:`save`; those written before the
    ``format`` field have ``spec`` and ``kind``)."""
    return (str(config.get("format", "")).startswith("ssmzoo-checkpoint")
            or ("spec" in config and "kind" in config))


def _read_config(root: Path, config: dict[str, Any]) -> dict[str, Any]:
    cfg_path = root / CONFIG_NAME
    for key in ("kind", "spec"):
        if key not in config:
            raise CheckpointError(f"ssmzoo.load: {str(cfg_path)!r} has no {key!r} field")
    if config["kind"] not in ("model", "unit"):
        raise CheckpointError(f"ssmzoo.load: {str(cfg_path)!r}: 'kind' is {config['kind']!r}, "
                              "expected 'model' or 'unit'")
    if config["kind"] == "unit" and not isinstance(config.get("d_model"), int):
        raise CheckpointError(f"ssmzoo.load: {str(cfg_path)!r}: a unit needs an integer "
                              f"'d_model', got {config.get('d_model')!r}")
    return config


def checkpoint_spec(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(format name, ssmzoo spec) of the checkpoint directory ``path``, read from its
    config.json only (no weights are loaded)."""
    from ssmzoo.models.interchange import detect

    root = Path(path)
    config = _read_json(root)
    if is_own(config):
        return "ssmzoo", str(_read_config(root, config)["spec"])
    fmt = detect(config, repr(str(root / CONFIG_NAME)))
    return fmt.name, fmt.spec(config)


def _mismatch(path: Path, missing: list[str], unexpected: list[str],
              shapes: list[str]) -> CheckpointError:
    parts = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if names:
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            parts.append(f"{label}: {', '.join(names[:5])}{more}")
    return CheckpointError(f"ssmzoo.load: {str(path)!r} does not match the model its "
                           f"{CONFIG_NAME} describes ({'; '.join(parts)})")


def load(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu",
         dtype: torch.dtype | None = None) -> Any:
    """A model (or unit) from a checkpoint directory, in the format its config.json shows:
    ssmzoo's own (``save(dir)``), or one a plugin registers (HF transformers' Mamba and
    Mamba-2 causal LMs, mamba_ssm's ``MambaLMHeadModel``: ``ssmzoo formats`` lists them), whose
    logits are then the source's.

    ``dtype``: None keeps the stored dtype. Raises :class:`~ssmzoo.errors.CheckpointError` for
    a missing directory or file, a corrupt file, an unknown format, a spec that no longer
    builds, a source feature ssmzoo lacks, and weights that do not match the rebuilt model.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    import ssmzoo
    from ssmzoo.models.interchange import detect, load_foreign

    root = Path(path)
    config = _read_json(root)
    if not is_own(config):
        fmt = detect(config, repr(str(root / CONFIG_NAME)))
        return load_foreign(root, config, fmt, map_location=map_location, dtype=dtype)
    config = _read_config(root, config)
    try:
        if config["kind"] == "model":
            obj = ssmzoo.build_model(config["spec"])
        else:
            obj = ssmzoo.build(config["spec"], d_model=config["d_model"])
    except SSMZooError as e:
        raise CheckpointError(f"ssmzoo.load: the spec in {str(root / CONFIG_NAME)!r} no longer "
                              f"builds ({e}); is the plugin that registers it installed?") from e
    stored = getattr(torch, str(config.get("dtype", "float32")), None)
    target = dtype or stored
    if isinstance(target, torch.dtype) and target.is_floating_point and target != torch.float32:
        obj = obj.to(target)
    weights = root / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"ssmzoo.load: {str(root)!r} has no {WEIGHTS_NAME}")
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"ssmzoo.load: {str(weights)!r} is corrupt or not a safetensors "
                              f"file ({e})") from None
    modules = dict(obj.named_modules())
    for key, value in state.items():  # a per-layer scale may have been given any broadcast shape
        owner, _, leaf = key.rpartition(".")
        if leaf == "spectrum_scale" and owner in modules:
            m = modules[owner]
            if hasattr(m, "spectrum_scale") and m.spectrum_scale.shape != value.shape:
                m.spectrum_scale = torch.ones(value.shape, dtype=m.spectrum_scale.dtype)
    own = obj.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} (saved {tuple(state[k].shape)}, expected {tuple(own[k].shape)})"
              for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise _mismatch(weights, missing, unexpected, shapes)
    obj.load_state_dict(state, strict=True)
    for name, mode in (config.get("spectrum_modes") or {}).items():
        if name not in modules or not hasattr(modules[name], "spectrum_mode"):
            raise CheckpointError(f"ssmzoo.load: {CONFIG_NAME} sets a spectrum mode on "
                                  f"{name!r}, which the rebuilt model does not have")
        modules[name].spectrum_mode = mode
    return obj.to(map_location)


class Saveable:
    """Mixin giving a model or unit ``save(dir)`` (see :func:`save`)."""

    def save(self, path: str | os.PathLike[str], format: str = "ssmzoo") -> Path:
        """Write ``config.json`` and the weights into the directory ``path``: ssmzoo's format,
        or ``format="hf"`` for HF transformers (see :func:`ssmzoo.models.io.save`)."""
        return save(self, path, format)  # type: ignore[arg-type]
