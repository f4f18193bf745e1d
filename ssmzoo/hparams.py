"""Hyperparameters declared once: read from a factory's signature and its docstring.

A unit (or model, or task) declares its hyperparameters as keyword parameters of its factory, with
defaults and type hints, and documents each in the ``Args:`` section of the docstring (one line
each, Google/napoleon style). :func:`declared` turns that into a list of :class:`HParam`, which the
spec validator checks values against, ``describe`` prints and the docs render.

Types understood by :func:`coerce`: ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``,
unions (``int | Literal["auto"]``, ``Optional[...]``), ``list[...]``, ``tuple[...]`` and
:class:`~ssmzoo.spec.Spec` (a nested unit spec, validated against the registry).
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

from ssmzoo.errors import HyperparameterTypeError
from ssmzoo.spec import Spec, format_value, parse

_REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class HParam:
    """One declared hyperparameter."""

    name: str
    default: Any
    annotation: Any
    doc: str

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    @property
    def type_text(self) -> str:
        return type_text(self.annotation)

    @property
    def default_text(self) -> str:
        if self.required:
            return "(required)"
        try:
            return format_value(self.default)
        except TypeError:
            return repr(self.default)


def _docstring_args(func: Callable[..., Any]) -> dict[str, str]:
    """First line of each entry in the ``Args:`` section (class docstring, then __init__'s)."""
    docs: list[str] = []
    if inspect.isclass(func):
        docs += [inspect.getdoc(func) or "", inspect.getdoc(func.__init__) or ""]  # type: ignore[misc]
    else:
        docs.append(inspect.getdoc(func) or "")
    out: dict[str, str] = {}
    for doc in docs:
        lines = doc.splitlines()
        in_args = False
        indent = None
        current: str | None = None
        for line in lines:
            stripped = line.strip()
            if re.fullmatch(r"(Args|Arguments|Parameters|Hyperparameters):", stripped):
                in_args, indent, current = True, None, None
                continue
            if not in_args:
                continue
            if not stripped:
                current = None
                continue
            lead = len(line) - len(line.lstrip())
            if indent is None:
                indent = lead
            if lead < indent or (lead == 0 and stripped.endswith(":")):
                in_args = False
                continue
            m = re.match(r"(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)", stripped)
            if lead == indent and m:
                current = m.group(1)
                out.setdefault(current, m.group(2).strip())
            elif current and current in out and not out[current]:
                out[current] = stripped
    return out


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    target = func.__init__ if inspect.isclass(func) else func  # type: ignore[misc]
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        return dict(getattr(target, "__annotations__", {}))


def declared(factory: Callable[..., Any], *, skip: tuple[str, ...] = ("self", "d_model")) -> list[HParam]:
    """The hyperparameters a factory declares (keyword parameters, in order)."""
    sig = inspect.signature(factory)
    hints = _hints(factory)
    docs = _docstring_args(factory)
    out = []
    for p in sig.parameters.values():
        if p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out.append(HParam(p.name, p.default, hints.get(p.name, Any), docs.get(p.name, "")))
    return out


def type_text(ann: Any) -> str:
    """A short human description of a type hint (``int``, ``'auto' | int``, ``list of float``)."""
    if ann is Any or ann is inspect.Parameter.empty:
        return "any"
    if ann is Spec:
        return "spec"
    if ann is type(None):
        return "none"
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is Literal:
        return " | ".join(format_value(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_text(a) for a in args)
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return "(" + ", ".join(type_text(a) for a in args) + ")"
        return f"list of {type_text(args[0])}" if args else "list"
    if isinstance(ann, type):
        return ann.__name__
    return str(ann)


class _Mismatch(Exception):
    pass


def _coerce(ann: Any, value: Any, validate_spec: Callable[[Spec], Spec] | None) -> Any:
    if ann is Any or ann is inspect.Parameter.empty:
        return value
    if ann is type(None):
        if value is None:
            return None
        raise _Mismatch
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is Literal:
        word = value.name if isinstance(value, Spec) and not value.args else value
        for a in args:
            if word == a and type(word) is type(a):
                return a
        raise _Mismatch
    if origin in (Union, types.UnionType):
        # try exact-looking alternatives first so that "auto" stays a string and 4 stays an int
        for a in sorted(args, key=lambda t: 0 if typing.get_origin(t) is Literal else 1):
            try:
                return _coerce(a, value, validate_spec)
            except _Mismatch:
                continue
            except HyperparameterTypeError:
                continue
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _Mismatch
            return tuple(_coerce(a, v, validate_spec) for a, v in zip(args, value))
        inner = args[0] if args else Any
        items = [_coerce(inner, v, validate_spec) for v in value]
        return tuple(items) if origin is tuple else items
    if ann is Spec:
        if isinstance(value, str):
            value = parse(value)
        if not isinstance(value, Spec):
            raise _Mismatch
        return validate_spec(value) if validate_spec else value
    if ann is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if ann is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if ann is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if ann is str:
        if isinstance(value, str):
            return value
        if isinstance(value, Spec) and not value.args:
            return value.name
        raise _Mismatch
    if isinstance(ann, type):
        if isinstance(value, ann):
            return value
        raise _Mismatch
    return value


def coerce(owner: str, hp: HParam, value: Any,
           validate_spec: Callable[[Spec], Spec] | None = None) -> Any:
    """Check ``value`` against ``hp``'s declared type; return it in the declared form."""
    try:
        return _coerce(hp.annotation, value, validate_spec)
    except _Mismatch:
        shown = str(value) if isinstance(value, Spec) else value
        raise HyperparameterTypeError(owner, hp.name, hp.type_text, shown) from None
