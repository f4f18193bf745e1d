"""Per-gradient error of each Triton SSD variant and of mamba_ssm's Triton SSD against float64.

    python benchmarks/gpu_ssd_errors.py [--case 3]

Runs one case of ``tests/kernels/test_ssd_triton.py``'s GPU grid (same inputs, same seed, same
cotangents) through every variant of :mod:`ssmzoo_kernels.ssd` and through ``mamba_ssd`` when
mamba_ssm is importable, and prints the relative RMS error of the output, the final state and
every gradient against the float64 reference: the table that the grid's peer tolerance
(2x mamba_ssm's own error) is checked against, variant by variant.

Without a GPU, ``--peer-source .gpu/mamba_src`` (the archive that ``shared/gpu/mamba_ssm.sh
prepare`` unpacks) runs mamba_ssm's Triton SSD in Triton's interpreter beside ours: its package is
entered without its CUDA extension, its autotuner takes the first config, CUDA device queries are
answered for an H100, and the interpreter's bf16 dot (which multiplies the bit patterns) widens
its operands to float32 first, which is exact. Slow: case 3 takes about 10 minutes a row.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from pathlib import Path

import torch

import ssmzoo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's case helpers
from tests.helpers import rel_rms
from tests.kernels.test_ssd_triton import GPU_CASES, V2, VARIANTS, _inputs

EXTRA = {"fused+input, B scaled": dict(fused_state=True, states="input", fused_scale="B"),
         "fused+input+stable, B scaled": dict(fused_state=True, states="input", dcum="stable",
                                             fused_scale="B")}


def _interpreted_peer(src: Path) -> None:
    """Make mamba_ssm's Triton SSD (source tree ``src``) runnable on CPU tensors, interpreted."""
    import contextlib
    import importlib.machinery
    import types

    import numpy as np
    import ssmzoo_kernels.cuda as cuda_backends
    import triton.language as tl
    import triton.runtime.autotuner as autotuner
    from triton.runtime import interpreter

    pkg = types.ModuleType("mamba_ssm")  # its __init__ would import the CUDA extension
    pkg.__path__ = [str(src / "mamba_ssm")]
    pkg.__spec__ = importlib.machinery.ModuleSpec("mamba_ssm", None, is_package=True)
    sys.modules["mamba_ssm"] = pkg
    autotuner.Autotuner._bench = lambda self, *a, config=None, **k: [0.0, 0.0, 0.0]
    torch.cuda.device = lambda index: contextlib.nullcontext()
    torch.cuda.get_device_properties = lambda d: types.SimpleNamespace(multi_processor_count=132)
    dot = interpreter.InterpreterBuilder.create_dot

    def widened(h):
        if h.dtype.scalar == tl.bfloat16:  # stored as uint16: the float32 with the same top bits
            return interpreter.TensorHandle((h.data.astype(np.uint32) << 16).view(np.float32),
                                            tl.float32)
        return h

    interpreter.InterpreterBuilder.create_dot = (
        lambda self, a, b, d, *rest: dot(self, widened(a), widened(b), d, *rest))
    cuda_backends._cuda_device = lambda: (True, "")
    cuda_backends.MambaSSDBackend.supports_ssd_scan = lambda self, call: (True, "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", type=int, default=3)
    ap.add_argument("--length", type=int, help="override the case's length (a quick CPU try)")
    ap.add_argument("--only", help="comma-separated substrings: run only the rows they match")
    ap.add_argument("--peer-source", type=Path,
                    help="no GPU: mamba_ssm's source tree, to run its SSD interpreted")
    args = ap.parse_args()
    if args.peer_source:
        _interpreted_peer(args.peer_source)
    b, l, h, p, g, n, q, dtype, opts = GPU_CASES[args.case]
    l = args.length or l
    torch.manual_seed(args.case)
    inputs = _inputs(b, l, h, p, g, n, dtype, **opts)
    kw = dict(chunk_size=q, dt_softplus=True, dt_limit=(0.0, math.inf), return_final_states=True)
    ref_in = {k: v.detach().double().requires_grad_() for k, v in inputs.items()}
    ref_out, ref_fin = ssmzoo.ssd_scan(**ref_in, **kw, backend="reference")
    gen = torch.Generator(device=ref_out.device).manual_seed(0)
    go = torch.randn(ref_out.shape, generator=gen, device=ref_out.device, dtype=torch.float64)
    gf = torch.randn(ref_fin.shape, generator=gen, device=ref_out.device, dtype=torch.float64)
    names = list(inputs)
    ref = dict(zip(names, torch.autograd.grad((ref_out * go).sum() + (ref_fin * gf).sum(),
                                              [ref_in[k] for k in names])))
    ref["out"], ref["final"] = ref_out, ref_fin
    from ssmzoo_kernels.triton_backend import TritonBackend

    runs: dict = {"mamba_ssd": "mamba_ssd"}
    runs.update({f"triton {v}": TritonBackend(ssd_tuning=V2.replace(**s))
                 for v, s in {**VARIANTS, **EXTRA}.items()})
    runs["triton defaults"] = "triton"
    cols = ["out", "final", *names]
    print(f"case {args.case}: {GPU_CASES[args.case][:8]} | relative RMS error vs float64")
    print(f"{'run':<34}" + "".join(f"{c:>10}" for c in cols))
    if args.only:
        keys = [k.strip() for k in args.only.split(",")]
        runs = {k: v for k, v in runs.items() if any(s in k for s in keys)}
    for label, backend in runs.items():
        if backend == "mamba_ssd" and importlib.util.find_spec("mamba_ssm") is None:
            continue
        x = {k: v.detach().clone().requires_grad_() for k, v in inputs.items()}
        out, fin = ssmzoo.ssd_scan(**x, **kw, backend=backend)
        loss = (out.double() * go).sum() + (fin.double() * gf).sum()
        got = dict(zip(names, torch.autograd.grad(loss, [x[k] for k in names])))
        got["out"], got["final"] = out, fin
        print(f"{label:<34}" + "".join(f"{rel_rms(ref[c], got[c]):>10.2e}" for c in cols),
              flush=True)


if __name__ == "__main__":
    main()
