"""The local pool (``--jobs N``) and the grid's progress at 80 columns."""

from __future__ import annotations

import io
import sqlite3

import pytest
from rich.console import Console

from ssmzoo.cli import main
from ssmzoo.errors import ConfigError
from ssmzoo.grid import load_grid, run_grid
from ssmzoo.grid.progress import Progress as _Progress
from ssmzoo.grid.progress import cell_label

TASK = "memory_scale(seq_len=6, n_train=32, n_val=16, n_test=16)"
GRID = f"""
name = "jobs-demo"
variants = ["s4d", "s6"]
tasks = ["{TASK}"]
seeds = [0, 1]
[model]
d_model = 4
[train]
steps = 3
batch_size = 8
eval_every = 1
"""


def test_two_workers_train_each_cell_once(tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    assert main(["grid", "run", str(grid), "--out", str(out), "--jobs", "2"]) == 0
    captured = capsys.readouterr()
    assert "4 cells run, 0 already recorded" in captured.out
    # not a terminal: one plain line per finished cell, short, with counts and elapsed time
    lines = [ln for ln in captured.err.splitlines() if ln.startswith("[")]
    assert [ln.split("]")[0] for ln in lines] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert all(len(ln) <= 100 and ": ok" in ln for ln in lines), lines
    rows = sqlite3.connect(out / "grid.sqlite").execute(
        "SELECT status, COUNT(*) FROM cells GROUP BY status").fetchall()
    assert rows == [("ok", 4)]
    # resumed: nothing left to train
    assert main(["grid", "run", str(grid), "--out", str(out), "--jobs", "2"]) == 0
    assert "0 cells run, 4 already recorded" in capsys.readouterr().out


def test_jobs_is_checked(tmp_path, capsys, tiny_registry):
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    assert main(["grid", "run", str(grid), "--out", str(tmp_path / "o"), "--jobs", "0"]) == 1
    assert "--jobs expects an int >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="jobs expects an int >= 1"):
        run_grid(str(grid), out=tmp_path / "o2", jobs=True)
    with pytest.raises(ConfigError, match="a registry passed in runs with jobs=1"):
        run_grid(str(grid), out=tmp_path / "o3", jobs=2, registry=tiny_registry)


def test_progress_fits_80_columns(tmp_path):
    long_task = ("mqar(seq_len=256, num_kv=16, vocab=8192, n_train=100000, n_val=2000, "
                 "n_test=2000, power_a=0.01)")
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.replace(TASK, long_task).replace('"s6"', '"mamba(core=b2s6(h=8))"'))
    cfg = load_grid(str(grid))
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None)
    bar = _Progress(cfg.cells, 0, True, terminal=True, console=console)
    for cell in cfg.cells[:2]:
        bar.started(cell)
        bar.step(cell.key, 2)
    bar.advance({"key": cfg.cells[0].key, "status": "ok"})
    bar.bar.refresh()
    bar.close()
    text = buf.getvalue()
    last = [ln for ln in text.replace("\r", "\n").splitlines() if "cells" in ln][-1]
    assert len(last.rstrip()) <= 80, last
    assert "1/4" in last and "ETA" in last
    assert cell_label(cfg.cells[-1]) == "mamba(core=b2s6(h=8)) mqar s1"
