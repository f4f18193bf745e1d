"""mamba_ssm's own pure-PyTorch references, taken from its source archive at test time (never vendored).

The functions are extracted from ``mamba_ssm/ops/selective_scan_interface.py`` (and
``ops/triton/ssd_combined.py``) of the mamba-ssm source distribution by parsing the file and
compiling only the named function definitions, so neither its CUDA extension nor Triton is
imported. The archive is looked up in ``$SSMZOO_MAMBA_SRC``, in ``.gpu/mamba_src`` of the checkout,
or downloaded once with ``pip download`` into a cache directory.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

VERSION = "2.3.2.post1"
_REPO = Path(__file__).resolve().parents[2]
_CACHE = Path(os.environ.get("SSMZOO_CACHE", Path(tempfile.gettempdir()) / "ssmzoo-test-cache"))


class MambaSourceUnavailable(RuntimeError):
    """The source archive is not here and could not be downloaded (the reason is the message)."""


def source_root() -> Path:
    """A directory holding ``mamba_ssm/ops/selective_scan_interface.py``."""
    candidates = [os.environ.get("SSMZOO_MAMBA_SRC"), _REPO / ".gpu" / "mamba_src",
                  _CACHE / f"mamba_ssm-{VERSION}"]
    for c in candidates:
        if c and (Path(c) / "mamba_ssm" / "ops" / "selective_scan_interface.py").is_file():
            return Path(c)
    return _download()


def _download() -> Path:
    _CACHE.mkdir(parents=True, exist_ok=True)
    dest = _CACHE / f"mamba_ssm-{VERSION}"
    if dest.exists() and not dest.is_dir():  # a stale or partial entry from an interrupted run
        dest.unlink()
    with tempfile.TemporaryDirectory(dir=_CACHE) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--no-build-isolation", "--quiet", "-d", tmp, f"mamba-ssm=={VERSION}"]
        # pip download of an sdist runs its metadata step; mamba's setup.py imports torch, which is
        # present, and the env vars below keep it from compiling or downloading wheels
        env = dict(os.environ, MAMBA_SKIP_CUDA_BUILD="TRUE", MAMBA_FORCE_BUILD="FALSE")
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        archives = list(Path(tmp).glob("mamba_ssm-*.tar.gz"))
        if not archives:
            if _offline(res.stderr):
                raise MambaSourceUnavailable(
                    f"the package index is unreachable, so mamba-ssm=={VERSION}'s source archive "
                    f"could not be downloaded ({res.stderr.strip().splitlines()[-1:]})")
            raise RuntimeError(f"pip download of mamba-ssm=={VERSION} failed although the index "
                               f"is reachable: {res.stderr.strip()[-500:]}")
        with tarfile.open(archives[0]) as tar:
            members = [m for m in tar.getmembers() if "/mamba_ssm/ops/" in m.name and
                       m.name.endswith(".py")]
            tar.extractall(tmp, members=members, filter="data")
        root = next(p for p in Path(tmp).glob("mamba_ssm-*") if p.is_dir())
        try:
            root.rename(dest)
        except OSError:  # another test worker unpacked it first
            if not (dest / "mamba_ssm" / "ops" / "selective_scan_interface.py").is_file():
                raise
    return dest


_OFFLINE_MARKERS = ("NewConnectionError", "Network is unreachable", "Temporary failure in name",
                    "Name or service not known", "Connection refused", "ConnectTimeout",
                    "Max retries exceeded", "No route to host")


def _offline(stderr: str) -> bool:
    """Whether pip's error output says the index could not be reached at all."""
    return any(marker in stderr for marker in _OFFLINE_MARKERS)


def _extract(path: Path, names: list[str]) -> dict[str, Callable[..., Any]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    missing = set(names) - {d.name for d in defs}
    if missing:
        raise MambaSourceUnavailable(f"{path} has no {sorted(missing)}")
    import math

    import torch
    import torch.nn.functional as F
    from einops import rearrange, repeat

    ns: dict[str, Any] = {"torch": torch, "F": F, "rearrange": rearrange, "repeat": repeat,
                          "math": math}
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(path), "exec"), ns)
    return {n: ns[n] for n in names}


def selective_scan_ref() -> Callable[..., Any]:
    """mamba_ssm's ``selective_scan_ref`` (its sequential pure-PyTorch selective scan)."""
    path = source_root() / "mamba_ssm" / "ops" / "selective_scan_interface.py"
    return _extract(path, ["selective_scan_ref"])["selective_scan_ref"]
