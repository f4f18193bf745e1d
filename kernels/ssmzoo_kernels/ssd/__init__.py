"""Triton kernels of the chunked SSD (Mamba-2's state-space duality) for ``ssmzoo.ssd_scan``.

The ``triton`` backend delegates its ``ssd_scan`` to the two functions here: :func:`supports_ssd`
says whether a call can run (and why not), :func:`ssd_scan_triton` runs it, forward and backward
on the tensor cores (shared/PAPERS.md 0.2: intra-chunk products, chunk states, the inter-chunk
recurrence, state to output). Triton is imported on the first call, not at import.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ssmzoo_kernels._env import interpreting

if TYPE_CHECKING:
    from torch import Tensor

    from ssmzoo.scan.backend import SSDCall
    from ssmzoo_kernels.ssd.tuning import SSDTuning

__all__ = ["supports_ssd", "ssd_scan_triton", "MAX_HEADDIM", "MAX_D_STATE", "MAX_CHUNK"]

MAX_HEADDIM = 128  # the backward keeps (block, headdim) tiles of x and dy in registers
MAX_D_STATE = 256  # ... and (block, d_state) tiles of B, C and their gradients
MAX_CHUNK = 1024  # one program holds a chunk's dt row while it takes the cumulative sum


def supports_ssd(call: SSDCall) -> tuple[bool, str]:
    """Whether the Triton SSD kernels can run ``call``; when not, the reason a person can act on."""
    try:
        import triton  # noqa: F401
    except ImportError as e:
        return False, f"triton is not installed ({e}): pip install 'ssmzoo[triton]'"
    import torch

    dev = call.device
    floats = (torch.float32, torch.float16, torch.bfloat16)
    for name, t in call.tensors().items():
        if t.device != dev:
            return False, f"argument {name!r} is on {t.device}, x is on {dev}"
        if name in ("x", "B", "C", "z") and t.dtype not in floats:
            return False, f"argument {name!r} has dtype {t.dtype}; expected float32/16 or bfloat16"
        if name not in ("x", "B", "C", "z") and not t.is_floating_point():
            return False, f"argument {name!r} has dtype {t.dtype}; expected a floating dtype"
    if call.headdim > MAX_HEADDIM:
        return False, f"headdim {call.headdim} > {MAX_HEADDIM} is not supported by the kernels"
    if call.d_state > MAX_D_STATE:
        return False, f"d_state {call.d_state} > {MAX_D_STATE} is not supported by the kernels"
    if not 1 <= call.chunk_size <= MAX_CHUNK:
        return False, f"chunk_size {call.chunk_size} outside 1..{MAX_CHUNK}"
    if call.batch * math.ceil(call.length / call.chunk_size) > 65535:
        return False, "batch * number of chunks > 65535 (a grid axis limit): raise chunk_size"
    if dev.type != "cuda" and not (dev.type == "cpu" and interpreting()):
        return False, (f"tensors are on {dev.type}; the Triton kernels need CUDA tensors "
                       "(or CPU tensors under TRITON_INTERPRET=1)")
    return True, ""


def ssd_scan_triton(call: SSDCall, tuning: SSDTuning | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """Run ``call`` on the Triton kernels with ``tuning`` (None: the measured default); out
    (batch, length, heads, headdim) in x's dtype, and with ``return_final_states`` the final
    states (batch, heads, headdim, d_state) in float32."""
    from ssmzoo_kernels.ssd._function import SSDTritonFn
    from ssmzoo_kernels.ssd.tuning import DEFAULT

    x = call.x
    B, C = call.B, call.C
    if B.dtype != x.dtype:
        B = B.to(x.dtype)  # tl.dot takes one operand dtype
    if C.dtype != x.dtype:
        C = C.to(x.dtype)
    D = call.D.contiguous() if call.D is not None else None
    dt_bias = call.dt_bias.contiguous() if call.dt_bias is not None else None
    out, final = SSDTritonFn.apply(
        x, call.dt, call.A.contiguous(), B, C, D, call.z, dt_bias, call.initial_states,
        int(call.chunk_size), bool(call.dt_softplus),
        (float(call.dt_limit[0]), float(call.dt_limit[1])), bool(call.return_final_states),
        tuning or DEFAULT)
    if call.return_final_states:
        return out, final
    return out
