"""GPU check and timing of the Triton chunked SSD beside mamba_ssm's Triton SSD, and of the cuda
backend (mamba_ssm's selective_scan_cuda, B2S6 biases by linearity).

    python benchmarks/gpu_ssd.py check                 # GPU test grids vs the float64 reference
    python benchmarks/gpu_ssd.py sweep                 # launch settings of the SSD kernels
    python benchmarks/gpu_ssd.py bench                 # the side-by-side table (docs/benchmarks.md)
    python benchmarks/gpu_ssd.py all --out DIR         # all three; JSON, markdown and logs in DIR
    python benchmarks/gpu_ssd.py ab --out DIR          # kernel variants old vs new, beside mamba_ssm

``ab`` times the variants an ``SSDTuning`` (ssmzoo_kernels.ssd.tuning) chooses between (entering states in
float32 or x's dtype, chunk-state launch separate or fused into the state passing, v1 or v2 launch
order) on the four target cases, forward and forward+backward, each on one set of inputs with
mamba_ssm's Triton SSD beside them where it imports; every variant's output (and gradients) is
compared with v2's and with mamba_ssm's, and each output with the float64 reference on batch
row 0. ``check`` runs tests/kernels/test_ssd_triton.py and test_cuda_backend.py (their ``gpu`` grids
compare outputs, final states and every gradient with ``backend="reference"`` in float64).
``sweep`` times the Triton SSD alone under a few launch settings (``SSDTuning.tiles``) and reports
the fastest; ``bench`` runs ``ssmzoo.bench`` on every SSD case with the triton and
mamba_ssd backends side by side on the same inputs, and the selective-scan cases on the cuda
backend. Works where the package is not installed: it puts the repository on sys.path and writes
entry-point metadata for the built-in plugins into a temporary directory. Every alternative is an
``SSDTuning`` run through the public function as ``backend=TritonBackend(ssd_tuning=...)``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def use_checkout() -> None:
    """Import ssmzoo and its plugins from this checkout, with their entry points registered."""
    from importlib.metadata import entry_points

    for p in (ROOT / "kernels", ROOT / "plugins", ROOT):
        sys.path.insert(0, str(p))
    if entry_points(group="ssmzoo"):  # installed (editable): its metadata already names them
        return
    meta = Path(tempfile.mkdtemp(prefix="ssmzoo_ep_")) / "ssmzoo-0.1.0.dist-info"
    meta.mkdir()
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    lines = ["[ssmzoo]"] + [f"{k} = {v}" for k, v in eps["ssmzoo"].items()]
    (meta / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: ssmzoo\nVersion: 0.1.0\n")
    sys.path.insert(0, str(meta.parent))


FWD_VARIANTS = {  # SSDTuning.tiles for the forward kernels
    "default (64 rows, 4 warps; scan and state 3 stages)": {},
    "scan 128 rows, 8 warps": {"scan_fwd": {"BLOCK": 128, "num_warps": 8}},
    "scan and state 2 stages": {"scan_fwd": {"num_stages": 2}, "state": {"num_stages": 2}},
}
BWD_VARIANTS = {  # SSDTuning.tiles for the backward kernels
    "v1 default (64 rows, 32 at N>64, 4 warps)": {},
    "8 warps": {"bwd_dx": {"num_warps": 8}, "bwd_dc": {"num_warps": 8}},
    "64 rows, 8 warps": {"bwd_dx": {"BLOCK": 64, "num_warps": 8},
                         "bwd_dc": {"BLOCK": 64, "num_warps": 8}},
    # "16 rows, 8 warps" (no spills at N 128 in the offline builds) measured 2.7-4.2x slower than
    # the default on all four cases (H100, 2026-11-23 14:25 UTC; docs/developer/ssd-notes.md) and left the sweep
}


# SSDTuning fields over v2's settings (states in float32, separate launches, v2 order, identity
# log-decay gradient, C . B per tile); None: the checkout's defaults
V2 = {"states": "float32", "fused_state": False, "order_fwd": "v2", "order_bwd": "v2",
      "dcum": "identity", "cb": "tiles"}
AB_FWD = {
    "v2 (float32 states, separate launches)": {},
    "input-dtype states": {"states": "input"},
    "fused state passing": {"fused_state": True},
    "fused + input-dtype states": {"fused_state": True, "states": "input"},
    # N 128 only (the tiles of the fused launch and of the chunk scan; the sm_90 build of the
    # chunk scan with 64 rows spills at N 128, with 32 rows it does not)
    "fused + input, headdim tile 64": {"fused_state": True, "states": "input",
                                       "tiles": {"fused_state": {"BLOCK_P": 64}}},
    "fused + input, headdim tile 16": {"fused_state": True, "states": "input",
                                       "tiles": {"fused_state": {"BLOCK_P": 16}}},
    "scan 32 rows": {"tiles": {"scan_fwd": {"BLOCK": 32}}},
    "fused + input + scan 32 rows": {"fused_state": True, "states": "input",
                                     "tiles": {"scan_fwd": {"BLOCK": 32}}},
}
N128_ONLY = ("fused + input, headdim tile 64", "fused + input, headdim tile 16", "scan 32 rows",
             "fused + input + scan 32 rows")
AB_BWD = {
    "v2 (v2 order everywhere)": {},
    "v1 backward order": {"order_bwd": "v1"},
    "v1 backward order + fused + input-dtype states": {
        "order_bwd": "v1", "fused_state": True, "states": "input"},
    "same + stable d(log-decay)": {
        "order_bwd": "v1", "fused_state": True, "states": "input", "dcum": "stable"},
    "same + C.B once per chunk": {
        "order_bwd": "v1", "fused_state": True, "states": "input", "dcum": "stable",
        "cb": "chunk"},
    "defaults of this checkout": None,
}


def _backend(settings: dict | None):
    """The triton backend with v2's SSD settings and ``settings`` over them (None: the
    checkout's defaults)."""
    from ssmzoo_kernels.ssd.tuning import DEFAULT
    from ssmzoo_kernels.triton_backend import TritonBackend

    return TritonBackend(ssd_tuning=DEFAULT if settings is None
                         else DEFAULT.replace(**{**V2, **settings}))


