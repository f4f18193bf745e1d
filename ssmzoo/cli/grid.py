"""``ssmzoo grid run|report|status|list``: ablation grids from TOML files or built-in names."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("grid", help="run and report ablation grids (TOML files)",
                              description="Run a grid of variants x tasks x seeds x sweeps into "
                                          "SQLite, report it as markdown, CSV and plots.")
    sub = p.add_subparsers(dest="grid_command", metavar="ACTION")

    r = sub.add_parser("run", help="run a grid file or a built-in grid (resumes where it stopped)")
    r.add_argument("grid", help="a .toml file, or the name of a built-in grid (ssmzoo grid list)")
    r.add_argument("--out", metavar="DIR", help="results directory (default runs/NAME)")
    r.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="run cells here one by one, or as Ray tasks")
    r.add_argument("--device", help="cpu or cuda (overrides [train] device; with ray, a cuda cell "
                                    "asks for one GPU)")
    r.add_argument("--retry-failed", action="store_true", help="rerun cells recorded as failed")
    r.add_argument("--address", help="Ray cluster address (default: start a local one)")
    r.add_argument("--num-cpus", type=int, help="CPUs of the local Ray cluster (default: all)")
    r.add_argument("--lease", type=float, default=60.0, metavar="SECONDS",
                   help="how long a claimed cell stays claimed without renewal (several runners "
                        "on one directory; a dead runner's cell is taken over after this)")
    r.add_argument("--check", action="store_true", help="validate and list the cells, train nothing")
    r.add_argument("--jobs", "-j", type=int, metavar="N",
                   help="cells trained at once by the local executor, each in its own process "
                        "with cores/N torch threads (default: this machine's cores; 1: one by "
                        "one in this process)")
    r.add_argument("--quiet", action="store_true", help="no progress and no table")
    r.set_defaults(func=run_run)

    rep = sub.add_parser("report", help="markdown table, CSV and PNG plots of a results directory")
    rep.add_argument("dir", help="results directory")
    rep.add_argument("--format", choices=["table", "md", "csv"],
                     help="what to print: a table for the terminal, markdown or CSV (default: "
                          "table in a terminal, markdown otherwise)")
    rep.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    rep.set_defaults(func=run_report)

    st = sub.add_parser("status", help="cells recorded, by status, and the failures")
    st.add_argument("dir", help="results directory")
    st.set_defaults(func=run_status)

    ls = sub.add_parser("list", help="the built-in grids")
    ls.set_defaults(func=run_list)
    p.set_defaults(func=run, grid_parser=p)


def run(args: argparse.Namespace) -> int:
    """``ssmzoo grid`` with no action: help."""
    args.grid_parser.print_help()
    return 0


def run_run(args: argparse.Namespace) -> int:
    from ssmzoo.grid import load_grid, markdown, run_grid, write_report
    from ssmzoo.grid.report import load_rows

    cfg = load_grid(args.grid)  # every spec and key validated here, before any training
    if args.check:
        print(f"grid {cfg.name!r} ({cfg.path}): {len(cfg.cells)} cells, all valid")
        for c in cfg.cells:
            sweep = "".join(f" {k}={v}" for k, v in c.sweep.items())
            print(f"  {c.key}  {c.model_spec} | {c.task} | seed {c.seed}{sweep}")
        return 0
    start = time.perf_counter()
    result = run_grid(cfg, out=args.out, executor=args.executor, device=args.device,
                      retry_failed=args.retry_failed, address=args.address,
                      num_cpus=args.num_cpus, progress=not args.quiet, lease=args.lease,
                      jobs=_jobs(args.jobs))
    elapsed = time.perf_counter() - start
    files = write_report(result.out, plots=_have_matplotlib())
    if not args.quiet:
        _, rows = load_rows(result.out)
        if sys.stdout.isatty():
            _print_table(rows, f"grid {cfg.name}", "table")
        else:
            print(markdown(rows, title=f"grid {cfg.name}"))
    print(_files_text(files))
    counts = ", ".join(f"{v} {k}" for k, v in sorted(result.statuses.items()))
    print(f"{result.ran} cells run, {result.skipped} already recorded, in {elapsed:.0f}s "
          f"({counts}); results in {result.out}/")
    return 0 if not result.statuses.get("failed") else 3


def _print_table(rows: list[dict[str, Any]], title: str, fmt: str) -> None:
    """The report's table on stdout: rich in a terminal (``table``), else markdown or CSV."""
    from ssmzoo.grid import markdown, to_csv

    if fmt == "table":
        from rich.console import Console

        from ssmzoo.grid.report import rich_table

        Console(highlight=False).print(rich_table(rows, title=title))
    else:
        print(markdown(rows, title=title) if fmt == "md" else to_csv(rows), end="")


def _files_text(files: dict[str, Path]) -> str:
    return "report files written:\n" + "\n".join(f"  {path}" for path in files.values())


def _jobs(jobs: int | None) -> int:
    from ssmzoo.errors import ConfigError
    from ssmzoo.train.loop import cpu_cores

    if jobs is None:
        return cpu_cores()
    if jobs < 1:
        raise ConfigError(f"grid run: --jobs expects an int >= 1, got {jobs}")
    return jobs


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def run_report(args: argparse.Namespace) -> int:
    """Print the table (rich in a terminal, markdown or CSV otherwise), write the report files and
    list them: on stdout after a terminal table, on stderr after markdown or CSV, so that stdout
    holds only the report when it is redirected."""
    from ssmzoo.grid import write_report
    from ssmzoo.grid.report import load_rows

    fmt = args.format or ("table" if sys.stdout.isatty() else "md")
    name, rows = load_rows(args.dir)
    _print_table(rows, f"grid {name}", fmt)
    files = write_report(args.dir, plots=not args.no_plots and _have_matplotlib())
    print(_files_text(files), file=sys.stdout if fmt == "table" else sys.stderr)
    return 0


def run_status(args: argparse.Namespace) -> int:
    from ssmzoo.grid import status_text

    print(status_text(args.dir))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from ssmzoo.grid import builtin_grids
    from ssmzoo.grid.config import tomllib

    for name, path in sorted(builtin_grids().items()):
        data = tomllib.loads(Path(path).read_text())
        print(f"{name:<20} {data.get('description', '')}".rstrip())
    return 0
