"""CPU cost of B2S6 against S6 inside the Mamba block: forward + backward of a small LM.

    python benchmarks/cpu_b2s6_vs_s6.py [--batch 16] [--length 512] [--repeats 5] [--threads N]
                                        [--device cpu|cuda]

Times ``lm(mixer=mamba(core=CORE), d_model=64, n_layers=2, vocab_size=256)`` for each core on the
same token batch (float32, default scan backend) and prints the median time per step, the ratio
to S6, and the device, versions, thread count, dtype and shape beside the figures. The B2S6 paper
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


def time_step(spec: str, ids: torch.Tensor, repeats: int) -> tuple[float, int]:
    """Median seconds of one forward + backward, and the model's parameter count."""
    torch.manual_seed(0)
    model = ssmzoo.build_model(spec).to(ids.device)
    params = sum(p.numel() for p in model.parameters())
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        _sync(ids.device)
        start = time.perf_counter()
        logits = model(ids)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        _sync(ids.device)
        if i:  # the first run warms up
            times.append(time.perf_counter() - start)
    return statistics.median(times), params


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
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ids = torch.randint(0, 256, (args.batch, args.length), device=args.device)
    where = (torch.cuda.get_device_name(ids.device) if ids.device.type == "cuda"
             else platform.processor() or platform.machine())
    print(f"# ssmzoo {ssmzoo.__version__}, torch {torch.__version__}, python "
          f"{platform.python_version()}, {where}, "
          f"{torch.get_num_threads()} threads, float32, batch {args.batch}, length {args.length}, "
          f"d_model {args.d_model}, n_layers {args.n_layers}, median of {args.repeats}")
    base = None
    print(f"{'core':<24} {'params':>8} {'fwd+bwd ms':>11} {'vs s6':>6}")
    for core in args.cores:
        spec = (f"lm(mixer=mamba(core={core}), d_model={args.d_model}, n_layers={args.n_layers}, "
                "vocab_size=256)")
        seconds, params = time_step(spec, ids, args.repeats)
        base = seconds if base is None else base
        print(f"{core:<24} {params:>8} {seconds * 1e3:>11.1f} {seconds / base:>6.2f}")


if __name__ == "__main__":
    main()
