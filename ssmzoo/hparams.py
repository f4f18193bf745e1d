"""Hyperparameters declared once: read from a factory's signature and its docstring.

A unit (or model, or task) declares its hyperparameters as keyword parameters of its factory, with
defaults and type hints, and documents each in the ``Args:`` section of the docstring (one line
each, Google/napoleon style). :func:`declared` turns that into a list of :class:`HParam`, which the
spec validator checks values against, ``describe`` prints and the docs render.

Types understood by :func:`coerce`: ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``,
unions (``int | Literal["auto"]``, ``Optional[...]``), ``list[...]``, ``tuple[...]`` and
:class:`~ssmzoo.spec.Spec` (a nested unit spec, validated against the registry).

Ranges are part of the type, as ``typing.Annotated`` metadata of the ``annotated-types`` package
(``Annotated[int, Ge(1)]``; the aliases below name the common ones), and a rule that ties several
hyperparameters together is a :class:`Rule` in the factory's ``hparam_rules``::

    class S6(nn.Module):
        hparam_rules = (Rule("dt_min <= dt_max", lambda dt_min, dt_max: dt_min <= dt_max),)

        def __init__(self, d_model: int, *, d_state: PositiveInt = 16, dt_min: PositiveFloat = 1e-3,
                     dt_max: PositiveFloat = 0.1) -> None:
            check_hparams(S6, "unit 's6'", locals())

Both are checked wherever a spec is validated (``resolve``, ``describe``, ``grid run --check``)
and, through :func:`check_hparams`, when the class is built directly. A float is never ``nan``.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from annotated_types import Ge, GroupedMetadata, Gt, Le, Lt, MultipleOf, Predicate

from ssmzoo.errors import HyperparameterTypeError, HyperparameterValueError
from ssmzoo.spec import Spec, format_value, parse

__all__ = ["HParam", "Rule", "declared", "coerce", "rules_of", "check_rules", "check_hparams", "type_text",
           "PositiveInt", "NonNegativeInt", "EvenPositiveInt", "PositiveFloat",
           "NonNegativeFloat", "Fraction", "Ge", "Gt", "Le", "Lt", "MultipleOf", "Predicate"]

_REQUIRED = inspect.Parameter.empty

_finite = Predicate(math.isfinite)
PositiveInt = Annotated[int, Ge(1)]
NonNegativeInt = Annotated[int, Ge(0)]
EvenPositiveInt = Annotated[int, Ge(2), MultipleOf(2)]
PositiveFloat = Annotated[float, Gt(0), _finite]
NonNegativeFloat = Annotated[float, Ge(0), _finite]
Fraction = Annotated[float, Ge(0), Lt(1)]  # a probability that is not 1 (dropout)


@dataclass(frozen=True)
class Rule:
    """A condition between hyperparameters: ``test``'s parameter names are the keys it reads.

    ``Rule("dt_min <= dt_max", lambda dt_min, dt_max: dt_min <= dt_max)``; ``expects`` is what
    the error message says the values must satisfy.
    """

    expects: str
    test: Callable[..., bool]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(inspect.signature(self.test).parameters)


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
        return typing.get_type_hints(target, include_extras=True)
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


@functools.cache
def _declared_cached(factory: Callable[..., Any]) -> tuple[HParam, ...]:
    return tuple(declared(factory, skip=("self",)))


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
    if origin is Annotated:
        bounds = _bounds(ann.__metadata__)
        text = type_text(args[0])
        even = [b for b in bounds if isinstance(b, MultipleOf) and b.multiple_of == 2]
        if even:
            text = "even " + text
        if any(b is _finite for b in bounds):
            text = "finite " + text
        rest = [b for b in bounds if b is not _finite and b not in even]
        low = [b for b in rest if isinstance(b, (Gt, Ge))]
        high = [b for b in rest if isinstance(b, (Lt, Le))]
        if len(low) == 1 and len(high) == 1:  # an interval: "float in [0, 1)"
            lo, hi = low[0], high[0]
            interval = ("(" if isinstance(lo, Gt) else "[") + format_value(getattr(lo, "gt", getattr(lo, "ge", None))) \
                + ", " + format_value(getattr(hi, "lt", getattr(hi, "le", None))) \
                + (")" if isinstance(hi, Lt) else "]")
            rest = ["in " + interval] + [b for b in rest if b not in (lo, hi)]
        parts = [_bound_text(b) for b in rest]
        return " ".join([text, ", ".join(parts)]) if parts else text
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


def _bounds(metadata: Iterable[Any]) -> list[Any]:
    """The range constraints of Annotated metadata, with grouped ones (``Interval``) unpacked."""
    out: list[Any] = []
    for m in metadata:
        if isinstance(m, GroupedMetadata):
            out += list(m)
        elif isinstance(m, (Gt, Ge, Lt, Le, MultipleOf, Predicate)):
            out.append(m)
    return out


def _bound_text(b: Any) -> str:
    if isinstance(b, Predicate):
        return f"satisfying {getattr(b.func, '__name__', repr(b.func))}"
    if isinstance(b, MultipleOf):
        return f"a multiple of {b.multiple_of}"
    if isinstance(b, str):
        return b
    op, attr = {Gt: (">", "gt"), Ge: (">=", "ge"), Lt: ("<", "lt"), Le: ("<=", "le")}[type(b)]
    return f"{op} {format_value(getattr(b, attr))}"


def _within(b: Any, value: Any) -> bool:
    if isinstance(b, Predicate):
        return bool(b.func(value))
    if isinstance(b, MultipleOf):
        return value % b.multiple_of == 0
    if isinstance(b, Gt):
        return bool(value > b.gt)
    if isinstance(b, Ge):
        return bool(value >= b.ge)
    if isinstance(b, Lt):
        return bool(value < b.lt)
    return bool(value <= b.le)


class _Mismatch(Exception):
    pass


class _OutOfRange(Exception):
    pass


def _coerce(ann: Any, value: Any, validate_spec: Callable[[Spec], Spec] | None) -> Any:
    if ann is Any or ann is inspect.Parameter.empty:
        return value
    if typing.get_origin(ann) is Annotated:
        value = _coerce(typing.get_args(ann)[0], value, validate_spec)
        if not all(_within(b, value) for b in _bounds(ann.__metadata__)):
            raise _OutOfRange
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
        out_of_range = False
        for a in sorted(args, key=lambda t: 0 if typing.get_origin(t) is Literal else 1):
            try:
                return _coerce(a, value, validate_spec)
            except _OutOfRange:
                out_of_range = True
            except (_Mismatch, HyperparameterTypeError):
                continue
        raise _OutOfRange if out_of_range else _Mismatch
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
            if math.isnan(value):
                raise _OutOfRange
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
    shown = str(value) if isinstance(value, Spec) else value
    try:
        return _coerce(hp.annotation, value, validate_spec)
    except _Mismatch:
        raise HyperparameterTypeError(owner, hp.name, hp.type_text, shown) from None
    except _OutOfRange:
        nan = isinstance(value, float) and math.isnan(value) and "finite" not in hp.type_text
        expected = hp.type_text + (" (not nan)" if nan else "")
        raise HyperparameterValueError(owner, hp.name, expected, shown) from None


def rules_of(factory: Callable[..., Any]) -> tuple[Rule, ...]:
    """The :class:`Rule` s a factory declares in its ``hparam_rules`` attribute."""
    return tuple(getattr(factory, "hparam_rules", ()))


def check_rules(owner: str, rules: Iterable[Rule], values: Mapping[str, Any]) -> None:
    """Raise on the first rule that ``values`` break; a rule with a key not in ``values`` waits."""
    for rule in rules:
        keys = rule.keys
        if all(k in values for k in keys) and not rule.test(**{k: values[k] for k in keys}):
            raise HyperparameterValueError.rule(owner, {k: values[k] for k in keys}, rule.expects)


def check_hparams(factory: Callable[..., Any], owner: str, values: Mapping[str, Any]) -> None:
    """Check the values a factory was called with (its ``locals()``) against its declaration:
    types, ranges and rules; for a class built directly rather than through the registry."""
    hparams = {h.name: h for h in _declared_cached(factory)}
    for key, hp in hparams.items():
        if key in values:
            coerce(owner, hp, values[key])
    check_rules(owner, rules_of(factory), {k: v for k, v in values.items() if k in hparams})
