"""Compiled CPU selective scan (Numba): one fused pass per channel, forward and backward.

:func:`selective_scan_cpu` runs a validated :class:`~ssmzoo.scan.backend.SelectiveScanCall`;
importing this package imports Numba (the backend in :mod:`ssmzoo_kernels.cpu_backend` does not).
"""

from ssmzoo_kernels.cpu.function import selective_scan_cpu

__all__ = ["selective_scan_cpu"]
