"""Ablation grids: a TOML file of variants x tasks x seeds x sweeps, run into SQLite, reported.

>>> from ssmzoo.grid import builtin_grids
>>> "quickstart" in builtin_grids()
True

``run_grid(file_or_name, out=DIR, executor="local"|"ray")`` runs it (see :mod:`ssmzoo.grid.runner`);
``write_report(DIR)`` writes the markdown table, the CSV and the plots; ``status_text(DIR)`` says
how far it got.
"""

from __future__ import annotations

from ssmzoo.grid.config import Cell, GridConfig, builtin_grids, find_grid, load_grid, parse_grid
from ssmzoo.grid.report import markdown, status_text, summarize, to_csv, write_report
from ssmzoo.grid.runner import GridRun, run_grid
from ssmzoo.grid.store import Store

__all__ = ["Cell", "GridConfig", "GridRun", "Store", "builtin_grids", "find_grid", "load_grid",
           "parse_grid", "run_grid", "markdown", "to_csv", "status_text", "summarize",
           "write_report"]
