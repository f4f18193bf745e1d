"""Every launch choice of the Triton selective scan, as data: a :class:`Tuning`, passed
explicitly (the backend holds one; ``TritonBackend(tuning=...)`` runs another through the public
``ssmzoo.selective_scan(..., backend=...)``, which is how benchmarks and A/B sweeps try
alternatives). :data:`DEFAULT` is what measurement chose; how each entry was measured, on which
device and when, is in docs/developer/selective-scan-notes.md (the section named beside it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["KernelConfig", "Tuning", "DEFAULT"]


@dataclass(frozen=True)
class KernelConfig:
    """One launch's shape: channels per program, time steps per chunk (0: one 16-byte load of the
    input dtype, so that a thread's chunk is one vector load), warps per program; for the forward
    also the time segments run in parallel (two passes; 0: automatic) and the largest d_state
    whose loop is unrolled (a rolled loop above it: the unrolled complex forward at d_state 64
    took minutes to compile, "The whole grid green")."""

    block_d: int
    block_t: int = 0
    num_warps: int = 1
    segments: int = 0
    unroll_dstate: int = 16


@dataclass(frozen=True)
class Tuning:
    """The launch configurations of the forward and backward kernels, for real and complex A,
    and the kernels' switches.

    Any power-of-two block sizes are correct (block_d is capped so that a program never straddles
    two B/C groups); the switches change speed and memory, never results.
    """

    fwd_real: KernelConfig = KernelConfig(32, 32, 4)
    fwd_complex: KernelConfig = KernelConfig(32, 32, 4)
    bwd_real: KernelConfig = KernelConfig(16, 32, 2)
    bwd_complex: KernelConfig = KernelConfig(16, 32, 2)
    # forward: the carried state enters after the chunk's scan (h = X + P h_in) instead of being
    # folded into its first step
    carry_after_scan: bool = True
    # the forward splits time into segments until the grid has about this many warps (132 SMs
    # x 16)
    target_warps: int = 132 * 16
    # backward: a variable dB/dC summed over channels once per chunk through a per-program
    # scratch, instead of state by state with shuffles
    sum_scratch: bool = True
    # backward: per-state stores by inline assembly in the values' own layout (the interpreter
    # always takes tl.store)
    asm_stores: bool = True
    # the autograd forward also writes the chunk-start states for the backward, which then skips
    # its state-recomputing pass when its chunk equals the forward's; costs their memory between
    # forward and backward (268 MB at (8, 2048, 4096, 16) bf16)
    save_states: bool = False
    # with z: the backward sums the un-gated output from the states it recomputes anyway, instead
    # of reading a (batch, dim, length) copy written by its recomputing pass
    recompute_y: bool = True
    # a register cap for ptxas (None: none)
    maxnreg: int | None = None

    def fwd(self, is_complex: bool) -> KernelConfig:
        return self.fwd_complex if is_complex else self.fwd_real

    def bwd(self, is_complex: bool) -> KernelConfig:
        return self.bwd_complex if is_complex else self.bwd_real

    def replace(self, **changes: object) -> Tuning:
        """A copy with some entries changed; ``fwd=``/``bwd=`` set both real and complex."""
        both = {"fwd": ("fwd_real", "fwd_complex"), "bwd": ("bwd_real", "bwd_complex")}
        for short, (real, cplx) in both.items():
            if short in changes:
                cfg = changes.pop(short)
                changes[real] = changes[cplx] = cfg
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


# What measurement chose (docs/developer/selective-scan-notes.md): forward (32 channels, chunks
# of 32 steps, 4 warps) was the fastest shape for (8, 2048, 4096, 16) bf16 ("v2.4"); the
# carried state after the scan ("v2.2"); backward (16, 32, 2) for real and complex A with the
# scratch sums and the inline-assembly stores ("v3.1", "v3.2"); the un-gated output recomputed
# ("v3.1"); saved states off until timed ("v3").
DEFAULT = Tuning()