DEVICE = "cuda"  # the ab stage's device (a smoke test runs it on the CPU under the interpreter)


def _cmp(a, b) -> dict:
    """How b differs from a: relative error, elements that differ, max |difference|."""
    a, b = a.detach().float(), b.detach().float()
    d = (a - b).double()
    den = a.double().norm().item()
    return {"rel": d.norm().item() / den if den else d.norm().item(),
            "n_diff": int((a != b).sum().item()), "n": a.numel(),
            "max_abs": d.abs().max().item(), "same_memory": a.data_ptr() == b.data_ptr()}


def ab(out: Path, repeats: int = 20) -> dict:
    """Old vs new kernel variants on the four target cases (see the module's docstring)."""
    import importlib.util

    import torch
    from ssmzoo_kernels.ssd.tuning import DEFAULT

    import ssmzoo
    from ssmzoo import bench
    from ssmzoo.bench.runner import reference_rows

    peer = importlib.util.find_spec("mamba_ssm") is not None
    t0 = time.time()
    results: dict = {"defaults": repr(DEFAULT), "fwd": {}, "fwdbwd": {}}
    for case in bench.select(["ssd-b*"], mode="fwd"):
        kw = case.inputs(DEVICE)
        ref = reference_rows(case, kw)
        rows, base = {}, None
        for label, sw in AB_FWD.items():
            if label in N128_ONLY and case.shape["d_state"] <= 64:
                continue
            rows[label] = _time_fwd(kw, _backend(sw), repeats, ref)
            o = rows[label].pop("out")
            if base is None:
                base = o.clone()  # (a copy: the comparisons below then see two tensors)
            rows[label]["vs_v2"] = _cmp(base, o)
            del o
        if peer:
            try:
                rows["mamba_ssd"] = _time_fwd(kw, "mamba_ssd", repeats, ref)
            except Exception as e:  # importable but not runnable: say why, keep going
                print(f"  mamba_ssd: {type(e).__name__}: {e}", flush=True)
                peer = False
        if peer:
            o = rows["mamba_ssd"].pop("out")
            rows["mamba_ssd"]["vs_v2"] = _cmp(base, o)  # mamba_ssm's output vs Triton v2's
            m = rows["mamba_ssd"]["ms"]
            for r in rows.values():
                r["vs_mamba"] = r["ms"] / m
            del o
        _print_ab(case.name, rows)
        results["fwd"][case.name] = rows
        del kw, ref, base
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    for case in bench.select(["ssd-b*"], mode="fwdbwd"):
        kw = case.inputs(DEVICE)
        leaves = [v for v in kw.values() if isinstance(v, torch.Tensor) and v.requires_grad]
        with torch.no_grad():
            gout = torch.randn_like(ssmzoo.ssd_scan(**kw, backend="triton"))
        rows, base = {}, None
        for label, sw in AB_BWD.items():
            rows[label], got = _time_fwdbwd(kw, leaves, gout, _backend(sw), repeats)
            if base is None:
                base = [g.clone() for g in got]
            rows[label]["vs_v2"] = _cmp_all(base, got)
            del got
        if peer:
            try:
                rows["mamba_ssd"], got = _time_fwdbwd(kw, leaves, gout, "mamba_ssd", repeats)
            except Exception as e:
                print(f"  mamba_ssd: {type(e).__name__}: {e}", flush=True)
                peer = False
        if peer:
            rows["mamba_ssd"]["vs_v2"] = _cmp_all(base, got)
            m = rows["mamba_ssd"]["ms"]
            for r in rows.values():
                r["vs_mamba"] = r["ms"] / m
            del got
        _print_ab(case.name, rows)
        results["fwdbwd"][case.name] = rows
        del kw, leaves, gout, base
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    (out / "ab.json").write_text(json.dumps(results, indent=2))
    print(f"ab: {time.time() - t0:.0f} s; the checkout's defaults: {DEFAULT!r}", flush=True)
    return results


