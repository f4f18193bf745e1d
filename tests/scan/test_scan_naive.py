"""The sequential loops (the specification) against the independent float64 oracle."""

from __future__ import annotations

import itertools

import pytest
import torch

from ssmzoo.scan.naive import selective_scan_naive, ssd_naive
from tests.helpers import assert_close
from tests.scan.cases import ScanCase, SSDCase, selective_scan_inputs, ssd_inputs
from tests.scan.oracle import selective_scan_oracle, ssd_oracle

LAYOUTS = ("fixed", "variable", "grouped")

NAIVE_CASES = [
    ScanCase(complex=cplx, B_layout=bl, C_layout=cl, discretization=disc, B_bias=cplx,
             C_bias=not cplx, initial_state=True, dtype=torch.float64)
    for cplx, (bl, cl), disc in itertools.product(
        (False, True), [("fixed", "fixed"), ("variable", "grouped"), ("grouped", "variable")],
        ("euler", "zoh"))
] + [ScanCase(length=1, dtype=torch.float64),
     ScanCase(D=False, z=False, delta_bias=False, softplus=False, dtype=torch.float64)]


@pytest.mark.parametrize("case", NAIVE_CASES, ids=str)
def test_selective_scan_naive_matches_oracle(case: ScanCase) -> None:
    kw = selective_scan_inputs(case, seed=1)
    out, last = selective_scan_naive(**kw, return_last_state=True)
    ref, ref_last = selective_scan_oracle(**kw, return_last_state=True)
    assert_close("out", ref, out, rtol=1e-10)
    assert_close("last_state", ref_last, last, rtol=1e-10)


@pytest.mark.parametrize("case", [
    SSDCase(dtype=torch.float64, initial_states=True),
    SSDCase(dtype=torch.float64, D="hp", groups=1, dt_limit=(0.2, 0.5)),
    SSDCase(dtype=torch.float64, D="", z=False, dt_bias=False, softplus=False, length=1),
], ids=str)
def test_ssd_naive_matches_oracle(case: SSDCase) -> None:
    kw = ssd_inputs(case, seed=2)
    out, final = ssd_naive(**kw, return_final_states=True)
    ref, ref_final = ssd_oracle(**kw, return_final_states=True)
    assert_close("out", ref, out, rtol=1e-10)
    assert_close("final_states", ref_final, final, rtol=1e-10)
