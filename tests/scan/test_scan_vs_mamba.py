"""Agreement with mamba_ssm's own ``selective_scan_ref`` on its test grid, values and gradients.

mamba_ssm's function is taken from its source archive at test time (tests/scan/mamba_ref.py); the
test skips only when the package index cannot be reached. Inputs and tolerances follow mamba_ssm's
tests/ops/test_selective_scan.py: batch 2, dim 4, d_state 8, A = -0.5·rand (float32 or
complex64), delta = 0.5·rand, delta_bias = 0.5·rand, and per input dtype (rtol, atol) = (6e-4,
2e-3) for float32, (3e-3, 5e-3) for float16, (3e-2, 5e-2) for bfloat16, elementwise for the
output and last state, as relative RMS for gradients (see below).
"""

from __future__ import annotations

import itertools

import pytest
import torch

import ssmzoo
from tests.helpers import assert_close
from tests.scan.mamba_ref import MambaSourceUnavailable, selective_scan_ref

TOL = {torch.float32: (6e-4, 2e-3), torch.float16: (3e-3, 5e-3), torch.bfloat16: (3e-2, 5e-2)}
# (is_variable_B, is_variable_C, groups), as mamba's grid allows them (groups need variable B and C)
BC = [(False, False, 1), (True, False, 1), (False, True, 1), (True, True, 1), (True, True, 2)]


@pytest.fixture(scope="module")
def mamba_ref():
    try:
        return selective_scan_ref()
    except MambaSourceUnavailable as e:
        pytest.skip(str(e))


def _inputs(wtype, itype, seqlen, var_B, var_C, groups, has_D, has_z, has_delta_bias, seed):
    gen = torch.Generator().manual_seed(seed)
    batch, dim, dstate = 2, 4, 8
    cplx = wtype == torch.complex64
    L = seqlen * 2 if cplx else seqlen

    def rnd(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=gen).to(dtype)

    A = -0.5 * torch.rand(dim, dstate, generator=gen)
    if cplx:
        A = torch.complex(A, torch.randn(dim, dstate, generator=gen))
    B = rnd(batch, groups, dstate, L, dtype=itype) if var_B else (
        torch.complex(rnd(dim, dstate), rnd(dim, dstate)) if cplx else rnd(dim, dstate))
    C = rnd(batch, groups, dstate, L, dtype=itype) if var_C else (
        torch.complex(rnd(dim, dstate), rnd(dim, dstate)) if cplx else rnd(dim, dstate))
    if groups == 1 and var_B:
        B = B[:, 0]  # mamba's (batch, d_state, L) layout when there is one group
    if groups == 1 and var_C:
        C = C[:, 0]
    kw = dict(u=rnd(batch, dim, seqlen, dtype=itype),
              delta=(0.5 * torch.rand(batch, dim, seqlen, generator=gen)).to(itype),
              A=A, B=B, C=C,
              D=rnd(dim) if has_D else None, z=rnd(batch, dim, seqlen, dtype=itype) if has_z
              else None, delta_bias=0.5 * torch.rand(dim, generator=gen) if has_delta_bias
              else None)
    return {k: (v.requires_grad_(True) if v is not None else None) for k, v in kw.items()}


def _run(fn, kw, softplus):
    kw = {k: (v.detach().clone().requires_grad_(True) if v is not None else None)
          for k, v in kw.items()}
    out, last = fn(**kw, delta_softplus=softplus, return_last_state=True)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype)
    out.backward(g)
    return out, last, {k: v.grad for k, v in kw.items() if v is not None}


def _check(mamba_ref, wtype, itype, seqlen, bc, flags, seed=0):
    var_B, var_C, groups = bc
    has_D, has_z, has_delta_bias, softplus = flags
    kw = _inputs(wtype, itype, seqlen, var_B, var_C, groups, has_D, has_z, has_delta_bias, seed)
    out, last, grads = _run(lambda **a: ssmzoo.selective_scan(**a, backend="reference"), kw,
                            softplus)
    ref, ref_last, ref_grads = _run(mamba_ref, kw, softplus)
    rtol, atol = TOL[itype]
    assert out.dtype == ref.dtype == itype
    torch.testing.assert_close(out, ref, rtol=rtol, atol=atol, msg=lambda m: f"out: {m}")
    torch.testing.assert_close(last, ref_last, rtol=rtol, atol=atol,
                               msg=lambda m: f"last_state: {m}")
    for name, ref_g in ref_grads.items():
        # gradients as relative RMS within the dtype's rtol: parameter gradients are sums over
        # batch and length, and mamba's reference computes silu(z) in the half input dtype, so
        # elementwise bounds would measure its rounding (ours is the closer one to float64 truth)
        assert_close(f"d{name}", ref_g, grads[name], rtol=rtol)
    if itype == torch.float32:  # and much tighter than mamba's tolerance, as relative RMS
        assert_close("out", ref, out, rtol=1e-5)
        for name, ref_g in ref_grads.items():
            assert_close(f"d{name}", ref_g, grads[name], rtol=2e-5)


DTYPES = list(itertools.product([torch.float32, torch.complex64],
                                [torch.float32, torch.float16, torch.bfloat16]))


@pytest.mark.parametrize("wtype, itype", DTYPES, ids=lambda t: str(t).replace("torch.", ""))
@pytest.mark.parametrize("bc", BC, ids=lambda bc: f"B{'v' if bc[0] else 'f'}C{'v' if bc[1] else 'f'}g{bc[2]}")
@pytest.mark.parametrize("seqlen", [8, 131])
def test_agrees_with_mamba_selective_scan_ref(mamba_ref, wtype, itype, bc, seqlen) -> None:
    _check(mamba_ref, wtype, itype, seqlen, bc, flags=(True, True, True, True))


@pytest.mark.parametrize("flags", [f for f in itertools.product((False, True), repeat=4)
                                   if not all(f)], ids=lambda f: "".join("DZbs"[i] if v else "-"
                                                                         for i, v in enumerate(f)))
def test_agrees_with_mamba_flags(mamba_ref, flags) -> None:
    _check(mamba_ref, torch.float32, torch.float32, 64, (True, True, 2), flags)
    _check(mamba_ref, torch.complex64, torch.float32, 64, (True, False, 1), flags)


@pytest.mark.slow
@pytest.mark.parametrize("wtype, itype", DTYPES, ids=lambda t: str(t).replace("torch.", ""))
@pytest.mark.parametrize("seqlen", [372])
def test_agrees_with_mamba_long(mamba_ref, wtype, itype, seqlen) -> None:
    _check(mamba_ref, wtype, itype, seqlen, (True, True, 2), flags=(True, True, True, True))
