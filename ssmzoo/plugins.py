"""Loading plugins from the ``ssmzoo`` entry-point group, one by one, each in isolation.

Built-in families are loaded exactly like third-party ones. Each entry point is imported and its
hooks are called inside its own transaction: a plugin that fails to import or to register is
recorded (name, distribution, version, error), warned about once, and everything it registered is
rolled back, so it harms nothing but itself. ``SSMZOO_STRICT_PLUGINS=1`` re-raises instead (the
built-ins' own tests run so). ``SSMZOO_BLOCK_PLUGINS=name,other`` (or :func:`block`) skips plugins
by entry-point name.

Built-ins (the entry points of the ``ssmzoo`` distribution itself) are imported and registered
before any third-party plugin, so their names can never be replaced: a third-party plugin that
registers a built-in's name is the one that fails (the error names both plugins) and is rolled
back whole. A plugin whose import takes longer than :data:`SLOW_IMPORT_SECONDS` gets one line on
stderr naming it and how to block it.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

import pluggy

from ssmzoo import hookspecs
from ssmzoo.errors import DuplicateNameError, PluginError
from ssmzoo.registry import Registry

GROUP = "ssmzoo"
BUILTIN_DISTRIBUTION = "ssmzoo"
# After this many seconds of importing one plugin, say which one (tests lower it).
SLOW_IMPORT_SECONDS = 20.0  # torch alone can take 5-10 s to import on a loaded machine
# Order of the registration phases: units before variants, so a variant may name any plugin's unit.
PHASES = ("ssmzoo_register_units", "ssmzoo_register_models", "ssmzoo_register_backends",
          "ssmzoo_register_tasks", "ssmzoo_register_variants", "ssmzoo_register_formats")

_blocked: set[str] = set()


@dataclass
class PluginInfo:
    """What ``ssmzoo plugins`` shows about one plugin."""

    name: str
    module: str
    distribution: str
    version: str
    state: str = "loaded"  # "loaded", "failed" or "blocked"
    builtin: bool = False  # an entry point of the ssmzoo distribution itself
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
    if isinstance(exc, DuplicateNameError) and exc.first in _builtin_names:
        info.error += " (a built-in name: built-ins cannot be replaced)"
    info.traceback = "".join(traceback.format_exception(exc))
    if strict():
        raise PluginError(f"plugin {info.name!r} ({info.distribution} {info.version}) failed "
                          f"{info.error}") from exc
    warnings.warn(f"ssmzoo plugin {info.name!r} ({info.distribution} {info.version}) failed to "
                  f"{info.error}; it is disabled (see `ssmzoo plugins`)", RuntimeWarning,
                  stacklevel=3)


_builtin_names: set[str] = set()


def _import(ep: EntryPoint) -> ModuleType:
    """Import the entry point's module; past SLOW_IMPORT_SECONDS, say once which plugin it is."""
    done = threading.Event()

    def warn_slow() -> None:
        if not done.is_set():
            print(f"ssmzoo: still importing plugin {ep.name!r} ({SLOW_IMPORT_SECONDS:g} s); block "
                  f"it with SSMZOO_BLOCK_PLUGINS={ep.name} or --block-plugin {ep.name}",
                  file=sys.stderr, flush=True)

    timer = threading.Timer(SLOW_IMPORT_SECONDS, warn_slow)
    timer.daemon = True
    timer.start()
    try:
        return importlib.import_module(ep.value.split(":")[0])
    finally:
        done.set()
        timer.cancel()


def _register(registry: Registry, pm: pluggy.PluginManager,
              modules: list[tuple[PluginInfo, ModuleType]], every: list[ModuleType]) -> None:
    """Phase by phase, plugin by plugin, each call in its own transaction.

    ``every`` is every imported plugin module; each call leaves out all but the plugin's own.
    """
    failed: set[str] = set()
    for phase in PHASES:
        for info, _module in modules:
            if info.name in failed:
                continue
            others = [m for m in every if m is not _module]
            caller = pm.subset_hook_caller(phase, remove_plugins=others)
            try:
                with registry.transaction(owner=info.name) as tx:
                    caller(registry=registry)
            except Exception as exc:
                failed.add(info.name)
                _fail(info, exc, f"register ({phase})")
                continue
            info.registered += tx.registered
    # A plugin that failed in a later phase loses what it registered in earlier ones too.
    for info, _ in modules:
        if info.name in failed and info.registered:
            registry.unregister(info.registered)
            info.registered = []


def load_plugins(registry: Registry, eps: list[EntryPoint] | None = None) -> list[PluginInfo]:
    """Import every entry point of the group and let each register into ``registry``.

    Built-ins first (all their phases), then third-party plugins, each group in name order.
    """
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
    groups: tuple[list[tuple[PluginInfo, ModuleType]], ...] = ([], [])
    skip = blocked()
    infos = []
    for ep in eps:
        dist, version = _dist(ep)
        infos.append(PluginInfo(ep.name, ep.value, dist, version,
                                builtin=dist == BUILTIN_DISTRIBUTION))
    infos.sort(key=lambda i: not i.builtin)  # stable: name order within each group
    _builtin_names.update(i.name for i in infos if i.builtin)
    eps_by_name = {(ep.name, ep.value): ep for ep in eps}
    for info in infos:
        ep = eps_by_name[(info.name, info.module)]
        registry.plugins.append(info)
        if info.name in skip:
            info.state = "blocked"
            continue
        try:
            module = _import(ep)
            pm.register(module, name=info.name)
        except Exception as exc:
            _fail(info, exc, "import")
            continue
        groups[0 if info.builtin else 1].append((info, module))
    every = [m for group in groups for _, m in group]
    for group in groups:
        _register(registry, pm, group, every)
    return registry.plugins
