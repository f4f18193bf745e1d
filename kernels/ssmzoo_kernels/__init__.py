"""Fast scan backends for ssmzoo: Triton kernels, the mamba_ssm CUDA adapter, compiled CPU loops.

Registered through the ``ssmzoo`` entry-point group like any third-party plugin. Registration
imports nothing heavy: Triton and mamba_ssm are imported when a backend is first asked whether it is
available or asked to run.
"""

from __future__ import annotations

import ssmzoo


@ssmzoo.hookimpl
def ssmzoo_register_backends(registry):
    """Register every backend this package provides (each module adds its own line)."""
    from ssmzoo_kernels.cpu_backend import NumbaBackend  # imports no numba
    from ssmzoo_kernels.cuda import CudaBackend, MambaSSDBackend  # imports nothing heavy
    from ssmzoo_kernels.triton_backend import TritonBackend  # imports no triton

    registry.backend("numba", NumbaBackend())
    registry.backend("triton", TritonBackend())
    registry.backend("cuda", CudaBackend())
    registry.backend("mamba_ssd", MambaSSDBackend())
