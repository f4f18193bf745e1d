"""mamba_ssm as scan backends: ``cuda`` (its selective_scan_cuda extension) and ``mamba_ssd`` (its
Triton ``mamba_chunk_scan_combined``).

``cuda`` takes the shared ``selective_scan`` layout as it is (mamba_ssm's own), so tensors reach the
extension without copies. B2S6's biases are exact by linearity: with B' = B + B_bias and
C' = C + C_bias, the state is linear in the input matrix and the output bilinear in (C, state), so

    scan(B', C') = scan(B, C) + scan(B_bias, C) + scan(B, C_bias) + scan(B_bias, C_bias),

each term a scan the extension runs (a fixed (d, n) matrix is its ``is_variable_B=False`` mode).
D enters the first term only; the gate silu(z) is a per-element factor, so it distributes over
the sum and every term takes z. A fixed B or C simply absorbs its bias. The extension takes a
grouped C only beside a variable B, so scan(B_bias, C) with C in g groups runs once per group on
that group's channels (views, no copies). Nothing of mamba_ssm is imported until a backend is
asked whether it is available or asked to run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from ssmzoo.scan.backend import ScanBackend, SelectiveScanCall, SSDCall

if TYPE_CHECKING:
    from torch import Tensor

    # scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus) -> (out, last_state)
    ScanFn = Callable[..., tuple[Tensor, Tensor]]

INSTALL = "pip install mamba-ssm --no-build-isolation, on a machine with CUDA and nvcc"


def _extension():
    import selective_scan_cuda  # mamba_ssm's compiled extension

    return selective_scan_cuda


def _cuda_device() -> tuple[bool, str]:
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA device is visible to torch"
    return True, ""


def _mamba_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """One call of the extension, differentiable; returns (out, last_state)."""
    return _cuda_fn().apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


@functools.cache
def _cuda_fn():
    import torch

    class CudaScanFn(torch.autograd.Function):
        """selective_scan_cuda forward/backward; the last state is returned without gradient."""

        @staticmethod
        def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
            ext = _extension()
            Bk = B.unsqueeze(1) if B.dim() == 3 else B  # (batch, 1, n, l): a view
            Ck = C.unsqueeze(1) if C.dim() == 3 else C
            out, states, *rest = ext.fwd(u, delta, A, Bk, Ck, D, z, delta_bias, delta_softplus)
            ctx.save_for_backward(u, delta, A, Bk, Ck, D, z, delta_bias, states,
                                  out if z is not None else None)
            ctx.squeeze = (B.dim() == 3, C.dim() == 3)
            ctx.delta_softplus = delta_softplus
            last = states[:, :, -1, 1::2]  # (batch, d, n)
            ctx.mark_non_differentiable(last)
            return (rest[0] if z is not None else out), last

        @staticmethod
        def backward(ctx, dout, dlast):
            u, delta, A, Bk, Ck, D, z, delta_bias, states, out = ctx.saved_tensors
            if dout.stride(-1) != 1:
                dout = dout.contiguous()
            du, ddelta, dA, dB, dC, dD, ddelta_bias, *rest = _extension().bwd(
                u, delta, A, Bk, Ck, D, z, delta_bias, dout, states, out, None,
                ctx.delta_softplus, False)
            dB = dB.squeeze(1) if ctx.squeeze[0] else dB
            dC = dC.squeeze(1) if ctx.squeeze[1] else dC
            return (du, ddelta, dA, dB, dC, dD if D is not None else None,
                    rest[0] if z is not None else None,
                    ddelta_bias if delta_bias is not None else None, None)

    return CudaScanFn


def _fixed_B_scan(call: SelectiveScanCall, Bf: Tensor, C: Tensor, scan: ScanFn,
                        z: Tensor | None) -> tuple[Tensor, Tensor]:
    """scan(Bf, C) for a fixed (d, n) Bf: one scan for a fixed or ungrouped C, else one per group."""
    import torch

    u, delta, A, bias = call.u, call.delta, call.A, call.delta_bias
    if C.dim() < 4 or C.shape[1] == 1:
        Cv = C if C.dim() < 4 else C[:, 0]  # (d, n) or (batch, n, l)
        return scan(u, delta, A, Bf, Cv, None, z, bias, call.delta_softplus)
    groups = C.shape[1]
    per = call.dim // groups
    outs, lasts = [], []
    for g in range(groups):
        sl = slice(g * per, (g + 1) * per)  # the channels that read group g
        o, s = scan(u[:, sl], delta[:, sl], A[sl], Bf[sl], C[:, g], None,
                    z[:, sl] if z is not None else None,
                    bias[sl] if bias is not None else None, call.delta_softplus)
        outs.append(o)
        lasts.append(s)
    return torch.cat(outs, dim=1), torch.cat(lasts, dim=1)  # (batch, d, l), (batch, d, n)


def by_linearity(call: SelectiveScanCall, scan: ScanFn) -> Tensor | tuple[Tensor, Tensor]:
    """Run ``call`` (B_bias/C_bias included) as a sum of plain scans ``scan(u, delta, A, B, C, D, z,
    delta_bias, delta_softplus) -> (out, last_state)``: see the module docstring for the algebra.
    ``scan`` is mamba_ssm's extension on a GPU; tests substitute the reference to check the algebra.
    """
    A = call.A
    B, C, Bb, Cb = call.B, call.C, call.B_bias, call.C_bias
    if Bb is not None:
        Bb = Bb.to(A.dtype)
        if B.dim() == 2:  # fixed B absorbs its bias
            B, Bb = B + Bb, None
    if Cb is not None:
        Cb = Cb.to(A.dtype)
        if C.dim() == 2:
            C, Cb = C + Cb, None
    z, bias, sp = call.z, call.delta_bias, call.delta_softplus
    u, delta = call.u, call.delta
    out, last = scan(u, delta, A, B, C, call.D, z, bias, sp)
    if Bb is not None:  # + scan(B_bias, C): its state adds to the last state
        o, s = _fixed_B_scan(call, Bb, C, scan, z)
        out, last = out + o, last + s
    if Cb is not None:  # + scan(B, C_bias): the same state as the first term
        out = out + scan(u, delta, A, B, Cb, None, z, bias, sp)[0]
        if Bb is not None:  # + scan(B_bias, C_bias)
            out = out + scan(u, delta, A, Bb, Cb, None, z, bias, sp)[0]
    return (out, last) if call.return_last_state else out


class CudaBackend(ScanBackend):
    """mamba_ssm's ``selective_scan_cuda`` for ``selective_scan``; B2S6's biases by linearity."""

    name: ClassVar[str] = "cuda"
    description: ClassVar[str] = (
        "mamba_ssm's selective_scan_cuda (CUDA C++); B_bias/C_bias as extra scans by linearity")
    ops: ClassVar[tuple[str, ...]] = ("selective_scan",)

    def available(self) -> tuple[bool, str]:
        try:
            _extension()
        except ImportError as e:
            return False, f"mamba_ssm's selective_scan_cuda is not importable ({e}): {INSTALL}"
        return _cuda_device()

    def priority(self, device_type: str) -> int | None:
        return 10 if device_type == "cuda" else None

    def limitations(self) -> list[str]:
        return [
            "euler discretization only (the kernel has no zero-order hold)",
            "no initial_state",
            "d_state <= 256; u, delta, z and variable B/C in one dtype (fp32/fp16/bf16); "
            "A float32 or complex64",
            "return_last_state only without gradients (the kernel does not backpropagate "
            "through the last state)",
            "no complex A with grouped B/C: mamba_ssm 2.3.2's CUDA backward disagrees with "
            "mamba_ssm's own selective_scan_ref there (docs/benchmarks.md)",
            "B_bias/C_bias cost extra scans: one per group of C for B_bias, one for C_bias, one "
            "for both",
        ]

    def supports_selective_scan(self, call: SelectiveScanCall) -> tuple[bool, str]:
        import torch

        if call.discretization != "euler":
            return False, ("mamba_ssm's kernel has no zero-order hold "
                           f"(discretization={call.discretization!r}); it discretizes B by Euler")
        if call.initial_state is not None:
            return False, "mamba_ssm's kernel does not take an initial_state"
        if call.d_state > 256:
            return False, f"mamba_ssm's kernel supports d_state <= 256, got {call.d_state}"
        io = (torch.float32, torch.float16, torch.bfloat16)
        if call.u.dtype not in io:
            return False, f"u has dtype {call.u.dtype}; mamba_ssm's kernel takes fp32, fp16, bf16"
        for name in ("delta", "z"):
            t = getattr(call, name)
            if t is not None and t.dtype != call.u.dtype:
                return False, f"{name} has dtype {t.dtype}, u has {call.u.dtype}; they must match"
        weight = torch.complex64 if call.is_complex else torch.float32
        if call.A.dtype != weight:
            return False, f"A has dtype {call.A.dtype}; mamba_ssm's kernel takes {weight}"
        for name in ("B", "C"):
            t = getattr(call, name)
            want = weight if t.dim() == 2 else call.u.dtype
            if t.dtype != want:
                return False, f"{name} has dtype {t.dtype}; mamba_ssm's kernel takes {want} here"
        if call.is_complex and 4 in (call.B.dim(), call.C.dim()) and call.groups > 1:
            return False, ("complex A with grouped B/C: mamba_ssm's CUDA backward disagrees "
                           "with mamba_ssm's own selective_scan_ref for this layout; use "
                           "triton or reference")
        if (call.return_last_state and torch.is_grad_enabled()
                and any(t.requires_grad for t in call.tensors().values())):
            return False, ("mamba_ssm's kernel does not backpropagate through the last state; "
                           "call under torch.no_grad() or use another backend")
        if call.device.type != "cuda":
            return False, f"tensors are on {call.device.type}; mamba_ssm's kernel runs on CUDA"
        return True, ""

    def selective_scan(self, call: SelectiveScanCall) -> Tensor | tuple[Tensor, Tensor]:
        D = call.D.float() if call.D is not None else None
        bias = call.delta_bias.float() if call.delta_bias is not None else None
        if D is not call.D or bias is not call.delta_bias:
            from dataclasses import replace

            call = replace(call, D=D, delta_bias=bias)
        return by_linearity(call, _mamba_scan)


class MambaSSDBackend(ScanBackend):
    """mamba_ssm's Triton ``mamba_chunk_scan_combined`` for ``ssd_scan`` (the peer the Triton SSD
    kernels are measured against)."""

    name: ClassVar[str] = "mamba_ssd"
    description: ClassVar[str] = "mamba_ssm's Triton chunked SSD (mamba_chunk_scan_combined)"
    ops: ClassVar[tuple[str, ...]] = ("ssd_scan",)

    def available(self) -> tuple[bool, str]:
        try:
            from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined  # noqa: F401
        except ImportError as e:
            return False, f"mamba_ssm's Triton SSD is not importable ({e}): {INSTALL}"
        return _cuda_device()

    def priority(self, device_type: str) -> int | None:
        return 10 if device_type == "cuda" else None

    def limitations(self) -> list[str]:
        return ["CUDA tensors; x, B, C, z in fp32/fp16/bf16; d_state <= 256",
                "final states come back in float32 (mamba_ssm returns C's dtype; cast here)"]

    def supports_ssd_scan(self, call: SSDCall) -> tuple[bool, str]:
        import torch

        io = (torch.float32, torch.float16, torch.bfloat16)
        for name in ("x", "B", "C", "z"):
            t = getattr(call, name)
            if t is not None and t.dtype not in io:
                return False, f"{name} has dtype {t.dtype}; mamba_ssm's SSD takes fp32/fp16/bf16"
        if call.d_state > 256:
            return False, f"d_state {call.d_state} > 256"
        if call.device.type != "cuda":
            return False, f"tensors are on {call.device.type}; mamba_ssm's SSD runs on CUDA"
        return True, ""

    def ssd_scan(self, call: SSDCall) -> Tensor | tuple[Tensor, Tensor]:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

        res = mamba_chunk_scan_combined(
            call.x, call.dt, call.A, call.B, call.C, call.chunk_size, D=call.D, z=call.z,
            dt_bias=call.dt_bias, initial_states=call.initial_states,
            dt_softplus=call.dt_softplus, dt_limit=tuple(call.dt_limit),
            return_final_states=call.return_final_states)
        if call.return_final_states:
            out, final = res
            return out, final.float()
        return res
