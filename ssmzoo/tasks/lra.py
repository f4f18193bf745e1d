"""The Long Range Arena tasks, read from the official release files in a directory the user names.

========== ================================================================= ====================
task       files expected under ``data_dir`` (or its usual sub-folder)       without data_dir
========== ================================================================= ====================
listops    ``basic_train.tsv``, ``basic_val.tsv``, ``basic_test.tsv``        generated (official
           (``listops-1000/``)                                               grammar)
text       ``aclImdb/{train,test}/{pos,neg}/*.txt`` (IMDB)                   error
retrieval  ``new_aan_pairs.{train,eval,test}.tsv`` (``tsv_data/``)           error
image      ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` (CIFAR-10)   error
pathfinder ``metadata/*.npy`` + ``imgs/`` (``pathfinder32/<difficulty>/``)   generated
pathx      the same at 128x128 (``pathfinder128/<difficulty>/``)             generated
========== ================================================================= ====================

Text and retrieval are byte-level (vocabulary 256, padding 0 with explicit lengths); retrieval
gives pairs (examples, 2, length) for the classifier's ``pair=true`` head (S4's dual encoder).
The image tasks give grayscale pixels in [0, 1] as one feature (``tokens=true``: ids 0..255).
Where the release has no validation split (text, image, pathfinder), a fixed slice is held out.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from einops import rearrange

from ssmzoo.errors import DataError
from ssmzoo.tasks import listops, pathfinder
from ssmzoo.tasks.base import ClassificationTask, Split, generator, split_seed
from ssmzoo.tasks.synthetic import _require

__all__ = ["ListOps", "Text", "Retrieval", "Image", "Pathfinder", "PathX", "TASKS", "DOCS"]


def _locate(task: str, data_dir: str, names: list[str], subdirs: list[str]) -> Path:
    """The folder under ``data_dir`` (itself or a usual sub-folder) that holds every name."""
    if not data_dir:
        raise DataError(f"task {task!r} reads the LRA release: give data_dir=\"...\", a folder "
                        f"holding {', '.join(names)}")
    root = Path(data_dir).expanduser()
    for sub in ["", *subdirs]:
        folder = root / sub
        if all((folder / n).exists() for n in names):
            return folder
    where = " or ".join(str(root / s) for s in ["", *subdirs] if s) or str(root)
    missing = [n for n in names if not (root / n).exists()]
    raise DataError(f"task {task!r}: expected {', '.join(names)} in {str(root)!r}"
                    + (f" (or {where})" if subdirs else "") + f"; missing {', '.join(missing)}")


def _pad(seqs: list[list[int]] | list[bytes], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences cut to ``length`` and padded with 0: (n, length) uint8, lengths (n,) int64."""
    out = np.zeros((len(seqs), length), dtype=np.uint8)
    lengths = np.zeros(len(seqs), dtype=np.int64)
    for i, s in enumerate(seqs):
        s = s[:length]
        out[i, :len(s)] = np.frombuffer(s, dtype=np.uint8) if isinstance(s, bytes) else s
        lengths[i] = max(len(s), 1)
    return torch.from_numpy(out), torch.from_numpy(lengths)


