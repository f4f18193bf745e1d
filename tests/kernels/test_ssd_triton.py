"""The Triton chunked SSD against the reference: outputs, final states and every gradient.

On a machine without CUDA the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set here
before the kernels are first imported) on tiny shapes; the ``gpu`` grid runs the real kernels on
larger, non-power-of-two shapes. The reference is ``ssmzoo.ssd_scan(..., backend="reference")``
evaluated in float64 on the same (rounded) inputs.
"""

from __future__ import annotations

import importlib.util
import math
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

from ssmzoo_kernels.ssd import ssd_scan_triton, supports_ssd  # noqa: E402
from ssmzoo_kernels.ssd.tuning import DEFAULT, SSDTuning  # noqa: E402
from ssmzoo_kernels.triton_backend import TritonBackend  # noqa: E402

import ssmzoo  # noqa: E402
from ssmzoo.scan.backend import SSDCall  # noqa: E402
from tests.helpers import assert_close, rel_rms  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# Relative RMS tolerances by input dtype. fp32: the kernels' dots are exact fp32 (ieee) unless torch
# allows tf32. Half inputs: every tile product rounds its operands (decay-weighted C.B, dt x, the
# states) to the input dtype, as mamba_ssm's kernels do, so errors are a few output ulps; the
# gradients go through two such roundings and through sums of opposite-sign terms (dA, ddt).
TOL_OUT = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 4e-3}
TOL_GRAD = {torch.float32: 1e-5, torch.bfloat16: 5e-2, torch.float16: 1e-2}
# dA, ddt_bias and dD are sums over batch and length of terms of both signs, so their relative
# error is the terms' error times the cancellation ratio: measured on the H100 (2026-11-23) up to
# 3e-5 in fp32 over 2000 positions and, before the stable log-decay gradient (SSDTuning.dcum),
# 7e-2 / 1.4e-1 (dA / ddt_bias) in bf16; with it, 3e-3 to 7e-3 on the interpreted cases. On a GPU
# with mamba_ssm the half-precision bound is also tied to mamba_ssm's own error on the same inputs
# (see test_gpu_grid).
REDUCED = ("A", "dt_bias", "D")
TOL_REDUCED = {torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 2e-2}
# the same sums through the identity log-decay gradient (dcum = "identity", the A/B switch kept
# beside the default): on the H100, 2026-11-23 14:36 UTC, bf16 dA up to 1.24e-1 and ddt_bias up to
# 7.8e-2 (interpreted: below 5e-2, its exact bf16 products); no mamba_ssm peer bound for them
TOL_REDUCED_IDENTITY = {torch.float32: 1e-4, torch.bfloat16: 0.2, torch.float16: 5e-2}


def _inputs(batch, length, heads, headdim, groups, d_state, dtype, *, D="head", z=True,
            bias=True, init=True, device=DEVICE):
    def rnd(*shape, scale=1.0, dt_=dtype):
        return (torch.randn(*shape, device=device) * scale).to(dt_).requires_grad_()

    args = dict(
        x=rnd(batch, length, heads, headdim),
        dt=rnd(batch, length, heads, scale=0.5),
        A=(-torch.rand(heads, device=device) * 3 - 0.1).requires_grad_(),
        B=rnd(batch, length, groups, d_state, scale=d_state ** -0.5),
        C=rnd(batch, length, groups, d_state),
    )
    if D == "head":
        args["D"] = rnd(heads, dt_=torch.float32)
    elif D == "channel":
        args["D"] = rnd(heads, headdim, dt_=torch.float32)
    if z:
        args["z"] = rnd(batch, length, heads, headdim)
    if bias:
        args["dt_bias"] = rnd(heads, scale=0.5, dt_=torch.float32)
    if init:
        args["initial_states"] = rnd(batch, heads, headdim, d_state, dt_=torch.float32)
    return args


