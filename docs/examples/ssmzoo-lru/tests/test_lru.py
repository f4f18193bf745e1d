"""Tests of the LRU plugin, as a plugin's author would write them: the unit through ssmzoo's
registry (so the entry point is exercised), against a plain loop of the recurrence in float64."""

from __future__ import annotations

import pytest
import torch

import ssmzoo


def test_registered_through_the_entry_point() -> None:
    plugins = {p.name: p for p in ssmzoo.get_registry().plugins}
    assert plugins["lru"].state == "loaded", plugins["lru"].error
    assert plugins["lru"].distribution == "ssmzoo-lru"
    assert ssmzoo.list_units("lru*") == ["lru", "lru-long"]
    assert ssmzoo.describe("lru-long").overrides["r_min"] == 0.9


def test_ranges_are_checked_by_name() -> None:
    with pytest.raises(ValueError, match="r_min=0.95, r_max=0.9 break the rule: r_min < r_max"):
        ssmzoo.describe("lru(r_min=0.95, r_max=0.9)")
    with pytest.raises(ValueError, match="'r_max' expects float in \\[0, 1\\], got 1.5"):
        ssmzoo.build("lru(r_max=1.5)", d_model=8)


def test_ring_initialisation() -> None:
    torch.manual_seed(0)
    unit = ssmzoo.build("lru-long(d_state=256)", d_model=8)
    modulus = unit.eigenvalues().detach().abs()
    assert bool(((modulus >= 0.9 - 1e-6) & (modulus <= 0.999 + 1e-6)).all())
    phase = unit.eigenvalues().detach().angle().abs()
    assert float(phase.max()) <= 0.314 + 1e-6
    # gamma normalises the input: sqrt(1 - |lambda|^2)
    torch.testing.assert_close(unit.gamma_log.detach().exp(), (1 - modulus**2).sqrt())


def _loop(unit: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x_t = lambda x_{t-1} + gamma B u_t; y_t = Re(C x_t) + D u_t, step by step in float64."""
    lam = unit.eigenvalues().detach().to(torch.complex128)  # (n,)
    B = (torch.view_as_complex(unit.B) * unit.gamma_log.exp()[:, None]).detach()
    C = torch.view_as_complex(unit.C).detach().to(torch.complex128)  # (d, n)
    u = x.detach().double()
    h = torch.zeros(x.shape[0], lam.shape[0], dtype=torch.complex128)
    out = []
    for t in range(x.shape[1]):
        h = lam * h + u[:, t].to(torch.complex128) @ B.to(torch.complex128).T  # (b, n)
        out.append((h @ C.T).real + unit.D.detach().double() * u[:, t])
    return torch.stack(out, dim=1)  # (b, l, d)


@pytest.mark.parametrize("spec", ["lru(d_state=8)", "lru-long(d_state=8)"])
def test_forward_matches_the_recurrence_and_step(spec: str) -> None:
    torch.manual_seed(1)
    unit = ssmzoo.build(spec, d_model=16)
    x = torch.randn(2, 37, 16, requires_grad=True)  # (batch, length, d_model); odd length
    y = unit(x)
    assert y.shape == (2, 37, 16)
    torch.testing.assert_close(y.double(), _loop(unit, x), rtol=1e-4, atol=1e-4)
    state, steps = unit.init_state(2), []
    for t in range(x.shape[1]):
        y_t, state = unit.step(x[:, t], state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, dim=1), y, rtol=1e-4, atol=1e-4)


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(2)
    unit = ssmzoo.build("lru(d_state=8)", d_model=16)
    x = torch.randn(2, 20, 16, requires_grad=True)
    unit(x).square().mean().backward()
    for name, p in unit.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    assert x.grad is not None


def test_inputs_are_checked() -> None:
    """ssmzoo.models.checks in forward and step: one clear line instead of an error deep inside
    a matmul or an FFT."""
    from ssmzoo.errors import InputError

    unit = ssmzoo.build("lru(d_state=8)", d_model=16)
    with pytest.raises(InputError, match=r"unit 'lru': input u expects shape \(batch, length, "
                                         r"16\), got \(2, 5, 17\)"):
        unit(torch.randn(2, 5, 17))
    with pytest.raises(InputError, match="is float64 but the unit's weights are float32"):
        unit(torch.randn(2, 5, 16, dtype=torch.float64))
    with pytest.raises(InputError, match=r"unit 'lru': step state expects shape \(3, 8\)"):
        unit.step(torch.randn(3, 16), unit.init_state(2))
    assert unit(torch.randn(1, 1, 16)).shape == (1, 1, 16)


def test_inside_a_builtin_block_and_model() -> None:
    model = ssmzoo.build_model("lm(mixer=mamba(core=lru(d_state=8)), d_model=16, n_layers=1, "
                               "vocab_size=32)")
    assert model(torch.randint(0, 32, (2, 9))).shape == (2, 9, 32)


@pytest.mark.parametrize("name", ["lru", "lru-long"])
def test_keeps_the_unit_contract(name: str) -> None:
    """ssmzoo's unit contract (build, forward, gradients, step, state size, save/load, spec,
    describe, spectrum scaling), called from the plugin's own suite; a paper and the spectrum
    mixin are optional in the contract, and this plugin has both, so it requires them."""
    import ssmzoo.testing

    report = ssmzoo.testing.check_unit(name, require=("paper", "spectrum"))
    assert not report.skipped
