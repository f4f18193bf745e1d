"""Resumable runs: checkpoints, atomic writes, resume after SIGKILL, metrics.csv."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ssmzoo.errors import CheckpointError
from ssmzoo.train import read_metrics, resume, run
from ssmzoo.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from tests.train.tinyzoo import make_registry

TASK = "memory_scale(seq_len=8, n_train=256, n_val=64, n_test=64)"
CFG = {"steps": 12, "batch_size": 32, "lr": 1e-2, "eval_every": 4, "warmup": 2,
       "checkpoint_every": 5, "threads": 1, "device": "cpu"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reg():
    return make_registry()


def _final(res):
    return [{k: v for k, v in h.items() if k != "time"} for h in res.history], res.val, res.test


def test_resume_in_process_is_bit_identical(reg, tmp_path) -> None:
    full, _ = run("tiny", TASK, train=CFG, seed=3, registry=reg, out=tmp_path / "full")
    # 12 steps, 8 batches an epoch: the checkpoint at step 10 is inside the second epoch
    run("tiny", TASK, train=CFG, seed=3, registry=reg, out=tmp_path / "part")
    ckpts = list_checkpoints(tmp_path / "part" / "checkpoints")
    assert [p.name for p in ckpts] == ["step-000005.pt", "step-000010.pt"]
    # resuming redoes steps 11-12 from the step-10 checkpoint (as after a kill at step 11 or 12)
    again, _ = resume(tmp_path / "part", registry=reg)
    assert again.steps == 12
    assert _final(again) == _final(full)
    for a, b in zip(full.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "full" / "metrics.csv").read_text() == \
        (tmp_path / "part" / "metrics.csv").read_text()


def test_csv_one_row_per_step(reg, tmp_path) -> None:
    run("tiny", TASK, train=CFG, seed=0, registry=reg, out=tmp_path)
    rows = read_metrics(tmp_path)
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert all({"loss", "lr"} <= set(r) for r in rows)
    evaluated = [int(r["step"]) for r in rows if "val_mse" in r]
    assert evaluated == [4, 8, 12]


def test_temp_file_is_ignored_and_old_pruned(reg, tmp_path) -> None:
    run("tiny", TASK, train={**CFG, "checkpoint_every": 2, "keep_checkpoints": 2}, seed=0,
        registry=reg, out=tmp_path)
    folder = tmp_path / "checkpoints"
    assert [p.name for p in list_checkpoints(folder)] == ["step-000010.pt", "step-000012.pt"]
    (folder / ".step-000014.pt.tmp-999").write_bytes(b"half a checkpo")  # a kill mid-write
    assert latest_checkpoint(folder).name == "step-000012.pt"
    assert load_checkpoint(folder)["step"] == 12


def test_resume_errors_name_the_path(reg, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="run.json"):
        resume(tmp_path / "nowhere", registry=reg)
    run("tiny", TASK, train={**CFG, "steps": 5}, seed=0, registry=reg, out=tmp_path)
    ckpt = latest_checkpoint(tmp_path / "checkpoints")
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=f"{ckpt}.*corrupt"):
        resume(tmp_path, registry=reg)
    ckpt.unlink()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        resume(tmp_path, registry=reg)


def test_resume_with_other_settings_is_refused(reg, tmp_path) -> None:
    run("tiny", TASK, train={**CFG, "steps": 5}, seed=0, registry=reg, out=tmp_path)
    with pytest.raises(CheckpointError, match="lr"):
        run("tiny", TASK, train={**CFG, "steps": 5, "lr": 5e-3}, seed=0, registry=reg,
            out=tmp_path, resume=True)


DRIVER = textwrap.dedent("""
    import os, signal, sys
    import ssmzoo.train.loop as loop
    from ssmzoo.cli import main
    if sys.argv[1] == "kill":
        real = loop.save_checkpoint
        def save_then_die(*a, **k):
            real(*a, **k)
            os.kill(os.getpid(), signal.SIGKILL)
        loop.save_checkpoint = save_then_die
    sys.exit(main(sys.argv[2:]))
""")


def test_cli_sigkill_then_resume_matches(tmp_path) -> None:
    args = ["train", "s4d", "--task", "memory_scale(seq_len=8, n_train=128, n_val=32, n_test=32)",
            "--model", "d_model=8", "--model", "n_layers=1", "--steps", "6", "--batch-size", "16",
            "--eval-every", "3", "--train", "checkpoint_every=2", "--threads", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def call(mode: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", DRIVER, mode, *extra], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    full = call("plain", *args, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    killed = call("kill", *args, "--out", str(tmp_path / "run"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == \
        ["step-000002.pt"]
    resumed = call("plain", "train", "--resume", str(tmp_path / "run"), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "run" / "metrics.csv").read_text() == \
        (tmp_path / "full" / "metrics.csv").read_text()
    assert len(read_metrics(tmp_path / "run")) == 6
    missing = call("plain", "train", "--resume", str(tmp_path / "absent"))
    assert missing.returncode == 1 and str(tmp_path / "absent") in missing.stderr
