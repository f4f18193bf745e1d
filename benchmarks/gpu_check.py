"""GPU check grid of the Triton kernels: values and every gradient against the float64 reference.

    python3 benchmarks/gpu_check.py --out DIR [--jobs 4] [--chunk 6] [--only scan|ssd]
        [--pytest]   # then also the GPU test files, with the same environment

Runs a sampled grid (not a cross product) of selective-scan calls (channels below and not dividing
the channel tile, every dtype, lengths with and without factors of 16, real/complex A, z,
variable/grouped/fixed B and C, biases, euler/zoh, initial and last state) and of SSD calls at
odd shapes. Cases run in chunks, each chunk in a fresh subprocess, so that a CUDA fault (which
poisons the process's context) kills only its chunk; the chunk's cases without a result are then
re-run one per subprocess, which names the faulting ones. After every case the worker checks that
the context is still healthy (a tiny op and a synchronize). Writes DIR/gpu_check.json and
DIR/gpu_check.md; exits 1 if any case failed or faulted.

Without an installed ssmzoo the runner makes the checkout importable (repository root, plugins/,
kernels/ on PYTHONPATH) and gives it its entry points through a ``.dist-info`` written under DIR.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import random
import subprocess
import sys
import time
import traceback
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import tomllib

ROOT = Path(__file__).resolve().parents[1]
SEARCH = [str(ROOT), str(ROOT / "plugins"), str(ROOT / "kernels")]
DTYPES = ("float32", "float16", "bfloat16")
LENGTHS = (1, 7, 127, 1134, 2048, 4096)
DIMS = (1, 3, 4, 5, 17, 33, 300)
DEVICE = "cuda"  # the smoke test of this script runs it on the CPU, interpreted


# ----------------------------------------------------------------------------------- the grid
def _groups(dim: int) -> int:
    return next((g for g in (2, 3) if dim % g == 0 and dim > g), 1)


def scan_cases(seed: int = 0) -> list[dict]:
    """The selective-scan cases: mamba_ssm's own test shapes first, then a seeded sample in which
    every value of every axis appears."""
    cases = []
    for dtype in ("float16", "bfloat16"):  # mamba_ssm tests/ops/test_selective_scan.py
        for length in (2048, 4096):
            for z in (True, False):
                cases.append(dict(batch=2, dim=4, d_state=8, length=length, dtype=dtype, z=z,
                                  B_layout="variable", C_layout="variable"))
    rng = random.Random(seed)
    n = 44
    cols = {
        "dim": [DIMS[i % len(DIMS)] for i in range(n)],
        "dtype": [DTYPES[i % len(DTYPES)] for i in range(n)],
        "length": [LENGTHS[i % len(LENGTHS)] for i in range(n)],
        "complex": [i % 2 == 0 for i in range(n)],
        "z": [i % 3 != 0 for i in range(n)],
        "layouts": [(("variable", "variable"), ("grouped", "variable"), ("variable", "grouped"),
                     ("fixed", "fixed"), ("grouped", "grouped"), ("fixed", "variable"))[i % 6]
                    for i in range(n)],
        "bias": [(i % 4 == 1, i % 4 == 2) for i in range(n)],
        "discretization": ["zoh" if i % 2 else "euler" for i in range(n)],
        "initial_state": [i % 3 == 1 for i in range(n)],
        "d_state": [(1, 3, 8, 16, 16, 64)[i % 6] for i in range(n)],
        "batch": [1 + (i % 2) for i in range(n)],
    }
    for col in cols.values():
        rng.shuffle(col)
    for i in range(n):
        dim, length = cols["dim"][i], cols["length"][i]
        if dim * length > 300 * 1134:  # keep the float64 reference quick: large dim, shorter L
            length = 1134
        bl, cl = cols["layouts"][i]
        cases.append(dict(
            batch=cols["batch"][i], dim=dim, length=length, d_state=cols["d_state"][i],
            dtype=cols["dtype"][i], complex=cols["complex"][i], z=cols["z"][i],
            B_layout=bl, C_layout=cl, groups=_groups(dim), B_bias=cols["bias"][i][0],
            C_bias=cols["bias"][i][1], discretization=cols["discretization"][i],
            initial_state=cols["initial_state"][i], D=i % 5 != 0, delta_bias=i % 5 != 1,
            softplus=i % 5 != 2))
    for c in cases:
        c["kind"] = "scan"
    return cases


def ssd_cases() -> list[dict]:
    """SSD at odd shapes: 1 and 3 heads, headdim 16/64, d_state 16/128, lengths that do not
    divide the chunk, every dtype."""
    shapes = [  # heads, headdim, groups, d_state, length, chunk, dtype, D, initial_states
        (1, 16, 1, 16, 1, 64, "float32", "h", False),
        (3, 64, 1, 128, 200, 64, "bfloat16", "hp", True),
        (3, 16, 3, 16, 127, 32, "float16", "h", False),
        (1, 64, 1, 128, 1134, 256, "bfloat16", "h", True),
        (3, 64, 3, 16, 777, 128, "float32", "", False),
        (1, 16, 1, 128, 4097, 256, "float16", "hp", True),
        (3, 16, 1, 128, 7, 256, "bfloat16", "h", False),
        (3, 64, 1, 16, 2050, 256, "float16", "h", True),
    ]
    return [dict(kind="ssd", batch=2, heads=h, headdim=p, groups=g, d_state=n, length=ln,
                 chunk_size=q, dtype=dt, D=d, initial_states=init, z=i % 2 == 0)
            for i, (h, p, g, n, ln, q, dt, d, init) in enumerate(shapes)]


def case_name(c: dict) -> str:
    if c["kind"] == "ssd":
        return (f"ssd-b{c['batch']}-h{c['heads']}-p{c['headdim']}-g{c['groups']}-n{c['d_state']}"
                f"-L{c['length']}-Q{c['chunk_size']}-{c['dtype']}-D{c['D']}"
                + ("-z" if c["z"] else "") + ("-h0" if c["initial_states"] else ""))
    flags = "".join(f"-{k}" for k in ("z", "D", "delta_bias", "softplus", "B_bias", "C_bias",
                                       "initial_state") if c.get(k, k in ("D", "delta_bias",
                                                                          "softplus")))
    return (f"scan-b{c['batch']}-d{c['dim']}-n{c['d_state']}-L{c['length']}-{c['dtype']}-"
            f"{'c' if c.get('complex') else 'r'}-B{c['B_layout'][0]}C{c['C_layout'][0]}"
            f"{'-g' + str(c['groups']) if 'grouped' in (c['B_layout'], c['C_layout']) else ''}"
            f"-{c.get('discretization', 'euler')}{flags}")


# --------------------------------------------------------------------------------- one case
def _to_ref(v):
    import torch

    if not isinstance(v, torch.Tensor):
        return v
    w = v.detach().to(torch.complex128 if v.is_complex() else torch.float64)
    return w.requires_grad_(v.requires_grad)


def _project_backward(outs, refs) -> None:
    """Backward of one random projection (seed 1) of every output, through both."""
    import torch

    gen = torch.Generator(device=outs[0].device).manual_seed(1)
    loss = ref_loss = 0
    for o, r in zip(outs, refs):
        w = torch.randn(r.shape, dtype=r.dtype, generator=gen, device=r.device)
        loss = loss + (o.to(w.dtype) * w.conj()).real.sum()
        ref_loss = ref_loss + (r * w.conj()).real.sum()
    loss.backward()
    ref_loss.backward()


def _compare(outs, refs, kw, ref_kw, tol_of) -> dict[str, float]:
    """Backward of a random projection of every output through both; the relative RMS error of
    every output and of every input's gradient, each checked against ``tol_of(name)``."""
    from tests.helpers import assert_close
    from tests.scan.cases import grad_inputs

    errs = {}
    for name, o, r in zip(("out", "last_state"), outs, refs):
        errs[name] = assert_close(name, r, o, rtol=tol_of(name))
    _project_backward(outs, refs)
    for name, t in grad_inputs(kw).items():
        assert t.grad is not None, f"no gradient for {name}"
        assert t.grad.dtype == t.dtype, f"d{name} has dtype {t.grad.dtype}, expected {t.dtype}"
        errs["d" + name] = assert_close("d" + name, ref_kw[name].grad, t.grad,
                                        rtol=tol_of("d" + name))
    return errs


