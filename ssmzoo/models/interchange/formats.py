"""Checkpoint formats of other implementations: what a plugin registers, and the generic load/save.

A format (a :class:`CheckpointFormat`, registered with ``registry.checkpoint_format(fmt)`` in
the ``ssmzoo_register_formats`` hook) says which ``config.json`` it claims, the ssmzoo spec of that
config, and the :class:`~ssmzoo.models.interchange.keymap.KeyMap` between its tensors and the
model's; where it can also be written, why a given model cannot be (or None) and the config it
writes. Everything else (finding the weight files, tied heads, dtypes, the checks) is here, once.

The language-model frame around the mixers (embedding, the layers' norms, the final norm, the
head) is ssmzoo's ``lm`` model, so its rows are here too: :func:`lm_rows`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ssmzoo.errors import CheckpointError, SSMZooError, did_you_mean
from ssmzoo.models.interchange.keymap import KeyMap
from ssmzoo.models.interchange.weights import read_weights, write_safetensors

__all__ = ["CheckpointFormat", "lm_keymap", "lm_rows", "lm_spec", "lm_hf_config", "lm_why_not", "detect",
           "load_foreign", "save_foreign", "own_tensor", "flag", "number", "mamba_ssm_frame",
           "MAMBA_SSM_DEFAULTS"]


def own_tensor(key: str) -> bool:
    """Tensors only ssmzoo has: a layer's ``spectrum_scale`` (length extension), kept as built."""
    return key.rpartition(".")[2] == "spectrum_scale"


def number(v: Any) -> float:
    """A float of a config.json: a number, or transformers' encoding of a non-finite one
    (``{"__float__": "Infinity"}``)."""
    if isinstance(v, dict) and "__float__" in v:
        return float(v["__float__"])
    return float(v)


def flag(v: Any) -> str:
    """A boolean as the spec grammar writes it."""
    return "true" if bool(v) else "false"


