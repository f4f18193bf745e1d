"""Length extension: modulate (reversible, per layer, saved with the model) and SPSA calibration."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import ssmzoo
from ssmzoo.errors import ConfigError, HyperparameterTypeError
from ssmzoo.extend import (
    calibrate_scales,
    current_scales,
    lm_perplexity,
    modulate,
    naive_delta_scaling,
    spectral_layers,
)


def two_layers(d: int = 8) -> nn.Module:
    """Two s4d cores in a row: a model with two spectral layers that builds in milliseconds."""
    return nn.Sequential(ssmzoo.build("s4d(d_state=4)", d_model=d),
                         ssmzoo.build("s4d(d_state=4, init=inv)", d_model=d))


@pytest.fixture
def unit() -> nn.Module:
    torch.manual_seed(0)
    return ssmzoo.build("s4d(d_state=6)", d_model=8)


@pytest.mark.parametrize("mode", ["power", "linear", "delta"])
def test_modulate_changes_then_restores_exactly(unit: nn.Module, mode: str) -> None:
    x = torch.randn(2, 17, 8)
    before = unit(x).detach()
    modulate(unit, 0.4, mode=mode)
    changed = unit(x).detach()
    assert (changed - before).abs().max() > 1e-3, f"{mode}: scale 0.4 left the output unchanged"
    modulate(unit, 1.0, mode=mode)
    assert torch.equal(unit(x).detach(), before), f"{mode}: scale 1 did not restore the output"


def test_power_mode_is_minus_abs_A_to_the_s(unit: nn.Module) -> None:
    A = unit.effective_A().detach()
    modulate(unit, 0.3)
    A_s = unit.effective_A().detach()
    torch.testing.assert_close(A_s.real, -(A.real.abs() ** 0.3))
    torch.testing.assert_close(A_s.imag, A.imag)  # frequencies kept
    modulate(unit, 0.3, mode="linear")
    torch.testing.assert_close(unit.effective_A().detach(), 0.3 * A)
    modulate(unit, 0.3, mode="delta")
    torch.testing.assert_close(unit.effective_A().detach(), A)  # Δ scaled instead


def test_scalar_equals_same_value_per_layer() -> None:
    torch.manual_seed(1)
    model = two_layers()
    x = torch.randn(2, 9, 8)
    modulate(model, 0.6)
    a = model(x).detach()
    assert current_scales(model) == pytest.approx([0.6, 0.6])
    modulate(model, [0.6, 0.6])
    torch.testing.assert_close(model(x).detach(), a, rtol=0, atol=0)
    names = [n for n, _ in spectral_layers(model)]
    modulate(model, {names[1]: 0.2})
    assert current_scales(model) == pytest.approx([1.0, 0.2])
    modulate(model, torch.tensor([0.5, 0.7]))
    assert current_scales(model) == pytest.approx([0.5, 0.7])


def test_per_layer_scales_act_per_layer() -> None:
    torch.manual_seed(2)
    model = two_layers()
    A0, A1 = (m.effective_A().detach() for _, m in spectral_layers(model))
    modulate(model, [0.5, 1.0])
    B0, B1 = (m.effective_A().detach() for _, m in spectral_layers(model))
    assert not torch.allclose(A0, B0)
    assert torch.equal(A1, B1)


def test_per_channel_tensor_scale(unit: nn.Module) -> None:
    s = torch.rand(8, 1) * 0.5 + 0.5  # (d_model, 1): one scale per channel, broadcast over modes
    A = unit.effective_A().detach()
    modulate(unit, [s], mode="linear")
    torch.testing.assert_close(unit.effective_A().detach(), s * A)


def test_save_load_round_trip(tmp_path: Path, unit: nn.Module) -> None:
    x = torch.randn(2, 11, 8)
    modulate(unit, [torch.linspace(0.2, 0.9, 8)[:, None]], mode="power")
    unit.save(tmp_path / "power")
    loaded = ssmzoo.load(tmp_path / "power")
    torch.testing.assert_close(loaded(x), unit(x), rtol=0, atol=0)
    assert loaded.spectrum_mode == "power"
    modulate(unit, 0.3, mode="delta")
    unit.save(tmp_path / "delta")
    loaded = ssmzoo.load(tmp_path / "delta")
    assert loaded.spectrum_mode == "delta" and current_scales(loaded) == pytest.approx([0.3])
    torch.testing.assert_close(loaded(x), unit(x), rtol=0, atol=0)
    modulate(loaded, 1.0, mode="power")  # and back to the trained model
    modulate(unit, 1.0, mode="power")
    torch.testing.assert_close(loaded(x), unit(x), rtol=0, atol=0)


def test_naive_delta_scaling(unit: nn.Module) -> None:
    naive_delta_scaling(unit, 256, 2048)
    assert unit.spectrum_mode == "delta" and current_scales(unit) == pytest.approx([0.125])
    with pytest.raises(HyperparameterTypeError, match="test_length"):
        naive_delta_scaling(unit, 256, 0)


def test_errors_name_the_argument(unit: nn.Module) -> None:
    with pytest.raises(HyperparameterTypeError, match="did you mean 'power'"):
        modulate(unit, 0.5, mode="powr")
    with pytest.raises(HyperparameterTypeError, match="finite values > 0"):
        modulate(unit, 0.0)
    with pytest.raises(HyperparameterTypeError, match="one scale per layer"):
        modulate(two_layers(), [0.5, 0.5, 0.5])
    with pytest.raises(HyperparameterTypeError, match="broadcastable"):
        modulate(unit, [torch.ones(5)])
    with pytest.raises(HyperparameterTypeError, match="did you mean"):
        modulate(two_layers(), {"1.": 0.5})
    with pytest.raises(ConfigError, match="owns a state"):
        modulate(nn.Linear(2, 2), 0.5)


def test_spsa_improves_a_toy_objective() -> None:
    model = two_layers()
    target = torch.tensor([0.3, 0.6], dtype=torch.float64)

    def objective(m: nn.Module) -> float:
        s = torch.tensor(current_scales(m), dtype=torch.float64)
        return float(100 * (s - target).pow(2).sum()) + 1.0

    cal = calibrate_scales(model, None, length=0, steps=40, objective=objective, seed=3)
    assert cal.value < 0.5 * cal.start_value, (cal.start_value, cal.value)
    assert cal.value == pytest.approx(objective(model))  # the best scales are the ones set
    assert current_scales(model) == pytest.approx(cal.scales)
    assert all(0.01 <= s <= 1.0 for s in cal.scales)
    assert cal.evaluations == 2 + 3 * 40 and len(cal.history) == 40


def test_calibration_keeps_identity_when_nothing_beats_it() -> None:
    model = two_layers()

    def objective(m: nn.Module) -> float:  # minimised at every scale = 1
        return float(sum((1 - s) for s in current_scales(m))) + 2.0

    cal = calibrate_scales(model, None, length=0, steps=3, objective=objective)
    assert cal.scales == [1.0, 1.0] and cal.identity_value == pytest.approx(2.0)


def test_calibration_on_perplexity_never_worse_than_identity() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Embedding(16, 8), ssmzoo.build("s4d(d_state=4)", d_model=8),
                          nn.Linear(8, 16))
    ids = torch.randint(0, 16, (3, 33))
    base = lm_perplexity(model, ids, 32)
    assert 1.0 < base < 1e4
    cal = calibrate_scales(model, ids, 32, steps=2, seed=0)
    assert cal.identity_value == pytest.approx(base)
    assert cal.value <= base + 1e-9
    assert lm_perplexity(model, ids, 32) == pytest.approx(cal.value)
    with pytest.raises(HyperparameterTypeError, match="length \\+ 1"):
        lm_perplexity(model, ids, 40)


def test_extension_metrics_gain_rise_and_scales() -> None:
    from ssmzoo.repro.length_extension import extension_metrics, extension_table

    rows = [{"method": "identity", "length": 64, "perplexity": 3.0, "scales": []},
            {"method": "identity", "length": 1024, "perplexity": 9.0, "scales": []},
            {"method": "constant", "length": 1024, "perplexity": 4.0, "scales": [0.5]},
            {"method": "calibrated", "length": 1024, "perplexity": 4.5, "scales": [0.3, 0.9]}]
    m = extension_metrics(rows)
    assert m["calibrated_gain"] == pytest.approx(2.0)
    assert m["identity_rise"] == pytest.approx(3.0)
    assert m["scale@1024/constant"] == 0.5
    assert (m["scale@1024/calibrated/0"], m["scale@1024/calibrated/1"]) == (0.3, 0.9)
    table = extension_table([m])
    assert "| calibrated | — | 4.50 ± 0.00 |" in table and "scale" not in table
