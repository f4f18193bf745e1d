"""Pathfinder (LRA): are the two marked dots joined by one dashed curve?

A generator in the spirit of Linsley et al.'s Pathfinder, so the task runs with no download: each
image holds ``n_paths`` curved dashed paths (a random walk whose heading turns by a small random
angle per pixel, drawn as dashes); two dots mark either both ends of one path (label 1) or one end
each of two different paths (label 0). Both classes draw the same number of paths of the same
length, so pixel counts do not give the label away. It is not the release's exact renderer (no
anti-aliasing, no path-width jitter); the released images are read by :func:`read_release`.

The release layout (``pathfinder32/curv_contour_length_14/``): ``metadata/<N>.npy`` text files,
one image per line, whitespace-separated, field 0 the image folder, field 1 the file name, field 3
the label; images are grayscale PNGs. :func:`write_release` writes that layout.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ssmzoo.errors import DataError, OptionalDependencyError

__all__ = ["render", "generate", "write_release", "read_release", "DIFFICULTY"]

DIFFICULTY = {"easy": "curv_baseline", "intermediate": "curv_contour_length_9",
              "hard": "curv_contour_length_14"}


def _walk(rng: np.random.Generator, res: int, length: int, turn: float) -> np.ndarray:
    """Integer pixel positions (length, 2) of a smooth random walk that stays in the image."""
    pos = rng.uniform(2, res - 3, size=2)
    heading = rng.uniform(0, 2 * math.pi)
    points = []
    for _ in range(length):
        heading += rng.normal(0, turn)
        step = np.array([math.cos(heading), math.sin(heading)])
        nxt = pos + step
        for axis in range(2):  # reflect off the border
            if not 1 <= nxt[axis] <= res - 2:
                step[axis] = -step[axis]
                heading = math.atan2(step[1], step[0])
        pos = np.clip(pos + step, 1, res - 2)
        points.append(np.rint(pos).astype(np.int64))
    return np.stack(points)


def _dot(img: np.ndarray, p: np.ndarray) -> None:
    y, x = int(p[0]), int(p[1])
    img[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = 1.0


def render(rng: np.random.Generator, *, res: int = 32, length: int = 14, n_paths: int = 3,
           dash: int = 2, gap: int = 1, turn: float = 0.35) -> tuple[np.ndarray, int]:
    """One image (res, res) float32 in [0, 1] and its label (1: the dots are joined)."""
    img = np.zeros((res, res), dtype=np.float32)
    steps = length * (dash + gap)  # ``length`` dashes per path
    paths = [_walk(rng, res, steps, turn) for _ in range(max(n_paths, 2))]
    for path in paths:
        on = (np.arange(len(path)) % (dash + gap)) < dash
        img[path[on, 0], path[on, 1]] = 1.0
    label = int(rng.random() < 0.5)
    if label:
        _dot(img, paths[0][0])
        _dot(img, paths[0][-1])
    else:
        _dot(img, paths[0][0])
        _dot(img, paths[1][-1])
    return img, label


def generate(n: int, *, seed: int, res: int = 32, length: int = 14, n_paths: int = 3
             ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, res, res) float32 and labels (n,) int64, from ``seed``."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, res, res), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        images[i], labels[i] = render(rng, res=res, length=length, n_paths=n_paths)
    return images, labels


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise OptionalDependencyError("pillow", "reading Pathfinder PNG files") from None
    return Image


def write_release(directory: str | Path, images: np.ndarray, labels: np.ndarray,
                  per_file: int = 1000) -> Path:
    """Write images in the release layout (``imgs/<k>/sample_<i>.png``, ``metadata/<k>.npy``)."""
    Image = _pil()
    root = Path(directory)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    for k in range(math.ceil(len(images) / per_file)):
        folder = root / "imgs" / str(k)
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(k * per_file, min((k + 1) * per_file, len(images))):
            name = f"sample_{i}.png"
            Image.fromarray((images[i] * 255).round().astype(np.uint8)).save(folder / name)
            lines.append(f"imgs/{k} {name} {i} {int(labels[i])} 14 1.5 1 1.0")
        (root / "metadata" / f"{k}.npy").write_text("\n".join(lines) + "\n")
    return root


def read_release(directory: str | Path, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Every image of a release folder (n, res, res) uint8 and its label (n,), in metadata order."""
    Image = _pil()
    root = Path(directory)
    files = sorted((root / "metadata").glob("*.npy"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise DataError(f"pathfinder: expected metadata files {str(root / 'metadata' / '*.npy')!r}"
                        " (the LRA release's pathfinder<res>/<difficulty>/ folder), found none")
    images, labels = [], []
    for meta in files:
        for n, line in enumerate(meta.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 4:
                raise DataError(f"pathfinder: {meta}:{n}: expected 'FOLDER FILE INDEX LABEL ...', "
                                f"got {line!r}")
            path = root / fields[0] / fields[1]
            try:
                with Image.open(path) as im:
                    arr = np.asarray(im.convert("L"), dtype=np.uint8)
            except (OSError, ValueError) as exc:
                raise DataError(f"pathfinder: cannot read {str(path)!r} named in {meta}:{n} "
                                f"({exc})") from None
            if arr.shape != (res, res):
                raise DataError(f"pathfinder: {str(path)!r} is {arr.shape[1]}x{arr.shape[0]}, "
                                f"expected {res}x{res}")
            images.append(arr)
            labels.append(int(fields[3]))
    return np.stack(images), np.asarray(labels, dtype=np.int64)
