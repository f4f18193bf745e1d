"""The ``numba`` scan backend: the selective scan compiled for the CPU.

The chunked reference spends most of its time in the sequential part of the scan, which PyTorch
can only run as many small operations per step; these loops keep a channel's state in cache and
do a step in one pass (forward and backward), with the elementwise work around them left to
PyTorch. ``auto`` picks this backend first on a CPU when Numba is installed (``pip install
'ssmzoo[cpu]'``) and the call is float32/float64; half-precision calls go to the reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ssmzoo.scan.backend import ScanBackend, SelectiveScanCall

if TYPE_CHECKING:
    from torch import Tensor

INSTALL = "pip install 'ssmzoo[cpu]'"


class NumbaBackend(ScanBackend):
    """Fused CPU loops for ``selective_scan`` (every option), state recomputed in the backward."""

    name: ClassVar[str] = "numba"
    description: ClassVar[str] = "compiled CPU loops (Numba): fused selective scan, forward and backward"
    ops: ClassVar[tuple[str, ...]] = ("selective_scan",)

    def available(self) -> tuple[bool, str]:
        try:
            import numba  # noqa: F401
        except ImportError as e:
            return False, f"numba is not installed ({e}): {INSTALL}"
        return True, ""

    def priority(self, device_type: str) -> int | None:
        # Ahead of the reference (0) on a CPU: benchmarks/cpu_b2s6_vs_s6.py, docs/benchmarks.md.
        return -10 if device_type == "cpu" else None

    def limitations(self) -> list[str]:
        return [
            "CPU tensors, float32 or float64 (half precision goes to the reference)",
            "selective_scan only (ssd_scan: the reference)",
            "first call of each dtype compiles the loops (a few seconds; cached on disk after)",
        ]

    def supports_selective_scan(self, call: SelectiveScanCall) -> tuple[bool, str]:
        import torch

        if call.device.type != "cpu":
            return False, f"tensors are on {call.device.type}; the numba backend runs CPU tensors"
        if call.u.dtype not in (torch.float32, torch.float64):
            return False, (f"u is {call.u.dtype}; the numba backend computes in float32 or "
                           "float64 (the reference takes half precision)")
        for name, t in call.tensors().items():
            if t.device != call.device:
                return False, f"argument {name!r} is on {t.device}, u is on {call.device}"
        return True, ""

    def selective_scan(self, call: SelectiveScanCall) -> Tensor | tuple[Tensor, Tensor]:
        from ssmzoo_kernels.cpu import selective_scan_cpu

        return selective_scan_cpu(call)
