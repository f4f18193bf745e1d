"""``ssmzoo grid ...`` and ``ssmzoo train`` through the real CLI entry point."""

from __future__ import annotations

import pytest

from ssmzoo.cli import main
from ssmzoo.cli.train import parse_assignments

TASK = "memory_scale(seq_len=6, n_train=32, n_val=16, n_test=16)"

GRID = f"""
name = "cli-demo"
variants = ["s4d"]
tasks = ["{TASK}"]
seeds = [0, 1]
[model]
d_model = 4
[train]
steps = 2
batch_size = 8
eval_every = 1
"""


def test_parse_assignments() -> None:
    assert parse_assignments(["d_model=64", "pool=last", "lr=1e-3", "mixer=mamba(core=s6)"],
                             "--model") == {"d_model": 64, "pool": "last", "lr": 1e-3,
                                            "mixer": parse_assignments(["m=mamba(core=s6)"],
                                                                       "x")["m"]}
    assert parse_assignments(["path=/tmp/a b.txt"], "--task") == {"path": "/tmp/a b.txt"}


def test_grid_run_status_report(tmp_path, capsys) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "out"
    assert main(["grid", "run", str(grid), "--check"]) == 0
    assert "2 cells, all valid" in capsys.readouterr().out
    assert main(["grid", "run", str(grid), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| `s4d` |" in printed and "2 cells run, 0 already recorded" in printed
    assert (out / "report.md").is_file() and (out / "report.csv").is_file()
    assert main(["grid", "status", str(out)]) == 0
    assert "2/2 cells recorded" in capsys.readouterr().out
    assert main(["grid", "report", str(out), "--format", "csv", "--no-plots"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("variant,task,seed,status") and len(lines) == 3


def test_grid_errors_are_one_line(tmp_path, capsys) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID.replace('"s4d"', '"s4dd"'))
    assert main(["grid", "run", str(grid), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {grid}:3: no unit named 's4dd'; did you mean 's4d'")
    assert main(["grid", "status", str(tmp_path / "nothing")]) == 1
    assert "no grid results" in capsys.readouterr().err
    assert main(["grid", "run", "quikstart"]) == 1
    assert "did you mean 'quickstart'" in capsys.readouterr().err


def test_ray_executor_without_ray_says_how_to_install(tmp_path, capsys, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    assert main(["grid", "run", str(grid), "--executor", "ray", "--out", str(tmp_path / "o")]) == 1
    assert "pip install 'ssmzoo[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_train_prints_a_final_metrics_line(capsys, tmp_path) -> None:
    import ssmzoo

    code = main(["train", "s4d", "--task", TASK, "--steps", "3", "--batch-size", "8",
                 "--model", "d_model=4", "--quiet", "--save", str(tmp_path / "m")])
    out = capsys.readouterr().out
    assert code == 0 and "ok after 3 steps" in out and "test: loss=" in out and "rel_error=" in out
    model = ssmzoo.load(tmp_path / "m")
    assert model.ssmzoo_spec.startswith("regressor(mixer=s4d")
    assert main(["train", "s4d", "--task", TASK, "--model", "d_modle=4", "--quiet"]) == 1
    assert "did you mean 'd_model'" in capsys.readouterr().err


@pytest.mark.parametrize("lr", ["1e12"])
def test_train_divergence_exit_code(capsys, lr) -> None:
    code = main(["train", "s4d", "--task", TASK, "--steps", "20", "--batch-size", "8", "--lr", lr,
                 "--train", "grad_clip=0", "--train", "warmup=0", "--model", "d_model=4",
                 "--quiet"])
    assert code == 2 and "diverged" in capsys.readouterr().out
