"""The ``cuda`` backend (mamba_ssm's selective_scan_cuda) and the ``mamba_ssd`` peer.

On any machine: the linearity algebra that gives B2S6's B_bias/C_bias (checked by substituting the
reference for the extension, values and every gradient in float64) and the refusals. Where the
extension is importable (a GPU box with mamba_ssm built): the backend against the reference.
"""

from __future__ import annotations

import importlib.util
import itertools

import pytest
import torch
from ssmzoo_kernels.cuda import CudaBackend, MambaSSDBackend, by_linearity

import ssmzoo
from ssmzoo.scan._validate import check_selective_scan
from ssmzoo.scan.backend import SelectiveScanCall, SSDCall
from ssmzoo.scan.naive import selective_scan_naive
from tests.helpers import assert_close
from tests.scan.cases import ScanCase, SSDCase, clone_inputs, selective_scan_inputs, ssd_inputs

HAS_EXT = importlib.util.find_spec("selective_scan_cuda") is not None
HAS_MAMBA = importlib.util.find_spec("mamba_ssm") is not None
ORDER = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "delta_softplus",
         "return_last_state", "B_bias", "C_bias", "initial_state", "discretization")


def _call(kw, validate=True):
    full = {"D": None, "z": None, "delta_bias": None, "delta_softplus": False,
            "return_last_state": False, "B_bias": None, "C_bias": None, "initial_state": None,
            "discretization": "euler", **kw}
    if not validate:  # a call the public function would refuse: the backend's own rule
        return SelectiveScanCall(**full)
    return check_selective_scan(*(full[k] for k in ORDER))


def _reference_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """Stands in for the extension: same arguments, returns (out, last_state)."""
    return ssmzoo.selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                 return_last_state=True, backend="reference")


LAYOUTS = [("variable", "variable"), ("grouped", "grouped"), ("fixed", "grouped"),
           ("grouped", "fixed"), ("fixed", "fixed"), ("variable", "grouped")]
BIASES = [(True, False), (False, True), (True, True)]


@pytest.mark.parametrize("cplx", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: f"B{x[0][0]}C{x[1][0]}")
@pytest.mark.parametrize("biases", BIASES, ids=["Bbias", "Cbias", "BCbias"])
def test_bias_by_linearity_equals_reference(cplx, layout, biases):
    """sum of plain scans == the scan with B_bias/C_bias: outputs, last state, every gradient."""
    case = ScanCase(batch=2, dim=6, length=9, d_state=3, complex=cplx, B_layout=layout[0],
                    C_layout=layout[1], groups=3, B_bias=biases[0], C_bias=biases[1],
                    dtype=torch.float64)
    seed = hash((cplx, layout, biases)) % 10_000
    kw = selective_scan_inputs(case, seed=seed, requires_grad=True)
    kw2 = clone_inputs(kw)
    out, last = by_linearity(_call({**kw, "return_last_state": True}), _reference_scan)
    ref, ref_last = ssmzoo.selective_scan(**kw2, return_last_state=True, backend="reference")
    assert_close("out", ref, out)
    assert_close("last_state", ref_last, last)
    g = torch.randn_like(out)
    names = [k for k, v in kw.items() if isinstance(v, torch.Tensor)]
    grads = torch.autograd.grad((out * g).sum(), [kw[n] for n in names])
    ref_grads = torch.autograd.grad((ref * g).sum(), [kw2[n] for n in names])
    for n, a, r in zip(names, grads, ref_grads):
        assert_close(f"d{n}", r, a)


def test_linearity_calls_the_expected_scans():
    """Grouped C with B_bias: one plain scan, one per group for B_bias, one for C_bias, one for
    both; each fixed/variable pairing is one the extension accepts (fixed B with (b, n, l) C)."""
    case = ScanCase(batch=1, dim=4, length=5, d_state=2, B_layout="grouped", C_layout="grouped",
                    groups=2, B_bias=True, C_bias=True, dtype=torch.float64)
    kw = selective_scan_inputs(case, seed=1)
    seen = []

    def spy(u, delta, A, B, C, *rest):
        seen.append((u.shape[1], B.dim(), C.dim()))
        assert not (B.dim() == 2 and C.dim() == 4), "extension rejects fixed B with grouped C"
        return _reference_scan(u, delta, A, B, C, *rest)

    by_linearity(_call(kw), spy)
    assert seen == [(4, 4, 4), (2, 2, 3), (2, 2, 3), (4, 4, 2), (4, 2, 2)]


