"""Loading plugins from the ``ssmzoo`` entry-point group, one by one, each in isolation.

Built-in families are loaded exactly like third-party ones. Each entry point is imported and its
hooks are called inside its own transaction: a plugin that fails to import or to register is
recorded (name, distribution, version, error), warned about once, and everything it registered is
rolled back, so it harms nothing but itself. ``SSMZOO_STRICT_PLUGINS=1`` re-raises instead (the
built-ins' own tests run so). ``SSMZOO_BLOCK_PLUGINS=name,other`` (or :func:`block`) skips plugins
by entry-point name.
"""

from __future__ import annotations

import importlib
import os
import traceback
import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from ssmzoo import hookspecs
from ssmzoo.errors import PluginError

if TYPE_CHECKING:
    from ssmzoo.registry import Registry

GROUP = "ssmzoo"
# Order of the registration phases: units before variants, so a variant may name any plugin's unit.
PHASES = ("ssmzoo_register_units", "ssmzoo_register_models", "ssmzoo_register_backends",
          "ssmzoo_register_tasks", "ssmzoo_register_variants")

_blocked: set[str] = set()


@dataclass
class PluginInfo:
    """What ``ssmzoo plugins`` shows about one plugin."""

    name: str
    module: str
    distribution: str
    version: str
    state: str = "loaded"  # "loaded", "failed" or "blocked"
    error: str | None = None
    traceback: str | None = None
    registered: list[tuple[str, str]] = field(default_factory=list)


def block(*names: str) -> None:
    """Skip these plugins (entry-point names) when the registry is next loaded."""
    _blocked.update(names)


def blocked() -> set[str]:
    env = {n.strip() for n in os.environ.get("SSMZOO_BLOCK_PLUGINS", "").split(",") if n.strip()}
    return _blocked | env


def strict() -> bool:
    return os.environ.get("SSMZOO_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes")


def _dist(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"] or "?", dist.version or "?"


def make_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("ssmzoo")
    pm.add_hookspecs(hookspecs)
    return pm


def _fail(info: PluginInfo, exc: BaseException, where: str) -> None:
    info.state = "failed"
    info.error = f"{where}: {type(exc).__name__}: {exc}"
    info.traceback = "".join(traceback.format_exception(exc))
    if strict():
        raise PluginError(f"plugin {info.name!r} ({info.distribution} {info.version}) failed "
                          f"{info.error}") from exc
    warnings.warn(f"ssmzoo plugin {info.name!r} ({info.distribution} {info.version}) failed to "
                  f"{info.error}; it is disabled (see `ssmzoo plugins`)", RuntimeWarning,
                  stacklevel=3)


def load_plugins(registry: Registry, eps: list[EntryPoint] | None = None) -> list[PluginInfo]:
    """Import every entry point of the group and let each register into ``registry``."""
    if eps is None:
        eps = sorted(entry_points(group=GROUP), key=lambda e: e.name)
        seen: set[tuple[str, str]] = set()
        unique = []
        for ep in eps:  # the same distribution found twice on sys.path: keep the first
            if (ep.name, ep.value) not in seen:
                seen.add((ep.name, ep.value))
                unique.append(ep)
        eps = unique
    pm = make_manager()
    modules: list[tuple[PluginInfo, ModuleType]] = []
    skip = blocked()
    for ep in eps:
        dist, version = _dist(ep)
        info = PluginInfo(ep.name, ep.value, dist, version)
        registry.plugins.append(info)
        if ep.name in skip:
            info.state = "blocked"
            continue
        try:
            module = importlib.import_module(ep.value.split(":")[0])
            pm.register(module, name=ep.name)
        except Exception as exc:
            _fail(info, exc, "import")
            continue
        modules.append((info, module))

    # Phase by phase, plugin by plugin; a failure rolls back everything the plugin registered.
    failed: set[str] = set()
    for phase in PHASES:
        for info, _module in modules:
            if info.name in failed:
                continue
            others = [m for i, m in modules if i is not info]
            caller = pm.subset_hook_caller(phase, remove_plugins=others)
            snap = registry._snapshot()
            registry.current_plugin = info.name
            try:
                caller(registry=registry)
            except Exception as exc:
                registry._restore(snap)
                failed.add(info.name)
                _fail(info, exc, f"register ({phase})")
                continue
            finally:
                registry.current_plugin = "<direct>"
            info.registered += registry._names_since(snap)
    # A plugin that failed in a later phase loses what it registered in earlier ones too.
    for info, _ in modules:
        if info.name in failed and info.registered:
            _remove(registry, info.registered)
            info.registered = []
    return registry.plugins


def _remove(registry: Registry, names: list[tuple[str, str]]) -> None:
    tables: dict[str, dict[str, Any]] = {"unit": registry._units, "variant": registry._variants, "model": registry._models,
              "task": registry._tasks, "backend": registry._backends}
    for kind, name in names:
        tables[kind].pop(name, None)
        if kind == "backend":
            registry._backend_plugin.pop(name, None)

