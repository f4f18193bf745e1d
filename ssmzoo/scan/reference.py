"""The ``reference`` backend: pure PyTorch, any device, every feature, differentiable by autograd."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ssmzoo.scan.backend import ScanBackend, SelectiveScanCall, SSDCall

if TYPE_CHECKING:
    from torch import Tensor


class ReferenceBackend(ScanBackend):
    """Pure-PyTorch scans: the chunked selective scan and the chunked SSD of this package.

    Runs every call on every device; ``auto`` picks it on a CPU, and on a GPU only after the
    kernels (``priority`` 100 there).
    """

    name: ClassVar[str] = "reference"
    description: ClassVar[str] = "pure PyTorch, any device: chunked scan and chunked SSD"
    ops: ClassVar[tuple[str, ...]] = ("selective_scan", "ssd_scan")

    def priority(self, device_type: str) -> int | None:
        return 0 if device_type == "cpu" else 100

    def supports_selective_scan(self, call: SelectiveScanCall) -> tuple[bool, str]:
        return True, ""

    def supports_ssd_scan(self, call: SSDCall) -> tuple[bool, str]:
        return True, ""

    def selective_scan(self, call: SelectiveScanCall) -> Tensor | tuple[Tensor, Tensor]:
        from ssmzoo.scan.chunked import selective_scan_chunked

        return selective_scan_chunked(
            call.u, call.delta, call.A, call.B, call.C, call.D, call.z, call.delta_bias,
            call.delta_softplus, call.return_last_state, B_bias=call.B_bias,
            C_bias=call.C_bias, initial_state=call.initial_state,
            discretization=call.discretization,
        )

    def ssd_scan(self, call: SSDCall) -> Tensor | tuple[Tensor, Tensor]:
        from ssmzoo.scan.ssd import ssd_chunked

        return ssd_chunked(
            call.x, call.dt, call.A, call.B, call.C, call.chunk_size, call.D, call.z,
            call.dt_bias, call.initial_states, call.dt_softplus, call.dt_limit,
            call.return_final_states,
        )
