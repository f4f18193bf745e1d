"""Every unit runs under bf16 autocast (the training loop's CUDA setting), here on the CPU.

The language model is the case that once broke: its RMSNorm hands a float32 x to the mixer while
the projections give a bf16 Δ, and the scan takes u and Δ in one dtype.
"""

from __future__ import annotations

import pytest
import torch

import ssmzoo


@pytest.mark.parametrize("name", ssmzoo.list_units())
def test_lm_forward_backward_under_bf16_autocast(name: str) -> None:
    torch.manual_seed(0)
    model = ssmzoo.build_model(f"lm(mixer={name}, d_model=16, n_layers=1, vocab_size=11)")
    ids = torch.randint(0, 11, (2, 12))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(ids)
    loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids.flatten())
    loss.backward()
    assert torch.isfinite(logits.float()).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
