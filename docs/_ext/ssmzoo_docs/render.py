"""reStructuredText generated from the ssmzoo registry: unit pages, tables of units, variants,
backends, tasks, models, plugins and hooks.

Every function here is pure (registry in, text out), so the tests can check the generated pages
without running Sphinx, and the Sphinx extension (:mod:`ssmzoo_docs`) only writes and parses them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ssmzoo.hparams import HParam
from ssmzoo.registry import Entry, Registry, natural_key

__all__ = ["unit_page", "units_index", "unit_docname", "unit_target", "variant_target",
           "hook_target", "hparam_table", "autodoc_directive", "inline", "literal", "list_table",
           "title"]

# ---- small text helpers -----------------------------------------------------------------------

_LITERAL = re.compile(r"(``.+?``|:\w+:`[^`]+`|`[^`]+`_?)")


def inline(text: str) -> str:
    """One line of free text made safe for reST: ``|`` and stray ``*`` are escaped outside
    literals and roles, and newlines are folded, so a docstring line can sit in a table cell."""
    text = " ".join((text or "").split())
    parts = _LITERAL.split(text)
    for i in range(0, len(parts), 2):  # even parts lie outside literals and roles
        parts[i] = parts[i].replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
    return "".join(parts)


def literal(text: str) -> str:
    """``text`` as an inline literal (empty text gives an empty cell)."""
    text = " ".join(str(text).split())
    return f"``{text}``" if text else ""


def title(text: str, char: str = "=") -> list[str]:
    return [text, char * max(len(text), 3), ""]


def list_table(header: Sequence[str], rows: Iterable[Sequence[str]], *,
               widths: Sequence[int] | None = None) -> list[str]:
    """A ``list-table`` directive; cells are single lines of inline reST."""
    rows = list(rows)
    out = [".. list-table::", "   :header-rows: 1"]
    if widths:
        out.append("   :widths: " + " ".join(str(w) for w in widths))
    out.append("")
    for row in [list(header), *rows]:
        for j, cell in enumerate(row):
            lead = "   * - " if j == 0 else "     - "
            out.append((lead + cell).rstrip())
    out.append("")
    return out


def _first_line(text: str | None) -> str:
    text = (text or "").strip()
    return text.splitlines()[0].strip() if text else ""


# ---- names of pages and targets -----------------------------------------------------------------

def unit_docname(name: str) -> str:
    """File stem of a unit's page under ``docs/units/`` (names may hold '.', kept as is)."""
    return name


def unit_target(name: str) -> str:
    return f"unit-{name}"


def variant_target(name: str) -> str:
    return f"variant-{name}"


def hook_target(name: str) -> str:
    return f"hook-{name}"


# ---- autodoc of a factory -----------------------------------------------------------------------

def autodoc_directive(factory: Callable[..., Any]) -> list[str]:
    """The autodoc directive that renders a factory's docstring (math and notes included), or
    nothing when the factory has no importable name (a lambda, a partial)."""
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return []
    if inspect.isclass(factory):
        members = [m for m in _DOCUMENTED_METHODS if _defines(factory, m)]
        lines = [f".. autoclass:: {module}.{qualname}"]
        if members:
            lines.append("   :members: " + ", ".join(members))
        return [*lines, ""]
    return [f".. autofunction:: {module}.{qualname}", ""]


# methods of a unit class worth showing on its page (when the class or a base of the plugin
# defines them, rather than torch.nn.Module)
_DOCUMENTED_METHODS = ("init_state", "step", "state_size")


def _defines(cls: type, method: str) -> bool:
    for klass in cls.__mro__:
        if klass.__module__.startswith("torch."):
            return False
        if method in vars(klass):
            return bool(getattr(vars(klass)[method], "__doc__", None))
    return False


def _plugin_line(registry: Registry, plugin: str) -> str:
    for info in registry.plugins:
        if info.name == plugin:
            where = f"{info.distribution} {info.version}" if info.distribution != "?" else ""
            return f"``{plugin}`` ({inline(where)}, module ``{info.module}``)" if where \
                else f"``{plugin}`` (module ``{info.module}``)"
    return literal(plugin)


