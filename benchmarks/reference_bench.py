"""Time the reference selective scan against mamba_ssm's ``selective_scan_ref`` (and the loop).

    python benchmarks/reference_bench.py                  # the acceptance shapes, this CPU
    python benchmarks/reference_bench.py --threads 2 --device cpu --repeat 5

Forward at batch 2, dim 128, length 4096, d_state 16 and forward+backward at length 1024 (real A,
variable B and C, D, z, delta_bias, softplus: mamba's Mamba-1 setting), each in a fresh
subprocess so that its peak memory can be read: the peak resident set size above the inputs on a
CPU (``ru_maxrss``), ``torch.cuda.max_memory_allocated`` on a GPU. Prints one table with the
device, torch version, thread count and date. mamba_ssm's reference is read from its source archive
as the tests do (tests/scan/mamba_ref.py); without it its rows say so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"fwd": dict(batch=2, dim=128, length=4096, d_state=16),
          "fwd+bwd": dict(batch=2, dim=128, length=1024, d_state=16)}


def _inputs(batch: int, dim: int, length: int, d_state: int, device: str, grad: bool):
    import torch

    g = torch.Generator().manual_seed(0)
    kw = dict(u=torch.randn(batch, dim, length, generator=g),
              delta=0.5 * torch.randn(batch, dim, length, generator=g) - 1.0,
              A=-torch.arange(1, d_state + 1, dtype=torch.float32).repeat(dim, 1),
              B=torch.randn(batch, d_state, length, generator=g),
              C=torch.randn(batch, d_state, length, generator=g),
              D=torch.randn(dim, generator=g), z=torch.randn(batch, dim, length, generator=g),
              delta_bias=torch.randn(dim, generator=g))
    return {k: v.to(device).requires_grad_(grad) for k, v in kw.items()}


def _impl(name: str):
    if name == "reference":
        import ssmzoo

        return lambda **kw: ssmzoo.selective_scan(**kw, backend="reference")
    if name == "loop":
        from ssmzoo.scan.naive import selective_scan_naive

        return selective_scan_naive
    sys.path.insert(0, str(ROOT))
    from tests.scan.mamba_ref import selective_scan_ref

    return selective_scan_ref()


def _child(impl: str, mode: str, device: str, threads: int, repeat: int) -> dict:
    """Runs in the subprocess: times one implementation and reads its peak memory."""
    import torch

    torch.set_num_threads(threads)
    fn = _impl(impl)
    grad = mode == "fwd+bwd"
    kw = _inputs(**SHAPES[mode], device=device, grad=grad)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def once() -> None:
        if grad:
            out = fn(**kw, delta_softplus=True)
            out.sum().backward()
        else:
            with torch.no_grad():
                fn(**kw, delta_softplus=True)
        sync()

    small = _inputs(batch=1, dim=2, length=8, d_state=2, device=device, grad=grad)
    out = fn(**small, delta_softplus=True)  # lazy imports and plugin loading happen here,
    if grad:  # not inside the measured peak
        out.sum().backward()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    once()  # warm-up (and the peak-memory run)
    peak = ((torch.cuda.max_memory_allocated() - base_cuda) / 2**20 if device.startswith("cuda")
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return {"median_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times),
            "peak_mib": peak}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--impls", default="reference,mamba_ssm")
    p.add_argument("--modes", default="fwd,fwd+bwd")
    p.add_argument("--child", nargs=2, metavar=("IMPL", "MODE"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    import torch

    threads = a.threads or torch.get_num_threads()
    if a.child:
        print(json.dumps(_child(a.child[0], a.child[1], a.device, threads, a.repeat)))
        return 0
    rows = []
    for mode in a.modes.split(","):
        for impl in a.impls.split(","):
            cmd = [sys.executable, __file__, "--child", impl, mode, "--device", a.device,
                   "--threads", str(threads), "--repeat", str(a.repeat)]
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if res.returncode:
                rows.append((mode, impl, None, res.stderr.strip().splitlines()[-1:]))
            else:
                rows.append((mode, impl, json.loads(res.stdout.strip().splitlines()[-1]), None))
    dev = (torch.cuda.get_device_name(0) if a.device.startswith("cuda")
           else f"{platform.processor() or platform.machine()} CPU")
    print(f"# selective_scan: reference vs mamba_ssm.selective_scan_ref  "
          f"({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)")
    print(f"# device {dev}, torch {torch.__version__}, {threads} threads, float32, real A, "
          "variable B/C, D, z, delta_bias, softplus")
    print(f"{'mode':8} {'shape (b, d, L, n)':20} {'impl':10} {'median ms':>10} {'min ms':>9} "
          f"{'peak MiB':>9} {'speed-up':>9}")
    base = {m: r["median_ms"] for m, i, r, _ in rows if i == "mamba_ssm" and r}
    for mode, impl, r, err in rows:
        s = SHAPES[mode]
        shape = f"({s['batch']}, {s['dim']}, {s['length']}, {s['d_state']})"
        if r is None:
            print(f"{mode:8} {shape:20} {impl:10} unavailable: {' '.join(err or [])[:80]}")
            continue
        sp = f"{base[mode] / r['median_ms']:.1f}x" if mode in base else "-"
        print(f"{mode:8} {shape:20} {impl:10} {r['median_ms']:10.1f} {r['min_ms']:9.1f} "
              f"{r['peak_mib']:9.1f} {sp:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
