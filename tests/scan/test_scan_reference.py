"""The chunked reference selective scan against the sequential loop and the float64 oracle.

Values and every gradient, over real/complex A, fixed/variable/grouped B and C, both
discretizations, lengths 1, 7, 64 and 257, with every optional input on (and a few cases with
them off), in float64 (values to 1e-10, gradients to 1e-8) and float32 against float64 (values to
1e-5); half-precision inputs with per-dtype tolerances; gradcheck; torch.compile; NaN poisoning.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import ssmzoo
from ssmzoo.scan.chunked import selective_scan_chunked
from ssmzoo.scan.naive import selective_scan_naive
from tests.helpers import assert_close
from tests.scan.cases import (
    ScanCase,
    grad_inputs,
    gradcheck_chunked,
    outputs_and_grads,
    selective_scan_inputs,
)
from tests.scan.oracle import selective_scan_oracle

LAYOUT_PAIRS = [("fixed", "fixed"), ("variable", "grouped"), ("grouped", "variable")]
LENGTHS = (1, 7, 64, 257)
# small chunks so that short sequences cross several chunks and sub-blocks (and a ragged end)
SMALL = dict(chunk_size=12, block_size=4)


def _all_on(cplx: bool, layouts: tuple[str, str], disc: str, length: int, **kw) -> ScanCase:
    return ScanCase(complex=cplx, B_layout=layouts[0], C_layout=layouts[1], discretization=disc,
                    length=length, B_bias=True, C_bias=True, initial_state=True, **kw)


GRID = [_all_on(c, lay, disc, L, dtype=torch.float64)
        for c, lay, disc, L in itertools.product((False, True), LAYOUT_PAIRS, ("euler", "zoh"),
                                                 LENGTHS)]
FLAGS_OFF = [
    ScanCase(complex=c, D=False, z=False, delta_bias=False, softplus=False, length=L,
             dtype=torch.float64)
    for c, L in itertools.product((False, True), (7, 64))
] + [ScanCase(complex=True, B_layout="variable", C_layout="fixed", D=False, softplus=False,
              B_bias=True, length=33, dtype=torch.float64)]


def _compare(case: ScanCase, fn, ref_fn, *, rtol_val: float, rtol_grad: float, **extra) -> None:
    kw = selective_scan_inputs(case, seed=hash(str(case)) % 1000, requires_grad=True)
    out, last, grads = outputs_and_grads(fn, kw, **extra)
    ref, ref_last, ref_grads = outputs_and_grads(ref_fn, kw)
    assert_close("out", ref, out, rtol=rtol_val)
    assert_close("last_state", ref_last, last, rtol=rtol_val)
    assert set(grads) == set(ref_grads)
    for name in ref_grads:
        assert_close(f"d{name}", ref_grads[name], grads[name], rtol=rtol_grad)


@pytest.mark.parametrize("case", GRID + FLAGS_OFF, ids=str)
def test_chunked_matches_oracle_float64(case: ScanCase) -> None:
    _compare(case, selective_scan_chunked, selective_scan_oracle, rtol_val=1e-10,
             rtol_grad=1e-8, **SMALL)


@pytest.mark.parametrize("case", [c for c in GRID if c.length in (7, 64)][::2], ids=str)
def test_chunked_matches_naive_float64(case: ScanCase) -> None:
    _compare(case, selective_scan_chunked, selective_scan_naive, rtol_val=1e-12,
             rtol_grad=1e-10, **SMALL)


@pytest.mark.parametrize("case", [_all_on(c, lay, d, 257) for c, lay, d in itertools.product(
    (False, True), LAYOUT_PAIRS, ("euler", "zoh"))], ids=str)
def test_float32_against_float64_oracle(case: ScanCase) -> None:
    """Acceptance: the fp32 reference is within 1e-5 (relative RMS) of float64 ground truth."""
    kw = selective_scan_inputs(case, seed=11)
    out, last = ssmzoo.selective_scan(**kw, return_last_state=True, backend="reference")
    ref, ref_last = selective_scan_oracle(**kw, return_last_state=True)
    assert out.dtype == torch.float32
    assert last.dtype == (torch.complex64 if case.complex else torch.float32)
    assert_close("out", ref, out, rtol=1e-5)
    assert_close("last_state", ref_last, last, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("cplx", [False, True])
def test_half_inputs(dtype: torch.dtype, cplx: bool) -> None:
    """Half inputs accumulate in fp32 and return u's dtype; equal to the oracle up to rounding."""
    case = _all_on(cplx, ("variable", "grouped"), "euler", 64, dtype=dtype)
    kw = selective_scan_inputs(case, seed=5)
    out = ssmzoo.selective_scan(**kw, backend="reference")
    assert out.dtype == dtype
    ref = selective_scan_oracle(**kw)  # from the same (rounded) inputs, in float64
    assert_close("out", ref, out, dtype=dtype)


@pytest.mark.parametrize("cplx, disc", [(False, "euler"), (True, "zoh")])
def test_gradcheck(cplx: bool, disc: str) -> None:
    case = _all_on(cplx, ("grouped", "variable"), disc, 5, dtype=torch.float64, batch=1, dim=2,
                   d_state=2, groups=2)
    kw = selective_scan_inputs(case, seed=3, requires_grad=True)
    assert gradcheck_chunked(kw, chunk_size=4, block_size=2)


