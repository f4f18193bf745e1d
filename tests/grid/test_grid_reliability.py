"""Grid reliability: bad names and seeds, store faults as one line, several runners on one grid,
a killed runner's cell taken over after its lease, a cell's result independent of the process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssmzoo.cli import main
from ssmzoo.errors import ConfigError
from ssmzoo.grid import Store, parse_grid, run_grid
from ssmzoo.grid.cell import run_cell
from ssmzoo.grid.store import GridStoreError
from tests.grid.conftest import FAST_TASK, kill_when

ROOT = Path(__file__).resolve().parents[2]

GRID = f"""
name = "rel-demo"
variants = ["tiny", "tiny-half"]
tasks = ["{FAST_TASK}"]
seeds = [0, 1]
[model]
d_model = 8
[train]
steps = 24
batch_size = 16
eval_every = 12
"""

SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from tests.train.tinyzoo import make_registry
from ssmzoo.grid import run_grid
r = run_grid({grid!r}, out={out!r}, registry=make_registry(), progress=False, lease={lease})
print(json.dumps({{"ran": r.ran}}))
"""


def _runner(tmp_path: Path, lease: float) -> subprocess.Popen:
    code = SCRIPT.format(root=str(ROOT), grid=str(tmp_path / "g.toml"), out=str(tmp_path / "out"),
                         lease=lease)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize(("name", "words"), [('"../../evil"', ["'../../evil'", "'evil'"]),
                                             ("5", ["expects a string", "int"])])
def test_grid_name_must_be_a_folder_name(tiny_registry, name, words) -> None:
    with pytest.raises(ConfigError) as info:
        parse_grid(GRID.replace('"rel-demo"', name), path="g.toml", registry=tiny_registry)
    assert str(info.value).startswith("g.toml:2: name expects")
    assert all(w in str(info.value) for w in words)


def test_seed_outside_sqlite_range_fails_before_training(tiny_registry) -> None:
    with pytest.raises(ConfigError, match=r"g.toml:5: seeds: 9223372036854775808 is outside"):
        parse_grid(GRID.replace("seeds = [0, 1]", "seeds = [0, 9223372036854775808]"),
                   path="g.toml", registry=tiny_registry)


def test_store_faults_are_one_line_with_nonzero_exit(tmp_path, capsys) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.replace('"tiny", "tiny-half"', '"s4d"'))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "grid.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x13" * 200)  # truncated junk
    for argv in (["grid", "status", str(bad)], ["grid", "report", str(bad)],
                 ["grid", "run", str(grid), "--out", str(bad)]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("error: grid results") and "corrupt" in err and err.count("\n") == 1
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["grid", "run", str(grid), "--out", str(a_file)]) == 1
    assert "is a file, not a directory" in capsys.readouterr().err


def test_read_only_commands_never_write(tmp_path, tiny_registry) -> None:
    (tmp_path / "g.toml").write_text(GRID.replace("seeds = [0, 1]", "seeds = [0]"))
    run_grid(str(tmp_path / "g.toml"), out=tmp_path / "out", registry=tiny_registry,
             progress=False)
    with Store(tmp_path / "out", readonly=True) as store:
        assert store.count() == 2
        with pytest.raises(GridStoreError, match="read-only"):
            store.set_meta(name="x")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):  # SQLite refuses, too
            store.conn.execute("DELETE FROM cells")
    with pytest.raises(ConfigError, match="no grid results"):
        Store(tmp_path / "nowhere", readonly=True)
    assert not (tmp_path / "nowhere").exists()


