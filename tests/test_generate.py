"""Generation: ``LM.prefill`` equals stepping token by token, greedy and nucleus sampling, the
argument checks, ``ssmzoo generate`` on a saved model, and ``ssmzoo describe train``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import ssmzoo
from ssmzoo.cli import main
from ssmzoo.errors import ConfigError
from ssmzoo.models.backbone import prefill_mixer
from ssmzoo.models.sampling import _keep_top_p, next_token
from tests.helpers import assert_close


def _lm(mixer: str, *, vocab: int = 23, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    spec = f"lm(mixer={mixer}, d_model=16, n_layers=2, vocab_size={vocab})"
    return ssmzoo.build_model(spec).double().eval()


def _tensors(state: Any) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for k in sorted(state) for t in _tensors(state[k])]
    return [t for s in state for t in _tensors(s)]


def _stepped(model: Any, ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
    state = model.init_state(ids.shape[0])
    for t in range(ids.shape[1]):
        logits, state = model.step(ids[:, t], state)
    return logits, state


@pytest.mark.parametrize("mixer", ["mamba", "s4d", "s6", "b2s6", "mamba2-small"])
def test_prefill_equals_stepping_token_by_token(mixer: str) -> None:
    model = _lm(mixer)
    ids = torch.randint(0, 23, (3, 11))
    with torch.no_grad():
        logits, state = model.prefill(ids)
        ref_logits, ref_state = _stepped(model, ids)
        plain, none = model.prefill(ids, state=False)
        full = model(ids)
    assert_close(f"{mixer} prefill logits", ref_logits, logits, rtol=1e-8)
    for i, (ref, got) in enumerate(zip(_tensors(ref_state), _tensors(state), strict=True)):
        assert_close(f"{mixer} prefill state[{i}]", ref, got, rtol=1e-8)
    assert none is None
    assert_close(f"{mixer} prefill without state", full[:, -1], plain, rtol=1e-8)


class _OwnPrefill(nn.Module):
    """Wraps a unit and gives it a ``prefill``, counting which path the layer took."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.prefills, self.steps = inner, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)

    def init_state(self, batch: int) -> Any:
        return self.inner.init_state(batch)

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        self.steps += 1
        return self.inner.step(x_t, state)

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        self.prefills += 1
        _, state = prefill_mixer(self.inner, x)  # a unit's own would get it from its scan
        return self.inner(x), state


def test_a_mixer_with_its_own_prefill_is_not_stepped() -> None:
    model = _lm("s4d")
    ids = torch.randint(0, 23, (2, 7))
    with torch.no_grad():
        ref = model.generate(ids, 4)
        for layer in model.layers:
            layer.mixer = _OwnPrefill(layer.mixer)
        got = model.generate(ids, 4)
    assert torch.equal(ref, got)
    for layer in model.layers:  # the prompt in one call; then a step per new token but the last
        assert layer.mixer.prefills == 1 and layer.mixer.steps == 3


def test_greedy_equals_the_argmax_of_each_step_and_is_deterministic() -> None:
    model = _lm("mamba")
    ids = torch.randint(0, 23, (2, 5))
    with torch.no_grad():
        state, out = model.init_state(2), [ids]
        for t in range(ids.shape[1]):
            logits, state = model.step(ids[:, t], state)
        for _ in range(6):
            nxt = logits.argmax(-1)
            out.append(nxt[:, None])
            logits, state = model.step(nxt, state)
    expected = torch.cat(out, dim=1)
    assert torch.equal(model.generate(ids, 6), expected)
    assert torch.equal(model.generate(ids, 6, temperature=0.0, top_k=3, top_p=0.5), expected)
    assert torch.equal(model.generate(ids, 0), ids)
    assert torch.equal(model.generate(ids, 1), expected[:, :6])


