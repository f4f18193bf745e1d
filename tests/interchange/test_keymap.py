"""The key maps as tables, both ways, for every registered writable and readable format; and
checkpoint formats in the registry."""

from __future__ import annotations

import pytest
import torch

import ssmzoo
from ssmzoo.errors import CheckpointError, DuplicateNameError, SSMZooError
from ssmzoo.models.interchange import CheckpointFormat, KeyMap, own_tensor

MODELS = {
    "hf-mamba": "lm(mixer=mamba(bias=true), d_model=32, n_layers=3, vocab_size=40, "
                "tie_embeddings=false)",
    "hf-mamba2": "lm(mixer=mamba2(d_state=8, headdim=16, ngroups=2), d_model=32, n_layers=2, "
                 "vocab_size=40)",
    "mamba_ssm-mamba1": "lm(mixer=mamba, d_model=32, n_layers=2, vocab_size=40, norm=layer)",
    "mamba_ssm-mamba2": "lm(mixer=mamba2(d_state=8, headdim=16), d_model=32, n_layers=2, "
                        "vocab_size=40)",
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_tensor_maps_both_ways(name: str) -> None:
    fmt = ssmzoo.get_registry().checkpoint_formats[name]
    model = ssmzoo.build_model(MODELS[name])
    state = model.state_dict()
    keymap = fmt.keymap(model)
    source = keymap.to_source(state, own=own_tensor)
    assert len(source) == sum(1 for k in state if not own_tensor(k))
    assert all(k.startswith(("backbone.", "lm_head.")) for k in source)
    back = keymap.to_ssmzoo(source, state, own=own_tensor)
    assert set(back) == set(state)
    for k in state:
        assert back[k] is state[k] or torch.equal(back[k], state[k]), k
    # the table names every row once, source then ssmzoo
    table = keymap.table()
    assert len(table.splitlines()) == len(keymap.rows)
    assert "layers.{i}.mixer." in table


def test_unused_and_missing_tensors_are_named() -> None:
    keymap = KeyMap("src", (("a.{i}.w", "layers.{i}.w"), ("b", "head")))
    expected = {"layers.0.w": torch.zeros(2), "layers.1.w": torch.zeros(2), "head": torch.zeros(3)}
    with pytest.raises(CheckpointError, match="no place for: 'c'|no place for: c"):
        keymap.to_ssmzoo({"a.0.w": torch.ones(2), "c": torch.ones(1)}, expected)
    with pytest.raises(CheckpointError, match="lacks tensors.*'a.1.w'"):
        keymap.to_ssmzoo({"a.0.w": torch.ones(2), "b": torch.ones(3)}, expected)
    with pytest.raises(CheckpointError, match=r"shape \(4,\)"):
        keymap.to_ssmzoo({"a.0.w": torch.ones(4), "a.1.w": torch.ones(2), "b": torch.ones(3)},
                         expected)
    with pytest.raises(CheckpointError, match="no src tensor for zz"):
        keymap.to_source({"zz": torch.ones(1)})


def test_formats_register_like_everything_else() -> None:
    reg = ssmzoo.get_registry()
    fmt = reg.checkpoint_formats["hf-mamba"]
    assert fmt.plugin == "s6"
    with pytest.raises(DuplicateNameError):
        with reg.transaction("intruder"):
            reg.checkpoint_format(type(fmt)())
    assert reg.checkpoint_formats["hf-mamba"] is fmt  # rolled back, the built-in kept
    with pytest.raises(SSMZooError, match="must be an instance of"):
        reg.checkpoint_format(object())

    class Mine(CheckpointFormat):
        name = "mine"

    with reg.transaction("mine") as tx:
        reg.checkpoint_format(Mine())
    assert tx.registered == [("format", "mine")]
    reg.unregister(tx.registered)
    assert "mine" not in reg.checkpoint_formats
