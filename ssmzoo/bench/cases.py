"""Benchmark cases: one scan call (shapes, dtype, options, forward or forward+backward), how to make
its inputs, and the two numbers every timing is compared with: the fewest bytes the call must move
(each input read once, each output written once) and the fewest transcendental / matrix operations.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from ssmzoo.errors import UnknownNameError

Op = Literal["selective_scan", "ssd_scan"]
Mode = Literal["fwd", "fwdbwd"]
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class UnknownCaseError(UnknownNameError):
    kind = "benchmark case"
    hint = "see `ssmzoo bench --list`"


@dataclass(frozen=True)
class BenchCase:
    """One benchmarked call.

    ``shape`` holds batch, dim, length, d_state (selective_scan) or batch, length, heads, headdim,
    groups, d_state, chunk_size (ssd_scan); ``options`` the scan's switches: complex, B/C layout,
    groups, D, z, delta_bias, softplus, B_bias, C_bias (selective_scan); D, z, dt_bias, softplus,
    initial_states (ssd_scan). ``targets`` maps a label to a time in ms quoted beside the result
    (a peer's measurement, a goal).
    """

    name: str
    op: Op
    shape: dict[str, int]
    dtype: str = "bf16"
    mode: Mode = "fwd"
    device: str = "cuda"
    options: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def describe(self) -> str:
        dims = " ".join(f"{k}={v}" for k, v in self.shape.items())
        opts = " ".join(k if v is True else f"{k}={v}" for k, v in self.options.items()
                        if v not in (False, None))
        return f"{self.op} {dims} {self.dtype} {opts}".strip()

    # ------------------------------------------------------------------ inputs
    def inputs(self, device: str | torch.device, seed: int = 0) -> dict[str, Any]:
        """Fresh random keyword arguments for ``ssmzoo.<op>`` (tensors requiring grad in fwdbwd)."""
        gen = None if str(device) == "meta" else torch.Generator(device=device).manual_seed(seed)
        kw = _ssd_inputs(self, device, gen) if self.op == "ssd_scan" else _scan_inputs(
            self, device, gen)
        if self.mode == "fwdbwd":
            for v in kw.values():
                if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex()):
                    v.requires_grad_(True)
        return kw

    # ------------------------------------------------------------------ floors
    def bytes_moved(self) -> int:
        """Each input read once and each output written once (forward; forward+backward adds the
        output gradient read and every input gradient written)."""
        kw = self.inputs("meta")
        ins = sum(_nbytes(v) for v in kw.values() if isinstance(v, torch.Tensor))
        out = _nbytes(kw["u"] if self.op == "selective_scan" else kw["x"])
        if self.mode == "fwd":
            return ins + out
        return ins + out + out + ins  # + dout read, + every input's gradient written

    def exps(self) -> int:
        """Transcendentals the recurrence needs: one exp(ΔA) per state update (complex: exp, cos,
        sin). SSD decays are per head, so only b·h·l. Forward+backward recomputes them once."""
        s = self.shape
        if self.op == "selective_scan":
            n = s["batch"] * s["dim"] * s["length"] * s["d_state"]
            n *= 3 if self.options.get("complex") else 1
        else:
            n = s["batch"] * s["heads"] * s["length"]
        return n * (2 if self.mode == "fwdbwd" else 1)

    def matmul_flops(self) -> int:
        """SSD only: tensor-core flops of the chunked algorithm (causal halves counted once):
        C·Bᵀ per group, the masked product with x, chunk states and state-to-output per head.
        The backward does about twice the forward's products."""
        if self.op != "ssd_scan":
            return 0
        s = self.shape
        q, p, n = s["chunk_size"], s["headdim"], s["d_state"]
        chunks = s["batch"] * math.ceil(s["length"] / q)
        per_head = q * q * p + 2 * q * p * n * 2  # (Q²/2)·P·2 + two Q·P·N products ·2
        per_group = q * q * n  # (Q²/2)·N·2
        f = chunks * (s["heads"] * per_head + s["groups"] * per_group)
        return f * (3 if self.mode == "fwdbwd" else 1)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _scan_inputs(case: BenchCase, device, gen) -> dict[str, Any]:
    s, o = case.shape, case.options
    b, d, l, n = s["batch"], s["dim"], s["length"], s["d_state"]
    io, f32 = case.torch_dtype, torch.float32
    cplx = bool(o.get("complex"))
    groups = int(o.get("groups", 1))

    def rnd(*shape, dtype=io, scale=1.0):
        if str(device) == "meta":
            return torch.empty(*shape, dtype=dtype, device="meta")
        return (torch.randn(*shape, generator=gen, device=device) * scale).to(dtype)

    def bc(layout):
        if layout == "fixed":
            return (torch.complex(rnd(d, n, dtype=f32), rnd(d, n, dtype=f32)) if cplx
                    else rnd(d, n, dtype=f32))
        L = 2 * l if cplx else l
        return rnd(b, n, L) if groups == 1 else rnd(b, groups, n, L)

    a_re = -(0.5 + rnd(d, n, dtype=f32).abs())
    kw: dict[str, Any] = {
        "u": rnd(b, d, l), "delta": rnd(b, d, l, scale=0.5),
        "A": torch.complex(a_re, rnd(d, n, dtype=f32)) if cplx else a_re,
        "B": bc(o.get("B_layout", "variable")), "C": bc(o.get("C_layout", "variable")),
    }
    if o.get("D", True):
        kw["D"] = rnd(d, dtype=f32)
    if o.get("z", True):
        kw["z"] = rnd(b, d, l)
    if o.get("delta_bias", True):
        kw["delta_bias"] = rnd(d, dtype=f32, scale=0.3)
    kw["delta_softplus"] = bool(o.get("softplus", True))
    for name in ("B_bias", "C_bias"):
        if o.get(name):
            kw[name] = (torch.complex(rnd(d, n, dtype=f32), rnd(d, n, dtype=f32)) if cplx
                        else rnd(d, n, dtype=f32))
    return kw


def _ssd_inputs(case: BenchCase, device, gen) -> dict[str, Any]:
    s, o = case.shape, case.options
    b, l, h, p, g, n = (s["batch"], s["length"], s["heads"], s["headdim"], s["groups"],
                        s["d_state"])
    io, f32 = case.torch_dtype, torch.float32

    def rnd(*shape, dtype=io, scale=1.0):
        if str(device) == "meta":
            return torch.empty(*shape, dtype=dtype, device="meta")
        return (torch.randn(*shape, generator=gen, device=device) * scale).to(dtype)

    kw: dict[str, Any] = {
        "x": rnd(b, l, h, p), "dt": rnd(b, l, h, scale=0.5),
        "A": -(0.5 + rnd(h, dtype=f32).abs()), "B": rnd(b, l, g, n, scale=n ** -0.5),
        "C": rnd(b, l, g, n), "chunk_size": s["chunk_size"],
    }
    if o.get("D", True):
        kw["D"] = rnd(h, p, dtype=f32) if o.get("D") == "channel" else rnd(h, dtype=f32)
    if o.get("z"):
        kw["z"] = rnd(b, l, h, p)
    if o.get("dt_bias", True):
        kw["dt_bias"] = rnd(h, dtype=f32, scale=0.5)
    if o.get("initial_states"):
        kw["initial_states"] = rnd(b, h, p, n, dtype=f32)
    kw["dt_softplus"] = bool(o.get("softplus", True))
    return kw


def _ssd(name, b, l, h, n, *, targets, p=64, device="cuda", dtype="bf16", chunk=256, g=1,
         note="") -> BenchCase:
    return BenchCase(name, "ssd_scan", dict(batch=b, length=l, heads=h, headdim=p, groups=g,
                                            d_state=n, chunk_size=chunk),
                     dtype=dtype, device=device, targets=targets, note=note)


def _scan(name, b, d, l, n, *, targets=None, device="cuda", dtype="bf16", **options) -> BenchCase:
    return BenchCase(name, "selective_scan", dict(batch=b, dim=d, length=l, d_state=n),
                     dtype=dtype, device=device, options=options, targets=targets or {})


_M = "mamba_ssm 2026-11-22"
_SSD_NOTE = "Mamba-2's call: D per head, dt_bias, softplus, no z (gated norm outside)"
# name -> (forward case, forward+backward targets)
_BASE: list[tuple[BenchCase, dict[str, float]]] = [
    # CPU cases: small, any machine
    (_scan("scan-cpu", 2, 64, 256, 16, device="cpu", dtype="fp32"), {}),
    (_scan("scan-cpu-b2s6", 2, 64, 256, 16, device="cpu", dtype="fp32", complex=True, groups=8,
           B_bias=True), {}),
    (_ssd("ssd-cpu", 2, 256, 4, 16, p=16, device="cpu", dtype="fp32", chunk=64, targets={}), {}),
    # GPU: ssd_scan, the project's targets (mamba_ssm's Triton SSD, H100, measured 2026-11-22)
    (_ssd("ssd-b8-l4096-n16", 8, 4096, 32, 16, targets={_M: 0.49}, note=_SSD_NOTE), {_M: 4.53}),
    (_ssd("ssd-b8-l4096-n128", 8, 4096, 32, 128, targets={_M: 0.80}, note=_SSD_NOTE),
     {_M: 4.85}),
    (_ssd("ssd-b4-l16384-n16", 4, 16384, 16, 16, targets={_M: 0.57}, note=_SSD_NOTE),
     {_M: 3.27}),
    (_ssd("ssd-b4-l16384-n128", 4, 16384, 16, 128, targets={_M: 0.85}, note=_SSD_NOTE),
     {_M: 4.32}),
    # GPU: selective_scan, the selective-scan targets' cases (z, D, delta_bias, softplus, bf16)
    (_scan("scan-b8-d2048-l4096", 8, 2048, 4096, 16, targets={_M: 1.17}), {_M: 6.36}),
    (_scan("scan-b8-d2048-l4096-complex", 8, 2048, 4096, 16, complex=True,
           targets={_M: 3.04}), {}),
    (_scan("scan-b8-d4096-l2048", 8, 4096, 2048, 16, targets={_M: 1.17}), {}),
    (_scan("scan-b4-d1024-l16384", 4, 1024, 16384, 16, targets={_M: 1.41}), {}),
    (_scan("scan-b2s6-g8-bias", 8, 2048, 4096, 16, groups=8, B_bias=True,
           targets={"mamba_ssm 2026-11-23": 2.63}), {"mamba_ssm 2026-11-23": 11.5}),
    (_scan("scan-b2s6-g8-bias-complex", 8, 2048, 4096, 16, groups=8, B_bias=True, complex=True,
           targets={"mamba_ssm 2026-11-23": 6.06}), {"mamba_ssm 2026-11-23": 25.5}),
]


def _expand() -> dict[str, BenchCase]:
    out: dict[str, BenchCase] = {}
    for case, bwd_targets in _BASE:
        fwd = replace(case, name=f"{case.name}:fwd", mode="fwd")
        bwd = replace(case, name=f"{case.name}:fwdbwd", mode="fwdbwd", targets=bwd_targets)
        out[fwd.name], out[bwd.name] = fwd, bwd
    return out


CASES: dict[str, BenchCase] = _expand()


def select(patterns: list[str] | None = None, *, op: str | None = None,
           device: str | None = None, mode: str | None = None) -> list[BenchCase]:
    """The built-in cases whose name matches any glob of ``patterns`` (``ssd-*``, ``*:fwd``), of
    the given op ("selective_scan"/"ssd_scan"), device type and mode; in definition order."""
    chosen = []
    for name, case in CASES.items():
        if patterns and not any(fnmatch.fnmatchcase(name, p) or fnmatchcase_base(name, p)
                                for p in patterns):
            continue
        if op and case.op != op or device and case.device != device or mode and case.mode != mode:
            continue
        chosen.append(case)
    if patterns and not chosen:
        raise UnknownCaseError(patterns[0], CASES)
    return chosen


def fnmatchcase_base(name: str, pattern: str) -> bool:
    """``ssd-b8-l4096-n16`` selects both of its modes."""
    return fnmatch.fnmatchcase(name.rsplit(":", 1)[0], pattern)