def _time_fwd(kw, backend, repeats, ref) -> dict:
    import torch

    import ssmzoo
    from ssmzoo import bench

    def fwd():
        with torch.no_grad():
            return ssmzoo.ssd_scan(**kw, backend=backend)

    o = fwd().detach().float().clone()  # compiles / autotunes too
    t = bench.time_ms(fwd, DEVICE, warmup=3, repeats=repeats)
    return {"ms": t.median_ms, "ms_min": t.min_ms, "ref_err": _cmp(ref, o[:1])["rel"], "out": o}


def _time_fwdbwd(kw, leaves, gout, backend, repeats):
    import torch

    import ssmzoo
    from ssmzoo import bench

    def fb():
        out = ssmzoo.ssd_scan(**kw, backend=backend)
        return out, torch.autograd.grad(out, leaves, gout)

    out, grads = fb()
    got = [out.detach().float().clone()] + [g.detach().float().clone() for g in grads]
    t = bench.time_ms(fb, DEVICE, warmup=3, repeats=repeats)
    return {"ms": t.median_ms, "ms_min": t.min_ms}, got


def _cmp_all(base, got) -> dict:
    """Output and every gradient vs v2's: the largest relative error and which tensor has it."""
    names = ["out", "dx", "ddt", "dA", "dB", "dC", "dD", "ddt_bias"]
    errs = {n: _cmp(a, b)["rel"] for n, a, b in zip(names, base, got)}
    worst = max(errs, key=errs.get)
    return {"rel": errs[worst], "worst": worst, "all": errs,
            "n_diff_out": _cmp(base[0], got[0])["n_diff"]}


def _print_ab(name: str, rows: dict) -> None:
    print(f"ab {name} (ms; vs mamba_ssd; vs Triton v2: rel err, elements differing; "
          "float64 err on batch row 0)", flush=True)
    for label, r in rows.items():
        v = r.get("vs_v2", {})
        extra = f"  worst {v['worst']}" if "worst" in v else ""
        nd = v.get("n_diff", v.get("n_diff_out", "-"))
        line = (f"  {label:<48} {r['ms']:7.3f}  x{r.get('vs_mamba', float('nan')):.2f}  "
                f"rel {v.get('rel', 0):.1e} differ {nd}{extra}")
        if "ref_err" in r:
            line += f"  ref {r['ref_err']:.1e}"
        if v.get("same_memory"):
            line += "  (SAME MEMORY)"
        print(line, flush=True)


