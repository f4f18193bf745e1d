"""The models (lm, classifier, regressor), save/load with its errors, and param_groups."""

from __future__ import annotations

import json

import pytest
import torch

import ssmzoo
from ssmzoo.errors import (
    CheckpointError,
    HyperparameterTypeError,
    MissingHyperparameterError,
    SSMZooError,
)
from ssmzoo.models import spectral_modules
from tests.helpers import assert_close

LM = "lm(mixer=mamba(core=b2s6(h=4)), d_model=16, n_layers=2, vocab_size=23)"


@pytest.mark.parametrize("mixer", ["mamba", "mamba-b2s6", "mamba2-small", "s4d", "b2s6"])
def test_lm_step_equals_forward_and_generates(mixer: str) -> None:
    torch.manual_seed(0)
    model = ssmzoo.build_model(f"lm(mixer={mixer}, d_model=16, n_layers=2, vocab_size=23)")
    model = model.double().eval()
    ids = torch.randint(0, 23, (2, 9))
    with torch.no_grad():
        logits = model(ids)
        assert logits.shape == (2, 9, 23)
        state, steps = model.init_state(2), []
        for t in range(9):
            out, state = model.step(ids[:, t], state)
            steps.append(out)
        assert_close("lm step vs forward", logits, torch.stack(steps, 1), rtol=1e-8)
    gen = model.generate(ids[:, :4], 5)
    assert gen.shape == (2, 9) and torch.equal(gen[:, :4], ids[:, :4])
    with torch.no_grad():  # greedy: each new token is the argmax of the forward pass's logits
        assert torch.equal(model(gen)[:, 3:-1].argmax(-1), gen[:, 4:])
    sampled = model.generate(ids[:, :2], 3, temperature=1.0, top_k=5,
                             generator=torch.Generator().manual_seed(0))
    assert sampled.shape == (2, 5) and int(sampled.max()) < 23


def test_lm_head_is_tied_and_init_follows_mamba_ssm() -> None:
    model = ssmzoo.build_model(LM)
    assert model.head is None and "head.weight" not in model.state_dict()
    assert abs(float(model.embedding.weight.detach().std()) - 0.02) < 0.005
    untied = ssmzoo.build_model(LM.replace("vocab_size=23", "vocab_size=23, tie_embeddings=false"))
    assert untied.head is not None
    with pytest.raises(MissingHyperparameterError, match="vocab_size"):
        ssmzoo.build_model("lm(mixer=s6)")


def test_classifier_inputs_pooling_and_padding() -> None:
    torch.manual_seed(1)
    clf = ssmzoo.build_model("classifier(mixer=s6, d_model=16, n_classes=5, d_input=3)").double()
    x = torch.randn(4, 10, 3, dtype=torch.float64)
    assert clf(x).shape == (4, 5)
    # causal mixer + lengths: padding after the valid part changes nothing
    lengths = torch.tensor([10, 6, 3, 1])
    padded = x.clone()
    for i, n in enumerate(lengths):
        padded[i, n:] = 7.0
    with torch.no_grad():
        a = clf(padded, lengths)
        b = torch.stack([clf(x[i: i + 1, :n])[0] for i, n in enumerate(lengths)])
    assert_close("masked mean pooling", b, a, rtol=1e-12)
    # non-finite values at padded positions stay out of the mean (inf * 0 would be nan)
    from ssmzoo.models.backbone import pool

    h = torch.randn(2, 5, 3, dtype=torch.float64)
    h[0, 3:] = float("inf")
    h[1, 1:] = float("nan")
    pooled = pool(h, "mean", torch.tensor([3, 1]))
    assert_close("pool past non-finite padding", torch.stack([h[0, :3].mean(0), h[1, 0]]), pooled,
                 rtol=1e-12)
    last = ssmzoo.build_model("classifier(mixer=s4d, d_model=16, n_classes=5, pool=last, "
                              "vocab_size=9, pos=learned, max_len=32)")
    assert last(torch.randint(0, 9, (2, 12))).shape == (2, 5)
    with pytest.raises(SSMZooError, match="integer"):
        last(torch.randn(2, 12))
    with pytest.raises(SSMZooError, match="float"):
        clf(torch.randint(0, 3, (2, 12, 3)))


