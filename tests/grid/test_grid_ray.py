"""The same grid on ``--executor ray`` (a local 2-CPU cluster) gives the same rows as locally."""

from __future__ import annotations

import math

import pytest

from ssmzoo.grid import Store, run_grid

GRID = """
name = "ray-demo"
variants = ["s4d", "s4d-real"]
tasks = ["memory_scale(seq_len=8, n_train=64, n_val=32, n_test=32)"]
seeds = [0]
[model]
d_model = 8
[train]
steps = 10
batch_size = 16
eval_every = 5
threads = 1
"""


@pytest.mark.slow
def test_ray_rows_equal_local_rows(tmp_path) -> None:
    ray = pytest.importorskip("ray")
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    local = run_grid(str(grid), out=tmp_path / "local", progress=False)
    assert local.statuses == {"ok": 2}
    try:
        remote = run_grid(str(grid), out=tmp_path / "ray", executor="ray", num_cpus=2,
                          progress=False)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert remote.statuses == {"ok": 2} and remote.ran == 2
    a = {r["key"]: r for r in Store(tmp_path / "local").rows()}
    b = {r["key"]: r for r in Store(tmp_path / "ray").rows()}
    assert a.keys() == b.keys()
    for key in a:
        ra, rb = a[key], b[key]
        for col in ("variant", "task", "seed", "sweep", "status", "steps", "n_params", "metric"):
            assert ra[col] == rb[col], col
        assert ra["config"] == rb["config"]
        for split in ("val", "test"):
            assert ra[split].keys() == rb[split].keys()
            for m in ra[split]:
                assert math.isclose(ra[split][m], rb[split][m], rel_tol=1e-5, abs_tol=1e-7), m
        assert [h["step"] for h in ra["history"]] == [h["step"] for h in rb["history"]]
    # a rerun on ray skips what is recorded
    again = run_grid(str(grid), out=tmp_path / "ray", executor="ray", num_cpus=2, progress=False)
    assert again.ran == 0 and again.skipped == 2
