"""The chunked SSD against the sequential loop and the float64 oracle: values and every gradient."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import ssmzoo
from ssmzoo.scan.naive import ssd_naive
from ssmzoo.scan.ssd import segsum, ssd_chunked
from tests.helpers import assert_close
from tests.scan.cases import SSDCase, clone_inputs, grad_inputs, ssd_inputs
from tests.scan.oracle import ssd_oracle

GRID = [
    SSDCase(length=L, chunk_size=Q, groups=g, D=D, initial_states=True, dtype=torch.float64)
    for L, Q, g, D in itertools.product((1, 7, 64, 257), (4, 16), (1, 2), ("h", "hp"))
    if not (L == 257 and Q == 4)
] + [
    SSDCase(length=30, chunk_size=8, D="", z=False, dt_bias=False, softplus=False,
            dtype=torch.float64),
    SSDCase(length=30, chunk_size=8, dt_limit=(0.3, 0.6), dtype=torch.float64),
    SSDCase(length=30, chunk_size=64, dt_limit=(0.0, 0.4), initial_states=True,
            dtype=torch.float64),
]


def _run(fn, kw):
    kw = clone_inputs(kw)
    out, final = fn(**kw, return_final_states=True)
    gen = torch.Generator().manual_seed(3)
    loss = (out * torch.randn(out.shape, generator=gen, dtype=out.dtype)).sum() + (
        final * torch.randn(final.shape, generator=gen, dtype=final.dtype)).sum()
    loss.backward()
    return out, final, {k: v.grad for k, v in grad_inputs(kw).items()}


@pytest.mark.parametrize("case", GRID, ids=str)
def test_ssd_chunked_matches_oracle_float64(case: SSDCase) -> None:
    kw = ssd_inputs(case, seed=hash(str(case)) % 1000, requires_grad=True)
    out, final, grads = _run(ssd_chunked, kw)
    ref, ref_final, ref_grads = _run(ssd_oracle, kw)
    assert_close("out", ref, out, rtol=1e-10)
    assert_close("final_states", ref_final, final, rtol=1e-10)
    for name in ref_grads:
        assert_close(f"d{name}", ref_grads[name], grads[name], rtol=1e-8)


@pytest.mark.parametrize("case", GRID[::5], ids=str)
def test_ssd_chunked_matches_naive_float64(case: SSDCase) -> None:
    kw = ssd_inputs(case, seed=4, requires_grad=True)
    out, final, grads = _run(ssd_chunked, kw)
    ref, ref_final, ref_grads = _run(ssd_naive, kw)
    assert_close("out", ref, out, rtol=1e-12)
    assert_close("final_states", ref_final, final, rtol=1e-12)
    for name in ref_grads:
        assert_close(f"d{name}", ref_grads[name], grads[name], rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_ssd_dtypes(dtype: torch.dtype) -> None:
    case = SSDCase(length=100, chunk_size=32, initial_states=True, dtype=dtype)
    kw = ssd_inputs(case, seed=6)
    out, final = ssmzoo.ssd_scan(**kw, return_final_states=True, backend="reference")
    assert out.dtype == dtype and final.dtype == torch.float32
    ref, ref_final = ssd_oracle(**kw, return_final_states=True)
    assert_close("out", ref, out, dtype=dtype)
    assert_close("final_states", ref_final, final, dtype=torch.float32 if dtype == torch.float32
                 else dtype)


def test_ssd_gradcheck() -> None:
    case = SSDCase(batch=1, length=5, heads=2, headdim=2, groups=1, d_state=2, chunk_size=2,
                   initial_states=True, D="hp", dtype=torch.float64)
    kw = ssd_inputs(case, seed=1, requires_grad=True)
    names = list(grad_inputs(kw))

    def f(*tensors):
        return ssd_chunked(**dict(kw, **dict(zip(names, tensors))), return_final_states=True)

    assert torch.autograd.gradcheck(f, [kw[n] for n in names], eps=1e-6, atol=1e-7)


def test_segsum_is_exact_segment_sums() -> None:
    a = torch.randn(3, 6, dtype=torch.float64)
    s = segsum(a)
    for t in range(6):
        for u in range(6):
            want = a[:, u + 1:t + 1].sum(-1) if t >= u else torch.full((3,), -math.inf,
                                                                        dtype=a.dtype)
            torch.testing.assert_close(s[:, t, u], want)


def test_ssd_is_selective_scan_with_one_decay_per_head() -> None:
    """SSD equals the selective scan with A repeated over (headdim, d_state) (mamba's identity)."""
    case = SSDCase(length=20, groups=2, heads=4, D="h", softplus=True, dtype=torch.float64)
    kw = ssd_inputs(case, seed=2)
    h, p, n = case.heads, case.headdim, case.d_state
    out = ssmzoo.ssd_scan(**kw)
    ss = ssmzoo.selective_scan(
        u=kw["x"].flatten(2).transpose(1, 2), delta=torch.repeat_interleave(kw["dt"], p, dim=2)
        .transpose(1, 2), A=kw["A"].repeat_interleave(p)[:, None].expand(h * p, n),
        B=kw["B"].permute(0, 2, 3, 1), C=kw["C"].permute(0, 2, 3, 1),
        D=kw["D"].repeat_interleave(p), z=kw["z"].flatten(2).transpose(1, 2),
        delta_bias=kw["dt_bias"].repeat_interleave(p), delta_softplus=True)
    assert_close("out", out.flatten(2).transpose(1, 2), ss, rtol=1e-10)
