"""Build the Triton selective-scan and SSD kernels for an H100 (sm_90) on a machine without a GPU.

    python benchmarks/offline_sm90.py                      # every build below
    python benchmarks/offline_sm90.py bwd bwd-asm          # some of them
    python benchmarks/offline_sm90.py --keep DIR bwd       # also write the PTX and cubin to DIR

Compiles each kernel of the main benchmark case (bf16, variable B/C, z, D, delta_bias, softplus,
d_state 16, every pointer and integer argument specialised as divisible by 16, as the launch of
(8, 2048, 4096, 16) is) with whatever Triton is installed, then reads the cubin with the
``cuobjdump`` that ships in Triton's wheel. Per build it prints registers, stack bytes (spills),
and SASS instruction counts: all, SHFL (cross-lane), BAR (barriers), STS/LDS (shared memory), STG
(global stores), MUFU (exp/sin/cos). That answers "does this compile on Triton X", "does it spill"
and "how many barriers does the store layout cost" without a device; time is another matter
(docs/developer/selective-scan-notes.md: instruction counts predicted v3 at 2.2x and it gave 1.38x).

Builds: ``bwd`` (the backward, real), ``bwd-asm`` (its inline-assembly stores),
``bwd-complex``/``bwd-complex-asm`` (complex A in (32, 8, 1) tiles), ``bwd-complex-32``
(complex, asm stores, in the default tiles: chunks of 32 steps), ``fwd`` (the forward); a
``-ypre`` suffix on a backward reads the un-gated output instead of recomputing it
(``recompute_y`` off). SSD backward kernels in the
b8 L4096 N128 tiles (bf16, 32 rows, headdim 64, d_state 128, 4 warps, stable log-decay gradient):
``ssd-dx``, ``ssd-dc`` (C . B per tile) and ``ssd-dc-cb`` (C . B read: ``SSDTuning.cb = "chunk"``).
"""

from __future__ import annotations

import argparse
import collections
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("kernels", ".")]

import triton  # noqa: E402
from ssmzoo_kernels.selective_scan import _bwd, _fwd  # noqa: E402
from ssmzoo_kernels.ssd import _bwd as ssd_bwd  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

HALF_PTRS = {"u_ptr", "delta_ptr", "B_ptr", "C_ptr", "z_ptr", "Bb_ptr", "Cb_ptr", "ypre_ptr",
             "dout_ptr", "du_ptr", "ddelta_ptr", "dz_ptr", "out_ptr"}
MAIN = dict(DSTATE=16, BN=16, IS_COMPLEX=False, B_VAR=True, C_VAR=True, HAS_D=True, HAS_Z=True,
            HAS_DBIAS=True, SOFTPLUS=True, HAS_BBIAS=False, HAS_CBIAS=False, ZOH=False, FAST=True)
COMPLEX = dict(MAIN, IS_COMPLEX=True)
SSD_HALF = {"x_ptr", "dy_ptr", "b_ptr", "c_ptr", "dx_ptr", "states_ptr"}
SSD_N128 = dict(DOT_PREC="tf32", ORDER=1, BLOCK_P=64, BLOCK_N=128, STABLE=True)