def test_chunk_sizes_agree() -> None:
    kw = selective_scan_inputs(_all_on(True, ("variable", "variable"), "zoh", 100,
                                       dtype=torch.float64), seed=8)
    ref = selective_scan_chunked(**kw)
    for cs, bs in [(256, 16), (1, 1), (7, 3), (64, 64)]:
        assert_close(f"out(chunk={cs}, block={bs})", ref,
                     selective_scan_chunked(**kw, chunk_size=cs, block_size=bs), rtol=1e-12)


def test_zoh_tends_to_euler_as_A_vanishes() -> None:
    """(exp(ΔA) - 1)/A -> Δ: finite, and equal to Euler to O(ΔA), at A = 0 and tiny A."""
    kw = selective_scan_inputs(ScanCase(dtype=torch.float64, length=20), seed=4)
    for scale in (0.0, 1e-12, 1e-7):
        kw["A"] = scale * torch.ones_like(kw["A"])
        zoh = selective_scan_chunked(**dict(kw, discretization="zoh"))
        euler = selective_scan_chunked(**dict(kw, discretization="euler"))
        assert torch.isfinite(zoh).all()
        assert_close(f"zoh vs euler at A={scale}", euler, zoh, rtol=10 * scale + 1e-15)


def test_strong_decay_does_not_overflow() -> None:
    """Per-step decays of exp(-200) (far below float32's range) give finite, exact results."""
    case = ScanCase(length=64, softplus=False, delta_bias=False, initial_state=True)
    kw = selective_scan_inputs(case, seed=9)
    kw["A"] = kw["A"] * 200
    out, last = ssmzoo.selective_scan(**kw, return_last_state=True)
    ref, ref_last = selective_scan_oracle(**kw, return_last_state=True)
    assert_close("out", ref, out, rtol=1e-5)
    assert_close("last_state", ref_last, last, rtol=1e-5)


def test_growing_state_is_followed() -> None:
    """Re(A) > 0 is computed as written (no assumption of decay)."""
    kw = selective_scan_inputs(ScanCase(length=40, complex=True, dtype=torch.float64), seed=2)
    kw["A"] = torch.complex(0.05 * torch.rand(kw["A"].shape, dtype=torch.float64), kw["A"].imag)
    assert_close("out", selective_scan_oracle(**kw), selective_scan_chunked(**kw, **SMALL),
                 rtol=1e-10)


def test_no_uninitialised_memory(nan_poison) -> None:
    kw = selective_scan_inputs(_all_on(True, ("grouped", "fixed"), "zoh", 37), seed=1)
    out, last = selective_scan_chunked(**kw, return_last_state=True, **SMALL)
    assert torch.isfinite(out).all() and torch.isfinite(last).all()


def test_under_torch_compile() -> None:
    kw = selective_scan_inputs(_all_on(False, ("variable", "grouped"), "euler", 9), seed=6,
                               requires_grad=True)
    compiled = torch.compile(selective_scan_chunked, backend="aot_eager", dynamic=False)
    out = compiled(**kw, chunk_size=8, block_size=4)
    ref = selective_scan_oracle(**kw)
    assert_close("out", ref, out, rtol=1e-5)
    out.sum().backward()
    assert all(v.grad is not None for v in grad_inputs(kw).values())


class _LargestTensor(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the largest number of elements of any tensor an op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("cplx", [False, True])
def test_memory_is_per_chunk_not_per_length(cplx: bool) -> None:
    """No intermediate holds (batch, dim, length, d_state): the largest is O(b·d·n·chunk)."""
    b, d, n, chunk = 2, 8, 4, 32
    case = ScanCase(batch=b, dim=d, d_state=n, length=1024, complex=cplx, B_bias=True)
    kw = selective_scan_inputs(case, seed=0)
    with torch.no_grad(), _LargestTensor() as mode:
        selective_scan_chunked(**kw, chunk_size=chunk, block_size=8)
    full = b * d * 1024 * n
    assert mode.largest <= max(b * d * n * chunk, 2 * b * d * 1024), (mode.largest, full)


def test_backward_keeps_only_chunk_boundaries() -> None:
    """With autograd on, what is kept for the backward has no b·d·n·L term.

    Growing d_state from 8 to 64 at dim 64 may grow the saved tensors by B and C (b·n·L each)
    and the chunk-boundary states (b·d·n per chunk), not by a state per step (b·d·n·L).
    """
    b, d, L, chunk = 2, 64, 256, 32

    def saved_numel(n: int) -> int:
        kw = selective_scan_inputs(ScanCase(batch=b, dim=d, d_state=n, length=L), seed=0,
                                   requires_grad=True)
        saved = []

        def pack(t):
            saved.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = selective_scan_chunked(**kw, chunk_size=chunk, block_size=8)
        out.sum().backward()
        return sum(saved)

    growth = saved_numel(64) - saved_numel(8)
    assert growth < 0.2 * b * d * (64 - 8) * L, (growth, b * d * (64 - 8) * L)