def test_classifier_bidirectional_sees_the_future() -> None:
    torch.manual_seed(2)
    clf = ssmzoo.build_model("classifier(mixer=s4d, d_model=16, n_classes=2, bidirectional=true, "
                             "norm=batch, prenorm=false, pool=last)").double().eval()
    x = torch.randn(1, 8, 1, dtype=torch.float64)
    x2 = x.clone()
    x2[:, -1] += 1
    with torch.no_grad():
        h1 = clf.layers[0](clf.encoder(x))
        h2 = clf.layers[0](clf.encoder(x2))
    assert not torch.allclose(h1[:, 0], h2[:, 0])  # the first output depends on the last input
    assert clf.state_size() == 2 * 2 * clf.layers[0].mixer.fwd.state_size()  # 2 layers, 2 ways
    with pytest.raises(SSMZooError, match="bidirectional"):
        clf.layers[0].init_state(1)


def test_classifier_pairs_for_retrieval() -> None:
    clf = ssmzoo.build_model("classifier(mixer=b2s6(h=2), d_model=8, n_classes=2, vocab_size=9, "
                             "pair=true)")
    out = clf(torch.randint(0, 9, (3, 2, 7)), torch.tensor([[7, 3], [2, 2], [5, 7]]))
    assert out.shape == (3, 2)
    with pytest.raises(SSMZooError, match="batch, 2, length"):
        clf(torch.randint(0, 9, (3, 7)))


def test_regressor_and_positions() -> None:
    reg = ssmzoo.build_model("regressor(mixer=b2s6(h=4), d_model=16, d_output=10, "
                             "pos=sinusoidal)")
    assert reg(torch.randn(2, 30)).shape == (2, 10)
    assert reg(torch.randn(2, 30, 1)).shape == (2, 10)
    with pytest.raises(HyperparameterTypeError, match="d_output"):
        ssmzoo.build_model("regressor(d_output=0)")


def test_state_size_sums_layers() -> None:
    model = ssmzoo.build_model(LM)
    per_layer = ssmzoo.build("mamba(core=b2s6(h=4))", d_model=16).state_size()
    assert model.state_size() == 2 * per_layer == 2 * (32 * 3 + 32 * 16)


def test_spectral_modules_one_per_layer() -> None:
    model = ssmzoo.build_model(LM)
    names = [n for n, _ in spectral_modules(model)]
    assert names == ["layers.0.mixer.core", "layers.1.mixer.core"]


def test_model_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(3)
    model = ssmzoo.build_model(LM).double()
    core = model.layers[1].mixer.core
    core.spectrum_mode, core.spectrum_scale = "delta", torch.full((32,), 0.5, dtype=torch.float64)
    path = model.save(tmp_path / "ckpt")
    config = json.loads((path / "config.json").read_text())
    assert config["spec"] == LM and config["hyperparameters"]["n_layers"] == 2
    assert config["ssmzoo_version"] == ssmzoo.__version__
    assert config["spectrum_modes"] == {"layers.1.mixer.core": "delta"}
    again = ssmzoo.load(path)
    ids = torch.randint(0, 23, (2, 7))
    for key, value in model.state_dict().items():  # the round trip: every tensor bit for bit
        assert torch.equal(again.state_dict()[key], value), key
    with torch.no_grad():
        # the same function, to rounding: two equal models have given outputs that differ in
        # the last bits in CI (not reproduced locally; docs/developer/workflow-notes.md)
        assert_close("logits", model(ids), again(ids), rtol=1e-12)
    assert again.layers[1].mixer.core.spectrum_mode == "delta"


