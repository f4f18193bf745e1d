"""The ``ssmzoo`` command line.

``ssmzoo list [PATTERN]``, ``ssmzoo describe NAME`` (``describe train``: the training settings),
``ssmzoo plugins``, ``ssmzoo backends``, and the subcommands other modules add (``train``,
``generate``, ``grid``, ``bench``). A user error (a misspelt name, a malformed spec, a bad value)
prints one readable line and exits 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ssmzoo.errors import SSMZooError

# Subcommands defined in their own modules: each has register(subparsers) and sets func=run.
SUBCOMMAND_MODULES = ("ssmzoo.cli.train", "ssmzoo.cli.generate", "ssmzoo.cli.grid",
                      "ssmzoo.cli.bench", "ssmzoo.cli.convert")


def _registry():
    from ssmzoo.registry import get_registry

    return get_registry()


def cmd_list(args: argparse.Namespace) -> int:
    reg = _registry()
    pattern = args.pattern or "*"
    if args.models or args.tasks:
        import fnmatch

        from ssmzoo.registry import natural_key

        table = reg.models if args.models else reg.tasks
        for name in sorted((n for n in table if fnmatch.fnmatchcase(n, pattern)), key=natural_key):
            print(f"{name:<20} {table[name].doc}".rstrip())
        return 0
    names = reg.list_units(pattern, variants=not args.no_variants)
    if not names and args.pattern:
        print(f"no unit or variant matches {pattern!r}", file=sys.stderr)
        return 1
    units, variants = reg.units, reg.variants
    width = max((len(n) for n in names), default=0)
    for name in names:
        if name in units:
            e = units[name]
            print(f"{name:<{width}}  {e.role:<7} {e.doc}".rstrip())
        else:
            v = variants[name]
            print(f"{name:<{width}}  variant = {v.spec}  {v.doc}".rstrip())
    return 0


TRAIN_NAME = "train"  # `ssmzoo describe train`: the training settings, not a registered name


def _doc_entries(doc: str) -> dict[str, str]:
    """Each entry of a docstring's ``Args:`` section, its continuation lines joined into one."""
    out: dict[str, str] = {}
    indent, current = None, None
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Attributes:"):
            in_args, indent, current = True, None, None
            continue
        if not in_args or not stripped:
            continue
        lead = len(line) - len(line.lstrip())
        indent = lead if indent is None else indent
        if lead < indent:
            in_args = False
        elif lead == indent and ":" in stripped:
            current, _, text = stripped.partition(":")
            out[current.strip()] = text.strip()
        elif current is not None:
            out[current] = f"{out[current]} {stripped}".strip()
    return out


def describe_train() -> str:
    """What ``ssmzoo describe train`` prints: every :class:`~ssmzoo.train.TrainConfig` field
    (the ``[train]`` keys) with its default, type and documentation, as ``describe`` prints a
    unit's hyperparameters."""
    import dataclasses
    import inspect
    import typing

    from ssmzoo.hparams import type_text
    from ssmzoo.spec import format_value
    from ssmzoo.train import TrainConfig

    doc = (inspect.getdoc(TrainConfig) or "").replace("``", "")  # plain text in a terminal
    docs = _doc_entries(doc)
    hints = typing.get_type_hints(TrainConfig, include_extras=True)
    fields = [(f.name, format_value(f.default), type_text(hints.get(f.name, typing.Any)),
               docs.get(f.name, "")) for f in dataclasses.fields(TrainConfig)]
    width = max(len(name) for name, *_ in fields)
    dwidth = max(len(default) for _, default, *_ in fields)
    lines = ["train (training settings, the [train] keys)"]
    if doc:
        lines.append(f"  {doc.splitlines()[0].strip()}")
    lines.append("  set in a grid file's or a --config file's [train] table, or with "
                 "`ssmzoo train --train KEY=VALUE`")
    lines.append("  settings:")
    lines += [f"    {name:<{width}}  {default:<{dwidth}}  [{kind}]  {text}".rstrip()
              for name, default, kind, text in fields]
    return "\n".join(lines)