def run_scan(c: dict) -> dict[str, float]:
    import torch

    import ssmzoo
    from tests.helpers import TOLERANCES
    from tests.kernels.test_triton_selective_scan import REDUCED, TOL_REDUCED
    from tests.scan.cases import ScanCase, selective_scan_inputs

    fields = {k: v for k, v in c.items() if k not in ("kind", "dtype")}
    case = ScanCase(**fields, dtype=getattr(torch, c["dtype"]))
    kw = selective_scan_inputs(case, seed=len(case_name(c)), requires_grad=True)
    kw = {k: (v.detach().to(DEVICE).requires_grad_() if isinstance(v, torch.Tensor) else v)
          for k, v in kw.items()}
    ref_kw = {k: _to_ref(v) for k, v in kw.items()}
    outs = ssmzoo.selective_scan(**kw, return_last_state=True, backend="triton")
    refs = ssmzoo.selective_scan(**ref_kw, return_last_state=True, backend="reference")
    assert outs[0].dtype == kw["u"].dtype, f"out has dtype {outs[0].dtype}"
    # tests/helpers.py's table; fp32 at the Triton tests' 2e-5 (fp32 sums over 4096 steps, and
    # the SFU's sin/cos for complex A); dA, dD, ddelta_bias, sums over batch and length of terms
    # of both signs, at the kernel tests' reduced bound (bf16 dD 1.6e-2 on a 7-step case, 1 channel)
    tol = max(TOLERANCES[case.dtype], 2e-5)
    return _compare(outs, refs, kw, ref_kw, lambda name: max(tol, TOL_REDUCED[case.dtype])
                    if name[1:] in REDUCED else tol)


