"""The hand-written forward/backward of the chunked scan (ssmzoo/scan/_scan_fn.py).

Checked against the float64 loop oracle: values and gradients of every input, the no-grad
forward against the autograd one, gradcheck for the cases the main grid's gradcheck leaves out,
the ZOH fallback (some A = 0), B and C with different group counts, the default chunk length and
the work buffers reused across chunks.
"""

from __future__ import annotations

import pytest
import torch

from ssmzoo.scan import chunked
from ssmzoo.scan.chunked import selective_scan_chunked
from ssmzoo.scan.naive import selective_scan_naive
from tests.helpers import assert_close
from tests.scan.cases import (
    ScanCase,
    gradcheck_chunked,
    outputs_and_grads,
    selective_scan_inputs,
)
from tests.scan.oracle import selective_scan_oracle


def _check(kw, rtol_val=1e-10, rtol_grad=1e-8, ref_fn=selective_scan_oracle, **extra):
    out, last, grads = outputs_and_grads(selective_scan_chunked, kw, seed=3, **extra)
    ref, ref_last, ref_grads = outputs_and_grads(ref_fn, kw, seed=3)
    assert_close("out", ref, out, rtol=rtol_val)
    assert_close("last_state", ref_last, last, rtol=rtol_val)
    assert set(grads) == set(ref_grads)
    for name in ref_grads:
        assert_close(f"d{name}", ref_grads[name], grads[name], rtol=rtol_grad)


B2S6_LIKE = dict(complex=True, B_layout="grouped", C_layout="grouped", groups=4, dim=8,
                 d_state=3, B_bias=True, discretization="zoh", dtype=torch.float64)


@pytest.mark.parametrize("length, chunk", [(40, None), (40, 8), (37, 12)])
def test_b2s6_like_call_matches_oracle(length: int, chunk: int | None) -> None:
    """Complex A, ZOH, grouped B/C, B_bias (the b2s6 unit's call): values and all gradients."""
    kw = selective_scan_inputs(ScanCase(length=length, **B2S6_LIKE), seed=length,
                               requires_grad=True)
    extra = {} if chunk is None else dict(chunk_size=chunk, block_size=4)
    _check(kw, **extra)


@pytest.mark.parametrize("cplx, disc", [(True, "euler"), (False, "zoh")])
def test_gradcheck_other_cases(cplx: bool, disc: str) -> None:
    case = ScanCase(complex=cplx, B_layout="variable", C_layout="grouped", discretization=disc,
                    length=6, batch=1, dim=2, d_state=2, groups=2, B_bias=True, C_bias=True,
                    initial_state=True, dtype=torch.float64)
    kw = selective_scan_inputs(case, seed=5, requires_grad=True)
    assert gradcheck_chunked(kw, chunk_size=4, block_size=2)


@pytest.mark.parametrize("cplx", [False, True])
def test_no_grad_forward_equals_autograd_forward(cplx: bool) -> None:
    """The forward without autograd (no saved states) gives the same values, bit for bit."""
    case = ScanCase(complex=cplx, B_layout="grouped", C_layout="variable", length=50,
                    B_bias=True, C_bias=True, initial_state=True, discretization="zoh")
    kw = selective_scan_inputs(case, seed=2, requires_grad=True)
    out, last = selective_scan_chunked(**kw, return_last_state=True, chunk_size=16, block_size=4)
    with torch.no_grad():
        out2, last2 = selective_scan_chunked(**kw, return_last_state=True, chunk_size=16,
                                             block_size=4)
    assert torch.equal(out.detach(), out2)
    assert torch.equal(last.detach(), last2)


def test_zoh_with_a_zero_A_falls_back_and_matches_oracle() -> None:
    """Some A = 0: 1/A is not finite, and the phi1 path (autograd) gives values and gradients
    (against the float64 loop, which uses phi1 too: the oracle divides by A)."""
    kw = selective_scan_inputs(ScanCase(length=30, discretization="zoh", dtype=torch.float64,
                                        initial_state=True), seed=4, requires_grad=True)
    with torch.no_grad():
        kw["A"][0, 1] = 0.0
    _check(kw, ref_fn=selective_scan_naive, chunk_size=8, block_size=4)


def test_B_and_C_with_different_group_counts() -> None:
    """B in 2 groups, C in 3 (dim 6): both are taken to 6 groups inside; the gradients sum back."""
    case = ScanCase(complex=True, B_layout="grouped", C_layout="grouped", dim=6, groups=2,
                    length=20, dtype=torch.float64, discretization="zoh", B_bias=True)
    kw = selective_scan_inputs(case, seed=6, requires_grad=True)
    C3 = selective_scan_inputs(ScanCase(complex=True, C_layout="grouped", dim=6, groups=3,
                                        length=20, dtype=torch.float64), seed=7)["C"]
    kw["C"] = C3.requires_grad_(True)
    _check(kw, chunk_size=8, block_size=4)


def test_default_chunk_length() -> None:
    """The default chunk keeps one work buffer near CHUNK_FLOATS, at most CHUNK_SIZE steps,
    and a long sequence then crosses several chunks with the same result as one chunk."""
    kw = selective_scan_inputs(ScanCase(batch=4, dim=64, d_state=8, length=300, complex=True,
                                        dtype=torch.float64), seed=1)
    seen = []
    orig = chunked.run_forward

    def spy(meta, *args, **kw2):
        seen.append(meta[0] * meta[1])
        return orig(meta, *args, **kw2)

    chunked.run_forward = spy
    try:
        out = selective_scan_chunked(**kw)
    finally:
        chunked.run_forward = orig
    per_step = 4 * 64 * 8 * 2
    assert seen == [min(chunked.CHUNK_SIZE, chunked.CHUNK_FLOATS // per_step // 16 * 16)]
    assert seen[0] < 300  # several chunks
    assert_close("out", selective_scan_chunked(**kw, chunk_size=304), out, rtol=1e-12)
