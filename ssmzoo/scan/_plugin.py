"""Registers the pure-PyTorch reference scan backend, as a plugin like any other."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ssmzoo.hookspecs import hookimpl

if TYPE_CHECKING:
    from ssmzoo.registry import Registry


@hookimpl
def ssmzoo_register_backends(registry: Registry) -> None:
    from ssmzoo.scan.reference import ReferenceBackend

    registry.backend("reference", ReferenceBackend())