# ---- hyperparameter tables ----------------------------------------------------------------------

def hparam_table(hparams: Sequence[HParam], overrides: dict[str, Any] | None = None) -> list[str]:
    """The declared hyperparameters as a table: name, default, type, doc."""
    if not hparams:
        return ["This factory declares no hyperparameters.", ""]
    rows = []
    for h in hparams:
        default = h.default_text
        if overrides and h.name in overrides:
            from ssmzoo.spec import format_value
            default = format_value(overrides[h.name])
        rows.append([literal(h.name), literal(default), literal(h.type_text), inline(h.doc)])
    return list_table(["name", "default", "type", "doc"], rows, widths=[18, 16, 18, 48])


# ---- units --------------------------------------------------------------------------------------

def _units_by_role(registry: Registry) -> dict[str, list[Entry]]:
    roles: dict[str, list[Entry]] = {}
    for name in sorted(registry.units, key=natural_key):
        entry = registry.units[name]
        roles.setdefault(entry.role or "core", []).append(entry)
    return roles


def variant_home(registry: Registry, variant: Any) -> str | None:
    """The unit a named variant resolves to (where its entry and label live), or None."""
    try:
        return registry.resolve(variant.spec).name
    except Exception:  # noqa: BLE001 - a variant naming a unit that failed to load
        return None


def variants_by_home(registry: Registry, name: str) -> tuple[list[Any], list[Any]]:
    """(variants that resolve to ``name``, variants of other units that nest ``name``)."""
    own, users = [], []
    for v in registry.variants_of(name):
        (own if variant_home(registry, v) == name else users).append(v)
    return own, users


def unit_page(registry: Registry, name: str) -> str:
    """The page of one unit: summary, plugin, paper, hyperparameters, variants, docstring."""
    entry = registry.units[name]
    out = [f".. _{unit_target(name)}:", "", f".. index:: single: {name}; unit", ""]
    out += title(name)
    if entry.doc:
        out += [inline(entry.doc), ""]
    role = {"core": "core (a sequence mixer, (batch, length, d_model) to the same, with no "
                    "expansion or gating of its own)",
            "block": "block (wraps a core the way the papers do)"}.get(entry.role, entry.role)
    out += [f":role: {role}", f":plugin: {_plugin_line(registry, entry.plugin)}"]
    if entry.paper:
        out.append(f":paper: {inline(entry.paper)}")
    out.append(f":build: ``ssmzoo.build(\"{name}\", d_model=64)`` or, with overrides, "
               f"``ssmzoo.build(\"{name}(key=value, ...)\", d_model=64)``")
    out.append("")
    module = getattr(entry.factory, "__module__", None)
    if module and (inspect.getdoc(inspect.getmodule(entry.factory)) or "").strip():
        out += title("Definition", "-")
        out += [f"From the documentation of ``{module}``, the module that defines it:", "",
                f".. automodule:: {module}", "   :no-members:", "   :no-index:", ""]
    out += title("Hyperparameters", "-")
    out += ["Declared once, by the factory's keyword signature and its docstring: this is the table "
            f"that ``ssmzoo describe {name}`` prints and that every spec naming ``{name}`` is "
            "checked against.", ""]
    out += hparam_table(entry.hparams)
    own, users = variants_by_home(registry, name)
    out += title("Variants", "-")
    if own:
        out += [f"Named spec aliases that resolve to ``{name}``. Each accepts further overrides, "
                f"e.g. ``{own[0].name}(key=value)``.", ""]
        for v in own:
            text = f"= ``{v.spec}``" + (f". {inline(v.doc)}" if v.doc else "")
            if v.plugin != entry.plugin:
                text += f" (registered by plugin ``{v.plugin}``)"
            out += [f".. _{variant_target(v.name)}:", "", f".. index:: single: {v.name}; variant",
                    "", f"``{v.name}``", f"   {text}", ""]
    else:
        out += [f"No named variant resolves to ``{name}``.", ""]
    if users:
        out += [f"Named variants of other units that use ``{name}`` inside them:", ""]
        out += [f"- :ref:`{v.name} <{variant_target(v.name)}>` = ``{v.spec}``" for v in users]
        out.append("")
    out += example(name, entry.factory)
    directive = autodoc_directive(entry.factory)
    if directive:
        out += title("Reference", "-")
        out += ["The factory's own documentation: the math it computes and the choices it makes "
                "where the paper is silent.", ""]
        out += directive
    return "\n".join(out).rstrip() + "\n"


