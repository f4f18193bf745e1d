"""Mamba-2 checkpoints of HF transformers (``Mamba2ForCausalLM``) and mamba_ssm
(``MambaLMHeadModel`` with Mamba2 layers) as ssmzoo's ``lm(mixer=mamba2(...))``.

The tensors of one layer's mixer keep their names on both sides (below
``backbone.layers.{i}.mixer.`` and ``layers.{i}.mixer.``): ``in_proj``, ``conv1d``, ``dt_bias``,
``A_log``, ``D``, ``norm.weight`` (the gated RMSNorm) and ``out_proj``; see ``MIXER_ROWS``. One
shape differs: mamba_ssm stores a per-channel D (``D_has_hdim``) flat, (heads * headdim,), where
ssmzoo keeps (heads, headdim).

What ssmzoo's block lacks is refused by name: mamba_ssm's gated-MLP slice (``d_ssm`` below
d_inner), an activation other than SiLU.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

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
    number,
)

__all__ = ["HFMamba2", "MambaSSMMamba2", "MIXER_ROWS"]

#  source (below backbone.layers.{i}.mixer.)   ssmzoo (below layers.{i}.mixer.)
MIXER_ROWS = (
    ("in_proj.weight",                          "in_proj.weight"),
    ("in_proj.bias",                            "in_proj.bias"),
    ("conv1d.weight",                           "conv1d.weight"),
    ("conv1d.bias",                             "conv1d.bias"),
    ("dt_bias",                                 "dt_bias"),
    ("A_log",                                   "A_log"),
    ("D",                                       "D"),
    ("norm.weight",                             "norm.weight"),
    ("out_proj.weight",                         "out_proj.weight"),
    ("out_proj.bias",                           "out_proj.bias"),
)

# transformers' Mamba2Config defaults (a config.json leaves out what equals them)
HF_DEFAULTS: dict[str, Any] = {
    "num_heads": 128, "head_dim": 64, "vocab_size": 32768, "hidden_size": 4096,
    "state_size": 128, "num_hidden_layers": 64, "layer_norm_epsilon": 1e-5, "expand": 2,
    "conv_kernel": 4, "n_groups": 8, "use_bias": False, "use_conv_bias": True,
    "hidden_act": "silu", "residual_in_fp32": True, "time_step_min": 0.001,
    "time_step_max": 0.1, "time_step_floor": 1e-4, "time_step_limit": (0.0, math.inf),
    "chunk_size": 256, "tie_word_embeddings": False,
}
# mamba_ssm's Mamba2 (modules/mamba2.py) defaults
MAMBA_SSM_MIXER_DEFAULTS: dict[str, Any] = {
    "d_state": 128, "d_conv": 4, "expand": 2, "headdim": 64, "d_ssm": None, "ngroups": 1,
    "A_init_range": (1.0, 16.0), "D_has_hdim": False, "rmsnorm": True,
    "norm_before_gate": False, "dt_min": 0.001, "dt_max": 0.1, "dt_init_floor": 1e-4,
    "dt_limit": (0.0, math.inf), "bias": False, "conv_bias": True, "chunk_size": 256,
}
IGNORED = {"layer", "conv_init", "use_mem_eff_path"}  # initialisation and kernel choices


def _pair(v: Any) -> str:
    lo, hi = (number(x) for x in v)
    return f"[{lo!r}, {hi!r}]"


class HFMamba2(CheckpointFormat):
    """HF transformers' ``Mamba2ForCausalLM`` (config.json ``model_type`` "mamba2")."""

    name = "hf-mamba2"
    family = "hf"
    description = "HF transformers Mamba2ForCausalLM (model_type 'mamba2')"
    model_types = ("mamba2",)

    def claims(self, config: dict[str, Any]) -> bool:
        return config.get("model_type") == "mamba2"

    def spec(self, config: dict[str, Any]) -> str:
        c = {**HF_DEFAULTS, **config}
        d = int(c["hidden_size"])
        d_inner = int(c["expand"] * d)
        heads, p = int(c["num_heads"]), int(c["head_dim"])
        if heads * p != d_inner or c["expand"] != int(c["expand"]):
            raise CheckpointError(
                f"{self.name}: num_heads * head_dim = {heads} * {p} = {heads * p}, expected "
                f"expand * hidden_size = {d_inner} with an integer expand; ssmzoo's mamba2 "
                "has no gated-MLP slice")
        if c["hidden_act"] != "silu":
            raise CheckpointError(f"{self.name}: hidden_act={c['hidden_act']!r}; ssmzoo's mamba2 "
                                  "uses 'silu' only")
        eps = float(c["layer_norm_epsilon"])
        mixer = (f"mamba2(d_state={int(c['state_size'])}, d_conv={int(c['conv_kernel'])}, "
                 f"expand={int(c['expand'])}, headdim={p}, ngroups={int(c['n_groups'])}, "
                 f"dt_min={float(c['time_step_min'])!r}, dt_max={float(c['time_step_max'])!r}, "
                 f"dt_init_floor={float(c['time_step_floor'])!r}, "
                 f"dt_limit={_pair(c['time_step_limit'])}, chunk_size={int(c['chunk_size'])}, "
                 f"norm_eps={eps!r}, conv_bias={flag(c['use_conv_bias'])}, "
                 f"bias={flag(c['use_bias'])})")
        return lm_spec(mixer, d_model=d, n_layers=c["num_hidden_layers"],
                       vocab_size=c["vocab_size"], norm_eps=eps, tie=c["tie_word_embeddings"],
                       residual_in_fp32=c["residual_in_fp32"])

    def keymap(self, model: nn.Module) -> KeyMap:
        return lm_keymap(self.name, MIXER_ROWS)

    def why_not(self, model: nn.Module) -> str | None:
        from ssmzoo_mamba2.mamba2 import Mamba2

        why = lm_why_not(model, Mamba2, "mamba2", "HF Mamba-2")
        if why:
            return why
        for i, layer in enumerate(model.layers):
            m = layer.mixer
            if m.norm is None or m.norm.norm_before_gate or m.D.dim() != 1:
                return (f"layer {i}'s mamba2 block differs from HF's (rmsnorm=false, "
                        "norm_before_gate=true or D_has_hdim=true)")
            if m.norm.eps != model.norm_f.eps:
                return (f"layer {i}'s gated norm has eps {m.norm.eps}, the model's norms "
                        f"{model.norm_f.eps}: HF Mamba-2 has one layer_norm_epsilon")
        return None

    def config(self, model: nn.Module) -> dict[str, Any]:
        m = model.layers[0].mixer
        return {
            "architectures": ["Mamba2ForCausalLM"], "model_type": "mamba2",
            **lm_hf_config(model), "state_size": m.d_state, "num_heads": m.nheads,
            "head_dim": m.headdim, "n_groups": m.ngroups, "expand": m.d_inner // m.d_model,
            "conv_kernel": m.d_conv, "chunk_size": m.chunk_size,
            "use_conv_bias": m.conv1d.bias is not None, "use_bias": m.in_proj.bias is not None,
            "hidden_act": "silu", "time_step_limit": list(m.dt_limit),
            "torch_dtype": str(m.in_proj.weight.dtype).removeprefix("torch."),
        }


