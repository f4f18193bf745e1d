"""The contract between ``ssmzoo.selective_scan`` / ``ssmzoo.ssd_scan`` and the backends that run them.

A backend is an object registered under a name through the ``ssmzoo_register_backends`` hook
(``registry.backend("triton", TritonBackend())``). The public functions validate their arguments
once, pack them into a :class:`SelectiveScanCall` or :class:`SSDCall`, and hand that to the chosen
backend. Each backend says whether it is usable at all (:meth:`ScanBackend.available`) and whether
it can run one particular call (:meth:`ScanBackend.supports_selective_scan`), always with a reason
a person can act on, so that ``backend="auto"`` can move on and an explicit choice can explain
itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:  # torch is imported by the scan functions, not by the registry
    import torch
    from torch import Tensor

Layout = Literal["fixed", "variable", "grouped"]


@dataclass(frozen=True)
class SelectiveScanCall:
    """Validated arguments of one ``selective_scan`` call, in mamba_ssm's layout.

    u, delta, z: (batch, d, length); A: (d, n) real or complex; B, C: (d, n) fixed,
    (batch, n, length) variable or (batch, g, n, length) grouped, with a last axis of 2*length
    (real and imaginary interleaved) when A is complex and B/C are variable; D, delta_bias: (d,);
    B_bias, C_bias: (d, n), complex when A is complex; initial_state: (batch, d, n), complex when A
    is complex.
    """

    u: Tensor
    delta: Tensor
    A: Tensor
    B: Tensor
    C: Tensor
    D: Tensor | None = None
    z: Tensor | None = None
    delta_bias: Tensor | None = None
    delta_softplus: bool = False
    return_last_state: bool = False
    B_bias: Tensor | None = None
    C_bias: Tensor | None = None
    initial_state: Tensor | None = None
    discretization: Literal["euler", "zoh"] = "euler"

    @property
    def batch(self) -> int:
        return int(self.u.shape[0])

    @property
    def dim(self) -> int:
        return int(self.u.shape[1])

    @property
    def length(self) -> int:
        return int(self.u.shape[2])

    @property
    def d_state(self) -> int:
        return int(self.A.shape[1])

    @property
    def is_complex(self) -> bool:
        return self.A.is_complex()

    @property
    def B_layout(self) -> Layout:
        return _layout(self.B)

    @property
    def C_layout(self) -> Layout:
        return _layout(self.C)

    @property
    def groups(self) -> int:
        """Number of B/C groups (1 for fixed or ungrouped variable B and C)."""
        for t in (self.B, self.C):
            if t.dim() == 4:
                return int(t.shape[1])
        return 1

    @property
    def device(self) -> torch.device:
        return self.u.device

    # the tensor arguments in order, and the rest: a backend's autograd Function takes the
    # tensors positionally and rebuilds the call from them and the options (no re-spelling)
    # (plain class attributes, not annotated: dataclass fields stay the call's arguments only)
    TENSORS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "B_bias", "C_bias",
               "initial_state")
    OPTIONS = ("delta_softplus", "return_last_state", "discretization")

    def tensors(self) -> dict[str, Tensor]:
        """Every tensor argument that is set, by name (what gradients are owed for)."""
        return {n: getattr(self, n) for n in self.TENSORS if getattr(self, n) is not None}

    def tensor_args(self) -> tuple[Tensor | None, ...]:
        """Every tensor argument, None where unset, in :attr:`TENSORS` order."""
        return tuple(getattr(self, n) for n in self.TENSORS)

    def options(self) -> dict[str, Any]:
        """The non-tensor arguments, by name."""
        return {n: getattr(self, n) for n in self.OPTIONS}

    @classmethod
    def rebuild(cls, tensors: tuple[Tensor | None, ...], options: dict[str, Any]
                ) -> SelectiveScanCall:
        """The call from :meth:`tensor_args` and :meth:`options` (inside an autograd Function)."""
        return cls(**dict(zip(cls.TENSORS, tensors)), **options)


@dataclass(frozen=True)
class SSDCall:
    """Validated arguments of one ``ssd_scan`` call, in mamba_ssm's ``mamba_chunk_scan_combined`` layout.

    x: (batch, length, heads, headdim); dt: (batch, length, heads); A: (heads,);
    B, C: (batch, length, groups, d_state); D: (heads,) or (heads, headdim);
    z: (batch, length, heads, headdim); dt_bias: (heads,);
    initial_states: (batch, heads, headdim, d_state).
    """

    x: Tensor
    dt: Tensor
    A: Tensor
    B: Tensor
    C: Tensor
    chunk_size: int = 256
    D: Tensor | None = None
    z: Tensor | None = None
    dt_bias: Tensor | None = None
    initial_states: Tensor | None = None
    dt_softplus: bool = False
    dt_limit: tuple[float, float] = (0.0, math.inf)
    return_final_states: bool = False

    @property
    def batch(self) -> int:
        return int(self.x.shape[0])

    @property
    def length(self) -> int:
        return int(self.x.shape[1])

    @property
    def heads(self) -> int:
        return int(self.x.shape[2])

    @property
    def headdim(self) -> int:
        return int(self.x.shape[3])

    @property
    def groups(self) -> int:
        return int(self.B.shape[2])

    @property
    def d_state(self) -> int:
        return int(self.B.shape[3])

    @property
    def device(self) -> torch.device:
        return self.x.device

    def tensors(self) -> dict[str, Tensor]:
        names = ("x", "dt", "A", "B", "C", "D", "z", "dt_bias", "initial_states")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


def _layout(t: Tensor) -> Layout:
    return {2: "fixed", 3: "variable", 4: "grouped"}[t.dim()]  # type: ignore[return-value]


class ScanBackend:
    """Base class of scan backends. Subclasses override what they implement.

    ``name`` is the registry name; ``ops`` lists the scans implemented ("selective_scan",
    "ssd_scan"). ``priority(device_type)`` orders ``backend="auto"`` (lower is tried first;
    ``None`` means never chosen automatically on that device type); a backend whose rank differs
    between its scans overrides ``op_priority(op, device_type)``, which defaults to ``priority``,
    and one whose rank depends on the call overrides ``call_priority(op, call)``.
    """

    name: ClassVar[str] = "?"
    description: ClassVar[str] = ""
    ops: ClassVar[tuple[str, ...]] = ()

    def available(self) -> tuple[bool, str]:
        """Whether the backend can run at all here (imports, devices); the reason when not."""
        return True, ""

    def priority(self, device_type: str) -> int | None:
        return None

    def op_priority(self, op: str, device_type: str) -> int | None:
        """The rank of this backend for ``op`` ("selective_scan" or "ssd_scan") under ``auto``."""
        return self.priority(device_type)

    def call_priority(self, op: str, call: SelectiveScanCall | SSDCall) -> int | None:
        """The rank for one call (``auto`` sorts by it): by default ``op_priority`` on the call's
        device; a backend that is faster only for some calls (measured) overrides it."""
        return self.op_priority(op, call.device.type)

    def supports_selective_scan(self, call: SelectiveScanCall) -> tuple[bool, str]:
        return False, f"backend {self.name!r} does not implement selective_scan"

    def supports_ssd_scan(self, call: SSDCall) -> tuple[bool, str]:
        return False, f"backend {self.name!r} does not implement ssd_scan"

    def selective_scan(self, call: SelectiveScanCall) -> Tensor | tuple[Tensor, Tensor]:
        """Run the scan; returns out, or (out, last_state) when ``call.return_last_state``."""
        raise TypeError(f"backend {self.name!r} does not implement selective_scan")

    def ssd_scan(self, call: SSDCall) -> Tensor | tuple[Tensor, Tensor]:
        """Run SSD; returns out, or (out, final_states) when ``call.return_final_states``."""
        raise TypeError(f"backend {self.name!r} does not implement ssd_scan")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
