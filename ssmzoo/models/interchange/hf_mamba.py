"""HF transformers' ``MambaForCausalLM`` <-> ssmzoo's ``lm(mixer=mamba(core=s6))``.

Key map, one row per tensor (``{i}``: the layer index); rows whose ssmzoo tensor a model does not
have (a bias the config turns off, the untied head) are skipped, and every source tensor must be
used by some row.
"""

from __future__ import annotations

import math
from typing import Any

from ssmzoo.errors import CheckpointError

MODEL_TYPE = "mamba"
ARCHITECTURE = "MambaForCausalLM"

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
    ("backbone.layers.{i}.mixer.x_proj.weight",   "layers.{i}.mixer.core.x_proj.weight"),
    ("backbone.layers.{i}.mixer.dt_proj.weight",  "layers.{i}.mixer.core.dt_proj.weight"),
    ("backbone.layers.{i}.mixer.dt_proj.bias",    "layers.{i}.mixer.core.dt_bias"),
    ("backbone.layers.{i}.mixer.A_log",           "layers.{i}.mixer.core.A_log"),
    ("backbone.layers.{i}.mixer.D",               "layers.{i}.mixer.core.D"),
    ("backbone.layers.{i}.mixer.out_proj.weight", "layers.{i}.mixer.out_proj.weight"),
    ("backbone.layers.{i}.mixer.out_proj.bias",   "layers.{i}.mixer.out_proj.bias"),
]


def _b(v: bool) -> str:
    return "true" if v else "false"


def spec_from_config(cfg: dict[str, Any]) -> str:
    """The ssmzoo spec of an HF ``MambaConfig`` (as a dict)."""
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise CheckpointError(f"HF Mamba config: hidden_act={act!r}; ssmzoo's mamba block "
                              "uses 'silu' only")
    d = int(cfg["hidden_size"])
    rank = cfg.get("time_step_rank", "auto")
    rank = math.ceil(d / 16) if rank == "auto" else int(rank)
    mixer = (f"mamba(core=s6(d_state={int(cfg.get('state_size', 16))}), "
             f"expand={int(cfg.get('expand', 2))}, d_conv={int(cfg.get('conv_kernel', 4))}, "
             f"conv_bias={_b(cfg.get('use_conv_bias', True))}, "
             f"bias={_b(cfg.get('use_bias', False))}, dt_rank={rank})")
    return (f"lm(mixer={mixer}, d_model={d}, n_layers={int(cfg['num_hidden_layers'])}, "
            f"vocab_size={int(cfg['vocab_size'])}, norm=rms, "
            f"norm_eps={float(cfg.get('layer_norm_epsilon', 1e-5))!r}, "
            f"tie_embeddings={_b(cfg.get('tie_word_embeddings', True))}, "
            f"residual_in_fp32={_b(cfg.get('residual_in_fp32', True))})")


def config_from_model(model: Any) -> dict[str, Any]:
    """HF ``MambaConfig`` keyword arguments for an ssmzoo lm whose layers are all mamba(s6)."""
    block = model.layers[0].mixer
    core = block.core
    return {
        "hidden_size": model.d_model, "num_hidden_layers": model.n_layers,
        "vocab_size": model.vocab_size, "state_size": core.d_state,
        "expand": block.d_inner // block.d_model, "conv_kernel": block.d_conv,
        "use_conv_bias": block.conv1d.bias is not None, "use_bias": block.in_proj.bias is not None,
        "time_step_rank": core.dt_rank, "layer_norm_epsilon": model.norm_f.eps,
        "tie_word_embeddings": model.head is None,
        "residual_in_fp32": model.layers[0].residual_in_fp32,
    }


def check_model(model: Any) -> str | None:
    """Why ``model`` has no HF Mamba counterpart, or None when it has one."""
    from ssmzoo_s6.mamba import Mamba
    from ssmzoo_s6.s6 import S6
    from torch import nn

    if not isinstance(model.norm_f, nn.RMSNorm):
        return "HF Mamba uses RMSNorm (norm=rms)"
    for i, layer in enumerate(model.layers):
        m = layer.mixer
        if not isinstance(m, Mamba):
            return f"layer {i}'s mixer is {type(m).__name__}, not a mamba block"
        c = m.core
        if not isinstance(c, S6):
            return (f"layer {i}'s mamba block has a {type(c).__name__} core; HF Mamba has only "
                    "S6 (mamba(core=s6))")
        if c.is_complex or c.discretization != "euler" or c.dt_broadcast:
            return f"layer {i}'s s6 core is not HF's (complex, zoh or dt_broadcast)"
        if not isinstance(layer.out, nn.Identity) or not layer.prenorm:
            return f"layer {i} has an output mixing or post-norm that HF Mamba lacks"
    return None
