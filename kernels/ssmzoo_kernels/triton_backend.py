"""The ``triton`` scan backend: this package's Triton kernels for ``selective_scan`` and ``ssd_scan``.

Nothing here imports Triton at import time: ``available`` tries the import, and each op imports
its kernels on first use. The selective scan runs the fused forward and backward kernels of
:mod:`ssmzoo_kernels.selective_scan` (the whole surface: real and complex A, fixed, variable and
grouped B/C, biases, D, z, initial and last state, Euler and ZOH); ``ssd_scan`` delegates to
:mod:`ssmzoo_kernels.ssd`. On a CPU the kernels run only under ``TRITON_INTERPRET=1`` (slow: for
tests), and ``auto`` never picks them there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ssmzoo.scan.backend import ScanBackend, SelectiveScanCall, SSDCall
from ssmzoo_kernels._env import interpreting

if TYPE_CHECKING:
    from torch import Tensor

    from ssmzoo_kernels.selective_scan.tuning import Tuning
    from ssmzoo_kernels.ssd.tuning import SSDTuning

INSTALL = "pip install 'ssmzoo[triton]'"
MAX_D_STATE = 64  # = selective_scan.function.MAX_D_STATE: states and gradient sums in registers


def _device_ok(device) -> tuple[bool, str]:
    if device.type == "cuda" or (device.type == "cpu" and interpreting()):
        return True, ""
    return False, (f"tensors are on {device.type}; the Triton kernels need CUDA tensors "
                   "(or CPU tensors under TRITON_INTERPRET=1)")


class TritonBackend(ScanBackend):
    """Fused Triton kernels, forward and backward, states in registers, recomputed in the backward."""

    name: ClassVar[str] = "triton"

    def __init__(self, tuning: Tuning | None = None, ssd_tuning: SSDTuning | None = None) -> None:
        """``tuning``, ``ssd_tuning``: the selective-scan and SSD kernels' launch choices (None:
        the measured defaults, ``ssmzoo_kernels.selective_scan.tuning.DEFAULT`` and
        ``ssmzoo_kernels.ssd.tuning.DEFAULT``). An instance with other choices runs through the
        public functions as ``ssmzoo.selective_scan(..., backend=TritonBackend(t))``."""
        self.tuning, self.ssd_tuning = tuning, ssd_tuning
    description: ClassVar[str] = ("Triton kernels: fused selective scan (S6, B2S6; forward and "
                                  "backward) and chunked SSD")
    ops: ClassVar[tuple[str, ...]] = ("selective_scan", "ssd_scan")

    def available(self) -> tuple[bool, str]:
        try:
            import triton  # noqa: F401
        except ImportError as e:
            return False, f"triton is not installed ({e}): {INSTALL}"
        if interpreting():
            return True, ""
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA device is visible to torch (and TRITON_INTERPRET is not set)"
        return True, ""

    def priority(self, device_type: str) -> int | None:
        # After mamba_ssm's CUDA kernel (10) until benchmarks/gpu_selective_scan.py shows it faster.
        return 20 if device_type == "cuda" else None

    def op_priority(self, op: str, device_type: str) -> int | None:
        # The SSD kernels ran at 0.42-0.95x of mamba_ssm's Triton SSD (its median over eight
        # processes) in all 8 cases on an H100, with less memory in 7 (docs/benchmarks.md): ahead
        # of mamba_ssd (10) for ssd_scan.
        if op == "ssd_scan" and device_type == "cuda":
            return 5
        return self.priority(device_type)

    def call_priority(self, op: str, call: SelectiveScanCall | SSDCall) -> int | None:
        # B2S6's biases: mamba_ssm's kernel needs extra scans for them (by linearity), and these
        # kernels add them inside: 0.50x its forward and 0.55x its forward+backward time on an H100
        # (g8 + B_bias, docs/benchmarks.md). So ahead of 'cuda' (10) for such calls.
        if (isinstance(call, SelectiveScanCall) and call.device.type == "cuda"
                and (call.B_bias is not None or call.C_bias is not None)):
            return 5
        return self.op_priority(op, call.device.type)

    def limitations(self) -> list[str]:
        return [
            "CUDA tensors (CPU only under TRITON_INTERPRET=1, for tests)",
            "float32/float16/bfloat16 inputs, float32 accumulation (no float64)",
            f"d_state <= {MAX_D_STATE}",
            "auto order: for selective_scan, 'cuda' (mamba_ssm) first when it can run the "
            "call, except calls with B_bias/C_bias, which run faster here; for ssd_scan, "
            "this backend first (timings: docs/benchmarks.md)",
        ]

    def supports_selective_scan(self, call: SelectiveScanCall) -> tuple[bool, str]:
        import torch

        ok, why = _device_ok(call.device)
        if not ok:
            return ok, why
        for name, t in call.tensors().items():
            if t.device != call.device:
                return False, f"argument {name!r} is on {t.device}, u is on {call.device}"
            if t.dtype in (torch.float64, torch.complex128):
                return False, (f"argument {name!r} is {t.dtype}; the Triton kernels compute in "
                               "float32 (use backend='reference' for float64)")
        if call.is_complex:
            for name in ("B", "C"):
                t = getattr(call, name)
                if t.dim() >= 3 and t.is_complex():
                    return False, (f"variable {name} is complex; pass it as a real tensor with "
                                   "real and imaginary parts interleaved along time (2·length)")
        if call.d_state > MAX_D_STATE:
            return False, f"d_state {call.d_state} > {MAX_D_STATE} is not supported by the kernels"
        return True, ""

    def selective_scan(self, call: SelectiveScanCall) -> Tensor | tuple[Tensor, Tensor]:
        from ssmzoo_kernels.selective_scan import DEFAULT, selective_scan_triton

        return selective_scan_triton(call, self.tuning or DEFAULT)

    def supports_ssd_scan(self, call: SSDCall) -> tuple[bool, str]:
        try:
            from ssmzoo_kernels.ssd import supports_ssd
        except ImportError as e:
            return False, f"the Triton SSD kernels could not be imported: {e}"
        return supports_ssd(call)

    def ssd_scan(self, call: SSDCall) -> Tensor | tuple[Tensor, Tensor]:
        from ssmzoo_kernels.ssd import ssd_scan_triton

        return ssd_scan_triton(call, self.ssd_tuning)
