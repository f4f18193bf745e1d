"""Random inputs for the scan tests (importable by every backend's tests).

``selective_scan_inputs(...)`` returns the keyword arguments of one ``selective_scan`` call with
fresh random tensors; ``ssd_inputs(...)`` the same for ``ssd_scan``. Values are in the ranges the
units produce (Δ around 1e-3..1 after softplus, decays exp(ΔA) in (0, 1)), so float32 results are
well conditioned and a relative error means something.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class ScanCase:
    """One point of the selective-scan grid."""

    batch: int = 2
    dim: int = 4
    length: int = 7
    d_state: int = 3
    complex: bool = False
    B_layout: str = "variable"  # fixed | variable | grouped
    C_layout: str = "variable"
    groups: int = 2
    D: bool = True
    z: bool = True
    delta_bias: bool = True
    softplus: bool = True
    B_bias: bool = False
    C_bias: bool = False
    initial_state: bool = False
    discretization: str = "euler"
    dtype: torch.dtype = torch.float32
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = ["c" if self.complex else "r", f"B{self.B_layout[0]}", f"C{self.C_layout[0]}",
                 f"L{self.length}", self.discretization, str(self.dtype).replace("torch.", "")]
        for flag in ("D", "z", "delta_bias", "softplus", "B_bias", "C_bias", "initial_state"):
            if getattr(self, flag):
                parts.append(flag)
        return "-".join(parts)


def _bc(layout: str, case: ScanCase, gen: torch.Generator) -> torch.Tensor:
    b, d, n, l = case.batch, case.dim, case.d_state, case.length
    if layout == "fixed":
        if case.complex:
            return torch.complex(torch.randn(d, n, generator=gen, dtype=torch.float64),
                                 torch.randn(d, n, generator=gen, dtype=torch.float64))
        return torch.randn(d, n, generator=gen, dtype=torch.float64)
    L = 2 * l if case.complex else l
    if layout == "variable":
        return torch.randn(b, n, L, generator=gen, dtype=torch.float64)
    return torch.randn(b, case.groups, n, L, generator=gen, dtype=torch.float64)


def selective_scan_inputs(case: ScanCase, seed: int = 0,
                          requires_grad: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``selective_scan`` for ``case`` (real tensors in ``case.dtype``)."""
    gen = torch.Generator().manual_seed(seed)
    b, d, n, l = case.batch, case.dim, case.d_state, case.length
    f64 = torch.float64

    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return scale * torch.randn(*shape, generator=gen, dtype=f64)

    kw: dict[str, Any] = {}
    kw["u"] = rnd(b, d, l)
    if case.softplus:
        kw["delta"] = rnd(b, d, l, scale=0.5) - 1.0  # softplus -> ~0.1..1
    else:
        kw["delta"] = torch.rand(b, d, l, generator=gen, dtype=f64) * 0.5 + 0.01
    a_re = -(0.5 + torch.rand(d, n, generator=gen, dtype=f64) * 1.5)
    if case.complex:
        kw["A"] = torch.complex(a_re, rnd(d, n, scale=math.pi))
    else:
        kw["A"] = a_re
    kw["B"] = _bc(case.B_layout, case, gen)
    kw["C"] = _bc(case.C_layout, case, gen)
    if case.D:
        kw["D"] = rnd(d)
    if case.z:
        kw["z"] = rnd(b, d, l)
    if case.delta_bias:
        # without softplus a negative delta + delta_bias makes exp(delta A) > 1 and the scan
        # grows without bound over long lengths: keep the bias positive there, as delta is
        kw["delta_bias"] = (rnd(d, scale=0.3) if case.softplus
                            else torch.rand(d, generator=gen, dtype=f64) * 0.3)
    kw["delta_softplus"] = case.softplus
    for name, on in (("B_bias", case.B_bias), ("C_bias", case.C_bias)):
        if on:
            kw[name] = (torch.complex(rnd(d, n), rnd(d, n)) if case.complex else rnd(d, n))
    if case.initial_state:
        kw["initial_state"] = (torch.complex(rnd(b, d, n), rnd(b, d, n)) if case.complex
                               else rnd(b, d, n))
    kw["discretization"] = case.discretization
    kw.update(case.extra)
    # u, delta, z, B, C in the case's dtype; A, D, biases, state stay fp32/complex64 like mamba's
    # parameters (or float64 when the case is float64)
    param_real = torch.float64 if case.dtype == torch.float64 else torch.float32
    out: dict[str, Any] = {}
    for k, v in kw.items():
        if isinstance(v, torch.Tensor):
            if k in ("u", "delta", "z") or (k in ("B", "C") and v.dim() > 2):
                v = v.to(case.dtype)
            elif v.is_complex():
                v = v.to(torch.complex128 if param_real == torch.float64 else torch.complex64)
            else:
                v = v.to(param_real)
            if requires_grad:
                v.requires_grad_(True)
        out[k] = v
    return out


