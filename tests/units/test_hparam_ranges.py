"""Declared hyperparameter ranges and rules, checked wherever a spec is validated.

The class behind issue 23's item 4: a value of the right type outside its range (``d_state=-1``,
``expand=0``, ``dt_min=nan``) or two values that break a rule together (``dt_min > dt_max``) must
be refused by name in ``resolve``, ``describe``, ``grid run --check``, ``train`` and when the class
is built directly, never reach torch or ``math``.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import pytest
import torch

import ssmzoo
from ssmzoo.cli import main
from ssmzoo.errors import HyperparameterTypeError, HyperparameterValueError
from ssmzoo.hparams import (
    EvenPositiveInt,
    Fraction,
    Ge,
    Lt,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Rule,
    check_hparams,
    coerce,
    declared,
    type_text,
)
from ssmzoo.registry import get_registry

# Each reproduction of the issue, with what the one-line error must say.
BAD_SPECS = [
    ("s6(d_state=-1)", "'d_state' expects int >= 1, got -1"),
    ("s6(d_state=0)", "'d_state' expects int >= 1, got 0"),
    ("b2s6(dt_min=-0.1)", "'dt_min' expects finite float > 0, got -0.1"),
    ("mamba(expand=0)", "'expand' expects int >= 1, got 0"),
    ("mamba(d_conv=0)", "'d_conv' expects int >= 1, got 0"),
    ("b2s6(dt_min=0.5, dt_max=0.1)", "dt_min=0.5, dt_max=0.1 break the rule: dt_min <= dt_max"),
    ("s6(dt_min=0.5, dt_max=0.1)", "break the rule: dt_min <= dt_max"),
    ("b2s6(dt_min=nan)", "'dt_min' expects finite float > 0, got nan"),
    ("s6(dt_max=inf)", "'dt_max' expects finite float > 0, got inf"),
    ("s4d(d_state=3)", "'d_state' expects even int >= 2, got 3"),
    ("mamba2(A_init_range=[4, 1])", "A_init_range"),
    ("mamba2(dt_limit=[0.5, 0.1])", "dt_limit"),
    ("mamba(core=s6(d_state=0))", "'d_state' expects int >= 1, got 0"),
]


@pytest.mark.parametrize("text,needle", BAD_SPECS)
def test_resolve_refuses_by_name(text, needle):
    with pytest.raises(HyperparameterValueError) as info:
        get_registry().resolve(text)
    assert needle in str(info.value)
    # Every hyperparameter error is both: old `except TypeError` callers keep working.
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("text,needle", BAD_SPECS[:6])
def test_describe_is_one_line_and_exit_1(text, needle, capsys):
    assert main(["describe", text]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and len(err.strip().splitlines()) == 1


def test_grid_check_refuses_every_bad_variant(tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text('name = "ranges"\nvariants = ["s6", "mamba(expand=0)"]\n'
                    'tasks = ["memory_scale(seq_len=6, n_train=32, n_val=16, n_test=16)"]\n'
                    'seeds = [0]\n[model]\nd_model = 4\n[train]\nsteps = 1\n')
    assert main(["grid", "run", str(grid), "--check"]) == 1
    err = capsys.readouterr().err
    assert "'expand' expects int >= 1, got 0" in err and "Traceback" not in err


def test_train_refuses_before_building(capsys, tmp_path):
    code = main(["train", "s6(d_state=-1)", "--task",
                 "memory_scale(seq_len=6, n_train=32, n_val=16, n_test=16)", "--steps", "1",
                 "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "'d_state' expects int >= 1, got -1" in err and "Traceback" not in err


@pytest.mark.parametrize("build,needle", [
    (lambda: ssmzoo.build("s6(d_state=-1)", 8), "'d_state' expects int >= 1"),
    (lambda: ssmzoo.build("b2s6", 8, dt_min=0.5, dt_max=0.1), "dt_min <= dt_max"),
    (lambda: ssmzoo.build("mamba", 0), "'d_model' expects int >= 1, got 0"),
])
def test_build_refuses(build, needle):
    with pytest.raises(HyperparameterValueError) as info:
        build()
    assert needle in str(info.value)


def test_direct_construction_is_checked_too():
    """A class built without the registry (a notebook's ``S6(16, d_state=0)``) checks the same."""
    reg = get_registry()
    for name, kwargs, needle in [
        ("s6", {"d_state": 0}, "'d_state' expects int >= 1, got 0"),
        ("b2s6", {"dt_min": -0.1}, "'dt_min' expects finite float > 0"),
        ("b2s6", {"dt_min": 0.5, "dt_max": 0.1}, "dt_min <= dt_max"),
        ("mamba", {"expand": 0}, "'expand' expects int >= 1"),
        ("s4d", {"d_state": 5}, "'d_state' expects even int >= 2"),
        ("mamba2", {"A_init_range": (4.0, 1.0)}, "A_init_range"),
    ]:
        factory = reg.units[name].factory
        with pytest.raises(HyperparameterValueError) as info:
            factory(16, **kwargs)
        assert needle in str(info.value), (name, kwargs, str(info.value))


def test_every_registered_default_is_in_range():
    """Each unit's and model's defaults satisfy its own ranges and rules (a typo in a default or an
    annotation would make the unit unusable)."""
    reg = get_registry()
    assert {"s6", "b2s6", "mamba", "mamba2", "s4d"} <= set(reg.units)
    assert {"lm", "classifier", "regressor"} <= set(reg.models)
    for name in reg.units:
        reg.resolve(name)
    for name in reg.models:
        reg.resolve_model(name)


def test_ranges_are_rendered_in_describe(capsys):
    assert main(["describe", "s6"]) == 0
    out = capsys.readouterr().out
    assert "int >= 1" in out and "finite float > 0" in out
    assert "rules: dt_min <= dt_max" in out  # the conditions between hyperparameters, too


def test_type_text():
    assert type_text(PositiveInt) == "int >= 1"
    assert type_text(EvenPositiveInt) == "even int >= 2"
    assert type_text(PositiveFloat) == "finite float > 0"
    assert type_text(NonNegativeFloat) == "finite float >= 0"
    assert type_text(Fraction) == "float in [0, 1)"
    assert type_text(PositiveInt | Literal["auto"]) == "int >= 1 | auto"
    assert type_text(Annotated[float, Ge(-1), Lt(1)]) == "float in [-1, 1)"


def test_coerce_ranges_and_unions():
    hp = {h.name: h for h in declared(_Toy)}
    assert coerce("toy", hp["n"], 3) == 3
    with pytest.raises(HyperparameterValueError, match="'n' expects int >= 1, got 0"):
        coerce("toy", hp["n"], 0)
    # A union: "auto" passes, an out-of-range int names the range, a word names the choices.
    assert coerce("toy", hp["rank"], "auto") == "auto"
    with pytest.raises(HyperparameterValueError, match="int >= 1 | auto"):
        coerce("toy", hp["rank"], 0)
    with pytest.raises(HyperparameterTypeError, match="'rank' expects"):
        coerce("toy", hp["rank"], "many")
    # An int given for a float is widened and then range-checked.
    assert coerce("toy", hp["p"], 0) == 0.0
    with pytest.raises(HyperparameterValueError):
        coerce("toy", hp["p"], 1)
    with pytest.raises(HyperparameterValueError, match="got nan"):
        coerce("toy", hp["p"], math.nan)


def test_rule_keys_and_error():
    rule = Rule("lo < hi", lambda lo, hi: lo < hi)
    assert rule.keys == ("lo", "hi")
    with pytest.raises(HyperparameterValueError, match=r"toy: hyperparameters lo=2, hi=1 break"):
        _Toy(n=1, lo=2, hi=1)
    _Toy(n=1, lo=1, hi=2)


class _Toy(torch.nn.Module):
    """A toy factory.

    Args:
        n: a count.
        rank: a rank.
        p: a probability.
        lo: low end.
        hi: high end.
    """

    hparam_rules = (Rule("lo < hi", lambda lo, hi: lo < hi),)

    def __init__(self, n: PositiveInt = 1, rank: PositiveInt | Literal["auto"] = "auto",
                 p: Fraction = 0.1, lo: float = 0.0, hi: float = 1.0) -> None:
        check_hparams(_Toy, "toy", locals())
        super().__init__()
