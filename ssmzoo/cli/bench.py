"""``ssmzoo bench [scan|ssd|all]``: time every available backend side by side (see ssmzoo.bench)."""

from __future__ import annotations

import argparse
import sys

from ssmzoo.errors import ConfigError

OPS = {"scan": "selective_scan", "ssd": "ssd_scan", "all": None}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="time every available scan backend side by side on the same inputs",
        description="Time each backend on the built-in cases of the chosen scan: median ms, peak "
                    "memory, GB/s, ratios to the byte/exp(/matmul) floors and to the baseline "
                    "backend (mamba_ssm's when present), and the output's error against it.")
    p.add_argument("which", nargs="?", choices=sorted(OPS), default="all",
                   help="scan (selective_scan), ssd (ssd_scan) or all (default)")
    p.add_argument("--backend", "-b", action="append", default=[], metavar="NAME",
                   help="only this backend (repeatable; default: every one implementing the op; "
                        "the reference runs GPU cases only when named)")
    p.add_argument("--case", "-c", action="append", default=[], metavar="GLOB",
                   help="cases by name or glob, e.g. 'ssd-b8-*' or '*:fwd' (repeatable)")
    p.add_argument("--mode", choices=["fwd", "fwdbwd"], help="forward only or forward+backward")
    p.add_argument("--device", choices=["cpu", "cuda"],
                   help="run the cases of this device (default: cuda when present, else cpu)")
    p.add_argument("--baseline", metavar="NAME", help="backend the others are compared with")
    p.add_argument("--repeats", type=int, help="timed calls per backend, median (20 GPU, 5 CPU)")
    p.add_argument("--warmup", type=int, help="untimed calls first (3 GPU, 1 CPU)")
    p.add_argument("--no-check", action="store_true", help="skip the output comparison")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the results as JSON to FILE (or stdout with no FILE)")
    p.add_argument("--markdown", action="store_true", help="markdown tables")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ssmzoo import bench

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("bench: --device cuda, but torch sees no CUDA device")
    gpu = device == "cuda"
    repeats = args.repeats if args.repeats is not None else (20 if gpu else 5)
    warmup = args.warmup if args.warmup is not None else (3 if gpu else 1)
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"bench: --repeats expects a positive count, got {repeats}; "
                          f"--warmup a count >= 0, got {warmup}")
    cases = bench.select(args.case or None, op=OPS[args.which], mode=args.mode,
                         device=None if args.case else device)
    if args.list:
        for c in cases:
            print(f"{c.name:<34} {c.device:<5} {c.describe()}")
        return 0
    for c in cases:
        if c.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"bench: case {c.name!r} runs on CUDA and torch sees no CUDA device "
                              "(CPU cases: ssmzoo bench --device cpu)")
    if not cases:
        raise ConfigError(f"bench: no {args.which} case for device {device} and mode "
                          f"{args.mode or 'any'} (ssmzoo bench --list)")
    env = bench.environment(device)
    ceil = bench.ceilings(device)
    reports = []
    for c in cases:
        print(f"running {c.name} ...", file=sys.stderr, flush=True)
        reports.append(bench.run_case(c, args.backend or None, repeats=repeats,
                                      warmup=warmup, baseline=args.baseline,
                                      check=not args.no_check, ceil=ceil))
    if args.json:
        data = bench.dumps(reports, env, ceil)
        if args.json == "-":
            print(data)
            return 0
        with open(args.json, "w") as f:
            f.write(data + "\n")
    print(bench.text(reports, env, ceil, markdown=args.markdown))
    return 0