@dataclass(frozen=True)
class SSDCase:
    """One point of the SSD grid."""

    batch: int = 2
    length: int = 7
    heads: int = 4
    headdim: int = 3
    groups: int = 2
    d_state: int = 5
    chunk_size: int = 4
    D: str = "h"  # "" | "h" | "hp"
    z: bool = True
    dt_bias: bool = True
    softplus: bool = True
    initial_states: bool = False
    dt_limit: tuple[float, float] = (0.0, math.inf)
    dtype: torch.dtype = torch.float32

    def __str__(self) -> str:
        flags = [f"L{self.length}", f"Q{self.chunk_size}", f"g{self.groups}", f"D{self.D}",
                 str(self.dtype).replace("torch.", "")]
        for flag in ("z", "dt_bias", "softplus", "initial_states"):
            if getattr(self, flag):
                flags.append(flag)
        if self.dt_limit != (0.0, math.inf):
            flags.append(f"lim{self.dt_limit[0]}-{self.dt_limit[1]}")
        return "-".join(flags)


def ssd_inputs(case: SSDCase, seed: int = 0, requires_grad: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``ssd_scan`` for ``case``."""
    gen = torch.Generator().manual_seed(seed)
    b, l, h, p, g, n = (case.batch, case.length, case.heads, case.headdim, case.groups,
                        case.d_state)
    f64 = torch.float64

    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return scale * torch.randn(*shape, generator=gen, dtype=f64)

    kw: dict[str, Any] = {"x": rnd(b, l, h, p)}
    kw["dt"] = (rnd(b, l, h, scale=0.5) - 1.0 if case.softplus
                else torch.rand(b, l, h, generator=gen, dtype=f64) * 0.5 + 0.01)
    kw["A"] = -(0.5 + torch.rand(h, generator=gen, dtype=f64) * 1.5)
    kw["B"], kw["C"] = rnd(b, l, g, n), rnd(b, l, g, n)
    kw["chunk_size"] = case.chunk_size
    if case.D == "h":
        kw["D"] = rnd(h)
    elif case.D == "hp":
        kw["D"] = rnd(h, p)
    if case.z:
        kw["z"] = rnd(b, l, h, p)
    if case.dt_bias:
        kw["dt_bias"] = rnd(h, scale=0.3)
    if case.initial_states:
        kw["initial_states"] = rnd(b, h, p, n)
    kw["dt_softplus"] = case.softplus
    kw["dt_limit"] = case.dt_limit
    param_real = torch.float64 if case.dtype == torch.float64 else torch.float32
    out: dict[str, Any] = {}
    for k, v in kw.items():
        if isinstance(v, torch.Tensor):
            v = v.to(case.dtype if k in ("x", "dt", "B", "C", "z") else param_real)
            if requires_grad:
                v.requires_grad_(True)
        out[k] = v
    return out


def grad_inputs(kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of ``kwargs`` that require grad, by name."""
    return {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor) and v.requires_grad}


def clone_inputs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fresh leaf copies (same requires_grad), so two implementations get separate gradients."""
    return {k: (v.detach().clone().requires_grad_(v.requires_grad)
                if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}


def gradcheck_chunked(kwargs: dict[str, Any], **options: Any) -> bool:
    """torch.autograd.gradcheck of the chunked reference (output and last state, complex states
    as real pairs) over every input of ``kwargs`` that requires grad; ``options`` go to
    ``selective_scan_chunked`` (chunk_size, block_size)."""
    from ssmzoo.scan.chunked import selective_scan_chunked

    names = list(grad_inputs(kwargs))

    def f(*tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        args = dict(kwargs, **dict(zip(names, tensors)))
        out, last = selective_scan_chunked(**args, return_last_state=True, **options)
        return out, torch.view_as_real(last) if last.is_complex() else last

    return torch.autograd.gradcheck(f, [kwargs[n] for n in names], eps=1e-6, atol=1e-7)


def outputs_and_grads(fn: Any, kwargs: dict[str, Any], *, seed: int = 7,
                      **extra: Any) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``fn`` (a selective scan) on fresh leaf copies of ``kwargs`` with the last state, then
    backpropagate random cotangents (from ``seed``) of the output and the last state; returns
    out, last and the gradient of every input that requires grad."""
    kw = clone_inputs(kwargs)
    out, last = fn(**kw, return_last_state=True, **extra)
    gen = torch.Generator().manual_seed(seed)
    g_out = torch.randn(out.shape, generator=gen, dtype=out.dtype)
    g_last = torch.randn(last.shape, generator=gen, dtype=last.dtype)
    ((out * g_out).sum() + (last * g_last.conj()).real.sum()).backward()
    return out, last, {k: v.grad for k, v in grad_inputs(kw).items()}
