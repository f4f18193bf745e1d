"""mamba_ssm-format directories (``MambaLMHeadModel.save_pretrained``: config.json with ssm_cfg,
pytorch_model.bin, a padded vocabulary, tied or untied embeddings) through ssmzoo.load.

mamba_ssm itself needs CUDA; its CPU-free twin, HF transformers' Mamba and Mamba-2 (the same
math, converted from mamba_ssm's checkpoints), provides the weights and the reference logits."""

from __future__ import annotations

import json

import pytest
import torch

import ssmzoo
from ssmzoo.errors import CheckpointError
from tests.interchange.sources import VOCAB, hf_mamba, hf_mamba2, rel_l2, write_mamba_ssm

PADDED = 64  # VOCAB = 61 padded to a multiple of 8, as MambaLMHeadModel pads it


@pytest.mark.parametrize("tie", [True, False])
def test_mamba1_directory(tmp_path, ids, tie) -> None:
    hf = hf_mamba(64, vocab=PADDED, tie_word_embeddings=tie)
    root = write_mamba_ssm(hf, tmp_path / "m1", tie=tie)
    ours = ssmzoo.load(root).eval()
    assert ours.vocab_size == PADDED and (ours.head is None) == tie
    with torch.no_grad():
        assert rel_l2(ours(ids), hf(ids).logits) < 1e-5
        assert torch.equal(ours.generate(ids[:, :5], 32),
                           hf.generate(ids[:, :5], max_new_tokens=32, min_new_tokens=32,
                                       do_sample=False, pad_token_id=0))


def test_mamba2_directory(tmp_path, ids) -> None:
    hf = hf_mamba2(64, vocab=PADDED, tie_word_embeddings=True)
    c = hf.config
    ssm_cfg = {"d_state": c.state_size, "headdim": c.head_dim, "ngroups": c.n_groups,
               "chunk_size": c.chunk_size, "expand": c.expand}
    root = write_mamba_ssm(hf, tmp_path / "m2", layer="Mamba2", ssm_cfg=ssm_cfg)
    ours = ssmzoo.load(root).eval()
    with torch.no_grad():
        assert rel_l2(ours(ids), hf(ids).logits) < 1e-5


def test_mamba2_per_channel_D_is_stored_flat(tmp_path, ids) -> None:
    """mamba_ssm keeps D_has_hdim's D as (heads * headdim,); ssmzoo as (heads, headdim)."""
    model = ssmzoo.build_model(f"lm(mixer=mamba2(d_state=8, headdim=16, D_has_hdim=true), "
                               f"d_model=32, n_layers=1, vocab_size={PADDED})")
    state = {k.replace("layers.", "backbone.layers.").replace("embedding.", "backbone.embedding.")
             .replace("norm_f.", "backbone.norm_f."): v.clone()
             for k, v in model.state_dict().items() if not k.endswith("spectrum_scale")}
    D = state["backbone.layers.0.mixer.D"]
    state["backbone.layers.0.mixer.D"] = torch.randn(D.numel())
    state["lm_head.weight"] = state["backbone.embedding.weight"]
    root = tmp_path / "hdim"
    root.mkdir()
    torch.save(state, root / "pytorch_model.bin")
    (root / "config.json").write_text(json.dumps({
        "d_model": 32, "n_layer": 1, "vocab_size": PADDED, "pad_vocab_size_multiple": 8,
        "ssm_cfg": {"layer": "Mamba2", "d_state": 8, "headdim": 16, "D_has_hdim": True}}))
    ours = ssmzoo.load(root)
    assert torch.equal(ours.layers[0].mixer.D.flatten(), state["backbone.layers.0.mixer.D"])


def test_what_ssmzoo_lacks_is_refused_by_name(tmp_path) -> None:
    hf = hf_mamba(32, layers=1, vocab=PADDED)
    root = write_mamba_ssm(hf, tmp_path / "m")
    config = json.loads((root / "config.json").read_text())
    cases = {
        "d_intermediate=128": {**config, "d_intermediate": 128},
        "attention layers": {**config, "attn_layer_idx": [0]},
        "ssm_cfg sets foo": {**config, "ssm_cfg": {"foo": 1}},
        "d_ssm=32 below d_inner=64": {**config, "ssm_cfg": {"layer": "Mamba2", "d_ssm": 32}},
        "Mamba3": {**config, "ssm_cfg": {"layer": "Mamba3"}},
    }
    for expect, cfg in cases.items():
        (root / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(CheckpointError, match=expect.replace("(", r"\(")):
            ssmzoo.load(root)


def test_tied_config_with_a_different_head_is_refused(tmp_path) -> None:
    hf = hf_mamba(32, layers=1, vocab=PADDED)
    root = write_mamba_ssm(hf, tmp_path / "m")
    state = torch.load(root / "pytorch_model.bin", weights_only=True)
    state["lm_head.weight"] = state["lm_head.weight"] + 1
    torch.save(state, root / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="lm_head.weight.*differs"):
        ssmzoo.load(root)


def test_vocabulary_padding(tmp_path) -> None:
    from ssmzoo.models.io import checkpoint_spec

    hf = hf_mamba(32, layers=1, vocab=PADDED)
    root = write_mamba_ssm(hf, tmp_path / "m")
    fmt, spec = checkpoint_spec(root)
    assert fmt == "mamba_ssm-mamba1"
    assert f"vocab_size={PADDED}" in spec and VOCAB != PADDED
