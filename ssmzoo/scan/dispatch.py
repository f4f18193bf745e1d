"""Choosing the backend that runs one scan call.

``backend="auto"`` tries the registered backends that implement the op in the order of their
``op_priority(op, device_type)`` (by default ``priority(device_type)``; lowest first; ``None``
means never automatically on that device), refined per call by ``call_priority(op, call)``, and
takes the first that is available and supports the call. A backend named explicitly must be able
to run the call, or :class:`~ssmzoo.errors.BackendUnavailableError` says why; an unknown name
raises :class:`~ssmzoo.errors.UnknownBackendError` listing the known ones.
"""

from __future__ import annotations

from typing import Literal

from ssmzoo.errors import BackendUnavailableError, NoBackendError, ScanArgumentError
from ssmzoo.scan.backend import ScanBackend, SelectiveScanCall, SSDCall

Op = Literal["selective_scan", "ssd_scan"]


def _supports(backend: ScanBackend, op: Op, call: SelectiveScanCall | SSDCall) -> tuple[bool, str]:
    if op not in backend.ops:
        return False, f"backend {backend.name!r} does not implement {op}"
    ok, why = backend.available()
    if not ok:
        return False, why or "not available"
    if op == "selective_scan":
        assert isinstance(call, SelectiveScanCall)
        return backend.supports_selective_scan(call)
    assert isinstance(call, SSDCall)
    return backend.supports_ssd_scan(call)


def candidates(op: Op, device_type: str) -> list[tuple[str, ScanBackend]]:
    """The backends ``auto`` would try for ``op`` on ``device_type``, in order."""
    from ssmzoo.registry import get_registry

    ranked = []
    for name, backend in get_registry().backends.items():
        prio = backend.op_priority(op, device_type)
        if prio is not None and op in backend.ops:
            ranked.append((prio, name, backend))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [(name, backend) for _, name, backend in ranked]


def choose(op: Op, call: SelectiveScanCall | SSDCall, backend: str) -> ScanBackend:
    """The backend that will run ``call``: the named one, or the first suitable for ``"auto"``."""
    from ssmzoo.registry import get_registry

    if not isinstance(backend, str):
        raise ScanArgumentError(op, "backend", "a backend name (str) or 'auto'",
                                f"{type(backend).__name__} {backend!r}")
    if backend != "auto":
        chosen = get_registry().get_backend(backend)  # UnknownBackendError lists the known ones
        ok, why = _supports(chosen, op, call)
        if not ok:
            raise BackendUnavailableError(backend, op, why)
        return chosen
    reasons: dict[str, str] = {}
    ranked = []
    for i, (name, cand) in enumerate(candidates(op, call.device.type)):
        prio = cand.call_priority(op, call)
        if prio is not None:  # a backend may step out of auto for a call
            ranked.append((prio, i, name, cand))
    for _, _, name, cand in sorted(ranked, key=lambda r: r[:2]):
        ok, why = _supports(cand, op, call)
        if ok:
            return cand
        reasons[name] = why
    raise NoBackendError(op, reasons)