def check(out: Path, select: str | None = None) -> int:
    import pytest

    args = ["-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={out / 'tests.xml'}",
            str(ROOT / "tests/kernels/test_ssd_triton.py"),
            str(ROOT / "tests/kernels/test_cuda_backend.py")]
    if select:
        args += ["-k", select]
    return int(pytest.main(args))


def diag() -> None:
    """mamba_ssm's own CUDA scan against its own PyTorch reference, complex A with grouped B/C:
    does the extension itself agree, gradients included (float32, L 301)?"""
    import torch
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn, selective_scan_ref

    torch.manual_seed(0)
    b, d, n, L, g = 2, 64, 16, 301, 4
    for groups, label in ((1, "variable"), (g, "grouped")):
        shape = (b, n, 2 * L) if groups == 1 else (b, groups, n, 2 * L)
        t = dict(u=torch.randn(b, d, L), delta=torch.randn(b, d, L) * 0.5 - 1,
                 A=torch.complex(-(0.5 + torch.rand(d, n)), torch.randn(d, n) * 3),
                 B=torch.randn(*shape), C=torch.randn(*shape), D=torch.randn(d),
                 z=torch.randn(b, d, L), delta_bias=torch.randn(d) * 0.3)
        a = {k: v.cuda().requires_grad_() for k, v in t.items()}
        r = {k: v.cuda().requires_grad_() for k, v in t.items()}
        o = selective_scan_fn(**a, delta_softplus=True)
        o_ref = selective_scan_ref(**r, delta_softplus=True)
        go = torch.randn_like(o)
        ga = torch.autograd.grad((o * go).sum(), list(a.values()))
        gr = torch.autograd.grad((o_ref * go).sum(), list(r.values()))
        errs = {k: f"{((x - y).norm() / y.norm()).item():.1e}" for k, x, y in zip(a, ga, gr)}
        out_err = ((o - o_ref).norm() / o_ref.norm()).item()
        print(f"diag mamba complex {label}: out {out_err:.1e} grads {errs}", flush=True)


def profile(repeats: int = 20) -> None:
    """Milliseconds of each launch of the forward and backward, on the SSD cases."""
    from ssmzoo import bench

    for case in bench.select(["ssd-b*"], mode="fwd"):
        times = _profile_case(case, repeats)
        print(f"profile {case.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in times.items()),
              flush=True)