def test_two_runners_train_each_cell_once(tmp_path) -> None:
    (tmp_path / "g.toml").write_text(GRID)
    procs = [_runner(tmp_path, lease=5.0) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    ran = [json.loads(o.strip().splitlines()[-1])["ran"] for o in outs]
    assert sum(ran) == 4  # every cell trained by exactly one of them
    rows = Store(tmp_path / "out").rows()
    assert len(rows) == 4 and len({r["key"] for r in rows}) == 4
    assert all(r["status"] == "ok" and r["attempts"] == 1 and r["runner"] for r in rows)
    assert len({r["runner"] for r in rows}) <= 2
    assert Store(tmp_path / "out").claims() == {}


def test_killed_runner_cell_is_taken_over_after_its_lease(tmp_path, tiny_registry) -> None:
    (tmp_path / "g.toml").write_text(GRID.replace("steps = 24", "steps = 400"))
    db = tmp_path / "out" / "grid.sqlite"
    proc = _runner(tmp_path, lease=3.0)
    held: list[str] = []

    def claimed() -> bool:
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                held[:] = [r[0] for r in conn.execute("SELECT key FROM claims")]
        except sqlite3.OperationalError:  # not created yet
            pass
        return bool(held)

    kill_when(proc, claimed, "cell claimed")
    result = run_grid(str(tmp_path / "g.toml"), out=tmp_path / "out", registry=tiny_registry,
                      progress=False, lease=3.0)
    rows = {r["key"]: r for r in Store(tmp_path / "out").rows()}
    assert result.statuses == {"ok": 4} and len(rows) == 4
    assert rows[held[0]]["attempts"] == 1 and rows[held[0]]["status"] == "ok"


def _numbers(record: dict) -> tuple:
    history = [{k: v for k, v in h.items() if k != "time"} for h in record["history"]]
    return record["status"], record["val"], record["test"], history


def test_cell_result_does_not_depend_on_what_ran_before(tiny_registry) -> None:
    cfg = parse_grid(GRID, registry=tiny_registry)
    first, other = cfg.cells[0].to_dict(), cfg.cells[3].to_dict()
    alone = run_cell(first, registry=tiny_registry)
    threads = torch.get_num_threads()
    try:
        run_cell(other, registry=tiny_registry)
        torch.rand(7)  # leave the global generator and the thread count somewhere else
        torch.set_num_threads(max(1, threads - 1) if threads > 1 else 2)
        after = run_cell(first, registry=tiny_registry)
    finally:
        torch.set_num_threads(threads)
    assert alone["status"] == "ok"
    assert _numbers(after) == _numbers(alone)


def test_two_cli_runners_on_one_grid(tmp_path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.replace('"tiny", "tiny-half"', '"s4d"').replace("seeds = [0, 1]",
                                                                         "seeds = [0, 1, 2, 3]")
                    .replace("d_model = 8", "d_model = 4").replace("steps = 24", "steps = 2")
                    .replace("eval_every = 12", "eval_every = 1"))
    argv = [sys.executable, "-m", "ssmzoo", "grid", "run", str(grid), "--out",
            str(tmp_path / "out"), "--quiet", "--lease", "5"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ran = [int(out.strip().splitlines()[-1].split(" cells run")[0]) for out, _ in outs]
    assert sum(ran) == 4
    rows = Store(tmp_path / "out").rows()
    assert len(rows) == 4 and all(r["status"] == "ok" and r["attempts"] == 1 for r in rows)


def test_disk_full_is_one_line_and_keeps_finished_cells(tmp_path, tiny_registry, monkeypatch,
                                                        capsys) -> None:
    import ssmzoo.grid.runner as runner
    from ssmzoo.grid.store import _guarded

    first = tmp_path / "g.toml"
    first.write_text(GRID.replace('"tiny", "tiny-half"', '"s4d"').replace("seeds = [0, 1]",
                                                                          "seeds = [0]")
                     .replace("d_model = 8", "d_model = 4").replace("steps = 24", "steps = 2")
                     .replace("eval_every = 12", "eval_every = 1"))
    out = tmp_path / "out"
    assert main(["grid", "run", str(first), "--out", str(out), "--quiet"]) == 0
    first.write_text(first.read_text().replace("seeds = [0]", "seeds = [0, 1]"))

    class FullStore(Store):  # the disk fills up while the second cell trains
        @_guarded
        def write(self, record, *, runner=None):
            raise sqlite3.OperationalError("database or disk is full")  # what SQLite raises

    monkeypatch.setattr(runner, "Store", FullStore)
    assert main(["grid", "run", str(first), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: grid results") and "full" in err and err.count("\n") == 1
    rows = Store(out).rows()
    assert len(rows) == 1 and rows[0]["status"] == "ok"


def test_store_open_retries_a_lock_reported_at_once(tmp_path, monkeypatch) -> None:
    """Two runners creating one grid's file at once: a lock SQLite reports without waiting
    ("database is locked" from the WAL switch or the schema) is retried; any other fault is
    not."""
    import ssmzoo.grid.store as store

    real = store.Store._setup
    faults = ["database is locked", "database is locked"]

    def flaky(self):
        if faults:
            raise sqlite3.OperationalError(faults.pop())
        return real(self)

    monkeypatch.setattr(store.Store, "_setup", flaky)
    s = store.Store(tmp_path / "out")
    assert not faults and s.rows() == []
    s.close()

    def broken(self):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store.Store, "_setup", broken)
    with pytest.raises(GridStoreError, match="disk I/O error"):
        store.Store(tmp_path / "other")

    monkeypatch.setattr(store, "OPEN_RETRY_SECONDS", 0.2)
    monkeypatch.setattr(store.Store, "_setup",
                        lambda self: (_ for _ in ()).throw(sqlite3.OperationalError("database is locked")))
    with pytest.raises(GridStoreError, match="locked"):
        store.Store(tmp_path / "third")


def test_many_stores_open_one_new_file_at_once(tmp_path) -> None:
    """Eight first opens of one new grid file at once, from threads: all open, one schema (before
    the schema had every column, two openers both added the runner column and one failed with
    "duplicate column name", as a CI run of two runners did)."""
    import threading

    errors, opened = [], []
    start = threading.Barrier(8)

    def open_one() -> None:
        try:
            start.wait()
            s = Store(tmp_path / "out")  # a connection belongs to its thread: closed here
            opened.append(s.rows() == [])
            s.close()
        except Exception as e:  # collected: a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and opened == [True] * 8
