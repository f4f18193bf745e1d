"""GPU check and timing of the Triton selective scan, side by side with mamba_ssm's CUDA kernel.

    python benchmarks/gpu_selective_scan.py check            # full grid vs the float64 reference
    python benchmarks/gpu_selective_scan.py check --no-asm-stores  # ... with another tuning
    python benchmarks/gpu_selective_scan.py check --shard 3/8  # one of 8 processes side by side
    python benchmarks/gpu_selective_scan.py sweep            # tunings side by side, main cases
    python benchmarks/gpu_selective_scan.py segments         # forward shapes x time segments
    python benchmarks/gpu_selective_scan.py bench            # the timing table of docs/developer/selective-scan-notes.md
    python benchmarks/gpu_selective_scan.py all --json out.json

mamba_ssm's kernel is the peer when importable: on the GPU machine run
``source .gpu/mamba_ssm.sh build .gpu`` first, on its own (in a pipeline its ``export`` is lost).

``check`` compares output, last state and every gradient with ``backend="reference"`` run in
float64 on the same (rounded) inputs: relative RMS error < 1e-4 for float32 inputs, the TOL table
below for half inputs; lengths include non-powers of two and 16384. ``bench`` times (bf16, with z,
D, delta_bias and softplus) this backend, mamba_ssm's ``selective_scan_fn`` when importable (for
B2S6, ssmzoo's ``cuda`` backend: mamba's grouped scan plus one fixed-B scan per group, by
linearity) and, on the first case, the reference; it prints ms (``triton.testing.do_bench``
median), peak memory above the inputs, effective GB/s and the ratio to mamba_ssm, and the floors
(bytes at 3.0 TB/s; one exp per state update, three for complex, on 16 SFU lanes per SM).

Every alternative launch choice is a ``Tuning`` (``ssmzoo_kernels.selective_scan.tuning``) run
through the public function as ``backend=TritonBackend(tuning)``; nothing is patched.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ssmzoo  # noqa: E402

DEV = "cuda"
TOL = {torch.float32: 1e-4, torch.bfloat16: 1e-2, torch.float16: 3e-3}  # relative RMS error


def inputs(b, d, L, n, *, cplx=False, layout="variable", groups=1, dtype=torch.bfloat16,
           bias=False, C_bias=False, h0=False, disc="euler", seed=0, grad=False, extras=True):
    """Keyword arguments of one selective_scan call; values in the ranges Mamba layers produce."""
    g = torch.Generator(device=DEV).manual_seed(seed)

    def rnd(*shape, scale=1.0, dt=torch.float32):
        return (torch.randn(*shape, generator=g, device=DEV) * scale).to(dt)

    L2 = 2 * L if cplx else L
    A_re = -(0.5 + torch.rand(d, n, generator=g, device=DEV) * 15.5)  # S4D-real-like spread
    A = torch.complex(A_re / 8, rnd(d, n, scale=math.pi)) if cplx else A_re
    ctype = torch.complex64

    def bc():
        if layout == "fixed":
            return torch.complex(rnd(d, n), rnd(d, n)) if cplx else rnd(d, n)
        if layout == "grouped":
            return rnd(b, groups, n, L2, dt=dtype)
        return rnd(b, n, L2, dt=dtype)

    kw = dict(u=rnd(b, d, L, dt=dtype), delta=rnd(b, d, L, scale=0.5, dt=dtype) - 2.0, A=A,
              B=bc(), C=bc(), delta_softplus=True, discretization=disc)
    kw["delta"] = kw["delta"].to(dtype)
    if extras:
        kw.update(D=rnd(d), z=rnd(b, d, L, dt=dtype), delta_bias=rnd(d, scale=0.3))
    else:
        kw.update(delta_softplus=False, delta=torch.rand(b, d, L, generator=g, device=DEV).to(dtype) * 0.1)
    if bias:
        kw["B_bias"] = torch.complex(rnd(d, n), rnd(d, n)) if cplx else rnd(d, n)
    if C_bias:
        kw["C_bias"] = torch.complex(rnd(d, n), rnd(d, n)) if cplx else rnd(d, n)
    if h0:
        kw["initial_state"] = torch.complex(rnd(b, d, n), rnd(b, d, n)).to(ctype) if cplx else rnd(b, d, n)
    if grad:
        for v in kw.values():
            if isinstance(v, torch.Tensor):
                v.requires_grad_(True)
    return kw


def rel(ref, out):
    r = ref.detach().to(torch.complex128 if ref.is_complex() else torch.float64)
    o = out.detach().to(r.dtype)
    return ((o - r).abs().pow(2).mean().sqrt() / r.abs().pow(2).mean().sqrt().clamp_min(1e-30)).item()


def check_case(name, kw, log):
    """Errors of out, last state and every gradient; returns (ok, worst)."""
    dtype = kw["u"].dtype
    mine = {k: (v.detach().clone().requires_grad_() if isinstance(v, torch.Tensor) else v)
            for k, v in kw.items()}
    ref_kw = {k: (v.detach().to(torch.complex128 if v.is_complex() else torch.float64).requires_grad_()
                  if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    out, last = ssmzoo.selective_scan(**mine, return_last_state=True, backend=TRITON[0])
    ref, ref_last = ssmzoo.selective_scan(**ref_kw, return_last_state=True, backend="reference")
    g = torch.randn(out.shape, device=DEV, dtype=torch.float64)
    gl = torch.randn(last.shape, device=DEV, dtype=ref_last.dtype)
    ((out.double() * g).sum() + (last.to(gl.dtype) * gl.conj()).real.sum()).backward()
    ((ref * g).sum() + (ref_last * gl.conj()).real.sum()).backward()
    errs = {"out": rel(ref, out), "last_state": rel(ref_last, last)}
    for k, v in mine.items():
        if isinstance(v, torch.Tensor):
            errs["d" + k] = rel(ref_kw[k].grad, v.grad) if v.grad is not None else float("nan")
    tol = TOL[dtype]
    ok = all(e < tol for e in errs.values())
    worst = max(errs, key=lambda k: errs[k] if not math.isnan(errs[k]) else 1e9)
    log(f"{'ok  ' if ok else 'FAIL'} {name:58s} worst {worst}={errs[worst]:.2e} (tol {tol:.0e})"
        + ("" if ok else "  " + json.dumps({k: f"{v:.2e}" for k, v in errs.items()})))
    return ok, errs


def run_check(log, quick=False, only=None, shard=None):
    f32, bf16, f16 = torch.float32, torch.bfloat16, torch.float16
    cases = []
    for cplx in (False, True):
        for lay, grp in (("fixed", 1), ("variable", 1), ("grouped", 4)):
            for disc in ("euler", "zoh"):
                cases.append((f"{'c' if cplx else 'r'} {lay} {disc} b2 d64 L1000 n16 all",
                              dict(b=2, d=64, L=1000, n=16, cplx=cplx, layout=lay, groups=grp,
                                   dtype=f32, bias=True, C_bias=True, h0=True, disc=disc)))
    cases += [
        ("r variable plain b3 d40 L333 n5", dict(b=3, d=40, L=333, n=5, dtype=f32, extras=False)),
        ("r grouped g8 bias b2 d128 L4096 n16", dict(b=2, d=128, L=4096, n=16, layout="grouped",
                                                    groups=8, dtype=f32, bias=True)),
        ("c grouped g8 bias zoh b1 d64 L2047 n16", dict(b=1, d=64, L=2047, n=16, cplx=True,
                                                       layout="grouped", groups=8, dtype=f32,
                                                       bias=True, disc="zoh")),
        ("r variable b1 d32 L16384 n16", dict(b=1, d=32, L=16384, n=16, dtype=f32, h0=True)),
        ("c variable b1 d16 L16384 n16", dict(b=1, d=16, L=16384, n=16, cplx=True, dtype=f32)),
        ("r variable n64 b2 d32 L1500", dict(b=2, d=32, L=1500, n=64, dtype=f32)),
        ("r variable bf16 b2 d64 L1000 n16", dict(b=2, d=64, L=1000, n=16, dtype=bf16)),
        ("c grouped bf16 bias b2 d64 L999 n16", dict(b=2, d=64, L=999, n=16, cplx=True,
                                                    layout="grouped", groups=4, dtype=bf16,
                                                    bias=True)),
        ("r grouped fp16 bias b2 d64 L1000 n16", dict(b=2, d=64, L=1000, n=16, layout="grouped",
                                                     groups=8, dtype=f16, bias=True)),
        # lengths divisible by 16: 16-byte vector loads, the v3 backward's 16-byte scratch stores
        ("r variable bf16 b2 d64 L1024 n16", dict(b=2, d=64, L=1024, n=16, dtype=bf16, h0=True)),
        ("c grouped bf16 bias zoh b2 d64 L1024 n16", dict(b=2, d=64, L=1024, n=16, cplx=True,
                                                         layout="grouped", groups=4, dtype=bf16,
                                                         bias=True, disc="zoh")),
    ]
    if quick:  # one of each kind: 12 cases
        cases = [c for i, c in enumerate(cases)
                 if i in (0, 3, 5, 7, 8, 11, 12, 14, 16, 19, 21, 22)]
    results, all_ok = {}, True
    for i, (name, spec) in enumerate(cases):
        if only and not any(name.startswith(o) for o in only):
            continue
        if shard and i % shard[1] != shard[0]:
            continue
        ok, errs = check_case(name, inputs(**spec, seed=i), log)
        results[name] = errs
        all_ok &= ok
    log(f"check: {'ALL PASS' if all_ok else 'FAILURES'} ({len(cases)} cases)")
    return all_ok, results


def bench_ms(fn, rep=200):
    import triton

    return triton.testing.do_bench(fn, warmup=25, rep=rep, return_mode="median")


def fwd_bwd_fn(scan, kw):
    """A closure running forward and backward (torch.autograd.grad: no accumulation)."""
    leaves = [v for v in kw.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    with torch.no_grad():
        out = scan(kw)
    dout = torch.randn_like(out)

    def run():
        o = scan(kw)
        torch.autograd.grad(o, leaves, dout)
    return run


def wall_ms(fn):
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1e3


def peak_mb(fn):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def mamba_scan():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError as e:
        print(f"mamba_ssm not importable: {e}")
        return None
    return lambda kw: selective_scan_fn(kw["u"], kw["delta"], kw["A"], kw["B"], kw["C"], kw.get("D"),
                                        kw.get("z"), kw.get("delta_bias"), kw["delta_softplus"])


def backend_scan(name):
    """A scan closure on a backend name or instance."""
    def f(kw):
        return ssmzoo.selective_scan(**kw, backend=name)
    return f


# the Triton backend every check and bench row runs: the default tuning, or the command line's
TRITON: list = ["triton"]


def floors(b, d, L, n, cplx, bwd):
    elems = b * d * L
    bytes_fwd = elems * 2 * 4 + b * n * L * 2 * 2 * (2 if cplx else 1)  # u, delta, z, out; B, C
    bytes_bwd = elems * 2 * 7 + b * n * L * 4 * 4 * (2 if cplx else 1)
    byts = bytes_fwd + (bytes_bwd if bwd else 0)
    sfu = 132 * 16 * 1.98e9
    mufu = elems * n * (3 if cplx else 1) * (1 + (3 if bwd else 0))  # backward: ~3 per update
    return byts, byts / 3.0e12 * 1e3, mufu / sfu * 1e3


CASES = [  # name, (b, d, L, n), complex, groups (0: variable B/C), B_bias
    ("8x2048x4096 n16 real", (8, 2048, 4096, 16), False, 0, False),
    ("8x2048x4096 n16 complex", (8, 2048, 4096, 16), True, 0, False),
    ("8x4096x2048 n16 real", (8, 4096, 2048, 16), False, 0, False),
    ("4x1024x16384 n16 real", (4, 1024, 16384, 16), False, 0, False),
    ("B2S6 g8 bias 8x2048x4096 real", (8, 2048, 4096, 16), False, 8, True),
    ("B2S6 g8 bias 8x2048x4096 complex", (8, 2048, 4096, 16), True, 8, True),
]


def run_bench(log, reference=True):
    rows = []
    mamba = mamba_scan()
    for name, (b, d, L, n), cplx, groups, bias in CASES:
        kw = inputs(b, d, L, n, cplx=cplx, layout="grouped" if groups else "variable",
                    groups=max(groups, 1), dtype=torch.bfloat16, bias=bias, grad=True)
        peers = [("triton", backend_scan(TRITON[0]))]
        if mamba is not None:
            peers.append(("mamba_ssm", backend_scan("cuda") if bias else mamba))
        if reference and not rows:
            peers.append(("reference", backend_scan("reference")))
        res = {}
        for peer, scan in peers:
            try:
                fb = fwd_bwd_fn(scan, kw)
            except ssmzoo.errors.BackendUnavailableError as e:  # e.g. cuda refuses complex grouped
                log(f"{name}: {peer} skipped: {e}")
                continue
            if peer == "reference":  # seconds per call: one warm-up and one timed run each
                with torch.no_grad():
                    ms_f = wall_ms(lambda s=scan, k=kw: s(k))
                ms_fb = wall_ms(fb)
            else:
                with torch.no_grad():
                    ms_f = bench_ms(lambda s=scan, k=kw: s(k))
                ms_fb = bench_ms(fb)
            mem = peak_mb(fb)
            res[peer] = (ms_f, ms_fb, mem)
        for peer, (ms_f, ms_fb, mem) in res.items():
            byts_f, bfl_f, efl_f = floors(b, d, L, n, cplx, False)
            byts_b, bfl_b, efl_b = floors(b, d, L, n, cplx, True)
            m = res.get("mamba_ssm")
            row = dict(case=name, peer=peer, fwd_ms=ms_f, fwdbwd_ms=ms_fb, peak_mb=mem,
                       fwd_gbs=byts_f / ms_f / 1e6, fwdbwd_gbs=byts_b / ms_fb / 1e6,
                       fwd_ratio=ms_f / m[0] if m else None, fwdbwd_ratio=ms_fb / m[1] if m else None,
                       fwd_floor_ms=max(bfl_f, efl_f), fwdbwd_floor_ms=max(bfl_b, efl_b))
            rows.append(row)
    hdr = (f"{'case':34s} {'peer':10s} {'fwd ms':>8s} {'x mamba':>7s} {'f+b ms':>8s} {'x mamba':>7s}"
           f" {'peak MB':>8s} {'fwd GB/s':>8s} {'f+b GB/s':>8s} {'floor f':>7s} {'floor fb':>8s}")
    log(hdr)
    for r in rows:
        fr = f"{r['fwd_ratio']:.2f}" if r["fwd_ratio"] is not None else "-"
        br = f"{r['fwdbwd_ratio']:.2f}" if r["fwdbwd_ratio"] is not None else "-"
        log(f"{r['case']:34s} {r['peer']:10s} {r['fwd_ms']:8.3f} {fr:>7s} {r['fwdbwd_ms']:8.3f} {br:>7s}"
            f" {r['peak_mb']:8.0f} {r['fwd_gbs']:8.0f} {r['fwdbwd_gbs']:8.0f} {r['fwd_floor_ms']:7.3f}"
            f" {r['fwdbwd_floor_ms']:8.3f}")
    return rows


SWEEP_CASE = (8, 2048, 4096, 16)  # (batch, dim, length, d_state) of the sweep


def sweep_tunings(cplx: bool):
    """(name, tuning) rows of the sweep: the default first (every row is checked against it) and
    again last (clock drift check); between them the alternatives measurement has not yet ruled
    out (docs/developer/selective-scan-notes.md, "v3.1", "v3.2")."""
    from ssmzoo_kernels.selective_scan.tuning import DEFAULT, KernelConfig

    if cplx:
        rows = [("bwd (32, 8, 1)", DEFAULT.replace(bwd_complex=KernelConfig(32, 8, 1)))]
    else:
        rows = [("tl.store stores", DEFAULT.replace(asm_stores=False)),
                ("maxnreg 168", DEFAULT.replace(maxnreg=168)),
                ("bwd (32, 32, 4)", DEFAULT.replace(bwd_real=KernelConfig(32, 32, 4))),
                ("sums state by state", DEFAULT.replace(sum_scratch=False))]
    return [("default", DEFAULT), *rows, ("saved states", DEFAULT.replace(save_states=True)),
            ("default again", DEFAULT)]


def run_sweep(log):
    """Each tuning of :func:`sweep_tunings` on the main real and complex cases (bf16), through
    the public function: forward, forward+backward (the backward is their difference) and peak
    memory; every row's output and gradients checked against the default's."""
    from ssmzoo_kernels.triton_backend import TritonBackend

    out = []
    t_start = time.perf_counter()
    for cplx in (False, True):
        kw = inputs(*SWEEP_CASE, cplx=cplx, dtype=torch.bfloat16)
        leaves = [k for k, v in kw.items() if isinstance(v, torch.Tensor) and v.requires_grad]
        dout = torch.randn_like(kw["u"])
        want = None
        for name, tuning in sweep_tunings(cplx):
            scan = backend_scan(TritonBackend(tuning))
            try:
                o = scan(kw)
                got = dict(zip(["out", *leaves], [o, *torch.autograd.grad(
                    o, [kw[k] for k in leaves], dout)]))
                want = want or {k: v.float().clone() for k, v in got.items()}
                errs = {k: rel(want[k], got[k].float()) for k in want}
                ms_f = bench_ms(lambda f=scan, k=kw: f(k), rep=100)
                fb = fwd_bwd_fn(scan, kw)
                ms_fb, mb = bench_ms(fb, rep=100), peak_mb(fb)
            except Exception as e:  # a shape that does not compile (resources) is reported
                log(f"sweep {'complex' if cplx else 'real'} {name}: {type(e).__name__} "
                    f"{str(e)[:160]}")
                continue
            worst = max(errs, key=errs.get)
            out.append(dict(cplx=cplx, name=name, tuning=repr(tuning), fwd_ms=ms_f,
                            fwdbwd_ms=ms_fb, bwd_ms=ms_fb - ms_f, peak_mb=mb,
                            rel_diff=errs[worst], worst=worst))
            log(f"sweep {'complex' if cplx else 'real   '} {name:22s} fwd {ms_f:7.3f} ms  "
                f"f+b {ms_fb:7.3f} ms  bwd {ms_fb - ms_f:7.3f} ms  peak {mb:6.0f} MiB  (rel. "
                f"diff to the default: {errs[worst]:.1e} in {worst})  "
                f"[{time.perf_counter() - t_start:.0f} s]")
    return out


SEGMENT_CASES = ((4, 1024, 16384, 16), (8, 2048, 4096, 16))
SEGMENT_SHAPES = ((32, 32, 4), (16, 32, 2), (16, 32, 4), (64, 32, 4))


def run_segments(log):
    """The forward's time segments (two passes) against its launch shape on the long-sequence case
    (few channels: 512 warps without segments) and the main case: ms of the forward alone (bf16,
    no gradient) for each (block_d, block_t, warps) and segment count; 0 is the automatic
    choice (``Tuning.target_warps``)."""
    from ssmzoo_kernels.selective_scan.tuning import DEFAULT, KernelConfig
    from ssmzoo_kernels.triton_backend import TritonBackend

    out = []
    for shape in SEGMENT_CASES:
        kw = inputs(*shape, dtype=torch.bfloat16)
        want = None
        for bd, bt, w in SEGMENT_SHAPES:
            for seg in (0, 1, 2, 4, 8, 16):
                cfg = KernelConfig(bd, bt, w, seg)
                scan = backend_scan(TritonBackend(DEFAULT.replace(fwd_real=cfg)))
                try:
                    with torch.no_grad():
                        got = scan(kw).float()
                    want = got if want is None else want
                    err = rel(want, got)
                    ms = bench_ms(lambda f=scan, k=kw: f(k), rep=100)
                except Exception as e:  # a shape that does not compile
                    log(f"segments {shape} {cfg}: {type(e).__name__} {str(e)[:120]}")
                    continue
                out.append(dict(case=shape, block_d=bd, block_t=bt, warps=w, segments=seg,
                                ms=ms, rel_diff=err))
                log(f"segments {'x'.join(map(str, shape))} BD={bd:3d} BT={bt} warps={w}"
                    f" segments={seg if seg else 'auto':8}: {ms:.3f} ms (rel. diff {err:.1e})")
    return out


def _shard(text: str) -> tuple[int, int]:
    """``I/N`` with 0 <= I < N, for --shard."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N (e.g. 3/8), got {text!r}")
    return i, n