def _check(args, *, chunk_size, dtype, softplus=True, limit=(0.0, math.inf), final=True,
           peer_tol=None, tuning: SSDTuning = DEFAULT):
    """Run the kernels (with ``tuning``) and the float64 reference on the same inputs; compare
    everything. ``peer_tol``: per-gradient tolerances that override the table (from mamba_ssm's
    errors)."""
    opts = dict(chunk_size=chunk_size, dt_softplus=softplus, dt_limit=limit,
                return_final_states=final)
    got = ssd_scan_triton(SSDCall(**args, **opts), tuning)
    out, fin = got if final else (got, None)
    ref_args = {k: v.detach().double().requires_grad_() for k, v in args.items()}
    want = ssmzoo.ssd_scan(**ref_args, **opts, backend="reference")
    ref_out, ref_fin = want if final else (want, None)
    assert out.dtype == args["x"].dtype and out.shape == args["x"].shape
    assert_close("out", ref_out, out, rtol=TOL_OUT[dtype])
    go = torch.randn_like(out)
    loss, ref_loss = (out.float() * go.float()).sum(), (ref_out * go.double()).sum()
    if final:
        assert fin.dtype == torch.float32
        assert_close("final_states", ref_fin, fin, rtol=TOL_OUT[dtype])
        gf = torch.randn_like(fin)
        loss, ref_loss = loss + (fin * gf).sum(), ref_loss + (ref_fin * gf.double()).sum()
    names = list(args)
    grads = torch.autograd.grad(loss, [args[n] for n in names])
    ref_grads = torch.autograd.grad(ref_loss, [ref_args[n] for n in names])
    identity = tuning.dcum == "identity"
    for n, g, r in zip(names, grads, ref_grads):
        assert g.dtype == args[n].dtype, f"d{n}: dtype {g.dtype}, expected {args[n].dtype}"
        if n in REDUCED:
            tol = (TOL_REDUCED_IDENTITY if identity else TOL_REDUCED)[dtype]
        else:
            tol = TOL_GRAD[dtype]
        if peer_tol and n in peer_tol and not (identity and n in REDUCED):
            tol = peer_tol[n]
        assert_close(f"d{n}", r, g, rtol=tol)
    return ref_out, ref_grads


CASES = {  # name: (batch, length, heads, headdim, groups, d_state, chunk, input options)
    "all-options": (2, 37, 4, 16, 2, 16, 16, dict(D="channel")),
    "plain-exact-chunks": (1, 32, 2, 16, 1, 16, 16, dict(D=None, z=False, bias=False, init=False)),
    "odd-sizes": (1, 29, 3, 20, 1, 24, 12, dict(D="head")),
    "one-partial-chunk": (2, 9, 2, 16, 2, 16, 32, dict(init=False)),
}


@pytest.mark.interpret
@pytest.mark.parametrize("case", list(CASES))
def test_fp32_against_reference(case):
    torch.manual_seed(hash(case) % 1000)
    b, l, h, p, g, n, q, opts = CASES[case]
    _check(_inputs(b, l, h, p, g, n, torch.float32, **opts), chunk_size=q, dtype=torch.float32)


@pytest.mark.interpret
@pytest.mark.parametrize("target", [1, 10**6], ids=["one-program-per-group", "heads-split"])
def test_backward_head_split(target):
    """The backward runs a group's heads in one program, or split over several (partial dB/dC)."""
    torch.manual_seed(5)
    _check(_inputs(1, 20, 4, 16, 1, 16, torch.float32, D="channel"), chunk_size=16,
           dtype=torch.float32, tuning=DEFAULT.replace(target_programs=target))


# The kernel variants kept side by side (ssmzoo_kernels.ssd.tuning), each over v2's settings
# whatever the defaults are: each must give the reference's outputs, final states and gradients.
V2 = SSDTuning(states="float32", fused_state=False, order_fwd="v2", order_bwd="v2",
               dcum="identity", cb="tiles")  # the base