def _holdout(n: int, fraction: float, salt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed (train, val) partition of range(n)."""
    order = torch.randperm(n, generator=generator(0, "holdout", salt))
    cut = n - int(round(fraction * n))
    return order[:cut], order[cut:]


class ListOps(ClassificationTask):
    """ListOps (LRA): the value (0..9) of a nested MAX/MIN/MED/SM expression, read token by token.

    With ``data_dir`` the release's TSV files are read; without it, expressions are generated from
    the seed with the official grammar and limits.

    Args:
        data_dir: folder with basic_{train,val,test}.tsv; empty to generate.
        seq_len: maximum length in tokens (longer inputs are cut).
        max_depth: generator: maximum tree depth.
        max_args: generator: maximum arguments per operator.
        min_length: generator: keep trees longer than this many tokens.
        max_length: generator: keep trees shorter than this many tokens.
        n_train: generator: training expressions.
        n_val: generator: validation expressions.
        n_test: generator: test expressions.
    """

    def __init__(self, data_dir: str = "", seq_len: int = 2048, max_depth: int = 10,
                 max_args: int = 10, min_length: int = 500, max_length: int = 2000,
                 n_train: int = 10000, n_val: int = 1000, n_test: int = 1000):
        super().__init__()
        _require(min_length + 1 < max_length, "listops", "max_length",
                 f"an int > min_length + 1 = {min_length + 1}", max_length)
        _require(max_args >= 2, "listops", "max_args", "an int >= 2", max_args)
        self.data_dir, self.seq_len = data_dir, seq_len
        self.gen = {"max_depth": max_depth, "max_args": max_args, "min_length": min_length,
                    "max_length": max_length}
        self.n = {"train": n_train, "val": n_val, "test": n_test}
        if data_dir:
            self.folder = _locate("listops", data_dir, [f"basic_{s}.tsv" for s in self.n],
                                  ["listops-1000", "lra_release/listops-1000"])

    def head(self) -> dict[str, Any]:
        return {"n_classes": 10, "vocab_size": len(listops.VOCAB)}

    def _make(self, split: str, seed: int) -> Split:
        if self.data_dir:
            rows = listops.read_tsv(self.folder / f"basic_{split}.tsv")
        else:
            rows = listops.generate(self.n[split], seed=split_seed(seed, split, "listops"),
                                    **self.gen)
        x, lengths = _pad([listops.tokenize(s) for s, _ in rows], self.seq_len)
        return Split(x, torch.tensor([v for _, v in rows]), lengths)


class Text(ClassificationTask):
    """IMDB sentiment (LRA Text), byte-level: is the review positive?

    Args:
        data_dir: folder holding aclImdb/ (the Stanford release).
        seq_len: maximum length in bytes (longer reviews are cut).
        val_fraction: share of the training reviews held out for validation (fixed).
    """

    def __init__(self, data_dir: str = "", seq_len: int = 4096, val_fraction: float = 0.1):
        super().__init__()
        self.seq_len, self.val_fraction = seq_len, val_fraction
        self.folder = _locate("text", data_dir, [f"aclImdb/{s}/{c}" for s in ("train", "test")
                                                 for c in ("pos", "neg")], [])

    def head(self) -> dict[str, Any]:
        return {"n_classes": 2, "vocab_size": 256}

    def _read(self, part: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        docs, labels = [], []
        for label, cls in ((0, "neg"), (1, "pos")):
            for f in sorted((self.folder / "aclImdb" / part / cls).glob("*.txt")):
                docs.append(f.read_bytes())
                labels.append(label)
        if not docs:
            raise DataError(f"task 'text': no *.txt reviews under {self.folder / 'aclImdb' / part}")
        x, lengths = _pad(docs, self.seq_len)
        return x, torch.tensor(labels), lengths

    def _make(self, split: str, seed: int) -> Split:
        if split == "test":
            return Split(*self._read("test"))
        x, y, lengths = self._read("train")
        train, val = _holdout(len(x), self.val_fraction, "text")
        idx = train if split == "train" else val
        return Split(x[idx], y[idx], lengths[idx])


class Retrieval(ClassificationTask):
    """ACL Anthology Network (LRA Retrieval), byte-level: do two papers cite each other?

    Examples are pairs (2, seq_len) with lengths (2,), for the classifier's ``pair=true`` head.

    Args:
        data_dir: folder holding new_aan_pairs.{train,eval,test}.tsv.
        seq_len: maximum length of each document in bytes.
    """

    FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv",
             "test": "new_aan_pairs.test.tsv"}

    def __init__(self, data_dir: str = "", seq_len: int = 4000):
        super().__init__()
        self.seq_len = seq_len
        self.folder = _locate("retrieval", data_dir, list(self.FILES.values()),
                              ["tsv_data", "lra_release/tsv_data"])

    def head(self) -> dict[str, Any]:
        return {"n_classes": 2, "vocab_size": 256, "pair": True}

    def _make(self, split: str, seed: int) -> Split:
        path = self.folder / self.FILES[split]
        a, b, labels = [], [], []
        with open(path, "rb") as f:
            for n, line in enumerate(f, start=1):
                fields = line.rstrip(b"\r\n").split(b"\t")
                if len(fields) < 5:
                    raise DataError(f"task 'retrieval': {path}:{n}: expected 5 tab-separated "
                                    f"fields (label, id1, id2, text1, text2), got {len(fields)}")
                labels.append(int(float(fields[0])))
                a.append(fields[3])
                b.append(fields[4])
        xa, la = _pad(a, self.seq_len)
        xb, lb = _pad(b, self.seq_len)
        return Split(torch.stack([xa, xb], dim=1), torch.tensor(labels),  # (n, 2, L)
                     torch.stack([la, lb], dim=1))  # (n, 2)


def _pixels(tokens: bool):
    if tokens:
        return None  # uint8 ids, made int64 by the batcher
    return lambda x: rearrange(x.float() / 255.0, "b l -> b l 1")  # (b, l, 1)


class Image(ClassificationTask):
    """Grayscale CIFAR-10 (LRA Image): 1024 pixels in raster order.

    Args:
        data_dir: folder holding cifar-10-batches-py/ (the python version of CIFAR-10).
        tokens: give pixels as ids 0..255 (vocabulary 256) instead of one feature in [0, 1].
        val_size: training images held out for validation (the last ones).
    """

    def __init__(self, data_dir: str = "", tokens: bool = False, val_size: int = 5000):
        super().__init__()
        self.tokens, self.val_size = tokens, val_size
        self.folder = _locate("image", data_dir, ["cifar-10-batches-py/test_batch"] + [
            f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)], [])

    def head(self) -> dict[str, Any]:
        return {"n_classes": 10, **({"vocab_size": 256} if self.tokens else {"d_input": 1})}

    def _read(self, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for name in names:
            path = self.folder / "cifar-10-batches-py" / name
            try:
                with open(path, "rb") as f:
                    batch = pickle.load(f, encoding="bytes")
                rgb = np.asarray(batch[b"data"], dtype=np.float32).reshape(-1, 3, 1024)
                ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
            except (OSError, KeyError, ValueError, pickle.UnpicklingError) as exc:
                raise DataError(f"task 'image': cannot read CIFAR-10 batch {str(path)!r} "
                                f"({type(exc).__name__}: {exc})") from None
            gray = 0.2989 * rgb[:, 0] + 0.5870 * rgb[:, 1] + 0.1140 * rgb[:, 2]  # (n, 1024)
            xs.append(np.clip(np.rint(gray), 0, 255).astype(np.uint8))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    def _make(self, split: str, seed: int) -> Split:
        if split == "test":
            x, y = self._read(["test_batch"])
        else:
            x, y = self._read([f"data_batch_{i}" for i in range(1, 6)])
            cut = len(x) - self.val_size
            x, y = (x[:cut], y[:cut]) if split == "train" else (x[cut:], y[cut:])
        return Split(x, y, transform=_pixels(self.tokens))


class Pathfinder(ClassificationTask):
    """Pathfinder (LRA): are the two dots joined by one dashed path? Pixels in raster order.

    With ``data_dir`` the release's images are read (split 80/10/10, fixed); without it, images
    are generated from the seed (:mod:`ssmzoo.tasks.pathfinder`).

    Args:
        data_dir: the release's pathfinder folder (or a difficulty folder in it); empty to generate.
        resolution: image side in pixels (32 for Pathfinder, 128 for Path-X).
        difficulty: easy, intermediate or hard (the release's contour lengths baseline, 9, 14).
        tokens: give pixels as ids 0..255 instead of one feature in [0, 1].
        path_length: generator: dashes per path.
        n_paths: generator: paths per image (2 carry the dots, the rest distract).
        n_train: generator: training images.
        n_val: generator: validation images.
        n_test: generator: test images.
    """

    def __init__(self, data_dir: str = "", resolution: int = 32,
                 difficulty: Literal["easy", "intermediate", "hard"] = "hard", tokens: bool = False,
                 path_length: int = 14, n_paths: int = 3, n_train: int = 10000, n_val: int = 1000,
                 n_test: int = 1000):
        super().__init__()
        _require(resolution >= 8, self._name(), "resolution", "an int >= 8", resolution)
        self.data_dir, self.res, self.tokens = data_dir, resolution, tokens
        self.gen = {"length": path_length, "n_paths": n_paths}
        self.n = {"train": n_train, "val": n_val, "test": n_test}
        if data_dir:
            sub = pathfinder.DIFFICULTY[difficulty]
            self.folder = _locate(self._name(), data_dir, ["metadata"], [
                sub, f"pathfinder{resolution}/{sub}", f"lra_release/pathfinder{resolution}/{sub}"])

    def _name(self) -> str:
        return "pathfinder"

    def head(self) -> dict[str, Any]:
        return {"n_classes": 2, **({"vocab_size": 256} if self.tokens else {"d_input": 1})}

    def _make(self, split: str, seed: int) -> Split:
        if self.data_dir:
            images, labels = pathfinder.read_release(self.folder, self.res)
            order = torch.randperm(len(images), generator=generator(0, "split", "pathfinder"))
            a, b = int(0.8 * len(images)), int(0.9 * len(images))
            idx = {"train": order[:a], "val": order[a:b], "test": order[b:]}[split].numpy()
            x, y = torch.from_numpy(images[idx]), torch.from_numpy(labels[idx])
        else:
            imgs, labels = pathfinder.generate(self.n[split], seed=split_seed(seed, split, "pf"),
                                               res=self.res, **self.gen)
            x = torch.from_numpy(np.rint(imgs * 255).astype(np.uint8))
            y = torch.from_numpy(labels)
        x = rearrange(x, "n h w -> n (h w)")  # (n, res*res), raster order
        return Split(x, y, transform=_pixels(self.tokens))


class PathX(Pathfinder):
    """Path-X (LRA): Pathfinder at 128x128 (sequences of 16384 pixels).

    Args:
        data_dir: the release's pathfinder128 folder (or a difficulty folder in it); empty to generate.
        resolution: image side in pixels.
        difficulty: easy, intermediate or hard.
        tokens: give pixels as ids 0..255 instead of one feature in [0, 1].
        path_length: generator: dashes per path.
        n_paths: generator: paths per image.
        n_train: generator: training images.
        n_val: generator: validation images.
        n_test: generator: test images.
    """

    def __init__(self, data_dir: str = "", resolution: int = 128,
                 difficulty: Literal["easy", "intermediate", "hard"] = "hard", tokens: bool = False,
                 path_length: int = 56, n_paths: int = 3, n_train: int = 10000, n_val: int = 1000,
                 n_test: int = 1000):
        super().__init__(data_dir, resolution, difficulty, tokens, path_length, n_paths, n_train,
                         n_val, n_test)

    def _name(self) -> str:
        return "pathx"


TASKS = {"listops": ListOps, "text": Text, "retrieval": Retrieval, "image": Image,
         "pathfinder": Pathfinder, "pathx": PathX}
DOCS = {"listops": "LRA ListOps (release files, or generated with the official grammar)",
        "text": "LRA Text: IMDB reviews, byte-level (release files)",
        "retrieval": "LRA Retrieval: AAN citation pairs, byte-level (release files)",
        "image": "LRA Image: grayscale CIFAR-10 as 1024 pixels (release files)",
        "pathfinder": "LRA Pathfinder 32x32 (release files, or generated)",
        "pathx": "LRA Path-X 128x128 (release files, or generated)"}
