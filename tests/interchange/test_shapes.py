"""mamba(core=s6) has exactly the parameter shapes of HF's Mamba mixer."""

from __future__ import annotations

import pytest
import transformers

import ssmzoo


@pytest.mark.parametrize("d_model", [64, 768])
def test_mamba_block_has_hf_mixer_shapes(d_model: int) -> None:
    from transformers.models.mamba.modeling_mamba import MambaMixer

    hf = MambaMixer(transformers.MambaConfig(hidden_size=d_model), layer_idx=0)
    ours = ssmzoo.build("mamba(core=s6)", d_model=d_model)
    hf_shapes = sorted(tuple(p.shape) for p in hf.parameters())
    our_shapes = sorted(tuple(p.shape) for p in ours.parameters())
    assert our_shapes == hf_shapes
    assert ours.core.dt_rank == hf.time_step_rank
