"""Fixtures of the grid tests: a tiny registry and a small grid file writer."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.train.tinyzoo import make_registry

FAST_TASK = "memory_scale(seq_len=8, n_train=128, n_val=32, n_test=32)"
TOKEN_TASK = "keep_nth(seq_len=8, n=2, vocab=4, n_train=128, n_val=32, n_test=32)"


@pytest.fixture(scope="module")
def tiny_registry():
    return make_registry()


@pytest.fixture
def write_grid(tmp_path: Path):
    def write(text: str, name: str = "g.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], what: str,
              timeout: float = 240) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (failing if it ends first or ``what`` does
    not happen within ``timeout`` seconds); the process is gone afterwards either way."""
    deadline = time.time() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"the grid ended before {what}"
            assert time.time() < deadline, f"no {what} in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