def tuning_from(args):
    """The command line's tuning: the default with the flags' changes."""
    from ssmzoo_kernels.selective_scan.tuning import DEFAULT

    changes = {"sum_scratch": not args.no_sum_scratch, "asm_stores": not args.no_asm_stores,
               "save_states": args.save_states, "maxnreg": args.maxnreg}
    return DEFAULT.replace(**changes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["check", "sweep", "segments", "bench", "all"])
    ap.add_argument("--json", type=Path, help="write every number here")
    ap.add_argument("--shard", type=_shard, help="check: I/N runs the cases whose index is I"
                    " modulo N (run N processes side by side: the compiles dominate)")
    ap.add_argument("--no-reference", action="store_true", help="skip timing the reference")
    ap.add_argument("--quick", action="store_true", help="check: 12 of the cases")
    ap.add_argument("--only", help="check: the cases whose names start with one of these "
                    "comma-separated prefixes")
    ap.add_argument("--no-sum-scratch", action="store_true",
                    help="backward: sum variable dB/dC over channels per state")
    ap.add_argument("--no-asm-stores", action="store_true", help="backward: stores by tl.store")
    ap.add_argument("--maxnreg", type=int, help="backward: register cap passed to ptxas")
    ap.add_argument("--save-states", action="store_true",
                    help="the forward saves the chunk-start states for the backward")
    args = ap.parse_args(argv)
    import triton
    from ssmzoo_kernels.triton_backend import TritonBackend

    tuning = tuning_from(args)
    TRITON[0] = TritonBackend(tuning)
    print(f"tuning {tuning}", flush=True)
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | triton {triton.__version__}"
          f" | {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    report, ok = {}, True

    def log(s):
        print(s, flush=True)

    if args.what in ("check", "all"):
        ok, report["check"] = run_check(log, quick=args.quick, shard=args.shard,
                                        only=args.only.split(",") if args.only else None)
    if args.what in ("sweep", "all"):
        report["sweep"] = run_sweep(log)
    if args.what == "segments":
        report["segments"] = run_segments(log)
    if args.what in ("bench", "all"):
        report["bench"] = run_bench(log, reference=not args.no_reference)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
