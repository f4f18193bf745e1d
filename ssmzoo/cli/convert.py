"""``ssmzoo convert SRC DST --to hf|ssmzoo`` and ``ssmzoo formats``: checkpoints between ssmzoo
and other implementations (HF transformers, mamba_ssm; the formats plugins register)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run", "run_formats"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a checkpoint directory (HF transformers, mamba_ssm, ssmzoo)",
        description="Read the checkpoint in SRC (ssmzoo's own, HF transformers' Mamba or "
                    "Mamba-2, or mamba_ssm's; detected from its config.json) and write it to DST "
                    "in the format --to names. The logits of the written model equal the "
                    "source's; a model with no counterpart in the target format is refused "
                    "with the reason.")
    p.add_argument("src", metavar="SRC", help="a checkpoint directory")
    p.add_argument("dst", metavar="DST", help="the directory to write")
    p.add_argument("--to", required=True, metavar="FORMAT",
                   help="ssmzoo, or a writable family of `ssmzoo formats` (hf)")
    p.add_argument("--dtype", choices=("float32", "float64", "float16", "bfloat16"),
                   help="convert the weights to this dtype (default: as stored)")
    p.set_defaults(func=run)
    p = subparsers.add_parser("formats", help="the checkpoint formats ssmzoo reads and writes")
    p.set_defaults(func=run_formats)


def run(args: argparse.Namespace) -> int:
    import torch

    import ssmzoo
    from ssmzoo.models.io import checkpoint_spec

    fmt, _ = checkpoint_spec(args.src)
    model = ssmzoo.load(args.src, dtype=getattr(torch, args.dtype) if args.dtype else None)
    out = model.save(args.dst, format=args.to)
    print(f"{args.src} ({fmt}) -> {out} ({args.to})")
    return 0


def run_formats(args: argparse.Namespace) -> int:
    from ssmzoo.registry import get_registry

    print("ssmzoo             read, write  ssmzoo's own (config.json with its spec, "
          "model.safetensors)")
    for name, fmt in sorted(get_registry().checkpoint_formats.items()):
        what = "read, write" if fmt.writable else "read"
        family = f" [save(format={fmt.family!r})]" if fmt.writable else ""
        print(f"{name:<18} {what:<12} {fmt.description}{family}  (plugin {fmt.plugin})")
    return 0