def _profile_case(case, repeats: int) -> dict[str, float]:
    import torch
    from ssmzoo_kernels.ssd import backward as _bwd
    from ssmzoo_kernels.ssd import forward as _fwd
    from ssmzoo_kernels.ssd.tuning import DEFAULT

    from ssmzoo import bench

    stable = DEFAULT.dcum_stable()  # the checkout's log-decay gradient, as the backward runs it
    kw = case.inputs("cuda")
    x, dt, A, B, C, D = (kw[k] for k in ("x", "dt", "A", "B", "C", "D"))
    bias, Q = kw["dt_bias"], kw["chunk_size"]
    lim = (0.0, float("inf"))
    dtp, cum = _fwd.dt_cumsum(dt, A, bias, Q, True, lim)
    st = _fwd.chunk_state(x, B, dtp, cum, 0)
    st, fin = _fwd.state_passing(st, cum, None)
    dy = torch.randn_like(x)
    ds = _fwd.chunk_state(dy, C, dtp, cum, 1)
    cb = _bwd.chunk_cb(B, C, Q) if stable and DEFAULT.cb_once(B.shape[-1]) else None
    stages = {
        "dt_cumsum": lambda: _fwd.dt_cumsum(dt, A, bias, Q, True, lim),
        "chunk_state": lambda: _fwd.chunk_state(x, B, dtp, cum, 0),
        "state_passing": lambda: _fwd.state_passing(st.clone(), cum, None),
        "state_passing, input-dtype out": lambda: _fwd.state_passing(st.clone(), cum, None,
                                                                     x.dtype),
        "fused chunk_state+state_passing": lambda: _fwd.fused_state_passing(x, B, dtp, cum, None),
        "fused, input-dtype out": lambda: _fwd.fused_state_passing(x, B, dtp, cum, None, x.dtype),
        "chunk_scan": lambda: _fwd.chunk_scan(x, B, C, dtp, cum, st, D, None),
        "(clone of states)": lambda: st.clone(),
        "bwd dH_out": lambda: _fwd.chunk_state(dy, C, dtp, cum, 1),
        "bwd state_passing": lambda: _bwd.state_passing_bwd(ds.clone(), st, fin, None, cum,
                                                            stable),
        "bwd dx_db": lambda: _bwd.dx_db(x, dy, B, C, dtp, cum, ds, D, stable),
        "bwd chunk_cb": lambda: _bwd.chunk_cb(B, C, Q) if cb is not None else None,
        "bwd dc": lambda: _bwd.dc(x, dy, B, C, dtp, cum, st, stable, cb),
        "bwd dx_db, identity": lambda: _bwd.dx_db(x, dy, B, C, dtp, cum, ds, D, False),
        "bwd dc, identity": lambda: _bwd.dc(x, dy, B, C, dtp, cum, st, False),
        "bwd dc, stable, C.B per tile": lambda: _bwd.dc(x, dy, B, C, dtp, cum, st, True),
        "bwd dt and log-decays (fused)": lambda: _bwd.dt_bwd(
            dtp, cum, cum, cum[..., -1].contiguous(), cum if stable else None, dtp, dt, A, bias,
            True, lim),
    }
    return {k: bench.time_ms(f, "cuda", warmup=2, repeats=repeats).median_ms
            for k, f in stages.items()}


def _time_variants(variants, cases, repeats, *, backward: bool):
    """ms of each ``SSDTuning.tiles`` variant on each case (forward, or forward+backward)."""
    import torch
    from ssmzoo_kernels.ssd.tuning import DEFAULT
    from ssmzoo_kernels.triton_backend import TritonBackend

    import ssmzoo

    table = {}
    for label, tiles in variants.items():
        backend = TritonBackend(ssd_tuning=DEFAULT.replace(tiles=tiles))
        row = {}
        for case in cases:
            kw = case.inputs(DEVICE)
            try:
                if backward:
                    leaves = [v for v in kw.values() if isinstance(v, torch.Tensor)
                              and v.requires_grad]
                    with torch.no_grad():
                        gout = torch.randn_like(ssmzoo.ssd_scan(**kw, backend=backend))
                    row[case.name] = _time_fwdbwd(kw, leaves, gout, backend, repeats)[0]["ms"]
                else:
                    with torch.no_grad():
                        ref = ssmzoo.ssd_scan(**kw, backend=backend)[:1].float()
                    row[case.name] = _time_fwd(kw, backend, repeats, ref)["ms"]
            except Exception as e:  # a setting that does not compile is reported, not fatal
                row[case.name] = None
                print(f"  {label} {case.name}: {type(e).__name__} {str(e)[:120]}", flush=True)
            del kw
        table[label] = row
        print(f"  {label:<44} " + "  ".join(f"{v:.3f}" if v else "-" for v in row.values()),
              flush=True)
    return table


