"""What the registry holds about each name: entries (units, models, tasks), named variants, and
the description ``ssmzoo describe`` prints."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ssmzoo.errors import UnknownKeyError
from ssmzoo.hparams import HParam, Rule, declared, rules_of
from ssmzoo.spec import Spec

__all__ = ["Entry", "Variant", "Description", "natural_key"]


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``s6`` < ``s10`` and ``b2s6-h1`` < ``b2s6-h8`` < ``b2s6-h64``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""


@dataclass
class Entry:
    """A registered factory (unit, model or task) and what is known about it."""

    kind: str  # "unit", "model" or "task"
    name: str
    factory: Callable[..., Any]
    doc: str
    plugin: str
    paper: str = ""
    role: str = ""  # for units: "core" or "block"
    _hparams: list[HParam] | None = field(default=None, repr=False)

    @property
    def hparams(self) -> list[HParam]:
        if self._hparams is None:
            skip = ("self", "d_model") if self.kind == "unit" else ("self",)
            self._hparams = declared(self.factory, skip=skip)
        return self._hparams

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The factory's rules between hyperparameters (``dt_min <= dt_max``)."""
        return rules_of(self.factory)

    def hparam(self, key: str) -> HParam:
        for hp in self.hparams:
            if hp.name == key:
                return hp
        raise UnknownKeyError(f"{self.kind} {self.name!r}", key, [h.name for h in self.hparams])


@dataclass
class Variant:
    """A named spec alias (``b2s6-nobias`` = ``b2s6(bias=false)``)."""

    name: str
    spec: Spec
    doc: str
    plugin: str


@dataclass
class Description:
    """What ``ssmzoo describe NAME`` prints: a unit's (or variant's) declaration."""

    name: str
    kind: str
    doc: str
    plugin: str
    paper: str
    spec: str | None  # for a variant: the spec it stands for
    base: str  # the unit a variant resolves to (itself for a unit)
    hparams: list[HParam]
    overrides: dict[str, Any]
    variants: list[Variant]
    rules: tuple[Rule, ...] = ()  # conditions between hyperparameters (dt_min <= dt_max)

    def __str__(self) -> str:
        lines = [f"{self.name} ({self.kind}, plugin {self.plugin})"]
        if self.doc:
            lines.append(f"  {self.doc.strip()}")
        if self.spec is not None:
            lines.append(f"  = {self.spec}")
        if self.paper:
            lines.append(f"  paper: {self.paper}")
        if self.hparams:
            lines.append("  hyperparameters:")
            width = max(len(h.name) for h in self.hparams)
            dwidth = max(len(self._default(h)) for h in self.hparams)
            for h in self.hparams:
                doc = _first_line(h.doc)
                lines.append(f"    {h.name:<{width}}  {self._default(h):<{dwidth}}  "
                             f"[{h.type_text}]  {doc}".rstrip())
        if self.rules:
            lines.append("  rules: " + "; ".join(r.expects for r in self.rules))
        if self.variants:
            lines.append("  variants:")
            width = max(len(v.name) for v in self.variants)
            for v in self.variants:
                lines.append(f"    {v.name:<{width}}  = {v.spec}  {_first_line(v.doc)}".rstrip())
        return "\n".join(lines)

    def _default(self, h: HParam) -> str:
        if h.name in self.overrides:
            from ssmzoo.spec import format_value
            return format_value(self.overrides[h.name])
        return h.default_text