def cmd_describe(args: argparse.Namespace) -> int:
    from ssmzoo.spec import parse

    if args.name == TRAIN_NAME:
        print(describe_train())
        return 0
    if Path(args.name).is_dir():  # a checkpoint: its format and the spec it rebuilds as
        from ssmzoo.models.io import checkpoint_spec

        fmt, text = checkpoint_spec(args.name)
        print(f"{args.name}: {fmt} checkpoint")
        print(f"spec: {text}")
        return 0
    reg = _registry()
    spec = parse(args.name)
    if spec.args:  # a full spec: validate it, then describe its unit with these values
        if spec.name in reg.models:
            resolved = reg.resolve_model(spec)
        elif spec.name in reg.tasks:
            resolved = reg.resolve_task(spec)
        else:
            resolved = reg.resolve(spec)
        print(f"{spec} -> {resolved}")
    print(reg.describe(spec.name))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    reg = _registry()
    for info in reg.plugins:
        what = ", ".join(f"{k} {n}" for k, n in info.registered) or "nothing"
        line = f"{info.name:<12} {info.distribution} {info.version}  [{info.state}]"
        print(line)
        print(f"    module: {info.module}")
        if info.state == "loaded":
            print(f"    registered: {what}")
        elif info.error:
            print(f"    error: {info.error}")
        if args.verbose and info.traceback:
            print("    " + info.traceback.replace("\n", "\n    "))
    failed = [i for i in reg.plugins if i.state == "failed"]
    if failed:
        print(f"{len(failed)} plugin(s) failed; the rest work normally.")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    from ssmzoo.scan.dispatch import blocked as blocked_backends

    reg = _registry()
    if not reg.backends:
        print("no scan backend is registered")
        return 0
    for name, backend in sorted(reg.backends.items()):
        try:
            ok, reason = backend.available()
        except Exception as exc:  # a backend's own check must not take the listing down
            ok, reason = False, f"availability check failed: {type(exc).__name__}: {exc}"
        ops = ", ".join(getattr(backend, "ops", ())) or "-"
        state = "available" if ok else f"unavailable: {reason}"
        if name in blocked_backends():
            state += " [blocked by SSMZOO_BLOCK_BACKENDS: not used by 'auto']"
        print(f"{name:<12} [{ops}] {state}  (plugin {reg.backend_plugin(name)})")
        desc = getattr(backend, "description", "")
        if desc:
            print(f"    {desc}")
        limits = getattr(backend, "limitations", None)
        if callable(limits):
            for line in limits():
                print(f"    - {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssmzoo", description="A zoo of state-space models sharing one selective scan.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--block-plugin", action="append", default=[], metavar="NAME",
                        help="do not load this plugin (repeatable; or SSMZOO_BLOCK_PLUGINS=a,b)")
    parser.add_argument("--block-backend", action="append", default=[], metavar="NAME",
                        help="keep this scan backend out of 'auto' (repeatable; or "
                        "SSMZOO_BLOCK_BACKENDS=a,b)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="list units and named variants (wildcards allowed)")
    p.add_argument("pattern", nargs="?", help="a wildcard such as 'b2s6*'")
    p.add_argument("--no-variants", action="store_true", help="units only")
    p.add_argument("--models", action="store_true", help="list model kinds instead")
    p.add_argument("--tasks", action="store_true", help="list tasks instead")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("describe", help="hyperparameters, paper and variants of a unit; "
                       "'describe train': the training settings")
    p.add_argument("name", help="a unit, variant, model or task name, or a full spec to validate "
                   "(e.g. 'b2s6-nobias(h=4)'), 'train' for the [train] settings, or a "
                   "checkpoint directory (its format and spec)")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("plugins", help="each plugin, its version, what it registered, its state")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of failures")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("backends", help="each scan backend, available or why not")
    p.set_defaults(func=cmd_backends)

    for modname in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:  # that subcommand is not part of this installation
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from ssmzoo import __version__

        print(f"ssmzoo {__version__}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if args.block_plugin:
        from ssmzoo.plugins import block

        block(*args.block_plugin)
    if args.block_backend:  # read by ssmzoo.scan.dispatch at every call, also in worker processes
        names = os.environ.get("SSMZOO_BLOCK_BACKENDS", "").split(",") + args.block_backend
        os.environ["SSMZOO_BLOCK_BACKENDS"] = ",".join(n.strip() for n in names if n.strip())
    debug = args.debug or os.environ.get("SSMZOO_DEBUG") == "1"
    try:
        return int(args.func(args) or 0)
    except SSMZooError as exc:
        if debug:
            raise
        # one line (a spec syntax error's first line already names the spec and the column)
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `ssmzoo list | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