def run_ssd(c: dict) -> dict[str, float]:
    import torch

    import ssmzoo
    from tests.kernels.test_ssd_triton import REDUCED, TOL_GRAD, TOL_OUT, TOL_REDUCED
    from tests.scan.cases import SSDCase, ssd_inputs

    dtype = getattr(torch, c["dtype"])
    fields = {k: v for k, v in c.items() if k not in ("kind", "dtype", "initial_states")}
    case = SSDCase(**fields, initial_states=c["initial_states"], dtype=dtype)
    kw = ssd_inputs(case, seed=len(case_name(c)), requires_grad=True)
    kw = {k: (v.detach().to(DEVICE).requires_grad_() if isinstance(v, torch.Tensor) else v)
          for k, v in kw.items()}
    ref_kw = {k: _to_ref(v) for k, v in kw.items()}
    outs = ssmzoo.ssd_scan(**kw, return_final_states=True, backend="triton")
    refs = ssmzoo.ssd_scan(**ref_kw, return_final_states=True, backend="reference")

    peer = _peer_errors(kw) if dtype != torch.float32 else {}

    def tol_of(name: str) -> float:
        if name in ("out", "last_state"):
            table = TOL_OUT[dtype]
        else:
            table = (TOL_REDUCED if name[1:] in REDUCED else TOL_GRAD)[dtype]
        # half precision: also 2x mamba_ssm's own error on the same inputs and cotangents, as
        # tests/kernels/test_ssd_triton.py's GPU grid (a reduction such as ddt_bias over
        # batch x length can cancel, and then both kernels' relative errors grow alike)
        return max(table, 2 * peer[name]) if name in peer else table

    return _compare(outs, refs, kw, ref_kw, tol_of)


def _peer_errors(kw: dict) -> dict[str, float]:
    """The relative RMS error of mamba_ssm's Triton SSD (backend ``mamba_ssd``) against the
    float64 reference on ``kw``, output by output and gradient by gradient, with the cotangents
    of :func:`_compare`; empty when mamba_ssm is not importable or refuses the call."""
    import importlib.util

    import torch

    import ssmzoo
    from ssmzoo.errors import BackendUnavailableError
    from tests.helpers import rel_rms
    from tests.scan.cases import grad_inputs

    if importlib.util.find_spec("mamba_ssm") is None:
        return {}

    def leaf(v, ref: bool):
        if not isinstance(v, torch.Tensor):
            return v
        return (_to_ref(v) if ref else v.detach().clone().requires_grad_(v.requires_grad))

    pkw = {k: leaf(v, False) for k, v in kw.items()}
    rkw = {k: leaf(v, True) for k, v in kw.items()}
    try:
        outs = ssmzoo.ssd_scan(**pkw, return_final_states=True, backend="mamba_ssd")
    except BackendUnavailableError:
        return {}
    refs = ssmzoo.ssd_scan(**rkw, return_final_states=True, backend="reference")
    errs = {name: rel_rms(r, o) for name, o, r in zip(("out", "last_state"), outs, refs)}
    _project_backward(outs, refs)
    for name, t in grad_inputs(pkw).items():
        errs["d" + name] = rel_rms(rkw[name].grad, t.grad)
    return errs


