"""Registers the reproduction tasks (``dt_gradients``, ``length_extension``), as a plugin.

Its entry point is ``repro = "ssmzoo.repro._plugin"`` in the ``ssmzoo`` group.
"""

from __future__ import annotations

import ssmzoo
from ssmzoo.registry import Registry

__all__ = ["ssmzoo_register_tasks"]


@ssmzoo.hookimpl
def ssmzoo_register_tasks(registry: Registry) -> None:
    from ssmzoo.repro import tasks

    registry.task("dt_gradients", tasks.DtGradients,
                  doc="S6/S4D gradient growth in the Δ parameters, measured (B2S6 Thm 3)")
    registry.task("length_extension", tasks.LengthExtension,
                  doc="Character LM trained short, evaluated long under each length-extension method")

