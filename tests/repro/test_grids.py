"""The reproduction grids: every file validates, the runner runs measurement cells, and reduced
versions of the grids show the papers' directions (``slow``: they train; they run in CI).

Only directions that held at the shipped size and that a reduced run still shows within the CI
budget have a reduced test here (the Δ-gradient slopes in test_dt_gradients.py, coefficient
recovery and length extension below); docs/reproductions.md gives the numbers of every grid,
held or not.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from ssmzoo.grid import builtin_grids, load_grid
from ssmzoo.grid.report import final_metric, load_rows
from ssmzoo.registry import get_registry
from ssmzoo.repro.runner import run

GRIDS = ["coef-recovery-width", "memory-scale", "dt-gradient-growth", "dt-lr-stability",
         "b2s6-ablation", "keep-nth", "mqar-capacity", "length-extension", "b2s6-ablation-gpu",
         "lra-listops-gpu"]


@pytest.mark.parametrize("name", GRIDS)
def test_grid_file_validates(name: str) -> None:
    assert name in builtin_grids()
    cfg = load_grid(name, registry=get_registry())
    assert cfg.name == name and cfg.cells and cfg.description


def run_text(tmp_path: Path, text: str) -> list[dict[str, Any]]:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    out = run(str(path), out=tmp_path / "out", progress=False)
    assert (out / "report.md").is_file() and (out / "report.csv").is_file()
    _, rows = load_rows(out)
    bad = [(r["variant"], r["task"], r.get("error")) for r in rows if r["status"] != "ok"]
    assert not bad, bad
    return rows


def value(rows: list[dict[str, Any]], variant: str, task: str = "", **sweep: Any) -> float:
    """Mean over seeds of the main metric of the cells matching variant, task prefix and sweep."""
    vals = [final_metric(r) for r in rows if r["variant"] == variant
            and r["task"].startswith(task) and all(r["sweep"].get(k) == v for k, v in sweep.items())]
    assert vals, (variant, task, sweep)
    return sum(vals) / len(vals)


def test_runner_runs_a_measurement_cell_and_writes_its_table(tmp_path: Path) -> None:
    rows = run_text(tmp_path, """
name = "tiny-dt"
variants = ["s6-alg2"]
tasks = ["dt_gradients(sweep=scale, ratio=b, scales=[0.5, 1.0, 2.0], seq_len=16, trials=3, samples=4)"]
seeds = [0]
""")
    assert rows[0]["metric"] == "slope" and math.isfinite(final_metric(rows[0]))
    assert "Gradient growth" in (tmp_path / "out" / "repro.md").read_text()
    again = run(str(tmp_path / "grid.toml"), out=tmp_path / "out", progress=False)  # resumes
    assert len(load_rows(again)[1]) == 1


@pytest.mark.slow
def test_reduced_coef_recovery_s6_flat_s4d_falls(tmp_path: Path) -> None:
    # measured 2026-11-23: S6 2.988 -> 2.859, S4D 2.908 -> 2.315 (d 4 -> 16); B2S6 is left to the
    # full grid, to keep this test within the CI budget (S6 at d=16 is the slow cell)
    rows = run_text(tmp_path, """
name = "coef-small"
variants = ["s6-alg2", "s4d(d_state=16)"]
tasks = ["coef_recovery(seq_len=128, n_train=2048, n_val=128, n_test=256)"]
seeds = [0]
[model]
n_layers = 1
[train]
steps = 200
batch_size = 32
lr = 5e-3
warmup = 0.05
eval_every = 0
[sweep]
"model.d_model" = [4, 16]
""")
    drop = {v: value(rows, v, **{"model.d_model": 4}) - value(rows, v, **{"model.d_model": 16})
            for v in ("s6-alg2", "s4d(d_state=16)")}
    assert drop["s4d(d_state=16)"] > drop["s6-alg2"] + 0.2, drop


@pytest.mark.slow
def test_reduced_length_extension_slow_modes_fail_and_scaling_recovers(tmp_path: Path) -> None:
    # The shipped grid's slow-mode model (|A| in [0.001, 0.1]) at a reduced size: 150 steps at
    # L = 64, perplexity at 2048 on 4 test windows, 5 SPSA steps on 2 validation windows.
    # Measured 2026-11-23 on the 2-core CPU (one thread), seeds 0-3: identity 6.90-9.83 at 2048
    # vs 3.30-3.48 at 64; calibrated 3.76-5.16 (gain 1.35-2.15), constant 3.42-3.64, Δ·64/2048
    # 3.40-3.46. The thresholds leave room below the weakest seed.
    rows = run_text(tmp_path, """
name = "length-small"
variants = ["mamba2(A_init_range=[0.001, 0.1], d_state=16, headdim=16, chunk_size=64)"]
tasks = ["length_extension(seq_len=64, lengths=[2048], calib_steps=5, calib_windows=2, eval_windows=4)"]
seeds = [0]
[model]
d_model = 64
n_layers = 2
[train]
steps = 150
batch_size = 16
lr = 3e-3
warmup = 0.05
eval_every = 0
threads = 1
precision = "fp32"
""")
    test = rows[0]["test"]
    ident = test["ppl@2048/identity"]
    assert test["identity_rise"] > 1.5, test          # the unchanged model fails past 64
    assert test["calibrated_gain"] > 1.2, test        # calibrated per-layer A scales help
    assert test["ppl@2048/calibrated"] * 1.2 < ident, test
    assert test["ppl@2048/constant"] * 1.2 < ident, test
    assert test["ppl@2048/delta"] * 1.2 < ident, test
    assert all(0.01 <= test[f"scale@2048/calibrated/{i}"] <= 1.0 for i in range(2)), test
    assert abs(test["ppl@64/calibrated"] - test["ppl@64/identity"]) < 0.05 * test["ppl@64/identity"]
