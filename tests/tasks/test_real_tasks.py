"""sdigits and chars: offline data, fixed splits, errors that say what is expected where."""

from __future__ import annotations

import pytest
import torch

import ssmzoo
from ssmzoo.errors import DataError


def test_sdigits_fixed_split_and_shapes() -> None:
    pytest.importorskip("sklearn")
    task = ssmzoo.build_task("sdigits")
    tr, va, te = (task.split(s, 0) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (1297, 200, 300)
    assert tr.inputs.shape == (1297, 64, 1) and tr.inputs.max() <= 1.0
    assert torch.equal(te.inputs, task.split("test", 5).inputs)  # same test images for every seed
    rows = ssmzoo.build_task("sdigits(order=row)").split("train", 0)
    torch.testing.assert_close(rows.inputs.reshape(1297, 64), tr.inputs[..., 0])
    assert set(tr.targets.tolist()) == set(range(10))


def test_chars_windows_shift_by_one(tmp_path) -> None:
    text = ("The quick brown fox jumps over the lazy dog. " * 200).encode()
    (tmp_path / "t.txt").write_bytes(text)
    task = ssmzoo.build_task(f'chars(path="{tmp_path / "t.txt"}", seq_len=16)')
    s = task.split("train", 0)
    assert s.inputs.shape[1] == 16 and torch.equal(s.inputs[:, 1:], s.targets[:, :-1])
    assert bytes(s.inputs[0].tolist()) == text[:16]
    assert task.head() == {"vocab_size": 256}


def test_chars_default_corpus_ships_with_python() -> None:
    task = ssmzoo.build_task("chars(seq_len=64, max_train=10)")
    assert len(task.split("train", 0)) == 10 and len(task.split("val", 0)) > 10


def test_chars_missing_file_says_where(tmp_path) -> None:
    with pytest.raises(DataError, match="expected a text file at"):
        ssmzoo.build_task(f'chars(path="{tmp_path / "nope.txt"}")')
