"""Run one benchmark case on every backend that can take it, side by side on the same inputs."""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ssmzoo.bench.cases import BenchCase
from ssmzoo.bench.measure import Ceilings, ceilings, peak_memory, time_ms
from ssmzoo.errors import SSMZooError

# whom each op's timings are compared with, in order of preference
BASELINES = {"selective_scan": ("cuda", "reference"), "ssd_scan": ("mamba_ssd", "reference")}


@dataclass
class Result:
    """One backend on one case. ``status``: ok, refused (with the backend's reason) or error."""

    backend: str
    status: str
    reason: str = ""
    ms: float | None = None
    ms_min: float | None = None
    ms_max: float | None = None
    repeats: int = 0
    peak_bytes: int | None = None
    gbps: float | None = None
    x_bytes: float | None = None
    x_exp: float | None = None
    x_mma: float | None = None
    vs_baseline: float | None = None
    err: float | None = None
    out_rms: float | None = None
    ref_err: float | None = None
    n_diff: int | None = None


@dataclass
class CaseReport:
    case: BenchCase
    bytes_moved: int
    floors_ms: dict[str, float]
    results: list[Result] = field(default_factory=list)
    baseline: str | None = None


def backends_for(case: BenchCase, names: Sequence[str] | None = None) -> list[str]:
    """Registered backends implementing the case's op: those named (in that order), or all of
    them; on a GPU the pure-PyTorch reference only when named (it is the CPU's number)."""
    from ssmzoo.registry import get_registry

    reg = get_registry()
    if names:
        for n in names:
            reg.get_backend(n)  # UnknownBackendError with the nearest names
        return [n for n in names if case.op in reg.get_backend(n).ops]
    found = [n for n, b in sorted(reg.backends.items()) if case.op in b.ops]
    if case.device == "cuda":
        found = [n for n in found if n != "reference"]
    return found


def _op(case: BenchCase) -> Callable[..., Any]:
    import ssmzoo

    return ssmzoo.selective_scan if case.op == "selective_scan" else ssmzoo.ssd_scan


