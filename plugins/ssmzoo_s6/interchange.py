"""Mamba-1 checkpoints of HF transformers (``MambaForCausalLM``) and mamba_ssm
(``MambaLMHeadModel`` with Mamba1 layers) as ssmzoo's ``lm(mixer=mamba(core=s6))``.

The tensors of one layer's mixer, read as a table (left: the source's, right: ssmzoo's, both
below the layer)::

    in_proj.weight / .bias      in_proj.weight / .bias
    conv1d.weight / .bias       conv1d.weight / .bias
    x_proj.weight               core.x_proj.weight
    dt_proj.weight              core.dt_proj.weight
    dt_proj.bias                core.dt_bias
    A_log                       core.A_log
    D                           core.D
    out_proj.weight / .bias     out_proj.weight / .bias

The two sources share this table and differ in the frame (``embeddings`` vs ``embedding``) and
the config. Every default of a config that leaves a field out is the source's own
(``HF_DEFAULTS``, ``MAMBA_SSM_MIXER_DEFAULTS``, and the frame's in ``ssmzoo.models.interchange``);
initialisation-only fields (Δ's range and scale) become the spec's init hyperparameters, so the
spec says what the source would have built.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from ssmzoo.errors import CheckpointError
from ssmzoo.models.interchange import (
    CheckpointFormat,
    KeyMap,
    flag,
    lm_hf_config,
    lm_keymap,
    lm_spec,
    lm_why_not,
    mamba_ssm_frame,
)

__all__ = ["HFMamba", "MambaSSMMamba1", "MIXER_ROWS"]

#  source (below backbone.layers.{i}.mixer.)   ssmzoo (below layers.{i}.mixer.)
MIXER_ROWS = (
    ("in_proj.weight",                          "in_proj.weight"),
    ("in_proj.bias",                            "in_proj.bias"),
    ("conv1d.weight",                           "conv1d.weight"),
    ("conv1d.bias",                             "conv1d.bias"),
    ("x_proj.weight",                           "core.x_proj.weight"),
    ("dt_proj.weight",                          "core.dt_proj.weight"),
    ("dt_proj.bias",                            "core.dt_bias"),
    ("A_log",                                   "core.A_log"),
    ("D",                                       "core.D"),
    ("out_proj.weight",                         "out_proj.weight"),
    ("out_proj.bias",                           "out_proj.bias"),
)

# transformers' MambaConfig defaults (a config.json leaves out what equals them)
HF_DEFAULTS: dict[str, Any] = {
    "vocab_size": 50280, "hidden_size": 768, "state_size": 16, "num_hidden_layers": 32,
    "layer_norm_epsilon": 1e-5, "expand": 2, "conv_kernel": 4, "use_bias": False,
    "use_conv_bias": True, "hidden_act": "silu", "residual_in_fp32": True,
    "time_step_rank": "auto", "time_step_scale": 1.0, "time_step_min": 0.001,
    "time_step_max": 0.1, "time_step_floor": 1e-4, "tie_word_embeddings": True,
}
# mamba_ssm's Mamba (mamba_simple.py) defaults
MAMBA_SSM_MIXER_DEFAULTS: dict[str, Any] = {
    "d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto", "dt_min": 0.001,
    "dt_max": 0.1, "dt_init_floor": 1e-4, "dt_scale": 1.0, "conv_bias": True, "bias": False,
}


def mixer_spec(*, d_model: int, d_state: int, expand: int, d_conv: int, conv_bias: bool,
               bias: bool, dt_rank: Any, dt_min: float, dt_max: float, dt_init_floor: float,
               dt_scale: float) -> str:
    """The ``mamba(core=s6(...))`` spec of a Mamba-1 mixer's settings."""
    rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
    core = (f"s6(d_state={int(d_state)}, dt_min={float(dt_min)!r}, dt_max={float(dt_max)!r}, "
            f"dt_init_floor={float(dt_init_floor)!r}, dt_scale={float(dt_scale)!r})")
    return (f"mamba(core={core}, expand={int(expand)}, d_conv={int(d_conv)}, "
            f"conv_bias={flag(conv_bias)}, bias={flag(bias)}, dt_rank={rank})")


def _why_not_mixers(model: nn.Module, target: str) -> str | None:
    from ssmzoo_s6.mamba import Mamba
    from ssmzoo_s6.s6 import S6

    why = lm_why_not(model, Mamba, "mamba", target)
    if why:
        return why
    for i, layer in enumerate(model.layers):
        core = layer.mixer.core
        if not isinstance(core, S6):
            return (f"layer {i}'s mamba block has a {type(core).__name__} core; {target} has "
                    "only S6 (mamba(core=s6))")
        if core.is_complex or core.discretization != "euler" or core.dt_broadcast:
            return (f"layer {i}'s s6 core is complex, zoh or dt_broadcast; {target}'s is real, "
                    "euler, with a low-rank Δ")
    return None