@pytest.mark.parametrize("change, reason", [
    ({"discretization": "zoh"}, "zero-order hold"),
    ({"initial_state": "state"}, "initial_state"),
    ({"A": "float64"}, "A has dtype torch.float64"),
    ({"d_state": 300}, "d_state <= 256"),
    ({"complex": True, "B_layout": "grouped"}, "complex A with grouped B/C"),
    ({}, "tensors are on cpu"),
])
def test_refusals_say_why(change, reason):
    case = ScanCase(batch=1, dim=2, length=4, d_state=change.get("d_state", 3),
                    initial_state="initial_state" in change, dtype=torch.float32,
                    complex=change.get("complex", False),
                    B_layout=change.get("B_layout", "variable"))
    kw = selective_scan_inputs(case)
    if "discretization" in change:
        kw["discretization"] = "zoh"
    if change.get("A") == "float64":  # validation refuses it beside float32 u since 2026-12
        kw["A"] = kw["A"].double()
    ok, why = CudaBackend().supports_selective_scan(_call(kw, validate="A" not in change))
    assert not ok and reason in why, why


def test_last_state_with_gradients_is_refused():
    case = ScanCase(batch=1, dim=2, length=4, d_state=3, dtype=torch.float32)
    kw = selective_scan_inputs(case, requires_grad=True)
    ok, why = CudaBackend().supports_selective_scan(_call({**kw, "return_last_state": True}))
    assert not ok and "last state" in why
    with torch.no_grad():
        ok, why = CudaBackend().supports_selective_scan(_call({**kw, "return_last_state": True}))
    assert "last state" not in why


def test_unavailable_backends_say_how_to_install():
    for backend in (CudaBackend(), MambaSSDBackend()):
        ok, why = backend.available()
        if not ok:
            assert "mamba" in why and ("pip install" in why or "CUDA" in why), why
    ok, why = MambaSSDBackend().supports_ssd_scan(SSDCall(**ssd_inputs(SSDCase(dtype=torch.float32))))
    assert not ok and "cpu" in why


GPU_GRID = [g for g in itertools.product(
    [False, True], [("variable", "variable"), ("grouped", "grouped"), ("fixed", "variable")],
    [(False, False), (True, True)], [torch.float32, torch.bfloat16])
    if not (g[0] and g[1][0] == "grouped")]  # refused: see test_refusals_say_why
# fp32: the extension is built with --use_fast_math (exp2f, fast division); bf16 inputs round
# each term's output to bf16 before the terms are summed.
GPU_TOL = {torch.float32: 1e-4, torch.bfloat16: 3e-2}


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_EXT, reason="mamba_ssm's selective_scan_cuda is not importable")
@pytest.mark.parametrize("cplx, layout, biases, dtype", GPU_GRID)
def test_cuda_backend_against_reference(cplx, layout, biases, dtype):
    case = ScanCase(batch=2, dim=64, length=301, d_state=16, complex=cplx, B_layout=layout[0],
                    C_layout=layout[1], groups=4, B_bias=biases[0], C_bias=biases[1], dtype=dtype)
    kw = {k: (v.cuda().detach().requires_grad_() if isinstance(v, torch.Tensor) else v)
          for k, v in selective_scan_inputs(case, seed=7).items()}
    ref_kw = {k: (v.detach().double().requires_grad_() if isinstance(v, torch.Tensor)
                  and not v.is_complex() else
                  v.detach().to(torch.complex128).requires_grad_() if isinstance(v, torch.Tensor)
                  else v) for k, v in kw.items()}
    out = ssmzoo.selective_scan(**kw, backend="cuda")
    ref = selective_scan_naive(**ref_kw)  # the sequential specification, float64
    assert_close("out", ref, out, rtol=GPU_TOL[dtype])
    g = torch.randn_like(out)
    names = [k for k, v in kw.items() if isinstance(v, torch.Tensor)]
    grads = torch.autograd.grad((out.float() * g.float()).sum(), [kw[n] for n in names])
    ref_grads = torch.autograd.grad((ref * g.double()).sum(), [ref_kw[n] for n in names])
    for n, a, r in zip(names, grads, ref_grads):
        assert_close(f"d{n}", r, a, rtol=GPU_TOL[dtype] * 2)  # sums over length and batch


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_MAMBA, reason="mamba_ssm is not importable")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mamba_ssd_against_reference(dtype):
    case = SSDCase(batch=2, length=500, heads=4, headdim=64, groups=2, d_state=64,
                   chunk_size=128, initial_states=True, dtype=dtype)
    kw = {k: (v.cuda() if isinstance(v, torch.Tensor) else v)
          for k, v in ssd_inputs(case, seed=3).items()}
    out, fin = ssmzoo.ssd_scan(**kw, return_final_states=True, backend="mamba_ssd")
    ref_kw = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    ref, ref_fin = ssmzoo.ssd_scan(**ref_kw, return_final_states=True, backend="reference")
    assert fin.dtype == torch.float32
    tol = 5e-3 if dtype == torch.float32 else GPU_TOL[dtype]  # its fp32 dots run in tf32
    assert_close("out", ref, out, rtol=tol)
    assert_close("final_states", ref_fin, fin, rtol=tol)
