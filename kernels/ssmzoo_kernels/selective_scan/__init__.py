"""Triton kernels of the selective scan (S6 and B2S6), forward and backward.

``selective_scan_triton`` has the signature of ``ssmzoo.selective_scan`` (without ``backend``).
Importing this package imports Triton; the backend in ``ssmzoo_kernels.triton_backend`` imports it
only when asked to run.
"""

from __future__ import annotations

from ssmzoo_kernels.selective_scan.interface import SelectiveScanTritonFn, selective_scan_triton

__all__ = ["SelectiveScanTritonFn", "selective_scan_triton"]