def example(name: str, factory: Callable[..., Any], d_model: int = 16) -> list[str]:
    """A doctest that builds the unit by name and runs it over a sequence, then one recurrent
    step when the unit defines ``step``: run by ``sphinx -b doctest``, so every documented unit
    is shown building and running."""
    lines = title("Example", "-")
    lines += ["Build it by name and run it over a sequence, then token by token:"
              if _defines_any(factory, "step") else "Build it by name and run it:", ""]
    lines += [".. doctest::", "",
              f"   >>> unit = ssmzoo.build({name!r}, d_model={d_model})",
              f"   >>> x = torch.randn(2, 32, {d_model})               # (batch, length, d_model)",
              "   >>> unit(x).shape",
              f"   torch.Size([2, 32, {d_model}])"]
    if _defines_any(factory, "step") and _defines_any(factory, "init_state"):
        lines += ["   >>> state = unit.init_state(2)",
                  "   >>> y_0, state = unit.step(x[:, 0], state)   # (batch, d_model)",
                  "   >>> y_0.shape",
                  f"   torch.Size([2, {d_model}])"]
    return [*lines, ""]


def _defines_any(factory: Any, method: str) -> bool:
    return inspect.isclass(factory) and callable(getattr(factory, method, None))


def units_index(registry: Registry) -> str:
    """The table of all units (cores, then blocks) and of all named variants, with a hidden
    toctree of the unit pages."""
    out = [".. _units:", ""]
    out += title("Units")
    out += ["Every unit and named variant registered in this build of the documentation, generated "
            "from ``ssmzoo.get_registry()``; ``ssmzoo list`` prints the same names. A third-party "
            "plugin's units appear here when its package is installed while the docs are built.",
            ""]
    roles = _units_by_role(registry)
    headings = {"core": "Cores", "block": "Blocks"}
    for role in sorted(roles, key=lambda r: (r != "core", r != "block", r)):
        out += title(headings.get(role, role.capitalize()), "-")
        rows = [[f":ref:`{e.name} <{unit_target(e.name)}>`", inline(_first_line(e.doc)),
                 inline(e.paper), literal(e.plugin)] for e in roles[role]]
        out += list_table(["unit", "summary", "paper", "plugin"], rows, widths=[14, 46, 26, 14])
    if not roles:
        out += ["No unit is registered in this build (no plugin registered one).", ""]
    variants = sorted(registry.variants.values(), key=lambda v: natural_key(v.name))
    out += title("Named variants", "-")
    if variants:
        rows = []
        for v in variants:
            try:
                base = registry.resolve(v.spec).name
                link = f":ref:`{v.name} <{variant_target(v.name)}>`"
            except Exception as exc:  # a variant naming a unit that failed to load
                base, link = f"(does not resolve: {type(exc).__name__})", literal(v.name)
            rows.append([link, literal(str(v.spec)), literal(base), inline(v.doc)])
        out += list_table(["variant", "spec", "unit", "doc"], rows, widths=[18, 30, 12, 40])
    else:
        out += ["No named variant is registered in this build.", ""]
    out += [".. toctree::", "   :hidden:", ""]
    out += [f"   {unit_docname(e.name)}" for entries in roles.values() for e in entries]
    return "\n".join(out).rstrip() + "\n"
