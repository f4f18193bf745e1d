"""Run a reproduction grid and write its reports, the extra tables included.

The grid runner (:func:`ssmzoo.grid.run_grid`) runs every reproduction grid, the measurement cells
too (a task with a ``run_cell`` method runs its own cell). :func:`run` is that, followed by the
grid report and by ``repro.md``: the tables that one number per cell cannot hold (the points of a
measurement, the method x length table of length extension, the stability of training curves)::

    python -m ssmzoo.repro dt-gradient-growth --out runs/dt-gradient-growth
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["run", "extra_report"]


def run(grid: str, *, out: str | Path | None = None, device: str | None = None,
        retry_failed: bool = False, progress: bool = True) -> Path:
    """Run ``grid`` (a file or a built-in name) into ``out`` (default ``runs/NAME``), then write
    ``report.md``, ``report.csv``, the plots and ``repro.md``; returns the directory."""
    from ssmzoo.errors import OptionalDependencyError
    from ssmzoo.grid import run_grid, write_report
    directory = run_grid(grid, out=out, device=device, retry_failed=retry_failed,
                         progress=progress).out
    try:
        write_report(directory)
    except OptionalDependencyError:  # no matplotlib: the tables without the plots
        write_report(directory, plots=False)
    extra_report(directory)
    return Path(directory)


def extra_report(directory: str | Path) -> Path | None:
    """Write ``repro.md`` (and its PNGs) for a grid directory; returns its path, or None when the
    grid has nothing that the grid report does not already show."""
    from ssmzoo.grid.report import load_rows
    from ssmzoo.repro.report import render

    directory = Path(directory)
    name, rows = load_rows(directory)
    text = render(name, rows, directory)
    if not text:
        return None
    path = directory / "repro.md"
    path.write_text(text)
    return path