VARIANTS = {
    "v2": {},
    "order-v1": dict(order_fwd="v1", order_bwd="v1"),
    "order-v2": dict(order_fwd="v2", order_bwd="v2"),
    "input-dtype-states": dict(states="input"),
    "fused-state": dict(fused_state=True),
    "fused-input-dtype-states": dict(fused_state=True, states="input"),
    "fused-state-small-tiles": dict(fused_state=True, tiles={"fused_state": {"BLOCK_N": 16}}),
    "dcum-stable": dict(dcum="stable"),
    "fused-input-dtype-states-stable": dict(fused_state=True, states="input", dcum="stable"),
    "cb-chunk": dict(dcum="stable", cb="chunk"),
    "cb-chunk-fused-input": dict(fused_state=True, states="input", dcum="stable", cb="chunk"),
}


def _variant(name: str) -> SSDTuning:
    return V2.replace(**VARIANTS[name])


# (variant, dtype): the dtype matters where the states are stored in it or the fused launch
# rounds a weighted tile to it; the launch orders only renumber programs
VARIANT_RUNS = [("order-v1", "fp32"), ("order-v2", "bf16"), ("input-dtype-states", "bf16"),
                ("fused-state", "fp32"), ("fused-state", "bf16"),
                ("fused-input-dtype-states", "bf16"), ("fused-state-small-tiles", "bf16"),
                ("dcum-stable", "bf16"), ("fused-input-dtype-states-stable", "bf16"),
                ("cb-chunk", "fp32"), ("cb-chunk-fused-input", "bf16")]
_DT = {"fp32": torch.float32, "bf16": torch.bfloat16}


@pytest.mark.interpret
@pytest.mark.parametrize("variant,dtype", VARIANT_RUNS, ids=[f"{v}-{d}" for v, d in VARIANT_RUNS])
def test_variants_against_reference(variant, dtype):
    """headdim 20 and d_state 24 (two headdim blocks and, with 16-wide tiles, two d_state blocks
    in the fused launch), a partial last chunk, groups, initial states, D per channel, z."""
    torch.manual_seed(7)
    dt_ = _DT[dtype]
    _check(_inputs(2, 37, 4, 20, 2, 24, dt_, D="channel"), chunk_size=16, dtype=dt_,
           tuning=_variant(variant))


