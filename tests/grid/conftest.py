"""Fixtures of the grid tests: a tiny registry and a small grid file writer."""

from __future__ import annotations

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
