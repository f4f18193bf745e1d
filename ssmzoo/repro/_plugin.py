"""Registers the reproduction tasks (``dt_gradients``, ``length_extension``), as a plugin.

Its entry point is ``repro = "ssmzoo.repro._plugin"`` in the ``ssmzoo`` group;
:func:`ensure_registered` adds the tasks to a registry that was loaded without it.
"""

from __future__ import annotations

import ssmzoo
from ssmzoo.registry import Registry

__all__ = ["ssmzoo_register_tasks", "ensure_registered"]


@ssmzoo.hookimpl
def ssmzoo_register_tasks(registry: Registry) -> None:
    from ssmzoo.repro import tasks

    registry.task("dt_gradients", tasks.DtGradients,
                  doc="S6/S4D gradient growth in the Δ parameters, measured (B2S6 Thm 3)")
    registry.task("length_extension", tasks.LengthExtension,
                  doc="Character LM trained short, evaluated long under each length-extension method")


def ensure_registered(registry: Registry | None = None) -> Registry:
    """The registry, with the reproduction tasks in it (registered here if no plugin did)."""
    from ssmzoo.registry import get_registry

    registry = registry or get_registry()
    if "dt_gradients" not in registry.tasks:
        ssmzoo_register_tasks(registry)
    return registry
