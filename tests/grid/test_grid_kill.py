"""A grid killed with SIGKILL in the middle, then run again, has every cell exactly once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ssmzoo.grid import Store, load_grid, run_grid
from tests.grid.conftest import FAST_TASK, kill_when

ROOT = Path(__file__).resolve().parents[2]

GRID = f"""
name = "kill-demo"
variants = ["tiny", "tiny-half", "tiny(scale=2.0)"]
tasks = ["{FAST_TASK}"]
seeds = [0, 1, 2]
[model]
d_model = 8
[train]
steps = 16
batch_size = 16
eval_every = 8
"""

# the killed runner holds a short lease, so that the next run takes its cell over at once
SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.train.tinyzoo import make_registry
from ssmzoo.grid import run_grid
run_grid({grid!r}, out={out!r}, registry=make_registry(), progress=False, lease=1.0)
"""


def _run_and_kill(grid: Path, out: Path, ready: Callable[[], bool], what: str) -> None:
    """Run the grid in a subprocess and SIGKILL it as soon as ``ready()`` holds."""
    code = SCRIPT.format(root=str(ROOT), grid=str(grid), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    kill_when(proc, ready, what)


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_sigkill_mid_run_then_resume(tmp_path, tiny_registry) -> None:
    grid, out = tmp_path / "g.toml", tmp_path / "out"
    grid.write_text(GRID)
    total = len(load_grid(str(grid), registry=tiny_registry).cells)
    _run_and_kill(grid, out, lambda: _count(out / "grid.sqlite") >= 2, "finished cell")
    recorded = _count(out / "grid.sqlite")
    assert 2 <= recorded < total, "the kill should land in the middle of the grid"

    result = run_grid(str(grid), out=out, registry=tiny_registry, progress=False)
    assert result.skipped == recorded and result.ran == total - recorded
    rows = Store(out).rows()
    keys = [r["key"] for r in rows]
    assert len(rows) == total and len(set(keys)) == total
    assert sorted(keys) == sorted(c.key for c in load_grid(str(grid), registry=tiny_registry).cells)
    assert all(r["status"] == "ok" and r["attempts"] == 1 for r in rows)


CKPT_GRID = f"""
name = "kill-cell"
variants = ["tiny"]
tasks = ["{FAST_TASK}"]
seeds = [0]
[model]
d_model = 8
[train]
steps = 400
batch_size = 16
eval_every = 100
checkpoint_every = 20
"""


def test_sigkill_mid_cell_resumes_the_cell_from_its_checkpoint(tmp_path, tiny_registry) -> None:
    """A cell that checkpoints, killed mid-run, continues from its checkpoint when the grid runs
    again, and ends with the numbers of an uninterrupted run."""
    grid, out = tmp_path / "g.toml", tmp_path / "out"
    grid.write_text(CKPT_GRID)
    (cell,) = load_grid(str(grid), registry=tiny_registry).cells
    ckpts = out / "cells" / cell.key / "checkpoints"
    _run_and_kill(grid, out, lambda: ckpts.is_dir() and any(p.suffix != ".tmp"
                                                            for p in ckpts.iterdir()),
                  "checkpoint")
    assert _count(out / "grid.sqlite") == 0, "the kill should land inside the cell"
    kept = sorted(p.name for p in ckpts.iterdir())
    assert kept, "the killed cell left no checkpoint"

    resumed = run_grid(str(grid), out=out, registry=tiny_registry, progress=False)
    assert resumed.ran == 1
    whole = run_grid(str(grid), out=tmp_path / "whole", registry=tiny_registry, progress=False)
    assert whole.ran == 1
    (a,), (b,) = Store(out).rows(), Store(tmp_path / "whole").rows()
    assert a["status"] == b["status"] == "ok" and a["steps"] == b["steps"] == 400
    assert a["val"] == b["val"] and a["test"] == b["test"], (a["val"], b["val"])
