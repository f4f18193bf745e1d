"""Units and models check their inputs (issue 23, item 5): a wrong shape, an empty sequence, a
dtype or device beside the weights', token ids outside the vocabulary, bad ``lengths`` and a wrong
``step`` state each raise :class:`~ssmzoo.errors.InputError` in one line naming the argument, the
expected and the actual value, before any computation; valid inputs (length 1, batch 1, an empty
batch, autocast, step from init_state) still run.

Every registered unit and named variant, with no per-unit code, and the three model kinds.
"""

from __future__ import annotations

import pytest
import torch

import ssmzoo
from ssmzoo.errors import InputError, SSMZooError
from ssmzoo.models import checks

NAMES = ssmzoo.list_units()  # every unit of get_registry().units, and every named variant
D = 16
LM = "lm(mixer=s6, d_model=16, n_layers=1, vocab_size=32)"


def _raises(fn, *fragments: str) -> InputError:
    """fn() raises InputError (an SSMZooError and a ValueError) in one line holding fragments."""
    with pytest.raises(InputError) as info:
        fn()
    err = info.value
    assert isinstance(err, SSMZooError) and isinstance(err, ValueError)
    text = str(err)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return err


def _unit(name: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    return ssmzoo.build(name, d_model=D).to(dtype)


def _owner(name: str) -> str:
    """The unit a name resolves to, as the messages name it: "unit 's6'" for s6-complex."""
    return f"unit {ssmzoo.get_registry().resolve(name).name!r}"


def test_every_registered_unit_is_covered() -> None:
    assert set(ssmzoo.get_registry().units) <= set(NAMES)


# ---- units: forward -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_unit_rejects_a_wrong_shape(name: str) -> None:
    unit = _unit(name)
    err = _raises(lambda: unit(torch.randn(2, 5, 17)),
                  f"{_owner(name)}: input ", "expects shape (batch, length, 16), got (2, 5, 17)")
    assert err.owner == _owner(name) and err.actual == "(2, 5, 17)"
    _raises(lambda: unit(torch.randn(5, 16)), "expects shape (batch, length, 16), got (5, 16)")
    _raises(lambda: unit(torch.randn(1, 2, 5, 16)), "got (1, 2, 5, 16)")
    _raises(lambda: unit([[0.0] * 16]), "expects a tensor of shape (batch, length, 16), got list")


@pytest.mark.parametrize("name", NAMES)
def test_unit_rejects_an_empty_sequence(name: str) -> None:
    _raises(lambda: _unit(name)(torch.randn(2, 0, D)), "has length 0; expects at least 1 step")


@pytest.mark.parametrize("name", NAMES)
def test_unit_rejects_a_dtype_beside_its_weights(name: str) -> None:
    unit = _unit(name)
    _raises(lambda: unit(torch.randn(2, 5, D, dtype=torch.float64)),
            "is float64 but the unit's weights are float32", "unit.double()", ".float()")
    _raises(lambda: unit(torch.randn(2, 5, D, dtype=torch.bfloat16)),
            "is bfloat16 but the unit's weights are float32", "torch.autocast")
    _raises(lambda: unit(torch.ones(2, 5, D, dtype=torch.long)),
            "is int64; expects a floating-point tensor (float32, as the unit's weights)")
    double = _unit(name, torch.float64)
    _raises(lambda: double(torch.randn(2, 5, D)),
            "is float32 but the unit's weights are float64", "unit.float()", ".double()")


@pytest.mark.parametrize("name", NAMES)
def test_unit_under_autocast(name: str) -> None:
    """Autocast casts float32 and half-precision inputs alike; float64 it leaves alone (and a
    float32 weight meeting it would fail in the first matmul), so that is still refused."""
    unit = _unit(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for dtype in (torch.float32, torch.bfloat16):
            assert unit(torch.randn(2, 5, D, dtype=dtype)).shape == (2, 5, D)
        _raises(lambda: unit(torch.randn(2, 5, D, dtype=torch.float64)),
                "is float64 but the unit's weights are float32")


@pytest.mark.parametrize("name", ["s6", "s4d", "mamba"])
def test_unit_rejects_another_device(name: str) -> None:
    unit = _unit(name).to("meta")  # no second device needed: the check runs before any kernel
    _raises(lambda: unit(torch.randn(2, 5, D)), "is on cpu but the unit's weights are on meta",
            "unit.to('cpu')", ".to('meta')")


@pytest.mark.parametrize("name", NAMES)
def test_unit_valid_inputs_still_run(name: str) -> None:
    unit = _unit(name)
    for shape in [(1, 1, D), (1, 7, D), (3, 1, D), (0, 4, D)]:  # length 1, batch 1, no batch
        y = unit(torch.randn(*shape))
        assert y.shape == shape and y.dtype == torch.float32
    double = _unit(name, torch.float64)
    assert double(torch.randn(1, 3, D, dtype=torch.float64)).dtype == torch.float64


# ---- units: step ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_unit_step_checks_its_input(name: str) -> None:
    unit = _unit(name)
    state = unit.init_state(2)
    _raises(lambda: unit.step(torch.randn(2, 17), state),
            f"{_owner(name)}: step input ", "expects shape (batch, 16), got (2, 17)")
    _raises(lambda: unit.step(torch.randn(2, 1, D), state), "got (2, 1, 16)")
    _raises(lambda: unit.step(torch.randn(2, D, dtype=torch.float64), state),
            "is float64 but the unit's weights are float32")


@pytest.mark.parametrize("name", NAMES)
def test_unit_step_checks_its_state(name: str) -> None:
    unit = _unit(name)
    x_t = torch.randn(3, D)
    err = _raises(lambda: unit.step(x_t, unit.init_state(2)),
                  f"{_owner(name)}: step state", "(as init_state(3) gives), got ")
    assert "(3," in err.expected and "(2," in err.actual
    _raises(lambda: unit.step(x_t, None), f"{_owner(name)}: step state expects ", "got NoneType")
    # a state made before unit.double(): float32 (complex64) beside float64 weights
    stale = unit.init_state(3)
    unit.double()
    err = _raises(lambda: unit.step(x_t.double(), stale), "expects dtype ", "got ")
    assert err.actual in ("float32", "complex64")


@pytest.mark.parametrize("name", NAMES)
def test_unit_step_from_init_state_still_runs(name: str) -> None:
    unit = _unit(name)
    for batch in (1, 2):
        state = unit.init_state(batch)
        for _ in range(3):  # the state a step returns is accepted by the next
            y_t, state = unit.step(torch.randn(batch, D), state)
            assert y_t.shape == (batch, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        state = unit.init_state(2)
        for _ in range(2):
            y_t, state = unit.step(torch.randn(2, D), state)


def test_a_block_names_itself_and_its_core_checks_its_own_input() -> None:
    block = _unit("mamba")
    _raises(lambda: block(torch.randn(2, 5, 17)), "unit 'mamba': input u expects shape")
    core_width = block.core.d_model
    _raises(lambda: block.core(torch.randn(2, 5, D)),
            f"unit 's6': input x expects shape (batch, length, {core_width}), got (2, 5, 16)")
    _raises(lambda: block.step(torch.randn(2, D), {"conv": torch.zeros(2, 1)}),
            "unit 'mamba': step state expects a dict with keys 'conv', 'core'", "got keys 'conv'")
    state = block.init_state(2)
    state["core"] = state["core"][:, :4]
    _raises(lambda: block.step(torch.randn(2, D), state), "unit 'mamba': step state['core']")


# ---- models -------------------------------------------------------------------------------------

def test_lm_checks_token_ids() -> None:
    model = ssmzoo.build_model(LM)
    _raises(lambda: model(torch.tensor([[1, 2, 300]])),
            "model 'lm': token id 300 out of range for vocab_size 32 (ids must be in [0, 32))")
    _raises(lambda: model(torch.tensor([[1, -2]])), "token id -2 out of range")
    _raises(lambda: model(torch.randn(2, 5)),
            "model 'lm': input ids is float32; expects integer token ids in [0, 32)")
    _raises(lambda: model(torch.ones(2, 5, dtype=torch.bool)), "input ids is bool")
    _raises(lambda: model(torch.randint(0, 32, (2, 5, 1))),
            "model 'lm': input ids expects shape (batch, length), got (2, 5, 1)")
    _raises(lambda: model(torch.randint(0, 32, (5,))), "got (5,)")
    _raises(lambda: model(torch.zeros(2, 0, dtype=torch.long)),
            "input ids has length 0; expects at least 1 token")
    _raises(lambda: model.generate(torch.randint(0, 32, (2,)), 3),
            "model 'lm': input prompt expects shape (batch, length), got (2,)")
    _raises(lambda: model.generate(torch.tensor([[40]]), 3), "token id 40 out of range")


def test_lm_step_checks_ids_and_state() -> None:
    model = ssmzoo.build_model(LM)
    state = model.init_state(2)
    _raises(lambda: model.step(torch.randint(0, 32, (2, 1)), state),
            "model 'lm': step input ids_t expects shape (batch,), got (2, 1)")
    _raises(lambda: model.step(torch.tensor([1, 32]), state), "token id 32 out of range")
    _raises(lambda: model.step(torch.tensor([1, 2, 3]), state),
            "model 'lm': step state[0] expects shape (3, 16, 16) (as init_state(3) gives), got "
            "(2, 16, 16)")
    _raises(lambda: model.step(torch.tensor([1, 2]), []),
            "model 'lm': step state expects a list of 1 entry", "got a list of 0")


def test_lm_valid_inputs_still_run() -> None:
    model = ssmzoo.build_model(LM)
    assert model(torch.tensor([[3]])).shape == (1, 1, 32)                  # batch 1, length 1
    assert model(torch.tensor([[0, 31]], dtype=torch.uint8)).shape == (1, 2, 32)
    assert model(torch.randint(0, 32, (2, 5), dtype=torch.int32)).shape == (2, 5, 32)
    state = model.init_state(2)
    for t in range(3):
        logits, state = model.step(torch.tensor([t, 31]), state)
        assert logits.shape == (2, 32)
    assert model.generate(torch.tensor([[1]]), 2).shape == (1, 3)


def test_classifier_checks_inputs_and_lengths() -> None:
    clf = ssmzoo.build_model("classifier(mixer=s6, d_model=16, n_classes=5, d_input=3)")
    _raises(lambda: clf(torch.randn(2, 7, 4)),
            "model 'classifier': input x expects shape (batch, length, 3), got (2, 7, 4)")
    _raises(lambda: clf(torch.randn(2, 7)), "got (2, 7)")
    _raises(lambda: clf(torch.randn(2, 0, 3)), "input x has length 0")
    _raises(lambda: clf(torch.ones(2, 7, 3, dtype=torch.long)),
            "input x is int64; expects a floating-point tensor of shape (batch, length, 3)")
    x = torch.randn(2, 7, 3)
    _raises(lambda: clf(x, torch.tensor([8, 3])),
            "model 'classifier': lengths value 8 out of range for inputs of length 7 "
            "(lengths must be in [1, 7])")
    _raises(lambda: clf(x, torch.tensor([0, 3])), "lengths value 0 out of range")
    _raises(lambda: clf(x, torch.tensor([[7, 3]])),
            "input lengths expects shape (2,) (one per sequence), got (1, 2)")
    _raises(lambda: clf(x, torch.tensor([7.0, 3.0])), "input lengths is float32; expects integer")
    # valid: lengths at both ends of the range, batch 1, length 1, and any float precision
    # (a model's encoder reads its input in the model's own)
    assert clf(x, torch.tensor([7, 1])).shape == (2, 5)
    assert clf(torch.randn(1, 1, 3)).shape == (1, 5)
    assert clf(x.double()).shape == (2, 5)


def test_token_classifier_and_pairs() -> None:
    tok = ssmzoo.build_model("classifier(mixer=s4d, d_model=16, n_classes=2, vocab_size=9)")
    _raises(lambda: tok(torch.tensor([[1, 9]])),
            "model 'classifier': token id 9 out of range for vocab_size 9")
    _raises(lambda: tok(torch.randn(2, 5)), "input x is float32; expects integer token ids")
    # both values read in one host transfer, either may be out of range
    _raises(lambda: tok(torch.tensor([[1, 2]]), torch.tensor([3])), "lengths value 3")
    assert tok(torch.tensor([[1, 8]]), torch.tensor([1])).shape == (1, 2)
    pair = ssmzoo.build_model("classifier(mixer=b2s6(h=2), d_model=8, n_classes=2, vocab_size=9, "
                              "pair=true)")
    ids = torch.randint(0, 9, (3, 2, 7))
    assert pair(ids, torch.tensor([[7, 3], [2, 2], [5, 7]])).shape == (3, 2)
    _raises(lambda: pair(torch.randint(0, 9, (3, 7))),
            "input x expects shape (batch, 2, length), got (3, 7)")
    _raises(lambda: pair(ids, torch.tensor([7, 3, 2])),
            "input lengths expects shape (3, 2) (one per sequence), got (3,)")


def test_regressor_checks_its_input() -> None:
    reg = ssmzoo.build_model("regressor(mixer=b2s6(h=4), d_model=16, d_output=10)")
    assert reg(torch.randn(2, 30)).shape == (2, 10)       # d_input 1: (batch, length) too
    assert reg(torch.randn(1, 1, 1)).shape == (1, 10)
    _raises(lambda: reg(torch.randn(2, 30, 2)),
            "model 'regressor': input x expects shape (batch, length, 1) or (batch, length), "
            "got (2, 30, 2)")


# ---- the functions themselves -------------------------------------------------------------------

def test_check_state_compares_structure_shapes_and_dtypes() -> None:
    expected = {"a": torch.zeros(2, 3), "b": [torch.zeros(2, dtype=torch.complex64)]}
    checks.check_state("unit 'x'", {"a": torch.ones(2, 3), "b": [torch.ones(2) * 1j]}, expected)
    checks.check_state("unit 'x'", expected, checks.layout_of(expected))
    _raises(lambda: checks.check_state("unit 'x'", {"a": torch.ones(2, 3), "b": [torch.ones(2)]},
                                       expected),
            "unit 'x': step state['b'][0] expects dtype complex64, got float32")
    _raises(lambda: checks.check_state("unit 'x'", {"a": torch.ones(2, 3), "b": ()}, expected),
            "step state['b'] expects a list of 1 entry, got a tuple of 0")


def test_expected_state_is_cached_and_follows_the_weights() -> None:
    unit = _unit("mamba")
    first = checks.expected_state(unit, 2)
    assert checks.expected_state(unit, 2) is first
    assert first == checks.layout_of(unit.init_state(2))
    unit.double()
    assert checks.expected_state(unit, 2)["conv"].dtype == torch.float64


def test_checks_compile_without_graph_breaks() -> None:
    """The checks trace under torch.compile (fullgraph: no graph break on the valid path; the
    value range check is skipped while tracing); an error still surfaces as InputError."""

    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(4))

        def init_state(self, batch: int) -> dict[str, torch.Tensor]:
            return {"h": torch.zeros(batch, 4)}

        def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            checks.check_sequence("unit 'toy'", x, 4, dtype_of=self.w)
            checks.check_token_ids("model 'toy'", ids, 10)
            return x * self.w + ids.sum()

        def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
            checks.check_step("unit 'toy'", self, x_t, state, 4, dtype_of=self.w)
            return x_t * self.w, {"h": state["h"] + x_t}

    toy = Toy()
    full = torch.compile(toy, backend="eager", fullgraph=True)
    assert full(torch.randn(2, 3, 4), torch.tensor([[1, 2]])).shape == (2, 3, 4)
    step = torch.compile(toy.step, backend="eager", fullgraph=True)
    assert step(torch.randn(2, 4), toy.init_state(2))[0].shape == (2, 4)
    lenient = torch.compile(toy, backend="eager")
    _raises(lambda: lenient(torch.randn(2, 3, 5), torch.tensor([[1]])), "got (2, 3, 5)")
