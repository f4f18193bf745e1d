"""Shared fixtures. Reusable helpers live in ``tests/helpers.py`` (import them from there)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `from tests.helpers import ...`

from tests.helpers import nan_poison as _nan_poison  # noqa: E402


@pytest.fixture
def nan_poison() -> Iterator[None]:
    """Fresh ``torch.empty``/``empty_like``/``new_empty`` buffers are NaN inside the test."""
    with _nan_poison():
        yield


@pytest.fixture
def seed() -> int:
    """Seeds torch's generator; each test gets fresh, reproducible random inputs."""
    torch.manual_seed(0)
    return 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests when no CUDA device is present (honest only for GPU-only tests)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
