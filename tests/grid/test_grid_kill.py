"""A grid killed with SIGKILL in the middle, then run again, has every cell exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from ssmzoo.grid import Store, load_grid, run_grid
from tests.grid.conftest import FAST_TASK

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

SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.train.tinyzoo import make_registry
from ssmzoo.grid import run_grid
run_grid({grid!r}, out={out!r}, registry=make_registry(), progress=False)
"""


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
    code = SCRIPT.format(root=str(ROOT), grid=str(grid), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 240
    try:
        while _count(out / "grid.sqlite") < 2:
            assert proc.poll() is None, "the grid ended before it could be killed"
            assert time.time() < deadline, "no cell finished in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    recorded = _count(out / "grid.sqlite")
    assert 2 <= recorded < total, "the kill should land in the middle of the grid"

    result = run_grid(str(grid), out=out, registry=tiny_registry, progress=False)
    assert result.skipped == recorded and result.ran == total - recorded
    rows = Store(out).rows()
    keys = [r["key"] for r in rows]
    assert len(rows) == total and len(set(keys)) == total
    assert sorted(keys) == sorted(c.key for c in load_grid(str(grid), registry=tiny_registry).cells)
    assert all(r["status"] == "ok" and r["attempts"] == 1 for r in rows)
