"""Atomic, resumable training checkpoints: ``DIR/step-000120.pt`` files, the last few kept.

A checkpoint holds everything the loop needs to continue as if it had never stopped: the model's
and the optimizer's state, the schedule's position (the step: the learning-rate schedule is a
function of it), the random states (Python, NumPy, torch CPU and every CUDA device) and the
training data stream's position. Each file is written to a temporary name in the same folder,
flushed and fsynced, then moved over its final name with ``os.replace``, so a kill at any moment
leaves either the previous checkpoint or the new one, never half of one. Temporary files (names
starting with ``.``) are ignored when looking for the latest checkpoint.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import torch

from ssmzoo.errors import CheckpointError

__all__ = ["save_checkpoint", "latest_checkpoint", "load_checkpoint", "rng_state",
           "set_rng_state", "list_checkpoints"]

_NAME = re.compile(r"^step-(\d+)\.pt$")


def list_checkpoints(folder: str | os.PathLike[str]) -> list[Path]:
    """The finished checkpoints in ``folder``, oldest first (temporary files left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """The newest finished checkpoint in ``folder``, or None."""
    found = list_checkpoints(folder)
    return found[-1] if found else None


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def save_checkpoint(folder: str | os.PathLike[str], state: dict[str, Any], step: int, *,
                    keep: int = 2) -> Path:
    """Write ``state`` as ``folder/step-NNNNNN.pt`` atomically; keep the newest ``keep`` files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:06d}.pt"
    tmp = folder / f".{final.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(folder)
    for old in list_checkpoints(folder)[:-max(keep, 1)]:
        old.unlink(missing_ok=True)
    return final


def load_checkpoint(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The newest checkpoint of ``folder``; a missing folder, no checkpoint or an unreadable file
    is a :class:`~ssmzoo.errors.CheckpointError` naming the path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"resume: no checkpoint folder at {str(folder)!r} (expected the "
                              "checkpoints/ folder of a run written with checkpoint_every > 0)")
    path = latest_checkpoint(folder)
    if path is None:
        raise CheckpointError(f"resume: {str(folder)!r} holds no checkpoint (expected files "
                              "named step-NNNNNN.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"resume: checkpoint {str(path)!r} is corrupt or unreadable "
                              f"({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "step" not in state or "model" not in state:
        raise CheckpointError(f"resume: {str(path)!r} is not an ssmzoo training checkpoint "
                              "(expected a dict with 'step' and 'model')")
    state["path"] = str(path)
    return state


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's and torch's (CPU and, when present, every CUDA device's) random states."""
    import numpy as np

    out: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                           "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
