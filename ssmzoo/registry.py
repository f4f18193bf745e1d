"""The registry: every unit, named variant, model, scan backend and task, by name.

It is strict (a name registered twice raises, naming both plugins) and it is the only global state
of the library. Plugins fill it through the hooks of :mod:`ssmzoo.hookspecs`, called with the
registry as their one argument::

    @ssmzoo.hookimpl
    def ssmzoo_register_units(registry):
        registry.unit("lru", LRU, doc="Linear recurrent unit", paper="Orvieto et al. 2023")

The plugins are loaded on the first call of :func:`get_registry`, never at import.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ssmzoo.entries import Description, Entry, Variant, _first_line, natural_key
from ssmzoo.errors import (
    DuplicateNameError,
    MissingHyperparameterError,
    SSMZooError,
    UnknownBackendError,
    UnknownKeyError,
    UnknownModelError,
    UnknownTaskError,
    UnknownUnitError,
)
from ssmzoo.hparams import check_rules, coerce
from ssmzoo.spec import Spec, SpecLike, parse

if TYPE_CHECKING:
    from ssmzoo.scan.backend import ScanBackend

__all__ = ["Registry", "Entry", "Variant", "Description", "Transaction", "get_registry",
           "natural_key"]


@dataclass
class Transaction:
    """What one :meth:`Registry.transaction` registered (``(kind, name)`` pairs, in order)."""

    owner: str
    registered: list[tuple[str, str]] = field(default_factory=list)
    rolled_back: bool = False


class Registry:
    """Units, variants, models, backends and tasks, by name."""

    def __init__(self) -> None:
        self._units: dict[str, Entry] = {}
        self._variants: dict[str, Variant] = {}
        self._models: dict[str, Entry] = {}
        self._tasks: dict[str, Entry] = {}
        self._backends: dict[str, ScanBackend] = {}
        self._backend_plugin: dict[str, str] = {}
        self._formats: dict[str, Any] = {}  # checkpoint formats (ssmzoo.models.interchange)
        self.current_plugin = "<direct>"
        self.plugins: list[Any] = []  # ssmzoo.plugins.PluginInfo records, filled by the loader

    # ---- the verbs plugins call ---------------------------------------------------------------
    def _check_free(self, kind: str, name: str, table: dict[str, Any]) -> None:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", name):
            raise SSMZooError(f"cannot register {kind} {name!r}: a name is letters, digits, "
                              "'_', '-' and '.', starting with a letter or '_'")
        owner = None
        if name in table:
            obj = table[name]
            owner = getattr(obj, "plugin", None) or self._backend_plugin.get(name, "?")
        elif kind in ("unit", "variant") and (name in self._units or name in self._variants):
            other = self._units.get(name) or self._variants.get(name)
            owner = other.plugin  # type: ignore[union-attr]
        if owner is not None:
            raise DuplicateNameError(kind, name, owner, self.current_plugin)

    def unit(self, name: str, factory: Callable[..., Any], *, doc: str | None = None,
             paper: str = "", role: str = "core") -> None:
        """Register a unit: ``factory(d_model, **hyperparameters) -> nn.Module``.

        ``role`` is "core" (a sequence mixer with no expansion or gating) or "block" (wraps a core).
        """
        self._check_free("unit", name, self._units)
        self._units[name] = Entry("unit", name, factory, doc or _first_line(factory.__doc__),
                                  self.current_plugin, paper=paper, role=role)

    def variant(self, name: str, spec: SpecLike, *, doc: str = "") -> None:
        """Register a named variant: a spec alias that accepts overrides (``b2s6-nobias(h=4)``)."""
        self._check_free("variant", name, self._variants)
        self._variants[name] = Variant(name, parse(spec), doc, self.current_plugin)

    def model(self, name: str, factory: Callable[..., Any], *, doc: str | None = None) -> None:
        """Register a model kind (``lm``, ``classifier``, ...): ``factory(**hyperparameters)``."""
        self._check_free("model", name, self._models)
        self._models[name] = Entry("model", name, factory, doc or _first_line(factory.__doc__),
                                   self.current_plugin)

    def task(self, name: str, factory: Callable[..., Any], *, doc: str | None = None) -> None:
        """Register a task: ``factory(**hyperparameters)`` returning a task object."""
        self._check_free("task", name, self._tasks)
        self._tasks[name] = Entry("task", name, factory, doc or _first_line(factory.__doc__),
                                  self.current_plugin)

    def backend(self, name: str, backend: ScanBackend) -> None:
        """Register a scan backend (an instance of :class:`ssmzoo.scan.backend.ScanBackend`)."""
        from ssmzoo.scan.backend import ScanBackend

        self._check_free("backend", name, self._backends)
        if not isinstance(backend, ScanBackend):  # dispatch relies on the base class's defaults
            raise SSMZooError(f"cannot register backend {name!r}: backend must be an instance of "
                              f"ssmzoo.scan.backend.ScanBackend, got {type(backend).__name__}")
        self._backends[name] = backend
        self._backend_plugin[name] = self.current_plugin

    def checkpoint_format(self, fmt: Any) -> None:
        """Register a checkpoint format of another implementation (an instance of
        :class:`ssmzoo.models.interchange.CheckpointFormat`), under ``fmt.name``."""
        from ssmzoo.models.interchange import CheckpointFormat

        name = getattr(fmt, "name", None)
        if not isinstance(fmt, CheckpointFormat):
            raise SSMZooError(f"cannot register checkpoint format {name!r}: it must be an "
                              "instance of ssmzoo.models.interchange.CheckpointFormat, got "
                              f"{type(fmt).__name__}")
        self._check_free("format", name, self._formats)  # type: ignore[arg-type]
        fmt.plugin = self.current_plugin
        self._formats[name] = fmt  # type: ignore[index]

    # ---- transactions: a plugin's registrations land whole or not at all ----------------------
    @contextmanager
    def transaction(self, owner: str) -> Iterator[Transaction]:
        """Register as ``owner``; an exception inside the block removes everything it registered.

        ::

            with registry.transaction(owner="lru") as tx:
                registry.unit("lru", LRU)
            tx.registered  # [("unit", "lru")]

        The exception propagates after the rollback (``tx.rolled_back`` is then true).
        """
        snap = self._snapshot()
        previous, self.current_plugin = self.current_plugin, owner
        tx = Transaction(owner)
        try:
            yield tx
        except BaseException:
            self._restore(snap)
            tx.rolled_back = True
            raise
        else:
            tx.registered = self._names_since(snap)
        finally:
            self.current_plugin = previous

    def unregister(self, names: list[tuple[str, str]]) -> None:
        """Remove ``(kind, name)`` pairs, as a transaction reports them (kind: unit, variant, ...)."""
        tables = self._tables()
        for kind, name in names:
            if kind not in tables:
                raise UnknownKeyError("registry.unregister", kind, tables)
            tables[kind].pop(name, None)
            if kind == "backend":
                self._backend_plugin.pop(name, None)

    def _tables(self) -> dict[str, dict[str, Any]]:
        return {"unit": self._units, "variant": self._variants, "model": self._models,
                "task": self._tasks, "backend": self._backends, "format": self._formats}

    def _snapshot(self) -> tuple[dict[str, Any], ...]:
        return (dict(self._units), dict(self._variants), dict(self._models), dict(self._tasks),
                dict(self._backends), dict(self._formats), dict(self._backend_plugin))

    def _restore(self, snap: tuple[dict[str, Any], ...]) -> None:
        (self._units, self._variants, self._models, self._tasks, self._backends, self._formats,
         self._backend_plugin) = (dict(s) for s in snap)

    def _names_since(self, snap: tuple[dict[str, Any], ...]) -> list[tuple[str, str]]:
        kinds = ("unit", "variant", "model", "task", "backend", "format")
        now = self._snapshot()
        return [(k, n) for k, old, new in zip(kinds, snap, now) for n in new if n not in old]

    # ---- lookups ------------------------------------------------------------------------------
    @property
    def units(self) -> dict[str, Entry]:
        return dict(self._units)

    @property
    def variants(self) -> dict[str, Variant]:
        return dict(self._variants)

    @property
    def models(self) -> dict[str, Entry]:
        return dict(self._models)

    @property
    def tasks(self) -> dict[str, Entry]:
        return dict(self._tasks)

    @property
    def backends(self) -> dict[str, ScanBackend]:
        return dict(self._backends)

    @property
    def checkpoint_formats(self) -> dict[str, Any]:
        return dict(self._formats)

    def backend_plugin(self, name: str) -> str:
        return self._backend_plugin.get(name, "?")

    def get_backend(self, name: str) -> ScanBackend:
        try:
            return self._backends[name]
        except KeyError:
            raise UnknownBackendError(name, ["auto", *self._backends]) from None

    def get_task(self, name: str) -> Entry:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTaskError(name, self._tasks) from None

    def get_model(self, name: str) -> Entry:
        try:
            return self._models[name]
        except KeyError:
            raise UnknownModelError(name, self._models) from None

    def list_units(self, pattern: str = "*", *, variants: bool = True) -> list[str]:
        """Names of units (and named variants) matching a wildcard pattern, naturally sorted."""
        names = list(self._units) + (list(self._variants) if variants else [])
        return sorted((n for n in names if fnmatch.fnmatchcase(n, pattern)), key=natural_key)

    def variants_of(self, unit: str) -> list[Variant]:
        """Named variants that use ``unit``: resolve to it, or nest it (``mamba(core=b2s6)``)."""
        return sorted((v for v in self._variants.values() if unit in self._units_in(v.spec)),
                      key=lambda v: natural_key(v.name))

    def _units_in(self, spec: Spec, _seen: tuple[str, ...] = ()) -> set[str]:
        """Every unit a spec uses, through variants and nested specs."""
        try:
            entry, expanded = self._expand(spec, _seen)
        except SSMZooError:
            return set()
        found = {entry.name}
        stack: list[Any] = list(expanded.args.values())
        while stack:
            value = stack.pop()
            if isinstance(value, Spec) and (value.name in self._units or value.name in self._variants):
                found |= self._units_in(value, _seen)
            elif isinstance(value, Spec):
                stack.extend(value.args.values())
            elif isinstance(value, (list, tuple)):
                stack.extend(value)
        return found

    # ---- specs --------------------------------------------------------------------------------
    def _expand(self, spec: Spec, _seen: tuple[str, ...] = ()) -> tuple[Entry, Spec]:
        """Follow variants to a unit: (unit entry, spec of that unit with merged arguments)."""
        if spec.name in self._units:
            return self._units[spec.name], spec
        if spec.name in self._variants:
            if spec.name in _seen:
                raise SSMZooError(f"variant {spec.name!r} refers to itself: "
                                  + " -> ".join((*_seen, spec.name)))
            target = self._variants[spec.name].spec
            merged = Spec(target.name, {**target.args, **spec.args})
            return self._expand(merged, (*_seen, spec.name))
        raise UnknownUnitError(spec.name, list(self._units) + list(self._variants))

    def _check_args(self, entry: Entry, spec: Spec) -> Spec:
        owner = f"{entry.kind} {entry.name!r}"
        valid = {h.name: h for h in entry.hparams}
        args: dict[str, Any] = {}
        for key, value in spec.args.items():
            if key not in valid:
                raise UnknownKeyError(owner, key, valid)
            args[key] = coerce(owner, valid[key], value, self.resolve)
        defaults = {h.name: h.default for h in entry.hparams if not h.required}
        check_rules(owner, entry.rules, {**defaults, **args})
        return Spec(entry.name, args)

    def resolve(self, spec: SpecLike) -> Spec:
        """Validate a unit spec and return it with variants expanded and values coerced.

        Raises on an unknown unit (with the nearest names), an unknown key or a wrongly typed value.
        """
        entry, expanded = self._expand(parse(spec))
        return self._check_args(entry, expanded)

    def resolve_model(self, spec: SpecLike) -> Spec:
        """Validate a model spec (``lm(mixer=..., d_model=64)``), nested unit specs included."""
        spec = parse(spec)
        return self._check_args(self.get_model(spec.name), spec)

    def resolve_task(self, spec: SpecLike) -> Spec:
        spec = parse(spec)
        return self._check_args(self.get_task(spec.name), spec)

    def _call(self, entry: Entry, spec: Spec, **fixed: Any) -> Any:
        for hp in entry.hparams:
            if hp.required and hp.name not in spec.args and hp.name not in fixed:
                raise MissingHyperparameterError(f"{entry.kind} {entry.name!r}", hp.name)
        obj = entry.factory(**fixed, **spec.args)
        try:
            obj.ssmzoo_spec = str(spec)
        except (AttributeError, TypeError):
            pass
        return obj

    def build(self, spec: SpecLike, d_model: int) -> Any:
        """Build a unit from its spec: an ``nn.Module`` mapping (batch, length, d_model) to the same."""
        resolved = self.resolve(spec)
        return self._call(self._units[resolved.name], resolved, d_model=d_model)

    def build_model(self, spec: SpecLike, **overrides: Any) -> Any:
        """Build a model (``lm``, ``classifier``, ``regressor``) from its spec and overrides."""
        spec = parse(spec)
        resolved = self.resolve_model(spec.replace(**overrides) if overrides else spec)
        return self._call(self._models[resolved.name], resolved)

    def build_task(self, spec: SpecLike, **overrides: Any) -> Any:
        spec = parse(spec)
        resolved = self.resolve_task(spec.replace(**overrides) if overrides else spec)
        return self._call(self._tasks[resolved.name], resolved)

    def describe(self, name: str) -> Description:
        """A unit's, variant's, model's or task's declaration (hyperparameters, paper, variants).

        ``name`` may be a full spec (``b2s6(h=4)``): its values are validated first, so a value
        out of range is refused here as everywhere else.
        """
        spec = parse(name)
        if spec.args:
            check = (self.resolve_model if spec.name in self._models else
                     self.resolve_task if spec.name in self._tasks else self.resolve)
            check(spec)
        if spec.name in self._models or spec.name in self._tasks:
            entry = self._models.get(spec.name) or self._tasks[spec.name]
            return Description(entry.name, entry.kind, entry.doc, entry.plugin, entry.paper, None,
                               entry.name, entry.hparams, {}, [], entry.rules)
        entry, expanded = self._expand(spec)
        if spec.name in self._variants:
            v = self._variants[spec.name]
            return Description(v.name, "variant", v.doc, v.plugin, entry.paper, str(v.spec),
                               entry.name, entry.hparams, dict(expanded.args),
                               self.variants_of(entry.name), entry.rules)
        return Description(entry.name, f"unit, {entry.role}", entry.doc, entry.plugin,
                           entry.paper, None, entry.name, entry.hparams, {},
                           self.variants_of(entry.name), entry.rules)


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The registry, with every plugin of the ``ssmzoo`` entry-point group loaded (once)."""
    global _REGISTRY
    if _REGISTRY is None:
        # The one place the registry meets the loader: a call-time import, so neither module
        # imports the other at module level (plugins.py builds on this module's public API).
        from ssmzoo.plugins import load_plugins

        reg = Registry()
        load_plugins(reg)
        _REGISTRY = reg
    return _REGISTRY


def reset_registry() -> None:
    """Forget the loaded registry, so that the next use loads the plugins again (for tests)."""
    global _REGISTRY
    _REGISTRY = None
