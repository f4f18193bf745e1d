"""A scan backend registered from a plugin: the sequential loops, run in float64.

Useful as an oracle while writing a unit: ``ssmzoo.selective_scan(..., backend="float64")`` (or
naming it in a test) computes the scan step by step in double precision, so a difference from
``backend="auto"`` is rounding, not a bug. It never runs unless named: ``priority`` is None.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

import ssmzoo
from ssmzoo.scan.backend import ScanBackend, SelectiveScanCall, SSDCall


def _double(t: torch.Tensor | None) -> torch.Tensor | None:
    if t is None:
        return None
    return t.to(torch.complex128 if t.is_complex() else torch.float64)


def _upcast(call: SelectiveScanCall | SSDCall) -> SelectiveScanCall | SSDCall:
    """The same call with every tensor in double precision (complex ones in complex128)."""
    return dataclasses.replace(call, **{k: _double(v) for k, v in call.tensors().items()})


class Float64Backend(ScanBackend):
    """The sequential reference loops in float64; outputs are cast back to the input dtype."""

    name: ClassVar[str] = "float64"
    description: ClassVar[str] = "the sequential loops in float64, an oracle for debugging"
    ops: ClassVar[tuple[str, ...]] = ("selective_scan", "ssd_scan")

    def priority(self, device_type: str) -> int | None:
        return None  # only when named explicitly

    def supports_selective_scan(self, call: SelectiveScanCall) -> tuple[bool, str]:
        return True, ""

    def supports_ssd_scan(self, call: SSDCall) -> tuple[bool, str]:
        return True, ""

    def selective_scan(self, call: SelectiveScanCall):
        from ssmzoo.scan.naive import selective_scan_naive

        c = _upcast(call)
        result = selective_scan_naive(
            c.u, c.delta, c.A, c.B, c.C, c.D, c.z, c.delta_bias, c.delta_softplus,
            c.return_last_state, B_bias=c.B_bias, C_bias=c.C_bias,
            initial_state=c.initial_state, discretization=c.discretization)
        if call.return_last_state:
            out, last = result
            return out.to(call.u.dtype), last
        return result.to(call.u.dtype)

    def ssd_scan(self, call: SSDCall):
        from ssmzoo.scan.naive import ssd_naive

        c = _upcast(call)
        result = ssd_naive(c.x, c.dt, c.A, c.B, c.C, c.chunk_size, c.D, c.z, c.dt_bias,
                           c.initial_states, c.dt_softplus, c.dt_limit, c.return_final_states)
        if call.return_final_states:
            out, final = result
            return out.to(call.x.dtype), final
        return result.to(call.x.dtype)


@ssmzoo.hookimpl
def ssmzoo_register_backends(registry):
    registry.backend("float64", Float64Backend())
