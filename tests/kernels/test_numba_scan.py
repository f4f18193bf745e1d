"""The ``numba`` CPU backend: compiled selective-scan loops against the sequential float64 loop.

Values and every gradient over real/complex A, fixed/variable/grouped B and C (B and C with
different group counts too), both discretizations, lengths 1, 7 and 64, every optional input on
(and off), in float64 (values to 1e-10, gradients to 1e-8) and float32 against float64; gradcheck;
the A = 0 limit of ZOH; refusals and the place ``auto`` gives it on a CPU.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch

import ssmzoo
from ssmzoo.scan.naive import selective_scan_naive
from tests.helpers import assert_close
from tests.scan.cases import ScanCase, grad_inputs, selective_scan_inputs

pytest.importorskip("numba", reason="the numba backend is optional (pip install 'ssmzoo[cpu]')")

LAYOUT_PAIRS = [("fixed", "fixed"), ("variable", "grouped"), ("grouped", "variable"),
                ("grouped", "grouped"), ("variable", "fixed")]


def _numba(**kw):
    return ssmzoo.selective_scan(**kw, backend="numba")


def _all_on(cplx: bool, layouts: tuple[str, str], disc: str, length: int, **kw) -> ScanCase:
    return ScanCase(complex=cplx, B_layout=layouts[0], C_layout=layouts[1], discretization=disc,
                    length=length, B_bias=True, C_bias=True, initial_state=True, **kw)


GRID = [_all_on(c, lay, disc, L, dtype=torch.float64)
        for c, lay, disc, L in itertools.product((False, True), LAYOUT_PAIRS, ("euler", "zoh"),
                                                 (1, 7, 64))]
FLAGS_OFF = [
    ScanCase(complex=c, D=False, z=False, delta_bias=False, softplus=False, length=9,
             discretization=disc, dtype=torch.float64)
    for c, disc in itertools.product((False, True), ("euler", "zoh"))
] + [ScanCase(complex=True, B_layout="variable", C_layout="fixed", D=False, softplus=False,
              B_bias=True, length=33, dtype=torch.float64)]


def _f64(v):
    if not isinstance(v, torch.Tensor):
        return v
    w = v.detach().to(torch.complex128 if v.is_complex() else torch.float64)
    return w.requires_grad_(v.requires_grad)


def _outputs_and_grads(fn, kw, seed: int = 7):
    """out, last and every input gradient, for cotangents drawn in float64 whatever the dtype."""
    kw = {k: (v.detach().clone().requires_grad_(v.requires_grad) if isinstance(v, torch.Tensor)
              else v) for k, v in kw.items()}
    out, last = fn(**kw, return_last_state=True)
    gen = torch.Generator().manual_seed(seed)
    g_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    g_last = torch.randn(last.shape, generator=gen, dtype=torch.complex128 if last.is_complex()
                         else torch.float64)
    loss = (out.to(torch.float64) * g_out).sum()
    loss = loss + (last.to(g_last.dtype) * g_last.conj()).real.sum()
    loss.backward()
    return out, last, {k: v.grad for k, v in grad_inputs(kw).items()}


def _compare(case: ScanCase, *, rtol_val: float, rtol_grad: float, seed: int = 0,
             kw: dict | None = None) -> None:
    """The numba backend in the case's dtype against the sequential loop in float64."""
    kw = kw or selective_scan_inputs(case, seed=seed + hash(str(case)) % 1000, requires_grad=True)
    out, last, grads = _outputs_and_grads(_numba, kw)
    ref, ref_last, ref_grads = _outputs_and_grads(selective_scan_naive,
                                                  {k: _f64(v) for k, v in kw.items()})
    assert out.dtype == kw["u"].dtype
    assert_close("out", ref, out, rtol=rtol_val)
    assert_close("last_state", ref_last, last, rtol=rtol_val)
    assert set(grads) == set(ref_grads) == set(grad_inputs(kw))
    for name in ref_grads:
        assert grads[name].dtype == kw[name].dtype, name
        assert_close(f"d{name}", ref_grads[name], grads[name], rtol=rtol_grad)


