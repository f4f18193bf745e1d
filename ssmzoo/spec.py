"""The spec grammar: ``name`` or ``name(key=value, ...)``.

Values are ints (``8``, ``-3``), floats (``1e-3``, ``-2.5``, ``inf``), ``true``/``false``, ``none``,
quoted strings (``"a b"`` or ``'a b'``), lists (``[1, 2]``), bare words (``mean``) and nested specs
(``mamba(core=b2s6(h=8))``). A bare word and a spec without arguments are the same thing, a
:class:`Spec` with no arguments; the declared type of the hyperparameter decides whether it is read
as a string or as a nested spec.

Printing is canonical: ``str(parse(s))`` is a fixed point of ``parse``/``str``.

>>> s = parse("mamba(core=b2s6(h=8, bias=false), expand=2)")
>>> s.name, s.args["expand"]
('mamba', 2)
>>> str(s)
'mamba(core=b2s6(h=8, bias=false), expand=2)'
>>> str(parse("b2s6-nobias( h = 4 )"))
'b2s6-nobias(h=4)'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ssmzoo.errors import SpecSyntaxError

__all__ = ["Spec", "parse", "format_value", "SpecLike"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
# ASCII digits only: a fullwidth or other Unicode digit is a syntax error at its column
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf\b|nan\b)",
                     re.ASCII)
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_KEYWORDS = {"true": True, "false": False, "none": None}


@dataclass(frozen=True, eq=False)
class Spec:
    """A parsed spec: a registered name and keyword arguments (ordered as written)."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", dict(self.args))

    def __str__(self) -> str:
        if not self.args:
            return self.name
        inner = ", ".join(f"{k}={format_value(v)}" for k, v in self.args.items())
        return f"{self.name}({inner})"

    def __repr__(self) -> str:
        return f"Spec({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = parse(other)
            except SpecSyntaxError:
                return False
        if not isinstance(other, Spec):
            return NotImplemented
        return self.name == other.name and dict(self.args) == dict(other.args)

    def __hash__(self) -> int:
        return hash(str(self))

    def replace(self, **overrides: Any) -> Spec:
        """A copy with some arguments replaced or added (order: existing keys first)."""
        return Spec(self.name, {**self.args, **overrides})


SpecLike = Spec | str


def format_value(v: Any) -> str:
    """The canonical text of one spec value."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "none"
    if isinstance(v, Spec):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = repr(v)
        return text
    if isinstance(v, str):
        # a string that reads as a bare word is written as one (``discretization=zoh``); it
        # parses back to a word, which the declared type turns into the same string again
        if _NAME.fullmatch(v) and v not in _KEYWORDS and not _NUMBER.fullmatch(v):
            return v
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} value {v!r} in a spec")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    # -- helpers -------------------------------------------------------------------------------
    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self) -> str:
        self._skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _found(self) -> str:
        self._skip()
        if self.pos >= len(self.text):
            return "end of spec"
        return repr(self.text[self.pos])

    def _fail(self, expected: str) -> SpecSyntaxError:
        self._skip()
        return SpecSyntaxError(self.text, self.pos, expected, self._found())

    def _expect(self, ch: str, expected: str | None = None) -> None:
        if self._peek() != ch:
            raise self._fail(expected or repr(ch))
        self.pos += 1

    # -- grammar -------------------------------------------------------------------------------
    def spec(self) -> Spec:
        self._skip()
        m = _NAME.match(self.text, self.pos)
        if not m:
            raise self._fail("a name (letters, digits, '_', '-', '.')")
        name = m.group()
        self.pos = m.end()
        args: dict[str, Any] = {}
        if self._peek() == "(":
            open_pos = self.pos
            self.pos += 1
            if self._peek() == ")":
                self.pos += 1
                return Spec(name, args)
            while True:
                self._skip()
                key_pos = self.pos
                km = _KEY.match(self.text, self.pos)
                if not km:
                    raise self._fail("a key (key=value)")
                key = km.group()
                self.pos = km.end()
                if key in args:
                    raise SpecSyntaxError(self.text, key_pos, "each key once", f"{key!r} again")
                self._expect("=", "'=' after the key " + repr(key))
                args[key] = self.value()
                ch = self._peek()
                if ch == ",":
                    self.pos += 1
                    if self._peek() == ")":  # trailing comma
                        self.pos += 1
                        break
                    continue
                if ch == ")":
                    self.pos += 1
                    break
                if ch == "":
                    raise self._fail(f"',' or ')' to close the '(' at column {open_pos + 1}")
                raise self._fail("',' or ')'")
        return Spec(name, args)

    def value(self) -> Any:
        ch = self._peek()
        if ch == "":
            raise self._fail("a value")
        if ch in "\"'":
            return self.string()
        if ch == "[":
            return self.list()
        m = _NUMBER.match(self.text, self.pos)
        word_m = _NAME.match(self.text, self.pos)
        if m and not (word_m and word_m.group() != m.group()):
            word = m.group()
            end = m.end()
            # a number must not run straight into a name character ("2x" is not a value)
            if end < len(self.text) and (self.text[end].isalnum() or self.text[end] in "_"):
                raise SpecSyntaxError(self.text, end, "',' or ')' after a number",
                                      repr(self.text[end]))
            self.pos = end
            if re.fullmatch(r"[+-]?[0-9]+", word):
                return int(word)
            return float(word)
        if _NAME.match(self.text, self.pos):
            start = self.pos
            sub = self.spec()
            if not sub.args and sub.name in _KEYWORDS and self.text[start:self.pos].strip() == sub.name:
                return _KEYWORDS[sub.name]
            return sub
        raise self._fail("a value (number, true/false, \"string\", [list], name or spec)")

    def string(self) -> str:
        quote = self.text[self.pos]
        start = self.pos
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == quote:
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        raise SpecSyntaxError(self.text, start, f"a closing {quote} for this string", "end of spec")

    def list(self) -> list[Any]:
        start = self.pos
        self.pos += 1
        items: list[Any] = []
        if self._peek() == "]":
            self.pos += 1
            return items
        while True:
            if self._peek() == "":
                raise SpecSyntaxError(self.text, start, "a closing ']' for this list", "end of spec")
            items.append(self.value())
            ch = self._peek()
            if ch == ",":
                self.pos += 1
                if self._peek() == "]":
                    self.pos += 1
                    return items
                continue
            if ch == "]":
                self.pos += 1
                return items
            if ch == "":
                raise self._fail(f"',' or ']' to close the '[' at column {start + 1}")
            raise self._fail("',' or ']'")


def parse(text: str | Spec) -> Spec:
    """Parse a spec string (a :class:`Spec` passes through unchanged).

    Raises :class:`~ssmzoo.errors.SpecSyntaxError` with the column and a caret line.
    """
    if isinstance(text, Spec):
        return text
    if not isinstance(text, str):
        raise TypeError(f"a spec must be a string or Spec, got {type(text).__name__}")
    p = _Parser(text)
    spec = p.spec()
    if p._peek() != "":
        if p._peek() == ")":
            raise p._fail("end of spec (unbalanced ')')")
        raise p._fail("'(' or end of spec")
    return spec


def parse_value(text: str) -> Any:
    """Parse one spec value on its own (used for command-line and grid overrides)."""
    p = _Parser(text)
    v = p.value()
    if p._peek() != "":
        raise p._fail("end of value")
    return v
