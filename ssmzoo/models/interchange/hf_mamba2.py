"""HF transformers' ``Mamba2ForCausalLM`` <-> ssmzoo's ``lm(mixer=mamba2)``.

Key map, one row per tensor (``{i}``: the layer index), read as in :mod:`.hf_mamba`.
"""

from __future__ import annotations

import math
from typing import Any

from ssmzoo.errors import CheckpointError

MODEL_TYPE = "mamba2"
ARCHITECTURE = "Mamba2ForCausalLM"

#  HF key                                         ssmzoo key
KEYS: list[tuple[str, str]] = [
    ("backbone.embeddings.weight",                "embedding.weight"),
    ("backbone.norm_f.weight",                    "norm_f.weight"),
    ("lm_head.weight",                            "head.weight"),
    ("backbone.layers.{i}.norm.weight",           "layers.{i}.norm.weight"),
    ("backbone.layers.{i}.mixer.in_proj.weight",  "layers.{i}.mixer.in_proj.weight"),
    ("backbone.layers.{i}.mixer.in_proj.bias",    "layers.{i}.mixer.in_proj.bias"),
    ("backbone.layers.{i}.mixer.conv1d.weight",   "layers.{i}.mixer.conv1d.weight"),
    ("backbone.layers.{i}.mixer.conv1d.bias",     "layers.{i}.mixer.conv1d.bias"),
    ("backbone.layers.{i}.mixer.dt_bias",         "layers.{i}.mixer.dt_bias"),
    ("backbone.layers.{i}.mixer.A_log",           "layers.{i}.mixer.A_log"),
    ("backbone.layers.{i}.mixer.D",               "layers.{i}.mixer.D"),
    ("backbone.layers.{i}.mixer.norm.weight",     "layers.{i}.mixer.norm.weight"),
    ("backbone.layers.{i}.mixer.out_proj.weight", "layers.{i}.mixer.out_proj.weight"),
    ("backbone.layers.{i}.mixer.out_proj.bias",   "layers.{i}.mixer.out_proj.bias"),
]


def _b(v: bool) -> str:
    return "true" if v else "false"


def mixer_spec(*, d_model: int, d_state: int, d_conv: int, expand: int, headdim: int,
               ngroups: int, chunk_size: int, conv_bias: bool, bias: bool,
               dt_limit: tuple[float, float] = (0.0, math.inf)) -> str:
    """A ``mamba2(...)`` spec with every setting that a checkpoint fixes."""
    s = (f"mamba2(d_state={d_state}, d_conv={d_conv}, expand={expand}, headdim={headdim}, "
         f"ngroups={ngroups}, chunk_size={chunk_size}, conv_bias={_b(conv_bias)}, "
         f"bias={_b(bias)}")
    lo, hi = float(dt_limit[0]), float(dt_limit[1])
    if (lo, hi) != (0.0, math.inf):
        if math.isinf(hi):
            raise CheckpointError(f"Mamba-2 config: time_step_limit=({lo}, inf) with a lower "
                                  "bound only is not supported; expected (0.0, inf) or finite")
        s += f", dt_limit=[{lo!r}, {hi!r}]"
    return s + ")"


def spec_from_config(cfg: dict[str, Any]) -> str:
    """The ssmzoo spec of an HF ``Mamba2Config`` (as a dict)."""
    d = int(cfg["hidden_size"])
    expand = cfg.get("expand", 2)
    d_inner = int(expand * d)
    heads, p = int(cfg.get("num_heads", 128)), int(cfg.get("head_dim", 64))
    if heads * p != d_inner or expand != int(expand):
        raise CheckpointError(f"HF Mamba-2 config: num_heads * head_dim = {heads} * {p} = "
                              f"{heads * p}, expected expand * hidden_size = {d_inner} (an "
                              "integer expand); ssmzoo's mamba2 has no gated-MLP slice")
    eps = float(cfg.get("layer_norm_epsilon", 1e-5))
    if eps != 1e-5:
        raise CheckpointError(f"HF Mamba-2 config: layer_norm_epsilon={eps}; ssmzoo's mamba2 "
                              "gated norm uses 1e-5")
    if cfg.get("hidden_act", "silu") != "silu":
        raise CheckpointError(f"HF Mamba-2 config: hidden_act={cfg.get('hidden_act')!r}, "
                              "expected 'silu'")
    limit = cfg.get("time_step_limit", (0.0, math.inf))
    mixer = mixer_spec(d_model=d, d_state=int(cfg.get("state_size", 128)),
                       d_conv=int(cfg.get("conv_kernel", 4)), expand=int(expand), headdim=p,
                       ngroups=int(cfg.get("n_groups", 1)),
                       chunk_size=int(cfg.get("chunk_size", 256)),
                       conv_bias=bool(cfg.get("use_conv_bias", True)),
                       bias=bool(cfg.get("use_bias", False)), dt_limit=tuple(limit))
    return (f"lm(mixer={mixer}, d_model={d}, n_layers={int(cfg['num_hidden_layers'])}, "
            f"vocab_size={int(cfg['vocab_size'])}, norm=rms, norm_eps={eps!r}, "
            f"tie_embeddings={_b(cfg.get('tie_word_embeddings', False))}, "
            f"residual_in_fp32={_b(cfg.get('residual_in_fp32', True))})")


def config_from_model(model: Any) -> dict[str, Any]:
    """HF ``Mamba2Config`` keyword arguments for an ssmzoo lm whose layers are all mamba2."""
    m = model.layers[0].mixer
    return {
        "hidden_size": model.d_model, "num_hidden_layers": model.n_layers,
        "vocab_size": model.vocab_size, "state_size": m.d_state, "num_heads": m.nheads,
        "head_dim": m.headdim, "n_groups": m.ngroups, "expand": m.d_inner // m.d_model,
        "conv_kernel": m.d_conv, "chunk_size": m.chunk_size,
        "use_conv_bias": m.conv1d.bias is not None, "use_bias": m.in_proj.bias is not None,
        "time_step_limit": list(m.dt_limit), "layer_norm_epsilon": model.norm_f.eps,
        "tie_word_embeddings": model.head is None,
        "residual_in_fp32": model.layers[0].residual_in_fp32,
    }


def check_model(model: Any) -> str | None:
    """Why ``model`` has no HF Mamba-2 counterpart, or None when it has one."""
    from ssmzoo_mamba2.mamba2 import Mamba2
    from torch import nn

    if not isinstance(model.norm_f, nn.RMSNorm):
        return "HF Mamba-2 uses RMSNorm (norm=rms)"
    for i, layer in enumerate(model.layers):
        m = layer.mixer
        if not isinstance(m, Mamba2):
            return f"layer {i}'s mixer is {type(m).__name__}, not a mamba2 block"
        if m.norm is None or m.norm.norm_before_gate or m.D.dim() != 1:
            return (f"layer {i}'s mamba2 block differs from HF's (rmsnorm=false, "
                    "norm_before_gate=true or D_has_hdim=true)")
        if not isinstance(layer.out, nn.Identity) or not layer.prenorm:
            return f"layer {i} has an output mixing or post-norm that HF Mamba-2 lacks"
    return None