def healthy() -> str | None:
    """None if the CUDA context still runs kernels, else the error."""
    import torch

    try:
        x = torch.ones(4, device="cuda") * 2
        torch.cuda.synchronize()
        return None if float(x.sum()) == 8.0 else "a tiny op gave a wrong value"
    except Exception as e:  # a poisoned context raises on any use
        return f"{type(e).__name__}: {e}".splitlines()[0]


def worker(cases_file: Path, results_file: Path) -> int:
    """Run the cases of ``cases_file`` in order, one JSON line each into ``results_file``; stop
    (exit 3) at the first case after which the context is unhealthy."""
    import torch

    cases = json.loads(cases_file.read_text())
    with results_file.open("a") as f:
        for c in cases:
            t0 = time.perf_counter()
            rec = {"name": case_name(c), "case": c}
            try:
                errs = (run_ssd if c["kind"] == "ssd" else run_scan)(c)
                rec.update(status="pass", errors=errs)
            except AssertionError as e:
                rec.update(status="fail", message=str(e).splitlines()[0])
            except Exception as e:
                rec.update(status="error", message=f"{type(e).__name__}: {e}".splitlines()[0],
                           traceback=traceback.format_exc(limit=4))
            sick = healthy()
            if sick:
                rec.update(status="fault", message=rec.get("message", "") + f" | context: {sick}")
            rec["seconds"] = round(time.perf_counter() - t0, 2)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            torch.cuda.empty_cache()
            if sick:
                return 3
    return 0


