"""The hooks a plugin implements. Each receives the :class:`~ssmzoo.registry.Registry`.

A plugin is a module named in the ``ssmzoo`` entry-point group whose functions are marked with
``@ssmzoo.hookimpl`` and carry one of these names. A plugin implements only the hooks it needs.
"""

from __future__ import annotations

from typing import Any

import pluggy

# ``registry`` is an ssmzoo.registry.Registry; typed Any so this module imports nothing of ssmzoo.

hookspec = pluggy.HookspecMarker("ssmzoo")
hookimpl = pluggy.HookimplMarker("ssmzoo")


@hookspec
def ssmzoo_register_units(registry: Any) -> None:
    """Register units: ``registry.unit(name, factory, doc=..., paper=..., role="core"|"block")``."""


@hookspec
def ssmzoo_register_variants(registry: Any) -> None:
    """Register named variants: ``registry.variant(name, spec, doc=...)``.

    Called after every plugin's units are registered, so a variant may name another plugin's unit.
    """


@hookspec
def ssmzoo_register_backends(registry: Any) -> None:
    """Register scan backends: ``registry.backend(name, backend)`` (a ``ScanBackend`` instance)."""


@hookspec
def ssmzoo_register_tasks(registry: Any) -> None:
    """Register tasks: ``registry.task(name, factory, doc=...)``."""


@hookspec
def ssmzoo_register_models(registry: Any) -> None:
    """Register model kinds (``lm``, ``classifier``, ...): ``registry.model(name, factory, doc=...)``."""


@hookspec
def ssmzoo_register_formats(registry: Any) -> None:
    """Register checkpoint formats of other implementations that ``ssmzoo.load`` reads (and
    ``model.save(format=...)`` writes): ``registry.checkpoint_format(fmt)``, a
    ``ssmzoo.models.interchange.CheckpointFormat``."""
