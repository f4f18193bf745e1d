"""A unit's own ``prefill(x) -> (y, state)``: ``forward(x)`` from one full-sequence pass, and the
state that stepping through x would leave, in float64 (values) and in the step's dtypes."""

from __future__ import annotations

import pytest
import torch

import ssmzoo

SPECS = ["s4d", "s4d(mode=scan)", "s6", "s6-complex", "s6(discretization=zoh)", "b2s6", "b2s6(complex=false)", "mamba2",
         "mamba2(headdim=4, ngroups=2, d_conv=1, chunk_size=8)",
         "mamba", "mamba(core=b2s6)", "mamba(d_conv=1)", "mamba(core=s6-complex)"]


def _leaves(state):
    if isinstance(state, dict):
        return [leaf for key in sorted(state) for leaf in _leaves(state[key])]
    return [state]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("length", [1, 3, 17])
def test_prefill_equals_forward_and_stepping(spec, length):
    torch.manual_seed(length)
    unit = ssmzoo.build(spec, 8)
    assert callable(getattr(unit, "prefill", None)), f"{spec} has no prefill"
    unit = unit.double()
    x = torch.randn(2, length, 8, dtype=torch.float64)
    y, state = unit.prefill(x)
    torch.testing.assert_close(y, unit(x), rtol=1e-12, atol=1e-12)
    stepped = unit.init_state(2)
    for t in range(length):
        _, stepped = unit.step(x[:, t], stepped)
    for got, want in zip(_leaves(state), _leaves(stepped), strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # the state continues the sequence exactly as a stepped one does
    x_next = torch.randn(2, 8, dtype=torch.float64)
    torch.testing.assert_close(unit.step(x_next, state)[0], unit.step(x_next, stepped)[0])


def test_prefill_state_dtypes_in_float32():
    unit = ssmzoo.build("mamba(core=s6-complex)", 8)
    _, state = unit.prefill(torch.randn(1, 5, 8))
    want = unit.init_state(1)
    assert [t.dtype for t in _leaves(state)] == [t.dtype for t in _leaves(want)]