def test_a_tiny_nucleus_or_top_k_1_is_greedy() -> None:
    model = _lm("s6", vocab=40)
    ids = torch.randint(0, 40, (4, 6))
    greedy = model.generate(ids, 8)
    for kw in ({"top_p": 1e-6}, {"top_k": 1}):
        g = torch.Generator().manual_seed(1)
        assert torch.equal(model.generate(ids, 8, temperature=1.0, generator=g, **kw), greedy)
    a, b = (model.generate(ids, 8, temperature=1.0, top_p=0.9,
                           generator=torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(a, b)  # sampling is reproducible from the generator


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log()  # probabilities 0.5, 0.3, 0.2
    kept = lambda p: (_keep_top_p(logits, p) > float("-inf"))[0].tolist()  # noqa: E731
    assert kept(0.5) == [True, False, False]
    assert kept(0.6) == [True, True, False]
    assert kept(0.8) == [True, True, False]
    assert kept(0.81) == [True, True, True]
    shuffled = torch.tensor([[0.2, 0.5, 0.3]]).log()
    assert (_keep_top_p(shuffled, 0.6) > float("-inf"))[0].tolist() == [False, True, True]
    g = torch.Generator().manual_seed(0)
    draws = {int(next_token(shuffled, temperature=1.0, top_p=0.6, generator=g)) for _ in range(200)}
    assert draws == {1, 2}


@pytest.mark.parametrize("kw,needle", [
    ({"top_p": 0.0}, "top_p expects a float in (0, 1]"),
    ({"top_p": 1.5}, "top_p expects a float in (0, 1]"),
    ({"temperature": -0.1}, "temperature expects a finite float >= 0"),
    ({"temperature": float("nan")}, "temperature expects a finite float >= 0"),
    ({"top_k": -1}, "top_k expects an int >= 0"),
    ({"top_k": 2.5}, "top_k expects an int >= 0"),
])
def test_bad_sampling_settings_name_the_argument(kw: dict[str, Any], needle: str) -> None:
    model = _lm("s4d")
    with pytest.raises(ConfigError, match="^LM.generate: " + needle.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        model.generate(torch.zeros(1, 2, dtype=torch.long), 2, **kw)
    with pytest.raises(ConfigError, match="n_new expects an int >= 0"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), -1)


# ---- the command line ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def chars_model(tmp_path_factory) -> Path:
    """A tiny LM trained for 2 steps on the chars task, saved with its run.json beside it."""
    folder = tmp_path_factory.mktemp("chars") / "model"
    code = main(["train", "s4d", "--task", "chars(seq_len=16, max_train=32)", "--steps", "2",
                 "--batch-size", "4", "--model", "d_model=8", "--model", "n_layers=1",
                 "--threads", "1", "--quiet", "--save", str(folder), "--out", str(folder)])
    assert code == 0
    return folder


def test_generate_continues_a_text_prompt(chars_model: Path, capsys) -> None:
    argv = ["generate", str(chars_model), "--prompt", "The ", "--n-new", "12", "--json"]
    assert main([*argv, "--temperature", "0"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["prompt_ids"] == list(b"The ") and len(first["new_ids"]) == 12
    assert first["text"].startswith("The ")
    assert main([*argv, "--temperature", "0"]) == 0
    assert json.loads(capsys.readouterr().out) == first  # greedy is deterministic
    model = ssmzoo.load(chars_model)
    greedy = model.generate(torch.tensor([list(b"The ")]), 12)
    assert greedy[0, 4:].tolist() == first["new_ids"]
    assert main([*argv, "--top-p", "1e-6", "--temperature", "1"]) == 0
    assert json.loads(capsys.readouterr().out) == first  # a tiny nucleus is greedy
    assert main(["generate", str(chars_model), "--prompt", "The ", "--n-new", "5"]) == 0
    assert capsys.readouterr().out.startswith("The ")


def test_generate_takes_ids(chars_model: Path, capsys) -> None:
    assert main(["generate", str(chars_model), "--prompt-ids", "84, 104", "--n-new", "3",
                 "--temperature", "0", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("Th")


def _saved(tmp_path: Path, spec: str) -> Path:
    torch.manual_seed(0)
    return ssmzoo.build_model(spec).save(tmp_path / "m")


@pytest.mark.parametrize("argv,needle", [
    (["--top-p", "1.5"], "error: generate: --top-p expects a float in (0, 1]"),
    (["--top-p", "0"], "error: generate: --top-p expects a float in (0, 1]"),
    (["--temperature", "-1"], "error: generate: --temperature expects a finite float >= 0"),
    (["--top-k", "-2"], "error: generate: --top-k expects an int >= 0"),
    (["--prompt-ids", "1,x"], "error: generate: --prompt-ids expects integers, got 'x'"),
    (["--prompt-ids", "1,99"], "error: generate: --prompt-ids: token id 99 is out of range"),
])
def test_generate_errors_are_one_line(tmp_path: Path, capsys, argv: list[str],
                                      needle: str) -> None:
    folder = _saved(tmp_path, "lm(mixer=s4d, d_model=8, n_layers=1, vocab_size=23)")
    if "--prompt-ids" not in argv:
        argv = [*argv, "--prompt-ids", "1,2"]
    assert main(["generate", str(folder), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(needle) and err.count("\n") == 1


def test_text_prompt_needs_a_text_vocabulary(tmp_path: Path, capsys) -> None:
    folder = _saved(tmp_path, "lm(mixer=s4d, d_model=8, n_layers=1, vocab_size=23)")
    assert main(["generate", str(folder), "--prompt", "hi"]) == 1
    err = capsys.readouterr().err
    assert "--prompt TEXT needs a model whose tokens are text" in err
    assert "no run.json" in err and "--prompt-ids" in err
    assert main(["generate", str(folder), "--prompt", "hi", "--task", "mqar"]) == 1
    assert "task 'mqar' (from --task) has token ids, not text" in capsys.readouterr().err
    assert main(["generate", str(folder), "--prompt-ids", "1,2", "--n-new", "2",
                 "--temperature", "0"]) == 0
    out = capsys.readouterr()
    assert out.out.strip().startswith("1,2,") and len(out.out.strip().split(",")) == 4
    assert main(["generate", str(folder), "--prompt", "hi", "--task", "mqr"]) == 1
    assert "did you mean 'mqar'" in capsys.readouterr().err


def test_generate_refuses_a_model_that_is_not_an_lm(tmp_path: Path, capsys) -> None:
    folder = _saved(tmp_path, "classifier(mixer=s4d, d_model=8, n_classes=3, d_input=1)")
    assert main(["generate", str(folder), "--prompt-ids", "1"]) == 1
    assert "not a language model (lm)" in capsys.readouterr().err


def test_describe_train_lists_every_setting(capsys) -> None:
    from ssmzoo.train import TrainConfig

    assert main(["describe", "train"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("train (training settings, the [train] keys)")
    rows = {line.split()[0]: line for line in out.splitlines()[4:]}
    assert list(rows) == [f.name for f in dataclasses.fields(TrainConfig)]
    assert rows["steps"].split()[1:4] == ["1000", "[int]", "number"]
    assert "[auto | fp32 | bf16]" in rows["precision"] and " true " in rows["test"]
    assert rows["checkpoint_every"].endswith("(0: none; needs a run folder).")  # joined lines
    assert "``" not in out
