"""Reusable test helpers: one ``assert_close`` that names the tensor, per-dtype tolerances, NaN poison.

``assert_close(name, ref, out)`` compares by relative RMS error, ``rms(out - ref) / rms(ref)``, the
measure the acceptance criteria are written in, and says which tensor broke and by how much::

    from tests.helpers import assert_close, TOLERANCES
    assert_close("dA", ref.grad, out.grad, dtype=torch.bfloat16)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

# Relative-RMS tolerance by the dtype the *inputs* had (the computation itself accumulates in fp32).
TOLERANCES: dict[torch.dtype, float] = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    # half inputs: the output is rounded to 8 (bf16) or 11 (fp16) mantissa bits, so the reference
    # computed from the same rounded inputs can only be matched to about one output ulp
    torch.float16: 2e-3,
    torch.bfloat16: 1e-2,
}


def rel_rms(ref: Tensor, out: Tensor) -> float:
    """rms(out - ref) / rms(ref), computed in float64 (complex tensors compare as complex)."""
    r = ref.detach().to(torch.complex128 if ref.is_complex() else torch.float64)
    o = out.detach().to(r.dtype)
    num = (o - r).abs().pow(2).mean().sqrt().item()
    den = r.abs().pow(2).mean().sqrt().item()
    return num / den if den > 0 else num


def assert_close(name: str, ref: Tensor | None, out: Tensor | None, *, rtol: float | None = None,
                 atol: float = 0.0, dtype: torch.dtype | None = None) -> float:
    """Assert ``out`` matches ``ref`` to a relative RMS error of ``rtol`` (or the dtype's tolerance).

    ``atol`` allows an absolute RMS error instead (for tensors whose reference is near zero).
    ``dtype`` picks the tolerance from :data:`TOLERANCES` (default: ``out``'s real dtype).
    Returns the relative error, so a test can also report it.
    """
    assert ref is not None, f"{name}: the reference is None (no gradient was computed?)"
    assert out is not None, f"{name}: the result is None (no gradient was computed?)"
    assert tuple(ref.shape) == tuple(out.shape), (
        f"{name}: shape {tuple(out.shape)}, expected {tuple(ref.shape)}")
    assert torch.isfinite(ref.detach()).all(), f"{name}: the reference is not finite"
    n_bad = int((~torch.isfinite(out.detach())).sum())
    assert n_bad == 0, f"{name}: {n_bad} of {out.numel()} entries are not finite"
    if rtol is None:
        key = dtype or (out.real.dtype if out.is_complex() else out.dtype)
        rtol = TOLERANCES.get(key, TOLERANCES[torch.float32])
    err = rel_rms(ref, out)
    if atol:
        diff = (out.detach().to(torch.complex128) - ref.detach().to(torch.complex128))
        if diff.abs().pow(2).mean().sqrt().item() <= atol:
            return err
    assert err <= rtol, (
        f"{name}: relative RMS error {err:.3e} exceeds {rtol:.1e} "
        f"(max abs diff {(out.detach().double() - ref.detach().double()).abs().max().item() if not out.is_complex() else float('nan'):.3e})")
    return err


@contextlib.contextmanager
def nan_poison() -> Iterator[None]:
    """Make ``torch.empty``, ``empty_like`` and ``new_empty`` return NaN-filled floating tensors.

    A kernel (or a chunked algorithm) that forgets to write part of a fresh buffer then produces
    NaN where it would otherwise produce stale or zero memory that happens to look right.
    """
    orig_empty, orig_like, orig_new = torch.empty, torch.empty_like, Tensor.new_empty

    def _fill(t: Tensor) -> Tensor:
        if t.is_floating_point() or t.is_complex():
            with torch.no_grad():
                t.fill_(float("nan"))
        return t

    def empty(*args: object, **kwargs: object) -> Tensor:
        return _fill(orig_empty(*args, **kwargs))  # type: ignore[arg-type]

    def empty_like(*args: object, **kwargs: object) -> Tensor:
        return _fill(orig_like(*args, **kwargs))  # type: ignore[arg-type]

    def new_empty(self: Tensor, *args: object, **kwargs: object) -> Tensor:
        return _fill(orig_new(self, *args, **kwargs))  # type: ignore[arg-type]

    torch.empty, torch.empty_like = empty, empty_like  # type: ignore[assignment]
    Tensor.new_empty = new_empty  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.empty, torch.empty_like = orig_empty, orig_like  # type: ignore[assignment]
        Tensor.new_empty = orig_new  # type: ignore[method-assign]