def test_load_says_what_is_wrong(tmp_path) -> None:
    model = ssmzoo.build_model(LM)
    with pytest.raises(CheckpointError, match="no such directory"):
        ssmzoo.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        ssmzoo.load(tmp_path / "empty")
    good = model.save(tmp_path / "good")

    def variant(name: str, config: dict | str | None = None, weights: bytes | None = None):
        d = tmp_path / name
        d.mkdir()
        cfg = (good / "config.json").read_text() if config is None else (
            config if isinstance(config, str) else json.dumps(config))
        (d / "config.json").write_text(cfg)
        (d / "model.safetensors").write_bytes(
            (good / "model.safetensors").read_bytes() if weights is None else weights)
        return d

    with pytest.raises(CheckpointError, match="not valid JSON"):
        ssmzoo.load(variant("badjson", "{not json"))
    with pytest.raises(CheckpointError, match="corrupt"):
        ssmzoo.load(variant("badweights", weights=b"\x00\x01garbage"))
    cfg = json.loads((good / "config.json").read_text())
    with pytest.raises(CheckpointError, match="wrong shape"):
        ssmzoo.load(variant("mismatch", {**cfg, "spec": LM.replace("d_model=16", "d_model=8")}))
    with pytest.raises(CheckpointError, match="missing"):
        ssmzoo.load(variant("missing", {**cfg, "spec": LM.replace("n_layers=2", "n_layers=3")}))
    with pytest.raises(CheckpointError, match="no longer builds.*b2s7"):
        ssmzoo.load(variant("unknown", {**cfg, "spec": LM.replace("b2s6", "b2s7")}))
    with pytest.raises(CheckpointError, match="'kind'"):
        ssmzoo.load(variant("nokind", {k: v for k, v in cfg.items() if k != "kind"}))
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text((good / "config.json").read_text())
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        ssmzoo.load(tmp_path / "noweights")


def test_save_needs_a_registry_built_object(tmp_path) -> None:
    from ssmzoo_s6.s6 import S6

    with pytest.raises(CheckpointError, match="ssmzoo_spec"):
        S6(8).save(tmp_path / "x")


def test_param_groups_validates() -> None:
    model = ssmzoo.build("s4d", d_model=4)
    with pytest.raises(HyperparameterTypeError, match="lr"):
        ssmzoo.param_groups(model, lr=0.0)
    groups = ssmzoo.param_groups(model, lr=1e-2, weight_decay=0.05)
    where = {n: (g["lr"], g["weight_decay"]) for g in groups for n in g["names"]}
    assert where["log_dt"] == (1e-3, 0.0) and where["A_imag"] == (1e-3, 0.0)  # S4: min(lr, 1e-3)
    assert where["C"] == (1e-2, 0.05) and where["D"] == (1e-2, 0.0)
    model.C._ssmzoo_optim = {"weight_decai": 0.0}
    with pytest.raises(HyperparameterTypeError, match="weight_decay"):
        ssmzoo.param_groups(model, lr=1e-2)


def test_positional_encodings() -> None:
    from ssmzoo.models.backbone import sinusoidal_positions

    pe = sinusoidal_positions(5, 6)
    assert torch.allclose(pe[:, 0], torch.sin(torch.arange(5.0)))
    assert torch.allclose(pe[:, 1], torch.cos(torch.arange(5.0)))
    assert torch.allclose(pe[3, 4], torch.sin(torch.tensor(3.0) / 10000 ** (4 / 6)))
    clf = ssmzoo.build_model("classifier(mixer=s6, d_model=8, n_classes=2, vocab_size=5, "
                             "pos=learned, max_len=6, dropout=0.1)")
    assert clf(torch.randint(0, 5, (2, 6))).shape == (2, 2)
    with pytest.raises(SSMZooError, match="max_len=6"):
        clf(torch.randint(0, 5, (2, 7)))
