"""``ssmzoo convert``, ``ssmzoo describe DIR`` and ``ssmzoo formats``."""

from __future__ import annotations

import torch
import transformers

import ssmzoo
from ssmzoo.cli import main
from tests.interchange.sources import hf_mamba2, rel_l2


def test_convert_hf_to_ssmzoo_and_back(tmp_path, ids, capsys) -> None:
    hf = hf_mamba2(32, num_heads=4, head_dim=16, n_groups=2)
    hf.save_pretrained(tmp_path / "hf")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "zoo"), "--to", "ssmzoo"]) == 0
    assert "(hf-mamba2)" in capsys.readouterr().out
    assert (tmp_path / "zoo" / "model.safetensors").is_file()
    assert main(["convert", str(tmp_path / "zoo"), str(tmp_path / "back"), "--to", "hf"]) == 0
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        assert rel_l2(back(ids).logits, hf(ids).logits) < 1e-6
        assert rel_l2(ssmzoo.load(tmp_path / "zoo")(ids), hf(ids).logits) < 1e-5


def test_describe_a_checkpoint_prints_its_spec(tmp_path, capsys) -> None:
    hf_mamba2(32, num_heads=4, head_dim=16, n_groups=1).save_pretrained(tmp_path / "hf")
    assert main(["describe", str(tmp_path / "hf")]) == 0
    out = capsys.readouterr().out
    assert "hf-mamba2 checkpoint" in out
    spec = out.split("spec: ", 1)[1].strip()
    assert ssmzoo.build_model(spec).d_model == 32


def test_convert_refusals_are_one_line(tmp_path, capsys) -> None:
    model = ssmzoo.build_model("lm(mixer=mamba(core=b2s6), d_model=16, n_layers=1, vocab_size=9)")
    model.save(tmp_path / "b2s6")
    assert main(["convert", str(tmp_path / "b2s6"), str(tmp_path / "x"), "--to", "hf"]) == 1
    err = capsys.readouterr().err
    assert "no hf counterpart" in err and "Traceback" not in err
    assert main(["convert", str(tmp_path / "b2s6"), str(tmp_path / "x"), "--to", "hff"]) == 1
    assert "did you mean 'hf'" in capsys.readouterr().err


def test_formats_lists_every_registered_format(capsys) -> None:
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    for name in ("ssmzoo", "hf-mamba", "hf-mamba2", "mamba_ssm-mamba1", "mamba_ssm-mamba2"):
        assert name in out
