"""Reading and writing weight files in the layouts HF transformers and mamba_ssm use.

Read: ``model.safetensors``, ``pytorch_model.bin``, or either sharded (``*.index.json`` with a
``weight_map`` from tensor name to shard file). Write: one ``model.safetensors`` with HF's
``{"format": "pt"}`` metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from ssmzoo.errors import CheckpointError

__all__ = ["read_weights", "write_safetensors", "WEIGHT_FILES"]

SAFETENSORS = "model.safetensors"
BIN = "pytorch_model.bin"
WEIGHT_FILES = (SAFETENSORS, SAFETENSORS + ".index.json", BIN, BIN + ".index.json")


def _load_file(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise CheckpointError(f"ssmzoo.load: weight file {str(path)!r} is missing")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as e:  # safetensors, pickle and zip errors alike: the file is unreadable
        raise CheckpointError(f"ssmzoo.load: {str(path)!r} is corrupt or not a weight file "
                              f"({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"ssmzoo.load: {str(path)!r} does not hold a state dict (a "
                              "mapping of names to tensors)")
    return state


def _load_index(index: Path) -> dict[str, Tensor]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"ssmzoo.load: {str(index)!r} is not a shard index with a "
                              f"'weight_map' ({type(e).__name__}: {e})") from None
    state: dict[str, Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        part = _load_file(index.parent / shard)
        state.update(part)
    absent = sorted(set(weight_map) - set(state))
    if absent:
        raise CheckpointError(f"ssmzoo.load: {str(index)!r} names tensors that no shard "
                              f"holds: {', '.join(absent[:5])}")
    return state


def read_weights(root: Path) -> dict[str, Tensor]:
    """The state dict of a checkpoint directory, from the first of ``WEIGHT_FILES`` present."""
    for name in WEIGHT_FILES:
        path = root / name
        if path.is_file():
            return _load_index(path) if name.endswith(".index.json") else _load_file(path)
    raise CheckpointError(f"ssmzoo.load: {str(root)!r} has no weights; expected one of "
                          f"{', '.join(WEIGHT_FILES)}")


def write_safetensors(state: dict[str, Tensor], path: Path) -> None:
    """``state`` as one safetensors file with HF's metadata (tensors copied out contiguous, so
    that tied or overlapping tensors are stored once each)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, str(path),
              metadata={"format": "pt"})