@pytest.mark.interpret
@pytest.mark.parametrize("variant", ["input-dtype-states", "fused-state",
                                     "fused-input-dtype-states"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_variant_states_match_the_v2_path(variant, dtype):
    """The entering states and the final state of a variant are v2's (float32 S_c, separate state
    passing), stored in x's dtype where the variant says so; the recurrence stays float32. In
    fp32 they agree to rounding; in bf16 the fused launch weights x's tile instead of B's where
    that is the smaller one (d_state 24 > headdim 16 here), so its rounding differs."""
    from ssmzoo_kernels.ssd import _function

    torch.manual_seed(8)
    a = _inputs(1, 45, 2, 20, 1, 24, dtype, z=False)
    args = (a["x"], a["dt"], a["A"], a["B"], a["C"], 16, a["D"], None, a["dt_bias"],
            a["initial_states"], True, (0.0, math.inf))
    with torch.no_grad():
        _, _, _, _, st0, fin0 = _function.ssd_fwd(*args, _variant("v2"))
        _, _, _, _, st1, fin1 = _function.ssd_fwd(*args, _variant(variant))
    assert st0.dtype == torch.float32 and fin0.dtype == fin1.dtype == torch.float32
    want = dtype if "input" in variant else torch.float32
    assert st1.dtype == want and st1.shape == st0.shape
    fused_half = "fused" in variant and dtype != torch.float32
    assert_close("final", fin0, fin1, rtol=1e-2 if fused_half else 1e-6)
    assert_close("states", st0.to(want).float(), st1.float(),
                 rtol=1e-2 if fused_half else 4e-3 if want != torch.float32 else 1e-6)


def test_auto_launch_order_by_d_state():
    tuning = DEFAULT.replace(order_fwd="v2", order_bwd="auto")
    assert [tuning.order("bwd", n) for n in (16, 64, 128)] == [1, 1, 2]
    assert tuning.order("fwd", 16) == 2


def test_auto_cb_by_d_state():
    """cb = "auto" reads C . B once per chunk above d_state 64 and per tile up to it."""
    for mode, want in (("auto", [False, False, True]), ("tiles", [False] * 3),
                       ("chunk", [True] * 3)):
        assert [DEFAULT.replace(cb=mode).cb_once(n) for n in (16, 64, 128)] == want, mode


@pytest.mark.parametrize(("field", "value", "nearest"), [
    ("cb", "chnk", "chunk"), ("dcum", "stabel", "stable"), ("states", "inptu", "input"),
    ("order_fwd", "v22", "v2"),
])
def test_tuning_errors_name_the_nearest(field, value, nearest):
    """A misspelt choice fails when the tuning is made, with its name, the accepted values and
    the nearest one."""
    with pytest.raises(ValueError, match=rf"SSDTuning.{field} = '{value}'; expected one of .*"
                                         rf"did you mean '{nearest}'"):
        DEFAULT.replace(**{field: value})
    with pytest.raises(ValueError, match="tiles names kernel 'scan_fw'.*did you mean 'scan_fwd'"):
        SSDTuning(tiles={"scan_fw": {"BLOCK": 32}})


@pytest.mark.interpret
def test_chunk_cb_once(monkeypatch):
    """CB = "chunk": C_t . B_s computed once per (batch, chunk, group) and read by the dC kernel's
    stable log-decay gradient gives the per-tile path's gradients (fp32, a partial last chunk, two
    groups), and the product is the chunk's C B^T, zero past the end; the identity gradient does
    not need it."""
    from ssmzoo_kernels.ssd import backward as _bwd

    torch.manual_seed(11)
    B, C = torch.randn(2, 21, 2, 16, device=DEVICE), torch.randn(2, 21, 2, 16, device=DEVICE)
    cb = _bwd.chunk_cb(B, C, 8)  # chunks of 8: 8 + 8 + 5 positions
    assert cb.shape == (2, 3, 2, 8, 8) and cb.dtype == torch.float32
    want = torch.einsum("btgn,bsgn->bgts", C[:, 8:16], B[:, 8:16])
    torch.testing.assert_close(cb[:, 1], want)
    assert cb[:, 2, :, 5:].abs().max() == 0 and cb[:, 2, :, :, 5:].abs().max() == 0

    calls = []
    real = _bwd.chunk_cb
    monkeypatch.setattr(_bwd, "chunk_cb", lambda *a: calls.append(1) or real(*a))
    args = _inputs(1, 37, 4, 16, 2, 16, torch.float32, D="channel")
    for dcum in ("stable", "identity"):
        grads = {}
        for mode in ("tiles", "chunk"):
            backend = TritonBackend(ssd_tuning=DEFAULT.replace(dcum=dcum, cb=mode))
            calls.clear()
            a = {k: v.detach().clone().requires_grad_() for k, v in args.items()}
            out, fin = ssmzoo.ssd_scan(**a, chunk_size=16, return_final_states=True,
                                       backend=backend)
            (out.sum() + fin.square().sum()).backward()
            grads[mode] = {k: v.grad for k, v in a.items()}
            assert len(calls) == (mode == "chunk" and dcum == "stable"), (dcum, mode, calls)
        for k, g in grads["tiles"].items():
            assert_close(f"d{k} ({dcum})", g, grads["chunk"][k], rtol=1e-5)
    # the kernel reads it: a zeroed product drops the pairs' terms of the log-decays' gradient
    monkeypatch.setattr(_bwd, "chunk_cb", lambda *a: torch.zeros_like(real(*a)))
    a = {k: v.detach().clone().requires_grad_() for k, v in args.items()}
    out, fin = ssmzoo.ssd_scan(**a, chunk_size=16, return_final_states=True,
                               backend=TritonBackend(ssd_tuning=DEFAULT.replace(cb="chunk")))
    (out.sum() + fin.square().sum()).backward()
    # "tiles" of the identity loop: the zeroed product moves dA far beyond rounding (1e-5 above;
    # 3.3e-2 on an H200 and above 0.1 interpreted, 2026-12-02)
    assert rel_rms(grads["tiles"]["A"], a["A"].grad) > 1e-2
    assert_close("dx", grads["tiles"]["x"], a["x"].grad, rtol=1e-5)


@pytest.mark.interpret
def test_stable_log_decay_gradient_bf16():
    """dA and ddt_bias in bf16 (two chunks of 64, three draws): the stable form of the log-decays'
    gradient (``dcum``, the default) stays within 1.5e-2 of float64 on every draw, where the identity
    form, whose reverse cumsum subtracts nearly equal rounded sums, is at least 5x worse on its
    worst draw (measured: up to 0.80 for dA against 3.1e-3)."""
    worst = {}
    for mode in ("stable", "identity"):
        errs = []
        for seed in range(3):
            torch.manual_seed(seed)
            a = _inputs(2, 128, 2, 16, 1, 16, torch.bfloat16, D="channel")
            opts = dict(chunk_size=64, dt_softplus=True, return_final_states=True)
            ref = {k: v.detach().double().requires_grad_() for k, v in a.items()}
            ro, rf = ssmzoo.ssd_scan(**ref, **opts, backend="reference")
            go, gf = torch.randn_like(ro), torch.randn_like(rf)
            want = torch.autograd.grad((ro * go).sum() + (rf * gf).sum(),
                                       [ref["A"], ref["dt_bias"]])
            x = {k: v.detach().clone().requires_grad_() for k, v in a.items()}
            o, f = ssd_scan_triton(SSDCall(**x, **opts), DEFAULT.replace(dcum=mode))
            got = torch.autograd.grad((o.double() * go).sum() + (f.double() * gf).sum(),
                                      [x["A"], x["dt_bias"]])
            errs += [rel_rms(w, g) for w, g in zip(want, got)]
        worst[mode] = max(errs)
        if mode == "stable":
            assert worst[mode] < 1.5e-2, f"stable dA/ddt_bias errors {errs}"
    assert worst["identity"] > 5 * worst["stable"], worst


@pytest.mark.interpret
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs(dtype):
    torch.manual_seed(1)
    _check(_inputs(2, 40, 4, 16, 2, 16, dtype, D="channel"), chunk_size=16, dtype=dtype)


@pytest.mark.interpret
def test_dt_limit_and_no_softplus():
    """The clamp zeroes the gradient outside the limits; without softplus, negative dt clamps to 0."""
    torch.manual_seed(2)
    args = _inputs(1, 35, 2, 16, 1, 16, torch.float32)
    _check(args, chunk_size=16, dtype=torch.float32, limit=(0.2, 0.9))
    _check(args, chunk_size=16, dtype=torch.float32, softplus=False, final=False)


@pytest.mark.interpret
def _dt_bwd_float64(ddt, ddac, ddab, dend, tsb, dt_proc, dt, A, dt_bias, softplus, limit):
    """The log-decay and dt gradients step by step in float64 (what _dt_bwd_kernel fuses)."""
    f = [t.double() if t is not None else None for t in (ddt, ddac, ddab, dend, tsb, dt_proc)]
    ddt, ddac, ddab, dend, tsb, dt_proc = f
    dcum = ddac - ddab
    dcum[..., -1] += dend
    da = dcum.flip(-1).cumsum(-1).flip(-1)
    if tsb is not None:
        da += tsb.cumsum(-1) - tsb
    L = dt.shape[1]
    g = ddt + da * A.double()[None, :, None, None]
    dA = (da * dt_proc).sum((0, 2, 3))
    g = g.permute(0, 2, 3, 1).reshape(dt.shape[0], -1, dt.shape[2])[:, :L]
    raw = dt.double() + (dt_bias.double() if dt_bias is not None else 0.0)
    val = torch.nn.functional.softplus(raw) if softplus else raw
    g = torch.where((val < limit[0]) | (val > limit[1]), 0.0, g)
    if softplus:
        g = torch.where(raw <= 20.0, g * torch.sigmoid(raw), g)
    return g, dA, g.sum((0, 1)) if dt_bias is not None else None


@pytest.mark.interpret
@pytest.mark.parametrize(("softplus", "limit", "bias", "tsb", "dtype"), [
    (True, (0.0, float("inf")), True, True, torch.float32),
    (True, (0.05, 2.0), True, False, torch.bfloat16),
    (False, (-1.0, 1.5), False, True, torch.float16),
])
def test_dt_bwd_kernel(softplus, limit, bias, tsb, dtype):
    """The fused log-decay and dt backward (one launch: d cum, its reverse cumsum, the chunk-state
    terms, clamp, softplus, bias; dA and d dt_bias summed per chunk, then over chunks) against
    the same steps in float64, on a partial last chunk, with raw dt above softplus' threshold
    of 20 and outside the clamp."""
    from ssmzoo_kernels.ssd import backward as _bwd

    torch.manual_seed(12)
    b, L, H, Q = 2, 45, 3, 16
    nc = math.ceil(L / Q)
    dt = (torch.randn(b, L, H, device=DEVICE) * 2).to(dtype)
    dt[0, 3, 1] = 25.0  # softplus' identity branch
    A = -torch.rand(H, device=DEVICE) - 0.1
    dt_bias = torch.randn(H, device=DEVICE) * 0.5 if bias else None
    r = [torch.randn(b, H, nc, Q, device=DEVICE) for _ in range(5)]
    ddt, ddac, ddab, dt_proc, ts = r
    dt_proc[:, :, -1, L - (nc - 1) * Q:] = 0.0  # no step past the end, as dt_cumsum leaves it
    dend = torch.randn(b, H, nc, device=DEVICE)
    ts = ts if tsb else None
    args = (ddt, ddac, ddab, dend, ts, dt_proc, dt, A, dt_bias, softplus, limit)
    g, dA, dbias = _bwd.dt_bwd(*args)
    g_ref, dA_ref, dbias_ref = _dt_bwd_float64(*args)
    assert g.dtype == dtype and g.shape == dt.shape
    assert_close("ddt", g_ref.to(dtype).double(), g.double(), rtol=1e-2 if dtype != torch.float32
                 else 1e-6)
    assert_close("dA", dA_ref, dA.double(), rtol=1e-6)
    if bias:  # from the float32 g before rounding to dt's dtype
        assert_close("ddt_bias", dbias_ref, dbias.double(), rtol=1e-5)
    else:
        assert dbias is None
    if limit[1] != float("inf"):
        assert (g_ref == 0).sum() > 5  # the clamp is exercised


def test_chunk_size_does_not_change_results(nan_poison):
    """Chunk 16 and chunk 32 agree; every fresh buffer starts as NaN (an unwritten tile shows)."""
    torch.manual_seed(3)
    args = _inputs(1, 48, 2, 16, 1, 16, torch.float32, init=False)
    a = ssd_scan_triton(SSDCall(**args, chunk_size=16, dt_softplus=True))
    b = ssd_scan_triton(SSDCall(**args, chunk_size=32, dt_softplus=True))
    assert_close("out(chunk 32 vs 16)", a, b, rtol=1e-5)
    ga = torch.autograd.grad(a.sum(), [args["x"], args["A"]])
    gb = torch.autograd.grad(b.sum(), [args["x"], args["A"]])
    assert_close("dx(chunk 32 vs 16)", ga[0], gb[0], rtol=1e-5)
    # dA sums the whole sequence: each chunk size is 1.1-1.7e-5 from float64 here (the
    # summation order differs per chunk size), so the two agree to a few times that
    assert_close("dA(chunk 32 vs 16)", ga[1], gb[1], rtol=4e-5)
    ref = {k: v.detach().double().requires_grad_() for k, v in args.items()}
    r = ssmzoo.ssd_scan(**ref, chunk_size=16, dt_softplus=True, backend="reference")
    gr = torch.autograd.grad(r.sum(), [ref["x"], ref["A"]])
    for name, g in (("chunk 16", ga), ("chunk 32", gb)):
        assert_close(f"dx({name} vs float64)", gr[0], g[0], rtol=1e-5)
        assert_close(f"dA({name} vs float64)", gr[1], g[1], rtol=4e-5)


def _call(**over):
    args = dict(x=torch.zeros(1, 8, 2, 16), dt=torch.zeros(1, 8, 2), A=torch.zeros(2),
                B=torch.zeros(1, 8, 1, 16), C=torch.zeros(1, 8, 1, 16))
    args.update(over)
    return SSDCall(**args)


def test_supports_says_why():
    ok, why = supports_ssd(_call(x=torch.zeros(1, 8, 2, 256)))
    assert not ok and "headdim 256" in why
    ok, why = supports_ssd(_call(B=torch.zeros(1, 8, 1, 512), C=torch.zeros(1, 8, 1, 512)))
    assert not ok and "d_state 512" in why
    ok, why = supports_ssd(_call(x=torch.zeros(1, 8, 2, 16, dtype=torch.float64)))
    assert not ok and "'x'" in why and "float64" in why
    ok, why = supports_ssd(_call())  # CPU tensors: fine under the interpreter, refused on a GPU box
    assert ok == (DEVICE == "cpu"), why


def test_cpu_tensors_refused_without_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    ok, why = supports_ssd(_call())
    assert not ok and "CUDA" in why


GPU_CASES = [  # (batch, length, heads, headdim, groups, d_state, chunk, dtype, options)
    (2, 1000, 8, 64, 2, 64, 256, torch.float32, dict(D="channel")),
    (2, 777, 6, 48, 3, 16, 64, torch.float32, dict(D="head")),
    (1, 2048, 4, 64, 1, 128, 256, torch.float32, dict()),
    (2, 1000, 8, 64, 1, 128, 256, torch.bfloat16, dict(D="channel")),
    (2, 513, 4, 64, 2, 64, 128, torch.float16, dict()),
    (1, 300, 4, 32, 1, 256, 256, torch.bfloat16, dict(init=False, z=False)),
]


def _peer_tolerances(args, chunk_size, dtype):
    """Half precision: 2x mamba_ssm's own relative error on the same inputs, gradient by gradient
    (at least the table's), where mamba_ssm's Triton SSD is importable; else None."""
    if dtype == torch.float32 or importlib.util.find_spec("mamba_ssm") is None:
        return None
    peer = {k: v.detach().clone().requires_grad_() for k, v in args.items()}
    ref = {k: v.detach().double().requires_grad_() for k, v in args.items()}
    opts = dict(chunk_size=chunk_size, dt_softplus=True, return_final_states=True)
    out, fin = ssmzoo.ssd_scan(**peer, **opts, backend="mamba_ssd")
    want, want_fin = ssmzoo.ssd_scan(**ref, **opts, backend="reference")
    go, gf = torch.randn_like(out), torch.randn_like(fin)
    names = list(args)
    loss = (out.float() * go.float()).sum() + (fin.float() * gf).sum()
    ref_loss = (want * go.double()).sum() + (want_fin * gf.double()).sum()
    got = torch.autograd.grad(loss, [peer[n] for n in names])
    exp = torch.autograd.grad(ref_loss, [ref[n] for n in names])
    return {n: max(TOL_GRAD[dtype], 2 * rel_rms(e, g_)) for n, g_, e in zip(names, got, exp)}


@pytest.mark.gpu
@pytest.mark.parametrize("case", range(len(GPU_CASES)))
def test_gpu_grid(case):
    b, l, h, p, g, n, q, dtype, opts = GPU_CASES[case]
    torch.manual_seed(case)
    args = _inputs(b, l, h, p, g, n, dtype, **opts)
    peer = _peer_tolerances(args, q, dtype)
    _check(args, chunk_size=q, dtype=dtype, peer_tol=peer)


@pytest.mark.gpu
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("case", [0, 3], ids=["fp32-n64", "bf16-n128"])
def test_gpu_variants(variant, case):
    """Every kernel variant on the GPU grid's float32 and bfloat16 cases."""
    b, l, h, p, g, n, q, dtype, opts = GPU_CASES[case]
    torch.manual_seed(case)
    args = _inputs(b, l, h, p, g, n, dtype, **opts)
    _check(args, chunk_size=q, dtype=dtype, peer_tol=_peer_tolerances(args, q, dtype),
           tuning=_variant(variant))
