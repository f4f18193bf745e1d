"""Running grids: divergence and failure recorded, resume, retry, one row per cell, reports."""

from __future__ import annotations

import csv
import io
import math
import statistics

import pytest

from ssmzoo.grid import Store, load_grid, markdown, run_grid, status_text, to_csv, write_report
from ssmzoo.grid.report import load_rows
from tests.grid.conftest import FAST_TASK, TOKEN_TASK

GRID = f"""
name = "run-demo"
variants = ["tiny", "tiny-half", "broken"]
tasks = ["{FAST_TASK}", "{TOKEN_TASK}"]
seeds = [0, 1]
[model]
d_model = 8
[train]
steps = 6
batch_size = 16
eval_every = 3
[sweep]
"train.lr" = [1e-2, 1e12]
"""


@pytest.fixture(scope="module")
def ran(tiny_registry, tmp_path_factory):
    path = tmp_path_factory.mktemp("grid") / "g.toml"
    path.write_text(GRID)
    out = path.parent / "out"
    first = run_grid(str(path), out=out, registry=tiny_registry, progress=False)
    return path, out, first


def test_diverged_and_failed_cells_are_recorded_and_the_rest_finish(ran) -> None:
    _, out, first = ran
    assert first.total == first.ran == 24 and first.skipped == 0
    assert first.statuses == {"ok": 8, "diverged": 8, "failed": 8}
    rows = Store(out).rows()
    for r in rows:
        if r["variant"] == "broken":
            assert r["status"] == "failed" and "RuntimeError: broken unit: boom" in r["error"]
        elif r["sweep"]["train.lr"] == 1e12:
            assert r["status"] == "diverged" and "at step" in r["error"]
        else:
            assert r["status"] == "ok" and r["steps"] == 6 and len(r["history"]) == 2
            assert r["test"] and r["versions"]["torch"] and r["config"]["train"]["lr"] == 1e-2
            assert r["config"]["model"].startswith(("regressor(", "classifier("))


def test_rerun_skips_and_retry_reruns_only_failures(ran, tiny_registry) -> None:
    path, out, _ = ran
    again = run_grid(str(path), out=out, registry=tiny_registry, progress=False)
    assert again.ran == 0 and again.skipped == 24
    retry = run_grid(str(path), out=out, registry=tiny_registry, progress=False, retry_failed=True)
    assert retry.ran == 8 and retry.statuses["failed"] == 8
    store = Store(out)
    assert store.count() == 24  # never a duplicate
    attempts = {r["variant"]: r["attempts"] for r in
                (dict(x) for x in store.conn.execute("SELECT variant, attempts FROM cells"))}
    assert attempts["broken"] == 2 and attempts["tiny"] == 1


def test_markdown_is_mean_and_std_over_seeds(ran) -> None:
    _, out, _ = ran
    name, rows = load_rows(out)
    text = markdown(rows, title=f"grid {name}")
    ok = [r for r in rows if r["variant"] == "tiny" and r["task"] == FAST_TASK
          and r["status"] == "ok"]
    values = [r["test"]["rel_error"] for r in ok]
    assert len(values) == 2
    mean, std = statistics.fmean(values), statistics.stdev(values)
    line = next(ln for ln in text.splitlines() if ln.startswith("| `tiny` | train.lr=0.01"))
    assert f"{mean:.3f} ± {std:.3f}" in line
    assert "(2 diverged)" in text and "(2 failed)" in text and "rel_error ↓" in text


def test_csv_has_one_row_per_cell_with_seed_and_sweep(ran) -> None:
    _, out, _ = ran
    _, rows = load_rows(out)
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(table) == 24
    assert {"variant", "task", "seed", "train.lr", "status", "value"} <= set(table[0])
    assert {r["seed"] for r in table} == {"0", "1"}
    ok = [r for r in table if r["status"] == "ok"]
    assert all(math.isfinite(float(r["value"])) for r in ok)
    assert all(r["error"] for r in table if r["status"] != "ok")


def test_report_files_and_status(ran) -> None:
    _, out, _ = ran
    files = write_report(out)
    assert files["md"].read_text().startswith("## grid run-demo")
    for key in ("by_variant", "curves", "sweep:train.lr"):
        assert files[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = status_text(out)
    assert "24/24 cells recorded" in text and "failed   8" in text
    assert "broken unit: boom" in text


def test_status_counts_pending_cells(tiny_registry, write_grid, tmp_path) -> None:
    path = write_grid(GRID)
    cfg = load_grid(str(path), registry=tiny_registry)
    store = Store(tmp_path / "half")
    store.set_meta(name=cfg.name, plan=[c.key for c in cfg.cells])
    assert "0/24 cells recorded" in status_text(tmp_path / "half")
    assert "pending  24" in status_text(tmp_path / "half")


def test_a_task_may_run_its_own_cell(tiny_registry, write_grid, tmp_path) -> None:
    from ssmzoo.registry import Registry
    from ssmzoo.tasks.functions import MemoryScale
    from ssmzoo.train import TrainResult

    class Probe(MemoryScale):
        """A measurement: no training, one number per cell.

        Args:
            scale: what the measurement returns.
        """

        metric = "probe"

        def __init__(self, scale: float = 2.0):
            super().__init__(seq_len=4, n_train=8)
            self.scale = scale

        def run_cell(self, variant, *, model, train, seed, progress, registry):
            assert isinstance(registry, Registry) and train.steps == 6
            return (TrainResult("ok", 0, val={"probe": self.scale * (seed + 1)}),
                    {"model": f"probe of {variant}"})

    tiny_registry.task("probe", Probe)
    try:
        path = write_grid(GRID.replace(f'tasks = ["{FAST_TASK}", "{TOKEN_TASK}"]',
                                       'tasks = ["probe(scale=3.0)"]').replace('"broken"', ''))
        run_grid(str(path), out=tmp_path / "p", registry=tiny_registry, progress=False)
    finally:
        tiny_registry._tasks.pop("probe")
    rows = Store(tmp_path / "p").rows()
    assert {r["val"]["probe"] for r in rows} == {3.0, 6.0}
    assert all(r["status"] == "ok" and r["config"]["model"].startswith("probe of tiny")
               for r in rows)