def sweep(out: Path, repeats: int = 10) -> dict:
    """The tile variants, forward then backward (over the fastest forward); reports the fastest
    (the defaults change by commit, after a run that shows them faster)."""
    from ssmzoo import bench

    fwd = bench.select(["ssd-b*"], mode="fwd")
    bwd = bench.select(["ssd-b*"], mode="fwdbwd")
    print("forward variants (ms): " + "  ".join(c.name for c in fwd), flush=True)
    tf = _time_variants(FWD_VARIANTS, fwd, repeats, backward=False)
    best_f = min(tf, key=lambda k: sum(v or 1e9 for v in tf[k].values()))
    print(f"forward: fastest {best_f!r}", flush=True)
    print("backward variants, forward+backward ms: " + "  ".join(c.name for c in bwd), flush=True)
    fixed = FWD_VARIANTS[best_f]
    tb = _time_variants({k: {**fixed, **v} for k, v in BWD_VARIANTS.items()}, bwd, repeats,
                        backward=True)
    best_b = min(tb, key=lambda k: sum(v or 1e9 for v in tb[k].values()))
    print(f"backward: fastest {best_b!r}", flush=True)
    result = {"forward": tf, "backward": tb, "best_forward": best_f, "best_backward": best_b,
              "tiles": {**fixed, **BWD_VARIANTS[best_b]}}
    (out / "sweep.json").write_text(json.dumps(result, indent=2))
    return result


def run_bench(out: Path, repeats: int = 20, ssd_only: bool = False,
              backends: tuple[str, ...] = ("triton", "mamba_ssd")) -> None:
    import torch

    from ssmzoo import bench

    env = bench.environment("cuda")
    ceil = bench.ceilings("cuda")
    reports = []
    for case in bench.select(["ssd-b*"]):
        print(f"bench {case.name}", flush=True)
        reports.append(bench.run_case(case, list(backends), repeats=repeats, ceil=ceil))
        print("  " + ", ".join(f"{r.backend} {r.ms:.3f} ms" if r.ms is not None
                               else f"{r.backend} {r.status}" for r in reports[-1].results),
              flush=True)
        torch.cuda.empty_cache()
    for case in [] if ssd_only else bench.select(["scan-b*"]):
        print(f"bench {case.name}", flush=True)
        reports.append(bench.run_case(case, ["cuda"], repeats=repeats, ceil=ceil))
        torch.cuda.empty_cache()
    from ssmzoo_kernels.ssd.tuning import DEFAULT

    env["ssd tuning"] = repr(DEFAULT)
    (out / "bench.json").write_text(bench.dumps(reports, env, ceil))
    md = bench.text(reports, env, ceil, markdown=True)
    (out / "bench.md").write_text(md + "\n")
    print(bench.text(reports, env, ceil))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", help="comma-separated stages: diag, check, profile, sweep, bench, ab; "
                                 "or all (check, bench, then sweep and a re-bench if time allows)")
    ap.add_argument("--out", type=Path, default=Path("."), help="folder for JSON, markdown, logs")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--backends", default="triton,mamba_ssd",
                    help="bench-ssd: the ssd_scan backends side by side")
    ap.add_argument("-k", dest="select", help="pytest -k expression for check")
    ap.add_argument("--budget-s", type=float, default=1e9,
                    help="all: skip the sweep (and the re-bench after it) past this many seconds")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    use_checkout()
    t0 = time.time()
    rc = 0
    stages = ["check", "bench", "sweep"] if args.what == "all" else args.what.split(",")
    for stage in stages:
        if stage == "sweep" and args.what == "all" and time.time() - t0 > args.budget_s:
            print("sweep skipped: over the time budget", flush=True)
            break
        if stage == "diag":
            diag()
        elif stage == "check":
            rc = check(args.out, args.select)
        elif stage == "profile":
            profile(args.repeats)
        elif stage == "sweep":
            res = sweep(args.out, repeats=max(5, args.repeats // 2))
            if res["tuning"] and args.what == "all" and time.time() - t0 < args.budget_s:
                tuned = args.out / "tuned"
                tuned.mkdir(exist_ok=True)
                run_bench(tuned, repeats=args.repeats, ssd_only=True)
        elif stage == "bench":
            run_bench(args.out, repeats=args.repeats)
        elif stage == "ab":
            ab(args.out, repeats=args.repeats)
        elif stage == "bench-ssd":
            run_bench(args.out, repeats=args.repeats, ssd_only=True,
                      backends=tuple(args.backends.split(",")))
        else:
            raise SystemExit(f"unknown stage {stage!r}")
        print(f"{stage} done after {time.time() - t0:.0f} s", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