class MambaSSMMamba2(CheckpointFormat):
    """mamba_ssm's ``MambaLMHeadModel`` with Mamba-2 layers (``ssm_cfg.layer`` "Mamba2")."""

    name = "mamba_ssm-mamba2"
    family = "mamba_ssm"
    description = "mamba_ssm MambaLMHeadModel, Mamba2 layers (ssm_cfg with layer 'Mamba2')"
    embedding_key = "backbone.embedding.weight"
    ssm_layers = ("Mamba2",)

    def claims(self, config: dict[str, Any]) -> bool:
        ssm = config.get("ssm_cfg")
        return "model_type" not in config and isinstance(ssm, dict) and ssm.get("layer") == "Mamba2"

    def spec(self, config: dict[str, Any]) -> str:
        frame = mamba_ssm_frame(config, "config.json")
        m = {**MAMBA_SSM_MIXER_DEFAULTS, **config["ssm_cfg"]}
        extra = sorted(set(m) - set(MAMBA_SSM_MIXER_DEFAULTS) - IGNORED)
        if extra:
            raise CheckpointError(f"{self.name}: ssm_cfg sets {', '.join(extra)}, which ssmzoo's "
                                  "mamba2 block does not have")
        d_inner = int(m["expand"]) * frame["d_model"]
        if m["d_ssm"] is not None and int(m["d_ssm"]) != d_inner:
            raise CheckpointError(
                f"{self.name}: ssm_cfg d_ssm={m['d_ssm']} below d_inner={d_inner} (the rest of "
                "each layer a gated MLP) is not supported; ssmzoo's mamba2 runs the SSM on "
                "every channel")
        mixer = (f"mamba2(d_state={int(m['d_state'])}, d_conv={int(m['d_conv'])}, "
                 f"expand={int(m['expand'])}, headdim={int(m['headdim'])}, "
                 f"ngroups={int(m['ngroups'])}, A_init_range={_pair(m['A_init_range'])}, "
                 f"D_has_hdim={flag(m['D_has_hdim'])}, rmsnorm={flag(m['rmsnorm'])}, "
                 f"norm_before_gate={flag(m['norm_before_gate'])}, "
                 f"dt_min={float(m['dt_min'])!r}, dt_max={float(m['dt_max'])!r}, "
                 f"dt_init_floor={float(m['dt_init_floor'])!r}, dt_limit={_pair(m['dt_limit'])}, "
                 f"chunk_size={int(m['chunk_size'])}, conv_bias={flag(m['conv_bias'])}, "
                 f"bias={flag(m['bias'])})")
        return lm_spec(mixer, **frame)

    def keymap(self, model: nn.Module) -> KeyMap:
        return lm_keymap(self.name, MIXER_ROWS, self.embedding_key)

    def adapt(self, state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
        out = dict(state)
        for i, layer in enumerate(model.layers):
            key = f"backbone.layers.{i}.mixer.D"
            D = layer.mixer.D
            if key in out and D.dim() == 2 and out[key].dim() == 1 \
                    and out[key].numel() == D.numel():
                out[key] = out[key].reshape(D.shape)  # (heads * headdim,) -> (heads, headdim)
        return out
