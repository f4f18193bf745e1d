"""Docstrings written for ``help()`` made safe for reST.

The code's docstrings use plain-text math (``|u_1|``, ``|A|^s``), where reST would read ``|...|``
as a substitution and fail the ``-W`` build. :func:`escape_bars` escapes each ``|`` outside inline
literals and roles, and leaves alone what reST must see unchanged: literal blocks (after ``::``),
directive bodies (``.. math::``), doctest examples and tables.

:func:`module_namespace_setup` lets a docstring's examples use the names of their own module, as
they do under ``doctest.testmod``, when ``sphinx -b doctest`` runs them.
"""

from __future__ import annotations

import re

_INLINE = re.compile(r"(``.+?``|:[\w:.-]+:`[^`]+`|`[^`]+`_{0,2})")


def _escape(line: str) -> str:
    parts = _INLINE.split(line)
    for i in range(0, len(parts), 2):  # even parts are outside literals and roles
        parts[i] = re.sub(r"(?<!\\)\|", r"\\|", parts[i])
    return "".join(parts)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def escape_bars(lines: list[str]) -> list[str]:
    """The docstring's lines with ``|`` escaped wherever reST would read a substitution."""
    out = []
    block_indent: int | None = None  # inside a literal block or directive body deeper than this
    in_doctest = False
    for line in lines:
        stripped = line.strip()
        if block_indent is not None:
            if not stripped or _indent(line) > block_indent:
                out.append(line)
                continue
            block_indent = None
        if in_doctest:
            if stripped:
                out.append(line)
                continue
            in_doctest = False
        if stripped.startswith(">>>"):
            in_doctest = True
            out.append(line)
            continue
        if stripped.startswith(("+-", "+=", "|")) or "|" not in line:  # tables, line blocks
            out.append(line)
        else:
            out.append(_escape(line))
        if stripped.endswith("::"):
            block_indent = _indent(line)
    return out


def displays_as_literal(lines: list[str]) -> list[str]:
    """Plain-text displays kept as written: a paragraph that ends with a single ``:`` followed by
    a blank line and a more-indented block (the code's way of writing equations) becomes a
    literal block (``::``), so that the alignment of the equations survives."""
    out = list(lines)
    for i, line in enumerate(lines[:-2]):
        stripped = line.strip()
        if (not stripped.endswith(":") or stripped.endswith("::")
                or stripped.startswith((":", "..", ">>>")) or lines[i + 1].strip()):
            continue
        following = next((x for x in lines[i + 2:] if x.strip()), "")
        if following and _indent(following) > _indent(line):
            out[i] = line + ":"
    return out


def module_namespace_setup(module: str) -> list[str]:
    """A hidden doctest that brings ``module``'s globals into the doctest namespace, so that a
    docstring's examples run under ``sphinx -b doctest`` as they do under ``doctest.testmod``
    (with the names of their own module in scope)."""
    return [".. doctest::", "   :hide:", "",
            "   >>> globals().update({k: v for k, v in vars(__import__('importlib')"
            f".import_module({module!r})).items() if not k.startswith('__')}})", ""]


def process_docstring(app: object, what: str, name: str, obj: object, options: object,
                      lines: list[str]) -> None:
    """``autodoc-process-docstring`` handler: displays of module docstrings kept as written, bars
    escaped, examples run in their module."""
    if what == "module":
        lines[:] = displays_as_literal(lines)
    lines[:] = escape_bars(lines)
    if any(line.lstrip().startswith(">>>") for line in lines):
        module = name if what == "module" else getattr(obj, "__module__", None)
        if isinstance(module, str) and module:
            lines[:0] = module_namespace_setup(module)
