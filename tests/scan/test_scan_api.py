"""The public scan functions: argument validation and backend dispatch."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

import ssmzoo
import ssmzoo.registry
from ssmzoo.errors import (
    BackendUnavailableError,
    NoBackendError,
    ScanArgumentError,
    SSMZooError,
    UnknownBackendError,
)
from ssmzoo.scan.backend import ScanBackend
from ssmzoo.scan.reference import ReferenceBackend
from tests.scan.cases import ScanCase, SSDCase, selective_scan_inputs, ssd_inputs


def _kw(**changes):
    kw = selective_scan_inputs(ScanCase(complex=False), seed=0)
    kw.update(changes)
    return kw


def _ckw(**changes):
    kw = selective_scan_inputs(ScanCase(complex=True), seed=0)
    kw.update(changes)
    return kw


@pytest.mark.parametrize("changes, argument, fragment", [
    (dict(u=torch.randn(2, 4)), "u", "3-D"),
    (dict(u=torch.randn(2, 4, 0)), "u", "at least 1"),
    (dict(u=torch.randint(0, 3, (2, 4, 7))), "u", "floating"),
    (dict(delta=torch.rand(2, 4, 6)), "delta", "(2, 4, 7)"),
    (dict(delta=torch.rand(2, 4, 7, dtype=torch.float64)), "delta", "dtype torch.float32"),
    (dict(A=torch.randn(5, 3)), "A", "dim = 4"),
    (dict(B=torch.randn(2, 3, 6)), "B", "length = 7"),
    (dict(C=torch.randn(2, 3, 3, 7)), "C", "divides dim"),
    (dict(B=torch.randn(4, 5)), "B", "(4, 3)"),
    (dict(D=torch.randn(3)), "D", "(dim,)"),
    (dict(z=torch.randn(2, 4, 7, dtype=torch.float16)), "z", "dtype"),
    (dict(delta_bias=torch.randn(4, 1)), "delta_bias", "(dim,)"),
    (dict(B_bias=torch.randn(4, 3, dtype=torch.complex64)), "B_bias", "real"),
    (dict(initial_state=torch.randn(2, 4, 4)), "initial_state", "(2, 4, 3)"),
    (dict(discretization="zho"), "discretization", "did you mean 'zoh'"),
])
def test_selective_scan_rejects_bad_arguments(changes, argument, fragment) -> None:
    with pytest.raises(ScanArgumentError) as info:
        ssmzoo.selective_scan(**_kw(**changes))
    assert info.value.argument == argument
    assert info.value.function == "selective_scan"
    assert fragment in str(info.value), str(info.value)


def test_complex_A_needs_interleaved_B() -> None:
    kw = _ckw(B=torch.randn(2, 3, 7))  # the real layout of a real A: last axis length, not 2*length
    with pytest.raises(ScanArgumentError, match="2\\*length = 14") as info:
        ssmzoo.selective_scan(**kw)
    assert info.value.argument == "B"
    with pytest.raises(ScanArgumentError, match="interleaved"):
        ssmzoo.selective_scan(**_ckw(C=torch.randn(2, 3, 7, dtype=torch.complex64)))
    # a real fixed B (no layout question) is accepted with complex A, as a zero imaginary part
    Bre = torch.randn(4, 3)
    out = ssmzoo.selective_scan(**_ckw(B=Bre))
    torch.testing.assert_close(out, ssmzoo.selective_scan(**_ckw(B=Bre.to(torch.complex64))))


def test_device_mismatch_is_named() -> None:
    meta = torch.empty(4, device="meta")
    with pytest.raises(ScanArgumentError, match="on cpu") as info:
        ssmzoo.selective_scan(**_kw(D=meta))
    assert info.value.argument == "D"


@pytest.mark.parametrize("changes, argument", [
    (dict(x=torch.randn(2, 7, 4)), "x"),
    (dict(dt=torch.randn(2, 7, 3)), "dt"),
    (dict(A=torch.randn(4, 1)), "A"),
    (dict(B=torch.randn(2, 7, 3, 5)), "B"),
    (dict(C=torch.randn(2, 7, 2, 4)), "C"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(D=torch.randn(3)), "D"),
    (dict(initial_states=torch.randn(2, 4, 3, 4)), "initial_states"),
    (dict(dt_limit=(1.0, 0.5)), "dt_limit"),
])
def test_ssd_scan_rejects_bad_arguments(changes, argument) -> None:
    kw = ssd_inputs(SSDCase(), seed=0)
    kw.update(changes)
    with pytest.raises(ScanArgumentError) as info:
        ssmzoo.ssd_scan(**kw)
    assert info.value.argument == argument and info.value.function == "ssd_scan"


# ---------------------------------------------------------------------------------------------
# dispatch


class _Fake(ScanBackend):
    ops: ClassVar[tuple[str, ...]] = ("selective_scan",)

    def __init__(self, name, prio, ok=True, why="", avail=(True, "")):
        self.name, self._prio, self._ok, self._why, self._avail = name, prio, ok, why, avail
        self.calls = 0

    def available(self):
        return self._avail

    def priority(self, device_type):
        return self._prio

    def supports_selective_scan(self, call):
        return self._ok, self._why

    def selective_scan(self, call):
        self.calls += 1
        return call.u


@pytest.fixture
def registry(monkeypatch):
    reg = ssmzoo.registry.Registry()
    reg.backend("reference", ReferenceBackend())
    monkeypatch.setattr(ssmzoo.registry, "get_registry", lambda: reg)
    return reg


def test_auto_picks_lowest_priority_that_supports(registry) -> None:
    fast = _Fake("fast", -10)
    registry.backend("fast", fast)
    registry.backend("broken", _Fake("broken", -20, ok=False, why="no zoh"))
    registry.backend("absent", _Fake("absent", -30, avail=(False, "not installed")))
    kw = _kw()
    assert ssmzoo.selective_scan(**kw) is kw["u"]
    assert fast.calls == 1


def test_auto_falls_back_to_reference(registry) -> None:
    registry.backend("broken", _Fake("broken", -20, ok=False, why="no zoh"))
    out = ssmzoo.selective_scan(**_kw())
    assert out.shape == (2, 4, 7)


def test_auto_without_candidates_lists_reasons(registry, monkeypatch) -> None:
    monkeypatch.setattr(ReferenceBackend, "priority", lambda self, device_type: None)
    registry.backend("broken", _Fake("broken", 1, ok=False, why="no zoh"))
    with pytest.raises(NoBackendError, match="broken: no zoh"):
        ssmzoo.selective_scan(**_kw())


def test_explicit_backend_that_cannot_run_says_why(registry) -> None:
    registry.backend("broken", _Fake("broken", 1, ok=False, why="no zero-order hold"))
    registry.backend("absent", _Fake("absent", 1, avail=(False, "mamba_ssm is not installed")))
    with pytest.raises(BackendUnavailableError, match="no zero-order hold"):
        ssmzoo.selective_scan(**_kw(), backend="broken")
    with pytest.raises(BackendUnavailableError, match="mamba_ssm is not installed"):
        ssmzoo.selective_scan(**_kw(), backend="absent")
    with pytest.raises(BackendUnavailableError, match="does not implement ssd_scan"):
        ssmzoo.ssd_scan(**ssd_inputs(SSDCase()), backend="broken")


def test_a_backend_instance_runs_as_given(registry) -> None:
    """backend= also takes an instance (an A/B sweep's backend with its own tuning): it runs
    unregistered, and one that cannot run the call says why, under its name."""
    mine = _Fake("mine", 99)
    kw = _kw()
    assert ssmzoo.selective_scan(**kw, backend=mine) is kw["u"]
    assert mine.calls == 1 and "mine" not in registry.backends
    with pytest.raises(BackendUnavailableError, match="'broken'.*no zero-order hold"):
        ssmzoo.selective_scan(**kw, backend=_Fake("broken", 1, ok=False, why="no zero-order hold"))
    with pytest.raises(ScanArgumentError, match="backend.*a ScanBackend.*int 3"):
        ssmzoo.selective_scan(**kw, backend=3)


def test_unknown_backend_lists_known(registry) -> None:
    with pytest.raises(UnknownBackendError, match="did you mean 'reference'") as info:
        ssmzoo.selective_scan(**_kw(), backend="refrence")
    assert "reference" in info.value.candidates and "auto" in info.value.candidates


def test_a_backend_must_be_a_scan_backend(registry) -> None:
    class Duck:  # the methods of a backend, but not the base class whose defaults auto relies on
        name, ops = "duck", ("selective_scan",)

        def priority(self, device_type):
            return 0

    with pytest.raises(SSMZooError, match="'duck'.*ScanBackend, got Duck"):
        registry.backend("duck", Duck())
    assert "duck" not in registry.backends


def test_reference_is_registered_by_its_plugin() -> None:
    reg = ssmzoo.registry.get_registry()
    assert isinstance(reg.get_backend("reference"), ReferenceBackend)
    assert reg.backend_plugin("reference") == "reference"
