"""The GPU check grid (benchmarks/gpu_check.py): what it covers, and on a GPU, that it passes.

The grid runs every case in fresh subprocesses (a CUDA fault poisons only its own process), so the
GPU test here only launches the runner and reports the cases that failed or faulted.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)


def test_grid_covers_the_risky_axes() -> None:
    """Channel counts below and not dividing the tile, every dtype and length, both A kinds,
    every B/C layout, biases, both discretizations, states, and mamba_ssm's own test shape
    (dim 4, d_state 8, 16-bit, L 2048/4096, with and without z), each named once."""
    scan = gpu_check.scan_cases()
    names = [gpu_check.case_name(c) for c in scan + gpu_check.ssd_cases()]
    assert len(names) == len(set(names))
    for axis, values in (("dim", {1, 3, 4, 5, 17, 33}), ("length", {1, 7, 127, 1134, 2048, 4096}),
                         ("dtype", {"float32", "float16", "bfloat16"}),
                         ("complex", {True, False}), ("z", {True, False}),
                         ("discretization", {"euler", "zoh"}), ("initial_state", {True, False}),
                         ("B_bias", {True, False}), ("C_bias", {True, False})):
        seen = {c.get(axis, False) for c in scan}
        assert values <= seen, f"{axis}: {sorted(values - seen, key=str)} missing"
    assert max(c["dim"] for c in scan) > 256
    layouts = {c[k] for c in scan for k in ("B_layout", "C_layout")}
    assert layouts == {"fixed", "variable", "grouped"}
    mamba = [c for c in scan if (c["dim"], c["d_state"], c["B_layout"], c["C_layout"])
             == (4, 8, "variable", "variable") and c["dtype"] != "float32"]
    assert {(c["dtype"], c["length"], c["z"]) for c in mamba} >= {
        (d, n, z) for d in ("float16", "bfloat16") for n in (2048, 4096) for z in (True, False)}
    ssd = gpu_check.ssd_cases()
    assert {c["heads"] for c in ssd} == {1, 3} and {c["headdim"] for c in ssd} == {16, 64}
    assert {c["d_state"] for c in ssd} == {16, 128}
    assert all(c["length"] % c["chunk_size"] for c in ssd)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_check_grid(tmp_path) -> None:
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out",
                        str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    bad = [f"{r['status']}: {r['name']}: {r.get('message', '')}" for r in summary["results"]
           if r["status"] != "pass"]
    assert p.returncode == 0 and not bad, "\n".join(bad) or p.stdout[-2000:] + p.stderr[-2000:]
