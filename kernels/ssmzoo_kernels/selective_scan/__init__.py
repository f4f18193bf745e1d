"""Triton kernels of the selective scan (S6 and B2S6), forward and backward.

``selective_scan_triton(call, tuning)`` runs a validated
:class:`~ssmzoo.scan.backend.SelectiveScanCall` with the launch choices of a
:class:`~ssmzoo_kernels.selective_scan.tuning.Tuning` (``DEFAULT``: what measurement chose).
Importing this package imports Triton; the backend in ``ssmzoo_kernels.triton_backend`` imports it
only when asked to run.
"""

from __future__ import annotations

from ssmzoo_kernels.selective_scan.interface import SelectiveScanTritonFn, selective_scan_triton
from ssmzoo_kernels.selective_scan.tuning import DEFAULT, KernelConfig, Tuning

__all__ = ["SelectiveScanTritonFn", "selective_scan_triton", "Tuning", "KernelConfig", "DEFAULT"]
