"""Checkpoints of other implementations (HF transformers, mamba_ssm): key maps, weight files,
and the formats plugins register. ``ssmzoo.load`` and ``model.save(format=...)`` use them."""

from ssmzoo.models.interchange.formats import (
    CheckpointFormat,
    detect,
    flag,
    lm_hf_config,
    lm_keymap,
    lm_rows,
    lm_spec,
    lm_why_not,
    load_foreign,
    mamba_ssm_frame,
    number,
    own_tensor,
    save_foreign,
)
from ssmzoo.models.interchange.keymap import KeyMap
from ssmzoo.models.interchange.weights import read_weights, write_safetensors

__all__ = ["CheckpointFormat", "KeyMap", "detect", "flag", "lm_hf_config", "lm_keymap", "lm_rows", "lm_spec",
           "lm_why_not", "load_foreign", "mamba_ssm_frame", "number", "own_tensor", "read_weights", "save_foreign",
           "write_safetensors"]
