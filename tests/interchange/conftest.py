from __future__ import annotations

import pytest
import torch

from tests.interchange.sources import token_ids


@pytest.fixture
def ids() -> torch.Tensor:
    """(2, 37) token ids: 37 is not a multiple of the Mamba-2 cases' chunk of 16."""
    return token_ids()
