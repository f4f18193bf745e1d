"""Every registered task that runs without downloads keeps the protocol: its data fits the head it
declares, and its main metric comes out of its metric terms. A new task is tested for free."""

from __future__ import annotations

import math

import pytest
import torch

import ssmzoo
from ssmzoo.registry import get_registry
from ssmzoo.tasks import IGNORE_INDEX, Task

NEEDS_DATA = {"text", "retrieval", "image"}  # release files only (tested in test_lra.py)
SMALL = {"n_train": 16, "n_val": 8, "n_test": 8}
SHRINK = {  # defaults sized for real runs; keep the contract test fast
    "listops": {"max_depth": 3, "max_args": 3, "min_length": 4, "max_length": 40, "seq_len": 48},
    "pathx": {"resolution": 32, "path_length": 10},
    "chars": {"max_train": 16, "seq_len": 32},
}


def _names() -> list[str]:
    """Tasks that train through the loop (a measurement task, with its own ``run_cell``, is
    tested by its plugin's tests instead)."""
    tasks = get_registry().tasks
    return sorted(n for n, e in tasks.items()
                  if n not in NEEDS_DATA and not hasattr(e.factory, "run_cell"))


def _build(name: str) -> Task:
    entry = get_registry().get_task(name)
    declared = {h.name for h in entry.hparams}
    args = {k: v for k, v in {**SMALL, **SHRINK.get(name, {})}.items() if k in declared}
    return ssmzoo.build_task(name, **args)


@pytest.mark.parametrize("name", _names())
def test_task_data_fits_its_head(name: str) -> None:
    task = _build(name)
    head = task.head()
    assert task.kind in ("lm", "classifier", "regressor")
    assert task.metric and isinstance(task.higher_is_better, bool)
    split = task.split("val", 0)
    x, y, lengths = next(split.batches(4))
    if "vocab_size" in head:
        assert x.dtype == torch.int64 and 0 <= int(x.min()) and int(x.max()) < head["vocab_size"]
    else:
        assert x.is_floating_point() and x.shape[-1] == head.get("d_input", 1)
    if lengths is not None:
        assert int(lengths.min()) >= 1 and int(lengths.max()) <= x.shape[-1 if "vocab_size" in head else -2]
    b = x.shape[0]
    if task.kind == "lm":
        assert y.shape == x.shape and ((y == IGNORE_INDEX) | ((y >= 0) & (y < head["vocab_size"]))).all()
        out = torch.randn(*y.shape, head["vocab_size"])
    elif task.kind == "classifier":
        assert y.shape == (b,) and 0 <= int(y.min()) and int(y.max()) < head["n_classes"]
        out = torch.randn(b, head["n_classes"])
    else:
        assert y.shape == (b, head["d_output"]) and y.is_floating_point()
        out = torch.randn(b, head["d_output"])
    loss = task.loss(out, y)
    assert loss.ndim == 0 and math.isfinite(float(loss))
    terms = task.metric_terms(out, y)
    final = task.finalize({k: s / n for k, (s, n) in terms.items() if n})
    assert task.metric in final and math.isfinite(final[task.metric])


@pytest.mark.parametrize("name", _names())
def test_task_splits_are_seeded(name: str) -> None:
    task = _build(name)
    a, b = task.split("train", 0), _build(name).split("train", 0)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