class CheckpointFormat:
    """One layout of another implementation. Subclasses set the class attributes and implement
    :meth:`claims`, :meth:`spec` and :meth:`keymap`; writable ones also :meth:`why_not` and
    :meth:`config`."""

    name = ""            # registry name, e.g. "hf-mamba"
    family = ""          # what save(format=...) and `ssmzoo convert --to` call it: "hf", "mamba_ssm"
    description = ""     # one line for `ssmzoo formats` and errors
    embedding_key = "backbone.embeddings.weight"
    head_key = "lm_head.weight"
    weights_name = "model.safetensors"  # what save writes
    model_types: tuple[str, ...] = ()   # HF model_type values it claims (for error messages)
    ssm_layers: tuple[str, ...] = ()    # mamba_ssm ssm_cfg layers it claims (for error messages)

    @property
    def writable(self) -> bool:
        """Whether ``save(format=family)`` can write this format (it defines :meth:`why_not`)."""
        return type(self).why_not is not CheckpointFormat.why_not

    def claims(self, config: dict[str, Any]) -> bool:
        """Whether this format reads the directory whose config.json is ``config``."""
        raise NotImplementedError

    def spec(self, config: dict[str, Any]) -> str:
        """The ssmzoo model spec equal to ``config``; a setting ssmzoo lacks raises
        :class:`CheckpointError` naming it."""
        raise NotImplementedError

    def keymap(self, model: nn.Module) -> KeyMap:
        """Rows from this format's tensor names to ``model``'s."""
        raise NotImplementedError

    def adapt(self, state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
        """The source's tensors in ssmzoo's shapes, before renaming (default: as they are)."""
        return state

    def why_not(self, model: nn.Module) -> str | None:
        """Why ``model`` cannot be written in this format, or None when it can."""
        return f"ssmzoo reads {self.name} checkpoints but does not write them"

    def config(self, model: nn.Module) -> dict[str, Any]:
        """The config.json written beside the weights."""
        raise NotImplementedError


# ---- the lm frame ------------------------------------------------------------------------------
def lm_rows(source: str, embedding_key: str = "backbone.embeddings.weight") -> KeyMap:
    """The rows of ssmzoo's ``lm`` outside the mixers, for HF's and mamba_ssm's layout (they
    differ only in the embedding's name). Bias rows serve a LayerNorm frame."""
    return KeyMap(source, (
        (embedding_key,                        "embedding.weight"),
        ("backbone.layers.{i}.norm.weight",    "layers.{i}.norm.weight"),
        ("backbone.layers.{i}.norm.bias",      "layers.{i}.norm.bias"),
        ("backbone.norm_f.weight",             "norm_f.weight"),
        ("backbone.norm_f.bias",               "norm_f.bias"),
        ("lm_head.weight",                     "head.weight"),
    ))


def lm_keymap(source: str, mixer_rows: tuple[tuple[str, str], ...],
              embedding_key: str = "backbone.embeddings.weight") -> KeyMap:
    """The key map of a causal LM in HF's or mamba_ssm's layout: the frame's rows and one layer's
    mixer rows below ``backbone.layers.{i}.mixer.`` (source) and ``layers.{i}.mixer.`` (ssmzoo)."""
    mixer = KeyMap(source, mixer_rows).prefixed("backbone.layers.{i}.mixer.", "layers.{i}.mixer.")
    return lm_rows(source, embedding_key) + mixer


def lm_spec(mixer: str, *, d_model: int, n_layers: int, vocab_size: int, norm: str = "rms",
            norm_eps: float = 1e-5, tie: bool = True, residual_in_fp32: bool = True) -> str:
    """An ``lm(...)`` spec with every setting a checkpoint fixes."""
    return (f"lm(mixer={mixer}, d_model={int(d_model)}, n_layers={int(n_layers)}, "
            f"vocab_size={int(vocab_size)}, norm={norm}, norm_eps={float(norm_eps)!r}, "
            f"tie_embeddings={flag(tie)}, residual_in_fp32={flag(residual_in_fp32)})")


def lm_why_not(model: nn.Module, mixer_type: type, mixer_name: str, target: str) -> str | None:
    """Why ``model`` is not an HF-style causal LM of ``mixer_type`` mixers (or None): an ``lm``
    with RMS norms, pre-norm layers with no output mixing, every mixer a ``mixer_name``, no
    spectrum scaling."""
    from ssmzoo.models.lm import LM

    if not isinstance(model, LM):
        return f"{target} is a causal language model; this is a {type(model).__name__}"
    if not isinstance(model.norm_f, nn.RMSNorm):
        return f"{target} normalises with RMSNorm (norm=rms); this model uses {type(model.norm_f).__name__}"
    for i, layer in enumerate(model.layers):
        if not isinstance(layer.mixer, mixer_type):
            return (f"layer {i}'s mixer is {type(layer.mixer).__name__}, not a {mixer_name} "
                    f"block ({target} has only {mixer_name})")
        if not layer.prenorm or not isinstance(layer.out, nn.Identity):
            return f"layer {i} has a post-norm or an output mixing that {target} lacks"
    for name, buf in model.named_buffers():
        if own_tensor(name) and not torch.all(buf == 1):
            return (f"{name} is not 1 (a length-extension scaling): {target} has no spectrum "
                    "scale")
    return None


def lm_hf_config(model: nn.Module) -> dict[str, Any]:
    """The fields of an HF config that ssmzoo's ``lm`` frame fixes."""
    layer = model.layers[0]
    return {"hidden_size": model.d_model, "num_hidden_layers": model.n_layers,
            "vocab_size": model.vocab_size, "layer_norm_epsilon": model.norm_f.eps,
            "tie_word_embeddings": model.head is None,
            "residual_in_fp32": bool(layer.residual_in_fp32)}


# mamba_ssm's MambaConfig defaults (MambaLMHeadModel's frame)
MAMBA_SSM_DEFAULTS: dict[str, Any] = {
    "d_model": 2560, "d_intermediate": 0, "n_layer": 64, "vocab_size": 50277,
    "rms_norm": True, "residual_in_fp32": True, "pad_vocab_size_multiple": 8,
    "tie_embeddings": True,
}
MAMBA_SSM_NORM_EPS = 1e-5  # create_block's norm_epsilon; not in mamba_ssm's config


def mamba_ssm_frame(config: dict[str, Any], where: str) -> dict[str, Any]:
    """The lm settings of a mamba_ssm config.json, with its defaults; a layer ssmzoo cannot
    build (attention, a gated MLP) is an error that names it."""
    c = {**MAMBA_SSM_DEFAULTS, **config}
    if c.get("attn_layer_idx"):
        raise CheckpointError(f"mamba_ssm checkpoint {where}: attention layers "
                              f"(attn_layer_idx={c['attn_layer_idx']}) are not supported; "
                              "ssmzoo's lm has one mixer kind in every layer")
    if int(c["d_intermediate"]):
        raise CheckpointError(f"mamba_ssm checkpoint {where}: d_intermediate="
                              f"{c['d_intermediate']} (a gated MLP after each mixer) is not "
                              "supported by ssmzoo's lm")
    vocab, pad = int(c["vocab_size"]), int(c["pad_vocab_size_multiple"])
    if pad > 1 and vocab % pad:
        vocab += pad - vocab % pad  # MambaLMHeadModel pads its embedding and logits so
    return {"d_model": int(c["d_model"]), "n_layers": int(c["n_layer"]), "vocab_size": vocab,
            "norm": "rms" if c["rms_norm"] else "layer", "norm_eps": MAMBA_SSM_NORM_EPS,
            "tie": bool(c["tie_embeddings"]), "residual_in_fp32": bool(c["residual_in_fp32"])}


# ---- load and save -----------------------------------------------------------------------------
def detect(config: dict[str, Any], where: str) -> CheckpointFormat:
    """The one registered format that claims ``config``."""
    from ssmzoo.registry import get_registry

    formats = get_registry().checkpoint_formats
    claims = [f for f in formats.values() if f.claims(config)]
    if len(claims) == 1:
        return claims[0]
    if len(claims) > 1:
        raise CheckpointError(f"ssmzoo.load: {where} is claimed by several formats "
                              f"({', '.join(f.name for f in claims)}); their plugins disagree")
    known = "; ".join(f"{f.name}: {f.description}" for _, f in sorted(formats.items()))
    model_type = config.get("model_type")
    if model_type is not None:
        types = [t for f in formats.values() for t in f.model_types]
        raise CheckpointError(
            f"ssmzoo.load: {where} has model_type {model_type!r}, which no format reads"
            f"{did_you_mean(str(model_type), types)}; ssmzoo reads its own checkpoints and: "
            f"{known}")
    if isinstance(config.get("ssm_cfg"), dict):
        layer = config["ssm_cfg"].get("layer", "Mamba1")
        layers = [t for f in formats.values() for t in f.ssm_layers]
        raise CheckpointError(
            f"ssmzoo.load: {where} is a mamba_ssm config whose ssm_cfg layer is {layer!r}, "
            f"which no format reads{did_you_mean(str(layer), layers)}; known layers: "
            f"{', '.join(sorted(layers)) or 'none'}")
    raise CheckpointError(f"ssmzoo.load: {where} is not a checkpoint ssmzoo knows (no 'format', "
                          f"'model_type' or 'ssm_cfg' field); ssmzoo reads its own and: {known}")


def _dtype_of(state: dict[str, Tensor]) -> torch.dtype:
    counts: dict[torch.dtype, int] = {}
    for t in state.values():
        if t.is_floating_point():
            counts[t.dtype] = counts.get(t.dtype, 0) + t.numel()
    return max(counts, key=counts.__getitem__) if counts else torch.float32


def _untie(fmt: CheckpointFormat, state: dict[str, Tensor], model: nn.Module,
           where: str) -> dict[str, Tensor]:
    """A tied model has no head of its own: a stored head must be the embedding itself."""
    if getattr(model, "head", "absent") is not None or fmt.head_key not in state:
        return state
    head, emb = state[fmt.head_key], state.get(fmt.embedding_key)
    if emb is None or head.shape != emb.shape or not torch.equal(head, emb):
        raise CheckpointError(f"{fmt.name} checkpoint {where}: {fmt.head_key!r} differs from "
                              f"{fmt.embedding_key!r}, but its config ties them; set the "
                              "config's tie field to false to load an untied head")
    return {k: v for k, v in state.items() if k != fmt.head_key}


def load_foreign(root: Path, config: dict[str, Any], fmt: CheckpointFormat, *,
                 map_location: str | torch.device = "cpu",
                 dtype: torch.dtype | None = None) -> nn.Module:
    """An ssmzoo model equal to the checkpoint in ``root`` of format ``fmt``: built from
    ``fmt.spec(config)``, its weights renamed by ``fmt.keymap`` and checked both ways. ``dtype``:
    None keeps the stored one (the weights' most common floating dtype)."""
    import ssmzoo

    where = repr(str(root))
    spec = fmt.spec(config)
    try:
        model = ssmzoo.build_model(spec)
    except SSMZooError as e:
        raise CheckpointError(f"{fmt.name} checkpoint {where}: its config gives the spec {spec}, "
                              f"which does not build ({e})") from e
    state = fmt.adapt(_untie(fmt, read_weights(root), model, where), model)
    mapped = fmt.keymap(model).to_ssmzoo(state, model.state_dict(), own=own_tensor, where=where)
    model.load_state_dict(mapped, strict=True)
    target = dtype or _dtype_of(state)
    if target != torch.float32:
        model = model.to(target)
    return model.to(map_location)


def save_foreign(model: nn.Module, path: Path, family: str) -> Path:
    """Write ``model`` in the first registered format of ``family`` that can hold it; if none
    can, say why for each."""
    from ssmzoo.registry import get_registry

    formats = [f for f in get_registry().checkpoint_formats.values() if f.family == family]
    families = sorted({f.family for f in get_registry().checkpoint_formats.values()
                       if f.family and f.writable})
    if not formats:
        raise CheckpointError(f"save: unknown format {family!r}; expected 'ssmzoo' or one of "
                              f"{', '.join(repr(f) for f in families)}"
                              f"{did_you_mean(family, ['ssmzoo', *families])}")
    reasons = []
    for fmt in formats:
        why = fmt.why_not(model)
        if why is None:
            return _write(fmt, model, path)
        reasons.append(f"{fmt.name}: {why}")
    raise CheckpointError(f"save(format={family!r}): this model has no {family} counterpart ("
                          + "; ".join(reasons) + "); save it with format='ssmzoo'")


def _write(fmt: CheckpointFormat, model: nn.Module, path: Path) -> Path:
    config = fmt.config(model)
    state = fmt.keymap(model).to_source(model.state_dict(), own=own_tensor)
    path.mkdir(parents=True, exist_ok=True)
    write_safetensors(state, path / fmt.weights_name)
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")  # inf: Infinity, as HF
    return path
