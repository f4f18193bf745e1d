"""The Triton selective scan against the reference: output, last state and every gradient.

Without CUDA the kernels run in Triton's interpreter (``tests/kernels/conftest.py`` sets
TRITON_INTERPRET=1 before they are imported) on tiny shapes. The chunk length is cut to 8 steps and
two channels per program, so a length of 37 crosses four chunk boundaries and ends in a partial
chunk, and four channels make two programs that must add their B/C gradients together. The
reference is ``ssmzoo.selective_scan(..., backend="reference")`` in float64 on the same (rounded)
inputs. Fresh buffers are NaN-poisoned, so an unwritten element fails.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch

pytest.importorskip("triton")

from ssmzoo_kernels.selective_scan import function as fn  # noqa: E402
from ssmzoo_kernels.selective_scan.prepare import block_t_of, prepare  # noqa: E402
from ssmzoo_kernels.selective_scan.tuning import DEFAULT, KernelConfig, Tuning  # noqa: E402
from ssmzoo_kernels.triton_backend import TritonBackend  # noqa: E402

import ssmzoo  # noqa: E402
from ssmzoo.errors import BackendUnavailableError  # noqa: E402
from ssmzoo.scan.backend import SelectiveScanCall  # noqa: E402
from tests.helpers import assert_close  # noqa: E402
from tests.scan.cases import ScanCase, clone_inputs, grad_inputs, selective_scan_inputs  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# Relative RMS error against float64 by input dtype. fp32: float32 accumulation over a few dozen
# steps. Half inputs: the reference sees the same rounded inputs, so the error is the rounding of
# the outputs (and of du, ddelta, dz, dB, dC, which come back in the inputs' dtype): ~1 ulp.
TOL = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
# dA, dD and ddelta_bias are sums over batch and length of terms of both signs, so their relative
# error in half precision exceeds the per-element one: bf16 dD 1.19e-2 on a 20-step grouped case
# (v2 backward, interpreted, 2026-12-02)
REDUCED = ("A", "D", "delta_bias")
TOL_REDUCED = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 2e-2}


# 8-step chunks, 2 channels per program: several chunks and programs on tiny inputs
SMALL = DEFAULT.replace(fwd=KernelConfig(2, 8), bwd=KernelConfig(2, 8))


BASE = ScanCase(batch=2, dim=4, length=37, d_state=3, groups=2)
LAYOUTS = [("fixed", "fixed"), ("variable", "grouped"), ("grouped", "variable"),
           ("variable", "variable")]
GRID = [
    replace(BASE, complex=cplx, B_layout=bl, C_layout=cl, discretization=disc, B_bias=True,
            C_bias=cplx or disc == "zoh", initial_state=disc == "zoh")
    for cplx, (bl, cl), disc in itertools.product((False, True), LAYOUTS, ("euler", "zoh"))
] + [
    replace(BASE, D=False, z=False, delta_bias=False, softplus=False),
    replace(BASE, length=1, complex=True),
    replace(BASE, length=16, d_state=16, B_layout="grouped", C_layout="grouped", groups=4),
    replace(BASE, dim=6, groups=3, B_layout="grouped", C_layout="grouped", length=20),  # 2 per group
    replace(BASE, dim=5, length=20, d_state=5),  # channels not a multiple of the program's
    replace(BASE, dtype=torch.bfloat16, B_bias=True, length=20),
    replace(BASE, dtype=torch.float16, complex=True, C_layout="fixed", length=20),
]


def _to_ref(v):
    if not isinstance(v, torch.Tensor):
        return v
    w = v.detach().to(torch.complex128 if v.is_complex() else torch.float64)
    return w.requires_grad_(v.requires_grad)


def _run(kw, backend, tuning: Tuning = SMALL):
    """The public function on ``backend``; "triton" with ``tuning`` (through a backend instance,
    as benchmarks pass alternatives)."""
    chosen = TritonBackend(tuning) if backend == "triton" else backend
    return ssmzoo.selective_scan(**kw, return_last_state=True, backend=chosen)


@pytest.mark.parametrize("case", GRID, ids=str)
def test_matches_reference(case: ScanCase, nan_poison, tuning: Tuning = SMALL) -> None:
    kw = selective_scan_inputs(case, seed=hash(str(case)) % 1000, requires_grad=True)
    kw = {k: (v.to(DEVICE).detach().requires_grad_() if isinstance(v, torch.Tensor) else v)
          for k, v in kw.items()}
    mine = clone_inputs(kw)
    ref_kw = {k: _to_ref(v) for k, v in kw.items()}
    out, last = _run(mine, "triton", tuning)
    ref, ref_last = _run(ref_kw, "reference")
    tol = TOL[case.dtype]
    assert out.dtype == kw["u"].dtype
    assert_close("out", ref, out, rtol=tol)
    assert_close("last_state", ref_last, last, rtol=1e-5 if case.dtype == torch.float32 else tol)

    g_out = torch.randn(out.shape, dtype=torch.float64, device=DEVICE)
    g_last = torch.randn(last.shape, dtype=ref_last.dtype, device=DEVICE)
    loss = (out.double() * g_out).sum() + (last.to(g_last.dtype) * g_last.conj()).real.sum()
    loss.backward()
    ref_loss = (ref * g_out).sum() + (ref_last * g_last.conj()).real.sum()
    ref_loss.backward()
    for name, t in grad_inputs(mine).items():
        assert t.grad is not None, f"no gradient for {name}"
        assert t.grad.dtype == t.dtype, f"d{name} has dtype {t.grad.dtype}, expected {t.dtype}"
        assert_close(f"d{name}", ref_kw[name].grad, t.grad,
                     rtol=TOL_REDUCED[case.dtype] if name in REDUCED else tol)


@pytest.mark.parametrize("case", [
    replace(BASE, B_layout="grouped", C_layout="variable", initial_state=True, B_bias=True),
    replace(BASE, complex=True, C_layout="grouped", dtype=torch.bfloat16, initial_state=True),
], ids=str)
def test_carry_switch(case: ScanCase, nan_poison) -> None:
    """The forward's A/B switch (carried state folded into the first step, or added after the
    scan) gives the same values and gradients either way."""
    test_matches_reference(case, nan_poison,
                           SMALL.replace(carry_after_scan=not SMALL.carry_after_scan))


@pytest.mark.parametrize("case", [
    replace(BASE, B_layout="grouped", C_layout="variable", initial_state=True, B_bias=True),
    replace(BASE, complex=True, discretization="zoh", initial_state=True, C_layout="fixed"),
], ids=str)
def test_time_segments(case: ScanCase, nan_poison) -> None:
    """The forward split into 3 time segments (two passes, start states chained on the host)."""
    kw = selective_scan_inputs(case, seed=7)
    kw = {k: (v.to(DEVICE) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    out, last = _run(kw, "triton", SMALL.replace(fwd=KernelConfig(2, 8, 1, 3)))
    ref, ref_last = _run({k: _to_ref(v) for k, v in kw.items()}, "reference")
    assert_close("out", ref, out, rtol=TOL[torch.float32])
    assert_close("last_state", ref_last, last, rtol=1e-5)


@pytest.mark.parametrize("case", [
    replace(BASE, B_layout="grouped", C_layout="variable", initial_state=True, B_bias=True),
    replace(BASE, complex=True, discretization="zoh", initial_state=True, B_layout="grouped",
            C_layout="grouped", groups=1, dtype=torch.bfloat16, C_bias=True),
    replace(BASE, d_state=20, complex=True, length=20),  # above the default unroll_dstate
], ids=str)
def test_rolled_state_loop(case: ScanCase, nan_poison) -> None:
    """The forward's d_state loop as a rolled loop (what d_state above ``unroll_dstate`` runs:
    the unrolled complex forward at d_state 64 took minutes to compile) gives the unrolled
    loop's values and gradients."""
    tuning = SMALL
    if case.d_state <= 16:  # the backward's state-recomputing forward pass rolled too
        rolled = KernelConfig(2, 8, unroll_dstate=0)
        tuning = SMALL.replace(fwd=rolled, bwd=rolled)
    test_matches_reference(case, nan_poison, tuning)


