"""reStructuredText of the command line, generated from ``ssmzoo.cli.build_parser()``: one section
per command and subcommand, with its usage, description and a table of its arguments. Pure
functions, like :mod:`.render`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from .render import inline, list_table, literal, title

__all__ = ["cli_rst", "commands", "command_target"]


def command_target(prog: str) -> str:
    return "cli-" + prog.replace(" ", "-")


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, one-line help) of each subcommand, in the order they were added."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, sub, helps.get(name, "")))
    return out


def commands(parser: argparse.ArgumentParser | None = None
             ) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """Every command, depth first: (full program name, parser, one-line help)."""
    if parser is None:
        from ssmzoo.cli import build_parser

        parser = build_parser()
        yield parser.prog, parser, parser.description or ""
    for _, sub, help_text in _subcommands(parser):
        yield sub.prog, sub, help_text
        yield from commands(sub)


def _argument_rows(parser: argparse.ArgumentParser) -> list[list[str]]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                names += " " + (action.metavar or action.dest.upper())
        else:
            names = action.metavar or action.dest
        help_text = formatter._expand_help(action) if action.help else ""
        extra = []
        if action.choices is not None and not isinstance(action.choices, dict):
            extra.append("one of " + ", ".join(literal(str(c)) for c in action.choices))
        if action.required and action.option_strings:
            extra.append("required")
        cell = inline(help_text) + (f" ({'; '.join(extra)})" if extra else "")
        rows.append([literal(names), cell])
    return rows


def cli_rst(registry: Any = None) -> str:
    """One section per command: usage, description, arguments."""
    out: list[str] = []
    for prog, parser, help_text in commands():
        out += [f".. _{command_target(prog)}:", ""]
        out += title(f"``{prog}``", "-")
        if help_text:
            sentence = help_text[:1].upper() + help_text[1:]
            out += [inline(sentence if sentence.endswith((".", "!", "?")) else sentence + "."), ""]
        if parser.description and parser.description != help_text:
            out += [inline(parser.description), ""]
        usage = " ".join(parser.format_usage().split())  # one line, argparse wraps at 80
        out += [".. code-block:: text", "", "   " + usage, ""]
        rows = _argument_rows(parser)
        if rows:
            out += list_table(["argument", "meaning"], rows, widths=[30, 70])
    return "\n".join(out).rstrip() + "\n"
