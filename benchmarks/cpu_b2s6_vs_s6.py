"""CPU cost of B2S6 against S6 inside the Mamba block: forward + backward of a small LM.

    python benchmarks/cpu_b2s6_vs_s6.py [--batch 16] [--length 512] [--repeats 5] [--threads N]
                                        [--device cpu|cuda] [--backend auto|reference|numba]

Times ``lm(mixer=mamba(core=CORE), d_model=64, n_layers=2, vocab_size=256)`` for each core on the
same token batch (float32, the scan backend `auto` picks unless --backend names one) and prints the median time per step, the ratio
to S6, and the device, versions, thread count, dtype, backend and shape beside the figures. The B2S6 paper
measured B2S6 2.7% slower than S6 on GPU (its own pure-PyTorch code); the target here is <= 1.5x.
Timings on a shared machine are noisy: run with the machine otherwise idle to quote them.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import ssmzoo

CORES = ("s6", "b2s6", "b2s6(bias=false)", "b2s6(complex=false)")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _one_step(model: torch.nn.Module, ids: torch.Tensor) -> float:
    """Seconds of one forward + backward (next-token cross-entropy)."""
    model.zero_grad(set_to_none=True)
    _sync(ids.device)
    start = time.perf_counter()
    logits = model(ids)
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    _sync(ids.device)
    return time.perf_counter() - start


def time_steps(specs: list[str], ids: torch.Tensor, repeats: int) -> list[tuple[float, int]]:
    """Median seconds of one forward + backward for each model, and its parameter count.

    The models take turns (one step each per round), so that a machine whose load drifts during
    the run slows every model alike; the first round warms up and is not counted.
    """
    models = []
    for spec in specs:
        torch.manual_seed(0)
        models.append(ssmzoo.build_model(spec).to(ids.device))
    times: list[list[float]] = [[] for _ in models]
    for r in range(repeats + 1):
        for i, model in enumerate(models):
            seconds = _one_step(model, ids)
            if r:
                times[i].append(seconds)
    return [(statistics.median(t), sum(p.numel() for p in m.parameters()))
            for t, m in zip(times, models)]


def _only_backend(name: str) -> None:
    """Make ``auto`` pick ``name`` for every selective scan (the others step out of auto)."""
    from ssmzoo.registry import get_registry

    backends = get_registry().backends
    if name not in backends:
        raise SystemExit(f"--backend {name!r}: not one of {sorted(backends)}")
    for other, backend in backends.items():
        if other != name:
            backend.call_priority = lambda op, call: None  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-layers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--cores", nargs="*", default=list(CORES))
    ap.add_argument("--device", default="cpu", help="cpu (the measured case) or cuda")
    ap.add_argument("--backend", default="auto",
                    help="the scan backend every model uses (auto: what the library picks)")
    args = ap.parse_args()
    if args.backend != "auto":
        _only_backend(args.backend)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ids = torch.randint(0, 256, (args.batch, args.length), device=args.device)
    where = (torch.cuda.get_device_name(ids.device) if ids.device.type == "cuda"
             else platform.processor() or platform.machine())
    print(f"# ssmzoo {ssmzoo.__version__}, torch {torch.__version__}, python "
          f"{platform.python_version()}, {where}, "
          f"{torch.get_num_threads()} threads, float32, batch {args.batch}, length {args.length}, "
          f"d_model {args.d_model}, n_layers {args.n_layers}, scan backend {args.backend}, "
          f"median of {args.repeats}")
    specs = [f"lm(mixer=mamba(core={core}), d_model={args.d_model}, n_layers={args.n_layers}, "
             "vocab_size=256)" for core in args.cores]
    results = time_steps(specs, ids, args.repeats)
    base = results[0][0]
    width = max(24, *(len(c) for c in args.cores))
    print(f"{'core':<{width}} {'params':>8} {'fwd+bwd ms':>11} {'vs ' + args.cores[0]:>8}")
    for core, (seconds, params) in zip(args.cores, results):
        print(f"{core:<{width}} {params:>8} {seconds * 1e3:>11.1f} {seconds / base:>8.2f}")


if __name__ == "__main__":
    main()