def test_backend_refuses_what_it_cannot_run(monkeypatch) -> None:
    kw = selective_scan_inputs(replace(BASE, dtype=torch.float64))
    kw = {k: (v.to(DEVICE) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    call = SelectiveScanCall(**{k: v for k, v in kw.items()})
    ok, why = TritonBackend().supports_selective_scan(call)
    assert not ok and "float64" in why and "reference" in why
    with pytest.raises(BackendUnavailableError, match="float64"):
        ssmzoo.selective_scan(**kw, backend="triton")
    wide_kw = selective_scan_inputs(replace(BASE, d_state=65, length=2))
    wide = SelectiveScanCall(**{k: (v.to(DEVICE) if isinstance(v, torch.Tensor) else v)
                                for k, v in wide_kw.items()})
    ok, why = TritonBackend().supports_selective_scan(wide)
    assert not ok and "d_state 65" in why
    if DEVICE == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        call32 = SelectiveScanCall(**selective_scan_inputs(BASE))
        ok, why = TritonBackend().supports_selective_scan(call32)
        assert not ok and "TRITON_INTERPRET" in why
        ok, why = TritonBackend().available()
        assert not ok and "CUDA" in why


def test_registered_and_never_auto_on_cpu() -> None:
    from ssmzoo.registry import get_registry

    backend = get_registry().get_backend("triton")
    assert isinstance(backend, TritonBackend)
    assert backend.priority("cpu") is None
    assert backend.priority("cuda") is not None
    assert set(backend.ops) == {"selective_scan", "ssd_scan"}


def test_auto_order_per_scan_on_cuda() -> None:
    """On a GPU, auto tries the Triton SSD before mamba_ssm's and mamba_ssm's CUDA selective scan
    before the Triton one (the order measured on an H100, docs/benchmarks.md)."""
    from ssmzoo.scan.dispatch import candidates

    ssd = [name for name, _ in candidates("ssd_scan", "cuda")]
    scan = [name for name, _ in candidates("selective_scan", "cuda")]
    assert ssd.index("triton") < ssd.index("mamba_ssd")
    assert scan.index("cuda") < scan.index("triton")
    assert ssd[-1] == scan[-1] == "reference"  # the fallback on a GPU
    on_cpu = [name for name, _ in candidates("selective_scan", "cpu")]
    assert "triton" not in on_cpu and "cuda" not in on_cpu and on_cpu[-1] == "reference"


def test_auto_puts_triton_first_for_b2s6_biases_on_cuda(monkeypatch) -> None:
    """A selective scan with B2S6's biases on a GPU: the Triton kernels (bias inside, measured
    0.50x / 0.55x of mamba_ssm's linearity path) before 'cuda'; without biases 'cuda' first."""
    from ssmzoo.scan import dispatch

    class OnCuda(SelectiveScanCall):  # a call whose tensors claim to live on a GPU
        @property
        def device(self) -> torch.device:
            return torch.device("cuda")

    def fake_call(**biases):
        kw = selective_scan_inputs(replace(BASE, B_layout="grouped", C_layout="grouped"))
        return OnCuda(**{k: v for k, v in kw.items() if k not in biases}, **biases)

    from ssmzoo.registry import get_registry

    registry = get_registry()
    tried: list[list[str]] = []

    def supports(backend, op, call):  # every backend accepts; record the order tried
        tried[-1].append(backend.name)
        return backend.name == tried[-1][0], ""

    monkeypatch.setattr(dispatch, "_supports", supports)
    bias = torch.randn(BASE.dim, BASE.d_state)
    for biases, first in (({"B_bias": bias}, "triton"), ({}, "cuda")):
        tried.append([])
        chosen = dispatch.choose("selective_scan", fake_call(**biases), "auto")
        assert chosen is registry.get_backend(first), tried[-1]


BWD_CASES = [
    replace(BASE, B_layout="grouped", C_layout="variable", discretization="zoh",
            initial_state=True, B_bias=True, C_bias=True),
    replace(BASE, complex=True, B_layout="variable", C_layout="grouped", initial_state=True,
            B_bias=True, C_bias=True),
    replace(BASE, complex=True, discretization="zoh", initial_state=True, B_layout="fixed",
            C_layout="fixed", B_bias=True),
    replace(BASE, dim=5, length=20, d_state=5, initial_state=True),  # partial program, odd N
    replace(BASE, dtype=torch.bfloat16, B_layout="grouped", C_layout="grouped", length=20),
]


@pytest.mark.parametrize("case", BWD_CASES, ids=str)
def test_bwd_sums_state_by_state(case: ScanCase, nan_poison) -> None:
    """The backward path the default (variable dB/dC summed once per chunk through the scratch)
    does not take: summed over channels state by state. Values and every gradient."""
    test_matches_reference(case, nan_poison, SMALL.replace(sum_scratch=False))


@pytest.mark.parametrize("case", [
    replace(BASE, B_layout="grouped", C_layout="variable", initial_state=True, B_bias=True),
    replace(BASE, complex=True, discretization="zoh", C_layout="grouped", initial_state=True),
], ids=str)
def test_saved_states(case: ScanCase, monkeypatch, nan_poison) -> None:
    """With ``save_states`` the forward writes the chunk-start states and the backward does not
    run its recomputing forward pass; values and every gradient unchanged."""
    launches = []
    real_launch = fn._launch_fwd

    def counting(*args, **kwargs):
        launches.append(args[3] is not None and args[1] is None)  # a recomputing pass?
        return real_launch(*args, **kwargs)

    monkeypatch.setattr(fn, "_launch_fwd", counting)
    saving = SMALL.replace(save_states=True)
    test_matches_reference(case, nan_poison, saving)
    assert launches and not any(launches), "the backward recomputed the states"
    # a backward with another chunk length cannot use them and recomputes
    launches.clear()
    test_matches_reference(case, nan_poison, saving.replace(bwd=KernelConfig(2, 4)))
    assert any(launches)


@pytest.mark.parametrize(("case", "recompute"), [
    (replace(BASE, B_layout="grouped", C_layout="variable", initial_state=True, C_bias=True),
     recompute) for recompute in (True, False)
] + [
    (replace(BASE, complex=True, discretization="zoh", B_layout="variable", C_layout="grouped",
             C_bias=True), True)
], ids=str)
def test_bwd_ungated_output(case: ScanCase, recompute: bool, monkeypatch, nan_poison) -> None:
    """dz from the un-gated output that the backward sums from its recomputed states
    (``recompute_y``, no (batch, dim, length) copy written by the recomputing pass) or reads
    from that copy: values and every gradient."""
    assert case.z
    copies = []
    real_launch = fn._launch_fwd

    def recording(p, out, last, ws, ypre, *args, **kwargs):
        if ws is not None:  # the backward's state-recomputing pass
            copies.append(ypre is not None)
        return real_launch(p, out, last, ws, ypre, *args, **kwargs)

    monkeypatch.setattr(fn, "_launch_fwd", recording)
    test_matches_reference(case, nan_poison, SMALL.replace(recompute_y=recompute))
    assert copies == [not recompute]


@pytest.mark.parametrize("dim, per_group, ok", [
    (4, None, False),  # mamba_ssm's test shape: a (4, 32) tile of 2 warps, 2 steps per thread
    (2, None, False), (8, None, True), (2048, None, True), (2048, 4, False), (2048, 8, True),
])
def test_vector_stores_only_where_every_thread_holds_runs_of_four(dim, per_group, ok) -> None:
    """The backward's 16-byte scratch stores (``ASM4``) need 4 consecutive steps per thread
    (offline sm_90 builds: the (channels, 32) tile of 2 warps holds min(8, channels / 2)); with
    fewer they faulted with a misaligned address on an H200. The benchmark tile keeps them."""
    length = 2048
    u = torch.randn(2, dim, length, dtype=torch.float16)
    B = (torch.randn(2, dim // per_group, 8, length, dtype=torch.float16) if per_group
         else torch.randn(2, 8, length, dtype=torch.float16))
    p = prepare(SelectiveScanCall(u, u.clone(), -torch.rand(dim, 8), B, B.clone(), z=u.clone(),
                                  delta_softplus=True))
    cfg = DEFAULT.bwd_real
    bt, bd = block_t_of(cfg, u.dtype), p.block_d(cfg.block_d)
    assert fn._vec16(p, u.clone(), bt, bd, cfg.num_warps) is ok
    assert not fn._vec16(p, u.clone(), bt, bd, 8)  # the same tile over 8 warps: 1 per thread
