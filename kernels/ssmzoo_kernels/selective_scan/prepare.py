"""The arguments of a selective-scan call in the layout the Triton kernels read.

Time-contiguous u, Δ and z; A, fixed B/C, the biases and the initial state as contiguous float32
(complex ones as (..., 2) real pairs); a variable B/C as (batch, groups, d_state, length') in its
own dtype. Built once per call from the validated :class:`~ssmzoo.scan.backend.SelectiveScanCall`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
from einops import rearrange
from torch import Tensor

from ssmzoo.scan.backend import SelectiveScanCall
from ssmzoo_kernels.selective_scan.tuning import KernelConfig

__all__ = ["Prepared", "prepare", "block_t_of"]


def block_t_of(cfg: KernelConfig, dtype: torch.dtype) -> int:
    return cfg.block_t or max(2, 16 // torch.tensor([], dtype=dtype).element_size())


def _pow2_divisor(k: int, cap: int) -> int:
    """The largest power of two that divides k, at most cap."""
    p = 1
    while p < cap and k % (2 * p) == 0:
        p *= 2
    return p


@dataclass
class Prepared:
    """The arguments in the layout the kernels read (see the kernels' docstrings)."""

    u: Tensor
    delta: Tensor
    A: Tensor
    B: Tensor
    C: Tensor
    D: Tensor | None
    z: Tensor | None
    delta_bias: Tensor | None
    B_bias: Tensor | None
    C_bias: Tensor | None
    h0: Tensor | None
    is_complex: bool
    B_var: bool
    C_var: bool
    B_per_group: int
    C_per_group: int
    softplus: bool
    zoh: bool

    @property
    def batch(self) -> int:
        return self.u.shape[0]

    @property
    def dim(self) -> int:
        return self.u.shape[1]

    @property
    def length(self) -> int:
        return self.u.shape[2]

    @property
    def dstate(self) -> int:
        return self.A.shape[1]

    def block_d(self, cap: int) -> int:
        per_group = math.gcd(self.B_per_group, self.C_per_group)
        if per_group != self.dim:
            return _pow2_divisor(per_group, cap)
        return min(cap, max(2, triton.next_power_of_2(self.dim)))


def _time_contiguous(t: Tensor) -> Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _pairs(t: Tensor, cplx: bool) -> Tensor:
    """A fixed (dim, d_state) or (batch, dim, d_state) tensor as contiguous float32, complex ones
    as (..., 2) real pairs."""
    if cplx:
        return torch.view_as_real(t.to(torch.complex64).resolve_conj().contiguous())
    return t.float().contiguous()


def _variable(t: Tensor) -> Tensor:
    """A variable B/C as a contiguous (batch, groups, d_state, length') tensor in its own dtype
    (converting it to float32 here made the forward 2x slower: docs/developer/selective-scan-notes.md,
    "v2.4")."""
    if t.dim() == 3:
        t = rearrange(t, "b n l -> b 1 n l")  # (batch, 1, d_state, length')
    return t.contiguous()


def prepare(call: SelectiveScanCall) -> Prepared:
    """The call's tensors in the kernels' layout."""
    u, delta, A, B, C = call.u, call.delta, call.A, call.B, call.C
    D, z, delta_bias, B_bias, C_bias = call.D, call.z, call.delta_bias, call.B_bias, call.C_bias
    initial_state = call.initial_state
    cplx = A.is_complex()
    dim = u.shape[1]
    B_var, C_var = B.dim() >= 3, C.dim() >= 3
    return Prepared(
        u=_time_contiguous(u), delta=_time_contiguous(delta), A=_pairs(A, cplx),
        B=_variable(B) if B_var else _pairs(B, cplx), C=_variable(C) if C_var else _pairs(C, cplx),
        D=None if D is None else D.float().contiguous(),
        z=None if z is None else _time_contiguous(z),
        delta_bias=None if delta_bias is None else delta_bias.float().contiguous(),
        B_bias=None if B_bias is None else _pairs(B_bias, cplx),
        C_bias=None if C_bias is None else _pairs(C_bias, cplx),
        h0=None if initial_state is None else _pairs(initial_state, cplx),
        is_complex=cplx, B_var=B_var, C_var=C_var,
        B_per_group=dim // B.shape[1] if B.dim() == 4 else dim,
        C_per_group=dim // C.shape[1] if C.dim() == 4 else dim,
        softplus=bool(call.delta_softplus), zoh=call.discretization == "zoh",
    )
