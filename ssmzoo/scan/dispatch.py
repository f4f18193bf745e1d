"""Choosing the backend that runs one scan call.

``backend="auto"`` tries the registered backends that implement the op in the order of their
``op_priority(op, device_type)`` (by default ``priority(device_type)``; lowest first; ``None``
means never automatically on that device), refined per call by ``call_priority(op, call)``, and
takes the first that is available and supports the call. A backend named explicitly must be able
to run the call, or :class:`~ssmzoo.errors.BackendUnavailableError` says why; an unknown name
raises :class:`~ssmzoo.errors.UnknownBackendError` listing the known ones.

``SSMZOO_BLOCK_BACKENDS=name,other`` takes backends out of ``auto`` (and makes naming one
explicitly an error). A backend that ``auto`` chose and that raises at call time is not silently
replaced by another (that could change a researcher's numbers): :func:`run` re-raises it as
:class:`~ssmzoo.errors.BackendUnavailableError` naming the backend and how to exclude it.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from ssmzoo.errors import BackendUnavailableError, NoBackendError, ScanArgumentError, SSMZooError
from ssmzoo.scan.backend import ScanBackend, SelectiveScanCall, SSDCall

Op = Literal["selective_scan", "ssd_scan"]


BLOCK_ENV = "SSMZOO_BLOCK_BACKENDS"


def blocked() -> set[str]:
    """Backend names listed in ``SSMZOO_BLOCK_BACKENDS`` (comma-separated)."""
    return {n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()}


def _hint(name: str) -> str:
    return (f"exclude it with {BLOCK_ENV}={name}, or pass backend='reference' (or another "
            "backend listed by `ssmzoo backends`)")


def run(op: Op, call: SelectiveScanCall | SSDCall, backend: str | ScanBackend) -> Any:
    """Choose the backend for ``call`` and run it; an auto-chosen backend that raises is named."""
    chosen = choose(op, call, backend)
    fn = chosen.selective_scan if op == "selective_scan" else chosen.ssd_scan
    if backend != "auto":
        return fn(call)  # the user asked for this backend: its own error is the answer
    try:
        return fn(call)  # type: ignore[arg-type]
    except SSMZooError:
        raise  # a deliberate, already readable error (bad argument, ...)
    except Exception as exc:
        name = getattr(chosen, "name", "?")
        raise BackendUnavailableError(
            name, op, f"it was chosen by backend='auto' and failed with "
            f"{type(exc).__name__}: {exc}; {_hint(name)}") from exc


def _supports(backend: ScanBackend, op: Op, call: SelectiveScanCall | SSDCall) -> tuple[bool, str]:
    if op not in backend.ops:
        return False, f"backend {backend.name!r} does not implement {op}"
    try:
        ok, why = backend.available()
    except Exception as exc:  # a broken availability check is a reason, not a crash
        return False, f"availability check failed: {type(exc).__name__}: {exc}"
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


def choose(op: Op, call: SelectiveScanCall | SSDCall, backend: str | ScanBackend) -> ScanBackend:
    """The backend that will run ``call``: the named one (or the instance given), or the first
    suitable for ``"auto"``."""
    from ssmzoo.registry import get_registry

    if isinstance(backend, ScanBackend):  # an instance (say, with its own tuning): as named
        ok, why = _supports(backend, op, call)
        if not ok:
            raise BackendUnavailableError(getattr(backend, "name", "?"), op, why)
        return backend
    if not isinstance(backend, str):
        raise ScanArgumentError(op, "backend", "a backend name (str), 'auto' or a ScanBackend",
                                f"{type(backend).__name__} {backend!r}")
    if backend != "auto":
        chosen = get_registry().get_backend(backend)  # UnknownBackendError lists the known ones
        if backend in blocked():
            raise BackendUnavailableError(backend, op, f"it is blocked by {BLOCK_ENV}")
        ok, why = _supports(chosen, op, call)
        if not ok:
            raise BackendUnavailableError(backend, op, why)
        return chosen
    reasons: dict[str, str] = {}
    ranked = []
    skip = blocked()
    for i, (name, cand) in enumerate(candidates(op, call.device.type)):
        prio = cand.call_priority(op, call)
        if prio is not None:  # a backend may step out of auto for a call
            ranked.append((prio, i, name, cand))
    for _, _, name, cand in sorted(ranked, key=lambda r: r[:2]):
        if name in skip:
            reasons[name] = f"blocked by {BLOCK_ENV}"
            continue
        ok, why = _supports(cand, op, call)
        if ok:
            return cand
        reasons[name] = why
    raise NoBackendError(op, reasons)