def _builds() -> dict[str, tuple]:
    """name: (kernel, constexprs, num_warps), in the defaults' tiles (tuning.py)."""
    b3 = dict(MAIN, BD=16, BT=32, SUM_SCRATCH=True, ASM=False, ASM4=False, RECOMPUTE_Y=True)
    fwd = dict(MAIN, BD=32, BT=32, HAS_H0=False, WRITE_OUT=True, STORE_LAST=False,
               STORE_STATES=False, SEG_SUMS=False, CARRY_AFTER=True, STORE_Y=False)
    k3 = _bwd.selective_scan_bwd_kernel
    return {
        "bwd": (k3, b3, 2),
        "bwd-ypre": (k3, {**b3, "RECOMPUTE_Y": False}, 2),
        "bwd-asm": (k3, {**b3, "ASM": True, "ASM4": True}, 2),
        "bwd-asm-ypre": (k3, {**b3, "ASM": True, "ASM4": True, "RECOMPUTE_Y": False}, 2),
        "bwd-complex": (k3, {**b3, **COMPLEX, "BD": 32, "BT": 8}, 1),
        "bwd-complex-asm": (k3, {**b3, **COMPLEX, "BD": 32, "BT": 8, "ASM": True, "ASM4": True},
                            1),
        "bwd-complex-32": (k3, {**b3, **COMPLEX, "ASM": True, "ASM4": True}, 2),
        "fwd": (_fwd.selective_scan_fwd_kernel, fwd, 4),
        "ssd-dx": (ssd_bwd._bwd_dx_db_kernel,
                   dict(SSD_N128, BLOCK_S=32, HAS_D=True, D_PER_CHANNEL=False), 4, SSD_HALF, 2),
        "ssd-dc": (ssd_bwd._bwd_dc_kernel, dict(SSD_N128, BLOCK_T=32, CB_ONCE=False), 4, SSD_HALF,
                   2),
        "ssd-dc-cb": (ssd_bwd._bwd_dc_kernel, dict(SSD_N128, BLOCK_T=32, CB_ONCE=True), 4,
                      SSD_HALF, 2),
    }


def compile_sm90(kernel, consts: dict, num_warps: int, half=HALF_PTRS, num_stages: int = 3):
    params = list(inspect.signature(kernel.fn).parameters)
    sig = {p: "constexpr" if p in consts else ("*bf16" if p in half else "*fp32")
           if p.endswith("_ptr") else "i32" for p in params}
    attrs = {(i,): [["tt.divisibility", 16]] for i, p in enumerate(params) if p not in consts}
    src = triton.compiler.ASTSource(
        fn=kernel, signature=sig, attrs=attrs,
        constexprs={(params.index(k),): v for k, v in consts.items() if k in params})
    return triton.compile(src, target=GPUTarget("cuda", 90, 32),
                          options={"num_warps": num_warps, "num_stages": num_stages})


def report(cubin: bytes, path: Path) -> dict[str, int]:
    path.write_bytes(cubin)
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    usage = subprocess.run([tool, "-res-usage", path], capture_output=True, text=True,
                           check=True).stdout
    sass = subprocess.run([tool, "-sass", path], capture_output=True, text=True,
                          check=True).stdout
    ops = collections.Counter(
        m.group(1).split(".")[0]
        for m in re.finditer(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", sass))
    return {"regs": int(re.search(r"REG:(\d+)", usage).group(1)),
            "stack": int(re.search(r"STACK:(\d+)", usage).group(1)),
            "sass": sum(ops.values()),
            **{k.lower(): ops[k] for k in ("SHFL", "BAR", "STS", "LDS", "STG", "MUFU")}}


def main() -> int:
    builds = _builds()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"builds (default all): {', '.join(builds)}")
    ap.add_argument("--keep", type=Path, help="write each build's PTX and cubin here")
    args = ap.parse_args()
    bad = [n for n in args.names if n not in builds]
    if bad:
        ap.error(f"unknown build {bad[0]!r}; expected one of {', '.join(builds)}")
    out = args.keep or Path(os.environ.get("TMPDIR", "/tmp"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"triton {triton.__version__}, sm_90; main case tiles")
    print(f"{'build':<20}{'regs':>6}{'stack':>7}{'SASS':>7}{'SHFL':>6}{'BAR':>5}{'STS':>5}"
          f"{'LDS':>5}{'STG':>5}{'MUFU':>6}")
    failed = 0
    for name in args.names or builds:
        kernel, consts, warps, *rest = builds[name]
        try:
            k = compile_sm90(kernel, consts, warps, *rest)
        except Exception as e:  # the compiler's own message is the finding
            failed += 1
            print(f"{name:<20}FAILED: {type(e).__name__}: {str(e).splitlines()[-1]}")
            continue
        if args.keep:
            (out / f"{name}.ptx").write_text(k.asm["ptx"])
        r = report(k.asm["cubin"], out / f"{name}.cubin")
        print(f"{name:<20}{r['regs']:>6}{r['stack']:>7}{r['sass']:>7}{r['shfl']:>6}{r['bar']:>5}"
              f"{r['sts']:>5}{r['lds']:>5}{r['stg']:>5}{r['mufu']:>6}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
