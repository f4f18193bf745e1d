"""HF transformers' Mamba and Mamba-2 checkpoints through ssmzoo.load and save(format="hf"):
equal logits, last states and greedy generation, in float32 and float64; random weights only."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

import ssmzoo
from ssmzoo.errors import CheckpointError
from tests.interchange.sources import VOCAB, hf_mamba, hf_mamba2, hf_states, rel_l2

CASES = {
    "mamba-64": lambda: hf_mamba(64),
    "mamba-768": lambda: hf_mamba(768, layers=1),
    "mamba-untied-bias": lambda: hf_mamba(48, tie_word_embeddings=False, use_bias=True,
                                          state_size=8, expand=3, conv_kernel=3),
    "mamba2-heads8-groups2": lambda: hf_mamba2(64),  # chunk 16 does not divide length 37
    "mamba2-tied-limit": lambda: hf_mamba2(32, num_heads=4, head_dim=16, n_groups=1,
                                           tie_word_embeddings=True,
                                           time_step_limit=(0.01, 2.0), use_conv_bias=False),
}




def float64_bound(hf) -> float:
    """HF's mixers keep parts of their math in float32 even in a float64 model (A =
    -exp(A_log.float()); Mamba's scan fallback casts Δ, B and u): the float64 comparison is
    bounded by float32 rounding there, not by ssmzoo's."""
    return 1e-6


@pytest.fixture(params=list(CASES))
def hf_dir(request, tmp_path):
    hf = CASES[request.param]()
    hf.save_pretrained(tmp_path / "hf")
    return hf, tmp_path / "hf"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_load_gives_hf_logits(hf_dir, ids, dtype) -> None:
    hf, root = hf_dir
    ours = ssmzoo.load(root, dtype=dtype).eval()
    hf = hf.to(dtype)
    assert next(ours.parameters()).dtype == dtype
    with torch.no_grad():
        err = rel_l2(ours(ids), hf(ids).logits)
    assert err < (1e-5 if dtype == torch.float32 else float64_bound(hf)), err


def test_prefill_states_are_hf_cache_states(hf_dir, ids) -> None:
    hf, root = hf_dir
    ours = ssmzoo.load(root, dtype=torch.float64).eval()
    hf = hf.double()
    with torch.no_grad():
        _, states = ours.prefill(ids)
        theirs = hf_states(hf, ids)
    for i, (mine, (ssm, conv)) in enumerate(zip(states, theirs)):
        ours_ssm = mine["core"] if "core" in mine else mine["ssm"]
        assert rel_l2(ours_ssm, ssm) < float64_bound(hf), f"layer {i} state"
        # HF keeps the whole kernel's window, the newest input last; ssmzoo the d_conv - 1
        # inputs before the next step's
        assert rel_l2(mine["conv"], conv[..., 1:]) < float64_bound(hf), f"layer {i} conv window"


def test_greedy_generation_is_hf_generate(hf_dir, ids) -> None:
    hf, root = hf_dir
    ours = ssmzoo.load(root).eval()
    prompt = ids[:, :9]
    with torch.no_grad():
        mine = ours.generate(prompt, 32)
        theirs = hf.generate(prompt, max_new_tokens=32, do_sample=False, min_new_tokens=32,
                             pad_token_id=0)
    assert torch.equal(mine, theirs)


def test_save_hf_round_trips_through_transformers(hf_dir, ids, tmp_path) -> None:
    hf, root = hf_dir
    ours = ssmzoo.load(root).eval()
    out = ours.save(tmp_path / "back", format="hf")
    back = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(back) is type(hf)
    with torch.no_grad():
        assert rel_l2(back(ids).logits, hf(ids).logits) < 1e-6
    # and ssmzoo reads its own export back to the same model
    again = ssmzoo.load(out)
    for (k, a), (_, b) in zip(sorted(ours.state_dict().items()), sorted(again.state_dict().items())):
        assert torch.equal(a, b), k