def _runner(case: BenchCase, kw: dict[str, Any], backend: str) -> Callable[[], object]:
    op = _op(case)
    if case.mode == "fwd":
        def fwd() -> object:
            with torch.no_grad():
                return op(**kw, backend=backend)
        return fwd
    leaves = [v for v in kw.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    probe = op(**kw, backend=backend)
    gout = torch.randn_like(probe)
    del probe

    def fwdbwd() -> object:
        out = op(**kw, backend=backend)
        return torch.autograd.grad(out, leaves, gout)
    return fwdbwd


def _rel_err(ref: torch.Tensor, out: torch.Tensor) -> float:
    r, o = ref.detach().to(torch.complex128 if ref.is_complex() else torch.float64), out.detach()
    o = o.to(r.dtype)
    den = r.norm().item()
    return (o - r).norm().item() / den if den else (o - r).norm().item()


def _keep(out: torch.Tensor) -> torch.Tensor:
    """A private float32 copy of a backend's output: never the returned tensor itself, which a
    backend may hand out again (a reused buffer, a graph's static output) and overwrite while it
    is timed, so that the check would compare whatever the last call left there."""
    return out.detach().to(torch.float32, copy=True)


# keyword arguments whose axis 0 is the batch (the rest are per channel/head)
_BATCHED = {"ssd_scan": ("x", "dt", "B", "C", "z", "initial_states"),
            "selective_scan": ("u", "delta", "z", "initial_state")}


def _first_rows(case: BenchCase, kw: dict[str, Any], rows: int) -> dict[str, Any]:
    """The arguments of the call's first ``rows`` batch rows, in float64 (complex128), detached."""
    out: dict[str, Any] = {}
    for k, v in kw.items():
        if not isinstance(v, torch.Tensor):
            out[k] = v
            continue
        batched = k in _BATCHED[case.op] or (case.op == "selective_scan" and k in ("B", "C")
                                             and v.dim() >= 3)
        t = v.detach()[:rows] if batched else v.detach()
        out[k] = t.to(torch.complex128 if t.is_complex() else torch.float64)
    return out


def reference_rows(case: BenchCase, kw: dict[str, Any], rows: int = 1) -> torch.Tensor:
    """The float64 reference output of the first ``rows`` batch rows of the call (rows are
    independent, so this bounds the reference's cost on the large GPU cases)."""
    with torch.no_grad():
        return _op(case)(**_first_rows(case, kw, rows), backend="reference")


def run_case(case: BenchCase, backends: Sequence[str] | None = None, *,
             device: str | None = None, repeats: int = 20, warmup: int = 3,
             baseline: str | None = None, check: bool = True, seed: int = 0,
             ceil: Ceilings | None = None) -> CaseReport:
    """Time ``case`` on each backend (all that implement its op by default) on one set of inputs.

    Each result has the median ms, peak extra memory, effective GB/s (the case's byte floor over
    the time), the ratios to the byte, exp and (SSD) matrix floors, the ratio to the baseline
    backend's time, the relative error of the output against the baseline's output and how many
    of its elements differ (``err``, ``n_diff``), and its relative error against the float64
    reference on the first batch row (``ref_err``).
    """
    device = device or case.device
    ceil = ceil or ceilings(torch.device(device).type)
    moved = case.bytes_moved()
    floors = {"bytes": moved / ceil.bytes_per_s * 1e3, "exp": case.exps() / ceil.exps_per_s * 1e3}
    if case.op == "ssd_scan":
        floors["mma"] = case.matmul_flops() / ceil.matmul_flops_per_s * 1e3
    report = CaseReport(case, moved, floors)
    kw = case.inputs(device, seed=seed)
    outputs: dict[str, torch.Tensor] = {}
    names = backends_for(case, backends)
    for name in names:
        res = Result(name, "ok")
        report.results.append(res)
        try:
            with torch.no_grad():
                first = _op(case)(**kw, backend=name)
            if check:
                outputs[name] = _keep(first)
            del first
            fn = _runner(case, kw, name)
            t = time_ms(fn, device, warmup=warmup, repeats=repeats)
            res.ms, res.ms_min, res.ms_max, res.repeats = t.median_ms, t.min_ms, t.max_ms, t.repeats
            res.peak_bytes = peak_memory(fn, device)
            res.gbps = moved / (t.median_ms * 1e-3) / 1e9
            res.x_bytes = t.median_ms / floors["bytes"]
            res.x_exp = t.median_ms / floors["exp"]
            if "mma" in floors:
                res.x_mma = t.median_ms / floors["mma"]
            del fn
        except SSMZooError as e:  # refused: the backend says why
            res.status, res.reason = "refused", str(e)
        except Exception as e:  # a crash or out-of-memory in one backend must not end the run
            res.status, res.reason = "error", f"{type(e).__name__}: {str(e).splitlines()[0]}"
        gc.collect()
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    ok = {r.backend: r for r in report.results if r.status == "ok"}
    if check and outputs:
        # each output against the float64 reference on the first batch row: the column that says
        # whether an output is right, where "rel err" only says whether two backends agree (two
        # kernels that round at the same places in the same order agree bit for bit)
        try:
            ref = reference_rows(case, kw, rows=1)
        except Exception as e:  # the reference must not end the run either
            ref = None
            for r in ok.values():
                r.reason = f"reference check failed: {type(e).__name__}: {e}"
        if ref is not None:
            for r in ok.values():
                if r.backend in outputs:
                    r.ref_err = _rel_err(ref, outputs[r.backend][:1])
            del ref
    prefs = [baseline] if baseline else list(BASELINES[case.op])
    report.baseline = next((b for b in prefs if b in ok), None)
    if report.baseline is None and ok:
        report.baseline = next(iter(ok))
    if report.baseline:
        base = ok[report.baseline]
        for r in ok.values():
            r.vs_baseline = r.ms / base.ms if (r.ms is not None and base.ms) else None
            if r.backend in outputs:
                r.out_rms = outputs[r.backend].double().pow(2).mean().sqrt().item()
            if check and r.backend in outputs and report.baseline in outputs:
                a, b = outputs[report.baseline], outputs[r.backend]
                if r.backend != report.baseline and a.data_ptr() == b.data_ptr():
                    raise RuntimeError(f"bench: {r.backend!r} and {report.baseline!r} outputs "
                                       "share memory; the check would compare one with itself")
                r.err = _rel_err(a, b)
                r.n_diff = int((a != b).sum().item())
    return report


def run(cases: Sequence[BenchCase], backends: Sequence[str] | None = None,
        **kwargs: Any) -> list[CaseReport]:
    """:func:`run_case` over several cases."""
    return [run_case(c, backends, **kwargs) for c in cases]
