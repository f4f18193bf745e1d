"""LRA tasks: loaders on tiny files in the official formats, the ListOps and Pathfinder generators."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

import ssmzoo
from ssmzoo.errors import DataError
from ssmzoo.tasks import listops, pathfinder


def test_listops_grammar_and_values() -> None:
    tree = ("[MAX", [2, ("[MIN", [4, 7]), 0])
    text = listops.to_string(tree)
    assert text == "( ( ( ( [MAX 2 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )"
    assert listops.evaluate(tree) == 4
    assert listops.evaluate(("[MED", [1, 2, 9, 8])) == 5  # int(median) = int(5.0)
    assert listops.evaluate(("[MED", [1, 4])) == 2  # int(2.5)
    assert listops.evaluate(("[SM", [7, 8, 9])) == 4
    ids = listops.tokenize(text)
    assert [listops.VOCAB[i] for i in ids] == "[MAX 2 [MIN 4 7 ] 0 ]".split()


def test_listops_generator_respects_limits() -> None:
    rows = listops.generate(50, seed=0, max_depth=4, max_args=4, min_length=10, max_length=40)
    assert len({s for s, _ in rows}) == 50
    for source, value in rows:
        n = len(listops.tokenize(source))
        assert 10 < n < 40 and 0 <= value <= 9
        depth, deepest = 0, 0
        for tok in source.split():
            depth += tok.startswith("[")
            deepest = max(deepest, depth)
            depth -= tok == "]"
        assert deepest <= 4
    rng = random.Random(1)
    for _ in range(200):  # the generated length is the token count
        tree, n = listops.generate_tree(rng, 1, 5, 5)
        assert n == len(listops.tokenize(listops.to_string(tree)))


def test_listops_loader_reads_release_tsv(tmp_path) -> None:
    folder = tmp_path / "listops-1000"
    folder.mkdir()
    data = {s: listops.generate(6, seed=i, max_depth=3, max_args=3, min_length=3, max_length=30)
            for i, s in enumerate(("train", "val", "test"))}
    for split, rows in data.items():
        listops.write_tsv(folder / f"basic_{split}.tsv", rows)
    task = ssmzoo.build_task(f'listops(data_dir="{tmp_path}", seq_len=16)')
    s = task.split("val", 0)
    assert s.inputs.shape == (6, 16) and s.targets.tolist() == [v for _, v in data["val"]]
    for x, n, (source, _) in zip(s.inputs, s.lengths, data["val"]):
        ids = listops.tokenize(source)[:16]
        assert x[:n].tolist() == ids and int(n) == len(ids) and (x[n:] == 0).all()
    assert task.head() == {"n_classes": 10, "vocab_size": len(listops.VOCAB)}
    (folder / "basic_test.tsv").write_text("Source\tTarget\n( [MAX 1 ] )\tseven\n")
    with pytest.raises(DataError, match="basic_test.tsv:2"):
        task.split("test", 0)


def test_listops_generated_without_download() -> None:
    spec = "listops(max_depth=3, max_args=3, min_length=4, max_length=30, n_train=20, n_val=5, n_test=5, seq_len=32)"
    a, b = ssmzoo.build_task(spec), ssmzoo.build_task(spec)
    assert torch.equal(a.split("train", 0).inputs, b.split("train", 0).inputs)
    assert len(a.split("test", 0)) == 5


def test_missing_release_files_say_what_is_expected_where(tmp_path) -> None:
    with pytest.raises(DataError, match="basic_train.tsv.*missing"):
        ssmzoo.build_task(f'listops(data_dir="{tmp_path}")')
    for name in ("text", "retrieval", "image"):
        with pytest.raises(DataError, match="give data_dir"):
            ssmzoo.build_task(name)
    with pytest.raises(DataError, match=r"new_aan_pairs.train.tsv.*tsv_data"):
        ssmzoo.build_task(f'retrieval(data_dir="{tmp_path}")')
    with pytest.raises(DataError, match="cifar-10-batches-py/test_batch"):
        ssmzoo.build_task(f'image(data_dir="{tmp_path}")')
    with pytest.raises(DataError, match="metadata"):
        ssmzoo.build_task(f'pathfinder(data_dir="{tmp_path}")')


def test_text_reads_acl_imdb(tmp_path) -> None:
    for part in ("train", "test"):
        for cls in ("pos", "neg"):
            d = tmp_path / "aclImdb" / part / cls
            d.mkdir(parents=True)
            for i in range(5):
                (d / f"{i}_7.txt").write_text(f"{cls} review {i} of {part}" + " !" * i)
    task = ssmzoo.build_task(f'text(data_dir="{tmp_path}", seq_len=24, val_fraction=0.2)')
    tr, va, te = (task.split(s, 0) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (8, 2, 10)
    assert te.inputs.shape == (10, 24) and te.targets.tolist() == [0] * 5 + [1] * 5
    assert bytes(te.inputs[0, :te.lengths[0]].tolist()) == b"neg review 0 of test"
    assert int(te.lengths[-1]) == 24  # cut at seq_len


def test_retrieval_reads_aan_pairs(tmp_path) -> None:
    d = tmp_path / "tsv_data"
    d.mkdir()
    for split in ("train", "eval", "test"):
        lines = [f"{i % 2}\tid{i}a\tid{i}b\tpaper one {i}\tsecond paper {i}" for i in range(4)]
        (d / f"new_aan_pairs.{split}.tsv").write_text("\n".join(lines) + "\n")
    task = ssmzoo.build_task(f'retrieval(data_dir="{tmp_path}", seq_len=12)')
    s = task.split("val", 0)
    assert s.inputs.shape == (4, 2, 12) and s.lengths.shape == (4, 2)
    assert s.targets.tolist() == [0, 1, 0, 1] and task.head()["pair"] is True
    assert bytes(s.inputs[1, 0, :s.lengths[1, 0]].tolist()) == b"paper one 1"
    assert bytes(s.inputs[1, 1, :s.lengths[1, 1]].tolist()) == b"second paper"


def test_image_reads_cifar_batches_as_grayscale(tmp_path) -> None:
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        batches[name] = data
        with open(d / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": list(range(4))}, f)
    task = ssmzoo.build_task(f'image(data_dir="{tmp_path}", val_size=4)')
    te = task.split("test", 0)
    x, y, _ = next(te.batches(4))
    rgb = batches["test_batch"].reshape(4, 3, 1024).astype(np.float64)
    gray = np.rint(0.2989 * rgb[:, 0] + 0.5870 * rgb[:, 1] + 0.1140 * rgb[:, 2]) / 255
    assert x.shape == (4, 1024, 1) and y.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(x[..., 0].numpy(), gray, atol=1e-6)
    assert len(task.split("train", 0)) == 16 and len(task.split("val", 0)) == 4
    tok = ssmzoo.build_task(f'image(data_dir="{tmp_path}", tokens=true)')
    assert tok.head()["vocab_size"] == 256
    assert next(tok.split("test", 0).batches(4))[0].dtype == torch.int64


def test_pathfinder_generator_is_balanced_and_deterministic() -> None:
    a_img, a_lab = pathfinder.generate(200, seed=3, res=32)
    b_img, b_lab = pathfinder.generate(200, seed=3, res=32)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert a_img.shape == (200, 32, 32) and 60 < a_lab.sum() < 140
    assert a_img.max() == 1.0 and 0.02 < a_img.mean() < 0.5
    # the same number of paths in both classes: ink does not give the label away
    ink = a_img.reshape(200, -1).sum(1)
    assert abs(ink[a_lab == 1].mean() - ink[a_lab == 0].mean()) < 0.15 * ink.mean()


def test_pathfinder_release_layout_round_trip(tmp_path) -> None:
    pytest.importorskip("PIL")
    imgs, labels = pathfinder.generate(20, seed=0, res=32)
    root = tmp_path / "pathfinder32" / "curv_contour_length_14"
    pathfinder.write_release(root, imgs, labels, per_file=8)
    read, read_labels = pathfinder.read_release(root, 32)
    assert np.array_equal(read, np.rint(imgs * 255).astype(np.uint8))
    assert np.array_equal(read_labels, labels)
    task = ssmzoo.build_task(f'pathfinder(data_dir="{tmp_path}")')
    sizes = [len(task.split(s, 0)) for s in ("train", "val", "test")]
    assert sizes == [16, 2, 2]
    x, _, _ = next(task.split("train", 0).batches(4))
    assert x.shape == (4, 1024, 1) and 0 <= float(x.min()) and float(x.max()) <= 1
    with pytest.raises(DataError, match="expected 64x64"):
        pathfinder.read_release(root, 64)


def test_generated_pathfinder_and_pathx_tasks() -> None:
    pf = ssmzoo.build_task("pathfinder(n_train=8, n_val=4, n_test=4)")
    assert pf.split("train", 0).inputs.shape == (8, 1024)
    assert pf.head() == {"n_classes": 2, "d_input": 1}
    px = ssmzoo.build_task("pathx(resolution=48, path_length=20, n_train=4, n_val=2, n_test=2)")
    assert px.split("val", 1).inputs.shape == (2, 48 * 48)
