"""Registry-wide contract tests: every registered unit and named variant, with no per-unit code.

For each name: builds with its defaults at d_model=16; forward and backward are finite and every
trainable parameter gets a gradient; step() token by token equals forward() in float64 (also under
each spectrum-scaling mode); save/load and the spec round-trip; state_size() counts the state.
"""

from __future__ import annotations

import pytest
import torch

import ssmzoo
from ssmzoo.models import spectral_modules
from ssmzoo.spec import parse
from ssmzoo.testing import state_floats, stepwise
from tests.helpers import assert_close

NAMES = ssmzoo.list_units()
D_MODEL = 16
LENGTH = 13  # odd, shorter than every chunk, longer than every conv kernel


def _build(name: str, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    torch.manual_seed(0)
    return ssmzoo.build(name, d_model=D_MODEL).to(dtype)


def test_there_are_units() -> None:
    for required in ("s4d", "s6", "mamba", "mamba2", "b2s6", "b2s6-nobias", "b2s6-real",
                     "b2s6-h1", "b2s6-euler", "s6-alg2", "s6-complex", "mamba-b2s6", "mamba-s4d"):
        assert required in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_every_parameter(name: str) -> None:
    unit = _build(name, torch.float32)
    x = torch.randn(2, LENGTH, D_MODEL, requires_grad=True)
    y = unit(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in unit.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None, f"{name}: parameter {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: gradient of {pname} is not finite"
        assert p.grad.abs().sum() > 0, f"{name}: gradient of {pname} is exactly zero"


@pytest.mark.parametrize("name", NAMES)
def test_step_equals_forward_float64(name: str) -> None:
    unit = _build(name)
    x = torch.randn(2, LENGTH, D_MODEL, dtype=torch.float64)
    with torch.no_grad():
        assert_close(f"{name}: step vs forward", unit(x), stepwise(unit, x), rtol=1e-8)


@pytest.mark.parametrize("mode", ["power", "linear", "delta"])
@pytest.mark.parametrize("name", NAMES)
def test_spectrum_scaling(name: str, mode: str) -> None:
    """Every unit exposes A alike; scaling it changes the output, forward and step alike."""
    unit = _build(name)
    mods = spectral_modules(unit)
    assert mods, f"{name}: no module exposes effective_A() and spectrum_scale"
    x = torch.randn(2, LENGTH, D_MODEL, dtype=torch.float64)
    with torch.no_grad():
        before = unit(x)
        A0 = [m.effective_A().clone() for _, m in mods]
        for _, m in mods:
            m.spectrum_mode = mode
            m.spectrum_scale = torch.tensor(0.6, dtype=torch.float64)
        after = unit(x)
        for (_, m), a0 in zip(mods, A0):
            a1 = m.effective_A()
            if mode == "delta":
                assert torch.equal(a1, a0)
            elif mode == "linear":
                assert_close("linear A", 0.6 * a0, a1, rtol=1e-12)
            else:
                assert_close("power Re A", -(-a0.real) ** 0.6, a1.real, rtol=1e-12)
                if a0.is_complex():
                    assert torch.equal(a1.imag, a0.imag)
        assert (after - before).abs().max() > 1e-6, f"{name}: {mode} scaling had no effect"
        assert_close(f"{name}: step vs forward ({mode})", after, stepwise(unit, x), rtol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name: str, tmp_path) -> None:
    unit = _build(name)
    unit.save(tmp_path / "u")
    again = ssmzoo.load(tmp_path / "u")
    assert again.ssmzoo_spec == unit.ssmzoo_spec
    ours, theirs = unit.state_dict(), again.state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():  # the round trip itself: every tensor bit for bit
        assert theirs[key].dtype == value.dtype and torch.equal(theirs[key], value), key
    x = torch.randn(2, LENGTH, D_MODEL, dtype=torch.float64)
    with torch.no_grad():
        # the same function; compared to rounding, not bit for bit (a CI run of 2026-12-03 saw
        # mamba-s6-alg2 differ in the last bits between two equal models, not reproduced since)
        assert_close("output", unit(x), again(x), rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trip(name: str) -> None:
    unit = _build(name)
    text = unit.ssmzoo_spec
    assert str(parse(text)) == text
    assert str(ssmzoo.get_registry().resolve(text)) == text
    assert str(ssmzoo.get_registry().resolve(name)) == text


@pytest.mark.parametrize("name", NAMES)
def test_state_size_counts_the_state(name: str) -> None:
    unit = _build(name, torch.float32)
    assert unit.state_size() == state_floats(unit.init_state(1)) > 0


@pytest.mark.parametrize("name", NAMES)
def test_describe_shows_every_hyperparameter(name: str) -> None:
    desc = ssmzoo.describe(name)
    text = str(desc)
    assert desc.hparams, f"{name}: declares no hyperparameters"
    for hp in desc.hparams:
        assert hp.doc, f"{name}: hyperparameter {hp.name} has no doc line"
        assert hp.name in text and hp.doc.splitlines()[0] in text
    assert desc.paper and desc.paper in text