# ------------------------------------------------------------------------------- the runner
def environment(out: Path) -> dict[str, str]:
    """Environment for the workers: the checkout on PYTHONPATH and, unless an installed ssmzoo
    already provides them, the entry points of pyproject.toml through a .dist-info under out."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    paths = list(SEARCH)
    if not list(importlib.metadata.entry_points(group="ssmzoo")):
        meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        site = out / "site"
        info = site / f"ssmzoo-{meta.get('version', '0')}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: ssmzoo\nVersion: {meta.get('version', '0')}\n")
        groups = meta.get("entry-points", {})
        (info / "entry_points.txt").write_text("".join(
            f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
            for g, eps in groups.items()))
        paths.append(str(site))
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


def _spawn(cases: list[dict], tag: str, work: Path, env: dict, timeout: float):
    cf, rf = work / f"{tag}.cases.json", work / f"{tag}.results.jsonl"
    cf.write_text(json.dumps(cases))
    rf.unlink(missing_ok=True)
    log = (work / f"{tag}.log").open("w")
    proc = subprocess.Popen([sys.executable, __file__, "--worker", str(cf), str(rf)], env=env,
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return proc, rf, time.monotonic() + timeout, log


def _read(rf: Path) -> list[dict]:
    return [json.loads(x) for x in rf.read_text().splitlines() if x.strip()] if rf.exists() else []


def run_all(cases: list[dict], out: Path, jobs: int, chunk: int, timeout: float,
            budget: float = math.inf) -> list[dict]:
    """Every case's result record; cases still unrun when ``budget`` seconds are spent are
    recorded as "not run" (their workers killed), so a summary is always written."""
    stop = time.monotonic() + budget
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    env = environment(out)
    chunks = [cases[i:i + chunk] for i in range(0, len(cases), chunk)]
    pending = [(f"chunk{i:02d}", ch) for i, ch in enumerate(chunks)]
    results: dict[str, dict] = {}
    running = []
    while pending or running:
        while pending and len(running) < jobs:
            tag, ch = pending.pop(0)
            running.append((tag, ch, *_spawn(ch, tag, work, env, timeout)))
        time.sleep(0.5)
        for item in list(running):
            tag, ch, proc, rf, deadline, log = item
            rc = proc.poll()
            if rc is None and time.monotonic() >= stop:
                deadline = 0.0
                pending.clear()
            if rc is None and time.monotonic() < deadline:
                continue
            if rc is None:
                proc.kill()
                proc.wait()
                rc = "timeout"
                if time.monotonic() >= stop:
                    log.close()
                    running.remove(item)
                    results.update({r["name"]: r for r in _read(rf)})
                    continue
            log.close()
            running.remove(item)
            done = {r["name"]: r for r in _read(rf)}
            results.update(done)
            rest = [c for c in ch if case_name(c) not in done]
            if not rest:
                continue
            if len(ch) == 1:  # a single case that died without a result: it is the fault
                tail = (work / f"{tag}.log").read_text()[-600:]
                results[case_name(ch[0])] = {
                    "name": case_name(ch[0]), "case": ch[0],
                    "status": "fault" if rc != "timeout" else "timeout",
                    "message": f"worker exit {rc}: {tail.strip().splitlines()[-1:]}"}
                continue
            print(f"{tag}: exit {rc}, {len(rest)} case(s) without a result: one by one",
                  flush=True)
            pending += [(f"{tag}-{j:02d}", [c]) for j, c in enumerate(rest)]
    return [results.get(case_name(c)) or {"name": case_name(c), "case": c, "status": "not run",
                                           "message": "the time budget was spent"}
            for c in cases]


def summarize(results: list[dict], out: Path, seconds: float) -> int:
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    import torch
    import triton

    head = {"torch": torch.__version__, "triton": triton.__version__,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "seconds": round(seconds, 1), "counts": counts}
    (out / "gpu_check.json").write_text(json.dumps({**head, "results": results}, indent=1))
    lines = [f"# GPU check grid: {counts}", "",
             f"{head['device']}, torch {head['torch']}, triton {head['triton']}, "
             f"{head['seconds']} s", "", "| case | status | worst error | message |",
             "|---|---|---|---|"]
    for r in results:
        errs = r.get("errors") or {}
        worst = max(errs.items(), key=lambda kv: kv[1]) if errs else None
        w = f"{worst[0]} {worst[1]:.2e}" if worst else ""
        msg = r.get("message", "").replace("|", "/")[:200]
        lines.append(f"| {r['name']} | {r['status']} | {w} | {msg} |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print(lines[0])
    for r in results:
        if r["status"] != "pass":
            print(f"  {r['status']}: {r['name']}: {r.get('message', '')[:300]}")
    return 0 if counts.get("pass", 0) == len(results) else 1


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        return worker(Path(sys.argv[2]), Path(sys.argv[3]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--jobs", type=int, default=4, help="chunks in parallel (one GPU each share)")
    ap.add_argument("--chunk", type=int, default=6, help="cases per subprocess")
    ap.add_argument("--timeout", type=float, default=420, help="seconds per subprocess")
    ap.add_argument("--only", choices=("scan", "ssd"))
    ap.add_argument("--limit", type=int, default=0, help="first N cases only (0: all)")
    ap.add_argument("--match", default="",
                    help="comma-separated substrings: only cases whose name contains one")
    ap.add_argument("--pytest", action="store_true",
                    help="then run the GPU test files with the same environment")
    ap.add_argument("--budget", type=float, default=540,
                    help="seconds for the whole run: pytest gets what the grid left")
    args = ap.parse_args()
    cases = ([] if args.only == "ssd" else scan_cases()) + ([] if args.only == "scan"
                                                             else ssd_cases())
    if args.match:
        cases = [c for c in cases if any(m in case_name(c) for m in args.match.split(","))]
    if args.limit:
        cases = cases[:args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    grid_budget = args.budget * (0.7 if args.pytest else 1.0)
    rc = summarize(run_all(cases, args.out, args.jobs, args.chunk, args.timeout, grid_budget),
                   args.out, time.monotonic() - t0)
    if args.pytest:
        files = [f"tests/kernels/{f}" for f in ("test_triton_selective_scan.py",
                                                "test_ssd_triton.py", "test_cuda_backend.py")]
        left = max(30.0, args.budget - (time.monotonic() - t0))
        with (args.out / "pytest.log").open("w") as log:
            try:
                code = subprocess.run(
                    [sys.executable, "-m", "pytest", "-v", "-n", "8", "-p", "no:cacheprovider",
                     "-rfEs", *files], env=environment(args.out), cwd=ROOT, stdout=log,
                    stderr=subprocess.STDOUT, timeout=left).returncode
            except subprocess.TimeoutExpired:
                code = f"timeout after {left:.0f} s"
        tail = (args.out / "pytest.log").read_text().strip().splitlines()[-1:]
        print(f"pytest of the GPU test files: exit {code} (pytest.log): {tail}")
        rc = rc or (code if isinstance(code, int) else 1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