class HFMamba(CheckpointFormat):
    """HF transformers' ``MambaForCausalLM`` (config.json ``model_type`` "mamba")."""

    name = "hf-mamba"
    family = "hf"
    description = "HF transformers MambaForCausalLM (model_type 'mamba')"
    model_types = ("mamba",)

    def claims(self, config: dict[str, Any]) -> bool:
        return config.get("model_type") == "mamba"

    def spec(self, config: dict[str, Any]) -> str:
        c = {**HF_DEFAULTS, **config}
        if c["hidden_act"] != "silu":
            raise CheckpointError(f"{self.name}: hidden_act={c['hidden_act']!r}; ssmzoo's mamba "
                                  "block gates with 'silu' only")
        d = int(c["hidden_size"])
        mixer = mixer_spec(d_model=d, d_state=c["state_size"], expand=c["expand"],
                           d_conv=c["conv_kernel"], conv_bias=c["use_conv_bias"],
                           bias=c["use_bias"], dt_rank=c["time_step_rank"],
                           dt_min=c["time_step_min"], dt_max=c["time_step_max"],
                           dt_init_floor=c["time_step_floor"], dt_scale=c["time_step_scale"])
        return lm_spec(mixer, d_model=d, n_layers=c["num_hidden_layers"],
                       vocab_size=c["vocab_size"], norm_eps=c["layer_norm_epsilon"],
                       tie=c["tie_word_embeddings"], residual_in_fp32=c["residual_in_fp32"])

    def keymap(self, model: nn.Module) -> KeyMap:
        return lm_keymap(self.name, MIXER_ROWS)

    def why_not(self, model: nn.Module) -> str | None:
        return _why_not_mixers(model, "HF Mamba")

    def config(self, model: nn.Module) -> dict[str, Any]:
        block = model.layers[0].mixer
        core = block.core
        return {
            "architectures": ["MambaForCausalLM"], "model_type": "mamba",
            **lm_hf_config(model), "state_size": core.d_state,
            "expand": block.d_inner // block.d_model, "conv_kernel": block.d_conv,
            "use_bias": block.in_proj.bias is not None,
            "use_conv_bias": block.conv1d.bias is not None, "hidden_act": "silu",
            "time_step_rank": core.dt_rank, "torch_dtype": str(block.in_proj.weight.dtype)
            .removeprefix("torch."),
        }


class MambaSSMMamba1(CheckpointFormat):
    """mamba_ssm's ``MambaLMHeadModel`` with Mamba-1 layers (config.json with ``ssm_cfg``,
    ``layer`` "Mamba1" or absent; ``pytorch_model.bin``)."""

    name = "mamba_ssm-mamba1"
    family = "mamba_ssm"
    description = "mamba_ssm MambaLMHeadModel, Mamba1 layers (config.json with ssm_cfg)"
    embedding_key = "backbone.embedding.weight"
    ssm_layers = ("Mamba1",)

    def claims(self, config: dict[str, Any]) -> bool:
        ssm = config.get("ssm_cfg")
        return ("model_type" not in config and isinstance(ssm, dict)
                and ssm.get("layer", "Mamba1") == "Mamba1")

    def spec(self, config: dict[str, Any]) -> str:
        frame = mamba_ssm_frame(config, "config.json")
        m = {**MAMBA_SSM_MIXER_DEFAULTS, **config["ssm_cfg"]}
        known = set(MAMBA_SSM_MIXER_DEFAULTS) | {"layer", "dt_init", "use_fast_path"}
        extra = sorted(set(m) - known)
        if extra:
            raise CheckpointError(f"{self.name}: ssm_cfg sets {', '.join(extra)}, which ssmzoo's "
                                  "mamba block does not have")
        mixer = mixer_spec(d_model=frame["d_model"], d_state=m["d_state"], expand=m["expand"],
                           d_conv=m["d_conv"], conv_bias=m["conv_bias"], bias=m["bias"],
                           dt_rank=m["dt_rank"], dt_min=m["dt_min"], dt_max=m["dt_max"],
                           dt_init_floor=m["dt_init_floor"], dt_scale=m["dt_scale"])
        return lm_spec(mixer, **frame)

    def keymap(self, model: nn.Module) -> KeyMap:
        return lm_keymap(self.name, MIXER_ROWS, self.embedding_key)