def test_save_refuses_models_without_an_hf_counterpart(tmp_path) -> None:
    b2s6 = ssmzoo.build_model(f"lm(mixer=mamba(core=b2s6), d_model=32, n_layers=1, vocab_size={VOCAB})")
    with pytest.raises(CheckpointError, match="b2s6|B2S6") as e:
        b2s6.save(tmp_path / "x", format="hf")
    assert "format='ssmzoo'" in str(e.value)
    assert not (tmp_path / "x").exists()
    s6c = ssmzoo.build_model(f"lm(mixer=mamba(core=s6-complex), d_model=32, n_layers=1, "
                             f"vocab_size={VOCAB})")
    with pytest.raises(CheckpointError, match="complex"):
        s6c.save(tmp_path / "y", format="hf")
    with pytest.raises(CheckpointError, match="did you mean 'hf'"):
        s6c.save(tmp_path / "z", format="hff")


def test_modulated_model_is_not_exported(tmp_path) -> None:
    model = ssmzoo.build_model(f"lm(mixer=mamba, d_model=32, n_layers=1, vocab_size={VOCAB})")
    ssmzoo.modulate(model, 2.0)
    with pytest.raises(CheckpointError, match="spectrum scale"):
        model.save(tmp_path / "x", format="hf")


def test_sharded_and_bin_checkpoints(ids, tmp_path) -> None:
    hf = hf_mamba(64)
    hf.save_pretrained(tmp_path / "shards", max_shard_size="100KB")
    assert (tmp_path / "shards" / "model.safetensors.index.json").is_file()
    # pytorch_model.bin as transformers 4 wrote it (5 writes safetensors only), and sharded
    hf.save_pretrained(tmp_path / "bin")
    (tmp_path / "bin" / "model.safetensors").unlink()
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    bins = tmp_path / "bins"
    bins.mkdir()
    (bins / "config.json").write_text((tmp_path / "bin" / "config.json").read_text())
    state = hf.state_dict()
    keys = sorted(state)
    halves = {"pytorch_model-00001-of-00002.bin": keys[::2],
              "pytorch_model-00002-of-00002.bin": keys[1::2]}
    for name, part in halves.items():
        torch.save({k: state[k] for k in part}, bins / name)
    (bins / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: n for n, part in halves.items() for k in part}}))
    with torch.no_grad():
        ref = hf(ids).logits
        for sub in ("shards", "bin", "bins"):
            assert rel_l2(ssmzoo.load(tmp_path / sub)(ids), ref) < 1e-5, sub


def test_errors_name_what_is_wrong(tmp_path) -> None:
    hf = hf_mamba(32, layers=1)
    root = tmp_path / "hf"
    hf.save_pretrained(root)
    config = json.loads((root / "config.json").read_text())

    (root / "config.json").write_text(json.dumps({**config, "model_type": "mamba3"}))
    with pytest.raises(CheckpointError, match="model_type 'mamba3'.*did you mean 'mamba"):
        ssmzoo.load(root)

    (root / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}))
    with pytest.raises(CheckpointError, match="hidden_act='gelu'"):
        ssmzoo.load(root)

    from safetensors.torch import load_file, save_file

    (root / "config.json").write_text(json.dumps(config))
    state = load_file(str(root / "model.safetensors"))
    full = dict(state)
    del state["backbone.layers.0.mixer.dt_proj.bias"]
    save_file(state, str(root / "model.safetensors"))
    with pytest.raises(CheckpointError, match="lacks tensors.*dt_proj.bias"):
        ssmzoo.load(root)

    save_file({**full, "backbone.layers.0.mixer.extra.weight": torch.ones(2)},
              str(root / "model.safetensors"))
    with pytest.raises(CheckpointError, match="no place for.*extra.weight"):
        ssmzoo.load(root)

    (root / "config.json").write_text(json.dumps({**config, "state_size": 8}))
    save_file(full, str(root / "model.safetensors"))
    with pytest.raises(CheckpointError, match="A_log.*shape"):
        ssmzoo.load(root)


def test_mamba2_without_a_gated_mlp_slice_only(tmp_path) -> None:
    hf = hf_mamba2(32, num_heads=4, head_dim=16, n_groups=1)
    hf.save_pretrained(tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, "num_heads": 2}))
    with pytest.raises(CheckpointError, match="gated-MLP"):
        ssmzoo.load(tmp_path / "hf")


def test_checkpoint_spec_reads_config_only(hf_dir) -> None:
    from ssmzoo.models.io import checkpoint_spec

    hf, root = hf_dir
    fmt, spec = checkpoint_spec(root)
    assert fmt == ("hf-mamba" if hf.config.model_type == "mamba" else "hf-mamba2")
    model = ssmzoo.build_model(spec)
    # the same parameters (a tied head counts once on both sides)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in hf.parameters())