@pytest.mark.parametrize("case", GRID + FLAGS_OFF, ids=str)
def test_float64_matches_sequential_loop(case: ScanCase) -> None:
    _compare(case, rtol_val=1e-10, rtol_grad=1e-8)


@pytest.mark.parametrize("case", [
    _all_on(True, ("grouped", "grouped"), "zoh", 64, groups=2, dim=8, d_state=4),
    _all_on(False, ("variable", "variable"), "zoh", 64, dim=8, d_state=16),
    _all_on(True, ("variable", "fixed"), "euler", 30),
], ids=str)
def test_float32_against_float64(case: ScanCase) -> None:
    _compare(case, rtol_val=1e-5, rtol_grad=1e-4)


def test_b_and_c_with_different_group_counts() -> None:
    case = _all_on(True, ("grouped", "grouped"), "zoh", 20, dim=12, groups=2,
                   dtype=torch.float64)
    kw = selective_scan_inputs(case, seed=3, requires_grad=True)
    b, g, n, L = kw["C"].shape
    kw["C"] = torch.randn(b, 3, n, L, dtype=torch.float64, requires_grad=True)  # 3 groups vs 2
    _compare(case, rtol_val=1e-10, rtol_grad=1e-8, kw=kw)


@pytest.mark.parametrize("cplx", [False, True], ids=["real", "complex"])
def test_zoh_limit_at_a_zero_A(cplx: bool) -> None:
    """(exp(ΔA) - 1)/A -> Δ as A -> 0: a mode with A exactly 0 matches the loop, values and grads."""
    case = _all_on(cplx, ("variable", "fixed"), "zoh", 11, dtype=torch.float64)
    kw = selective_scan_inputs(case, seed=5, requires_grad=True)
    with torch.no_grad():
        kw["A"][:, 0] = 0
    out, last, grads = _outputs_and_grads(_numba, kw)
    ref, ref_last, ref_grads = _outputs_and_grads(selective_scan_naive, kw)
    assert torch.isfinite(out).all()
    assert_close("out", ref, out, rtol=1e-10)
    for name in ref_grads:  # dA included: ∂k/∂A at A = 0 is Δ²/2
        assert torch.isfinite(grads[name]).all(), name
        assert_close(f"d{name}", ref_grads[name], grads[name], rtol=1e-8)


@pytest.mark.parametrize("cplx", [False, True], ids=["real", "complex"])
def test_gradcheck(cplx: bool) -> None:
    case = _all_on(cplx, ("grouped", "variable"), "zoh", 5, batch=1, dim=4, d_state=2,
                   dtype=torch.float64)
    kw = selective_scan_inputs(case, seed=11, requires_grad=True)
    names = list(grad_inputs(kw))

    def f(*tensors):
        out, last = _numba(**dict(kw, **dict(zip(names, tensors))), return_last_state=True)
        return out, torch.view_as_real(last) if last.is_complex() else last

    assert torch.autograd.gradcheck(f, [kw[n] for n in names], eps=1e-6, atol=1e-7)


def test_refuses_half_precision_and_auto_moves_on() -> None:
    case = replace(ScanCase(), dtype=torch.bfloat16)
    kw = selective_scan_inputs(case, seed=1)
    with pytest.raises(ssmzoo.errors.BackendUnavailableError, match="bfloat16"):
        _numba(**kw)
    out = ssmzoo.selective_scan(**kw)  # auto: the reference takes it
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_auto_picks_numba_first_on_cpu() -> None:
    from ssmzoo.scan.dispatch import candidates

    names = [name for name, _ in candidates("selective_scan", "cpu")]
    assert names[0] == "numba" and "reference" in names
    assert names.index("numba") < names.index("reference")
    assert "numba" not in [name for name, _ in candidates("selective_scan", "cuda")]
    assert "numba" not in [name for name, _ in candidates("ssd_scan", "cpu")]


def test_follows_torch_thread_count() -> None:
    import numba
    from ssmzoo_kernels.cpu.function import set_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        set_threads()
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        set_threads()
