"""ssmzoo.testing: the unit contract as a public function, for plugins' own test suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

import ssmzoo
import ssmzoo.testing
from ssmzoo.models.io import Saveable


class Plain(Saveable, nn.Module):
    """A plain linear recurrence with no paper and no SpectrumScaled mixin.

    Args:
        decay: the recurrence's decay per step
    """

    def __init__(self, d_model: int, *, decay: float = 0.5) -> None:
        super().__init__()
        self.d_model, self.decay = d_model, decay
        self.inp = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, ys = torch.zeros_like(x[:, 0]), []
        for t in range(x.shape[1]):
            h = self.decay * h + self.inp(x[:, t])
            ys.append(h)
        return torch.stack(ys, dim=1)                                          # (b, l, d)

    def init_state(self, batch: int) -> torch.Tensor:
        w = self.inp.weight
        return torch.zeros(batch, w.shape[0], dtype=w.dtype, device=w.device)

    def step(self, x_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.decay * state + self.inp(x_t)
        return h, h

    def state_size(self) -> int:
        return self.inp.weight.shape[0]


class Broken(Plain):
    """Plain with two defects: an unused parameter and a state size that does not count.

    Args:
        decay: the recurrence's decay per step
    """

    def __init__(self, d_model: int, *, decay: float = 0.5) -> None:
        super().__init__(d_model, decay=decay)
        self.unused = nn.Parameter(torch.zeros(3))

    def state_size(self) -> int:
        return 1


@pytest.fixture
def registered() -> Iterator[None]:
    reg = ssmzoo.get_registry()
    with reg.transaction("test_testing") as tx:
        reg.unit("contract-plain", Plain, doc="a plain test unit")
        reg.unit("contract-broken", Broken, doc="a broken test unit")
    yield
    reg.unregister(tx.registered)


def test_a_plain_unit_passes_without_the_optional_features(registered: None) -> None:
    report = ssmzoo.testing.check_unit("contract-plain")
    assert "spectrum" in report.skipped and not report.failed
    assert {"builds", "forward", "gradients", "step", "save_load"} <= set(report.passed)


def test_required_features_are_reported_in_a_sentence(registered: None) -> None:
    with pytest.raises(ssmzoo.testing.ContractViolation) as info:
        ssmzoo.testing.check_unit("contract-plain", require=("paper", "spectrum"))
    failed = info.value.report.failed
    assert set(failed) == {"describe", "spectrum"}
    assert "paper=" in failed["describe"] and "SpectrumScaled" in failed["spectrum"]


def test_each_broken_rule_gets_its_own_sentence(registered: None) -> None:
    with pytest.raises(ssmzoo.testing.ContractViolation) as info:
        ssmzoo.testing.check_unit("contract-broken")
    failed = info.value.report.failed
    assert set(failed) == {"gradients", "state_size"}
    assert "'unused'" in failed["gradients"]
    assert "state_size() says 1" in failed["state_size"]
    assert "contract-broken" in str(info.value)


def test_unknown_rule_names_the_nearest() -> None:
    with pytest.raises(ValueError, match="did you mean 'step'"):
        ssmzoo.testing.check_unit("s6", rules=["stepp"])


@pytest.mark.parametrize("name", ["s6", "b2s6-nobias"])
def test_builtins_keep_the_strict_contract(name: str) -> None:
    report = ssmzoo.testing.check_unit(name, require=("paper", "spectrum"))
    assert set(report.passed) == set(ssmzoo.testing.RULES)
