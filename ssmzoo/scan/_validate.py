"""Argument checks shared by ``selective_scan`` and ``ssd_scan``, done once before dispatch.

Every check raises :class:`~ssmzoo.errors.ScanArgumentError` naming the function, the argument,
what was expected and what was given.

Flags (``delta_softplus``, ``return_last_state``, ``dt_softplus``, ``return_final_states``) must
be real ``bool`` values: a string such as ``"no"`` is truthy and would silently mean True.

Dtypes: ``delta`` and ``z`` have u's dtype in ``selective_scan``. Every other tensor
(A, B, C, D, the biases, the initial state; for ``ssd_scan`` every tensor but x) may have any
floating dtype up to u's precision, complex ones by their real part (mamba_ssm keeps A, D and
delta_bias in float32 beside half-precision inputs; autocast gives bf16 B and C beside float32 u).
A float64 tensor beside a float32 or half-precision u is refused: it would silently turn the
whole scan into float64 arithmetic. Make u float64 too, or cast the tensor down.

Sizes: batch, dim (heads, headdim) and d_state may be 0 where the result is an empty tensor of
the right shape; length must be at least 1 (refused with a message). Nothing here computes anything: the validated tensors are
packed unchanged into a :class:`~ssmzoo.scan.backend.SelectiveScanCall` or
:class:`~ssmzoo.scan.backend.SSDCall`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ssmzoo.errors import ScanArgumentError, did_you_mean
from ssmzoo.scan.backend import SelectiveScanCall, SSDCall

DISCRETIZATIONS = ("euler", "zoh")
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _describe(t: object) -> str:
    if not isinstance(t, Tensor):
        return f"{type(t).__name__} {t!r}"[:80]
    return f"{t.dtype} tensor of shape {tuple(t.shape)} on {t.device}"


class _Checker:
    """Checks the arguments of one call of ``function``, all against the device of the first."""

    def __init__(self, function: str, device: torch.device) -> None:
        self.function = function
        self.device = device

    def fail(self, argument: str, expected: str, actual: object) -> ScanArgumentError:
        actual_s = actual if isinstance(actual, str) else _describe(actual)
        return ScanArgumentError(self.function, argument, expected, actual_s)

    def tensor(self, name: str, t: object, shapes: Sequence[tuple[int, ...]], shape_doc: str, *,
               complex_ok: bool = False, real_ok: bool = True) -> Tensor:
        """``t`` is a floating (or complex, when allowed) tensor of one of ``shapes`` on our device."""
        if not isinstance(t, Tensor):
            raise self.fail(name, f"a tensor {shape_doc}", t)
        if t.is_complex():
            if not complex_ok:
                raise self.fail(name, f"a real floating tensor {shape_doc}", t)
        elif t.dtype not in _FLOATS:
            kinds = "a floating or complex" if complex_ok else "a floating"
            raise self.fail(name, f"{kinds} tensor {shape_doc} (float16, bfloat16, float32 or "
                            "float64)", t)
        elif not real_ok:
            raise self.fail(name, f"a complex tensor {shape_doc}", t)
        if tuple(t.shape) not in [tuple(s) for s in shapes]:
            raise self.fail(name, f"shape {shape_doc} = {' or '.join(map(str, shapes))}", t)
        if t.device != self.device:
            raise self.fail(name, f"a tensor on {self.device} (the device of the first argument)", t)
        return t

    def flag(self, name: str, value: object) -> bool:
        """A real bool (a string such as 'no' is truthy and would silently mean True)."""
        if not isinstance(value, bool):
            raise self.fail(name, "a bool (True or False)",
                            f"{type(value).__name__} {value!r}")
        return value

    def param_dtype(self, name: str, t: Tensor | None, ref_name: str, ref: Tensor) -> None:
        """``t`` is not float64 beside a lower-precision ``ref`` (complex ``t`` by its real part).

        A float64 tensor would promote the whole scan to float64; lower or equal precision (a
        bf16 B from autocast beside float32 u, float32 A beside bf16 u) is upcast as mamba_ssm's
        reference does."""
        if t is None:
            return
        real = t.real.dtype if t.is_complex() else t.dtype
        if real == torch.float64 and ref.dtype != torch.float64:
            raise self.fail(name, f"dtype float32 or {ref.dtype} (the dtype of {ref_name!r}); a "
                            f"{real} tensor beside a {ref.dtype} {ref_name!r} would silently change "
                            f"the scan's precision: cast it, or make {ref_name!r} {real} too", t)

    def same_dtype(self, name: str, t: Tensor, ref_name: str, ref: Tensor) -> None:
        if t.dtype != ref.dtype:
            raise self.fail(name, f"dtype {ref.dtype} (the dtype of {ref_name!r})", t)


def check_selective_scan(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
    z: Tensor | None, delta_bias: Tensor | None, delta_softplus: bool, return_last_state: bool,
    B_bias: Tensor | None, C_bias: Tensor | None, initial_state: Tensor | None,
    discretization: str,
) -> SelectiveScanCall:
    """Validate ``selective_scan``'s arguments (mamba_ssm's layout) and pack them into a call."""
    fn = "selective_scan"
    if not isinstance(u, Tensor):
        raise ScanArgumentError(fn, "u", "a tensor (batch, dim, length)", _describe(u))
    ck = _Checker(fn, u.device)
    if u.dim() != 3:
        raise ck.fail("u", "a 3-D tensor (batch, dim, length)", u)
    b, d, l = u.shape
    ck.tensor("u", u, [(b, d, l)], "(batch, dim, length)")
    if l < 1:
        raise ck.fail("u", "a length (last axis) of at least 1", u)
    ck.tensor("delta", delta, [(b, d, l)], "(batch, dim, length) like u")
    ck.same_dtype("delta", delta, "u", u)
    if not isinstance(A, Tensor) or A.dim() != 2 or A.shape[0] != d:
        raise ck.fail("A", f"a 2-D tensor (dim, d_state) with dim = {d}", A)
    n = int(A.shape[1])
    ck.tensor("A", A, [(d, n)], "(dim, d_state)", complex_ok=True)
    cplx = A.is_complex()
    for name, t in (("B", B), ("C", C)):
        _check_bc(ck, name, t, b, d, n, l, cplx)
    if D is not None:
        ck.tensor("D", D, [(d,)], "(dim,)")
    if z is not None:
        ck.tensor("z", z, [(b, d, l)], "(batch, dim, length) like u")
        ck.same_dtype("z", z, "u", u)
    if delta_bias is not None:
        ck.tensor("delta_bias", delta_bias, [(d,)], "(dim,)")
    for name, bias in (("B_bias", B_bias), ("C_bias", C_bias)):
        if bias is not None:
            ck.tensor(name, bias, [(d, n)], "(dim, d_state)" + (", complex like A" if cplx else ""),
                      complex_ok=cplx)
    if initial_state is not None:
        ck.tensor("initial_state", initial_state, [(b, d, n)],
                  "(batch, dim, d_state)" + (", complex like A" if cplx else ""), complex_ok=cplx)
    for name, t in (("A", A), ("B", B), ("C", C), ("D", D), ("delta_bias", delta_bias),
                    ("B_bias", B_bias), ("C_bias", C_bias), ("initial_state", initial_state)):
        ck.param_dtype(name, t, "u", u)
    delta_softplus = ck.flag("delta_softplus", delta_softplus)
    return_last_state = ck.flag("return_last_state", return_last_state)
    if discretization not in DISCRETIZATIONS:
        hint = did_you_mean(str(discretization), DISCRETIZATIONS)
        raise ck.fail("discretization", f"one of {', '.join(map(repr, DISCRETIZATIONS))}",
                      f"{discretization!r}{hint}")
    return SelectiveScanCall(
        u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias,
        delta_softplus=bool(delta_softplus), return_last_state=bool(return_last_state),
        B_bias=B_bias, C_bias=C_bias, initial_state=initial_state,
        discretization=discretization,  # type: ignore[arg-type]
    )


def _check_bc(ck: _Checker, name: str, t: Tensor, b: int, d: int, n: int, l: int,
              cplx: bool) -> None:
    """B or C: fixed (d, n), variable (b, n, L) or grouped (b, g, n, L); L = 2l for complex A."""
    if not isinstance(t, Tensor):
        raise ck.fail(name, "a tensor (dim, d_state), (batch, d_state, length) or "
                      "(batch, groups, d_state, length)", t)
    if t.dim() == 2:
        ck.tensor(name, t, [(d, n)], "(dim, d_state)" + (", complex like A" if cplx else ""),
                  complex_ok=cplx)
        return
    if t.dim() not in (3, 4):
        raise ck.fail(name, "a 2-D (dim, d_state), 3-D (batch, d_state, length) or 4-D "
                      "(batch, groups, d_state, length) tensor", t)
    if t.is_complex():
        what = (f"a real tensor with a last axis of 2*length = {2 * l} (real and imaginary parts "
                "interleaved, mamba_ssm's layout; pass torch.view_as_real(x).flatten(-2))")
        raise ck.fail(name, what if cplx else "a real floating tensor", t)
    L = 2 * l if cplx else l
    last = (f"2*length = {L} (real and imaginary parts interleaved, because A is complex)"
            if cplx else f"length = {l}")
    if t.dim() == 3:
        ck.tensor(name, t, [(b, n, L)], f"(batch, d_state, {last})")
        return
    g = int(t.shape[1])
    if g < 1 or d % g != 0:
        raise ck.fail(name, f"a number of groups (axis 1) that divides dim = {d}", t)
    ck.tensor(name, t, [(b, g, n, L)], f"(batch, groups, d_state, {last})")


def check_ssd_scan(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int, D: Tensor | None,
    z: Tensor | None, dt_bias: Tensor | None, initial_states: Tensor | None, dt_softplus: bool,
    dt_limit: tuple[float, float], return_final_states: bool,
) -> SSDCall:
    """Validate ``ssd_scan``'s arguments (``mamba_chunk_scan_combined``'s layout) into a call."""
    fn = "ssd_scan"
    if not isinstance(x, Tensor):
        raise ScanArgumentError(fn, "x", "a tensor (batch, length, heads, headdim)", _describe(x))
    ck = _Checker(fn, x.device)
    if x.dim() != 4:
        raise ck.fail("x", "a 4-D tensor (batch, length, heads, headdim)", x)
    b, l, h, p = x.shape
    ck.tensor("x", x, [(b, l, h, p)], "(batch, length, heads, headdim)")
    if l < 1:
        raise ck.fail("x", "a length (axis 1) of at least 1", x)
    ck.tensor("dt", dt, [(b, l, h)], "(batch, length, heads)")
    ck.tensor("A", A, [(h,)], "(heads,)")
    if not isinstance(B, Tensor) or B.dim() != 4:
        raise ck.fail("B", "a 4-D tensor (batch, length, groups, d_state)", B)
    g, n = int(B.shape[2]), int(B.shape[3])
    if g < 1 or h % g != 0:
        raise ck.fail("B", f"a number of groups (axis 2) that divides heads = {h}", B)
    ck.tensor("B", B, [(b, l, g, n)], "(batch, length, groups, d_state)")
    ck.tensor("C", C, [(b, l, g, n)], "(batch, length, groups, d_state) like B")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ck.fail("chunk_size", "a positive int", repr(chunk_size))
    if D is not None:
        ck.tensor("D", D, [(h,), (h, p)], "(heads,) or (heads, headdim)")
    if z is not None:
        ck.tensor("z", z, [(b, l, h, p)], "(batch, length, heads, headdim) like x")
    if dt_bias is not None:
        ck.tensor("dt_bias", dt_bias, [(h,)], "(heads,)")
    if initial_states is not None:
        ck.tensor("initial_states", initial_states, [(b, h, p, n)],
                  "(batch, heads, headdim, d_state)")
    for name, t in (("dt", dt), ("z", z), ("A", A), ("B", B), ("C", C), ("D", D), ("dt_bias", dt_bias),
                    ("initial_states", initial_states)):
        ck.param_dtype(name, t, "x", x)
    dt_softplus = ck.flag("dt_softplus", dt_softplus)
    return_final_states = ck.flag("return_final_states", return_final_states)
    try:
        lo, hi = (float(v) for v in dt_limit)
    except (TypeError, ValueError):
        raise ck.fail("dt_limit", "a pair of floats (min, max)", repr(dt_limit)) from None
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ck.fail("dt_limit", "a pair (min, max) with min <= max", repr(dt_limit))
    return SSDCall(
        x=x, dt=dt, A=A, B=B, C=C, chunk_size=chunk_size, D=D, z=z, dt_bias=dt_bias,
        initial_states=initial_states, dt_softplus=bool(dt_softplus), dt_limit=(lo, hi),
        return_final_states=bool(return_final_states),
    )
