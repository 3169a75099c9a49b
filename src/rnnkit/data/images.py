"""Reading the user's images: one file, a folder of them, or a folder with a label file, with Pillow.

Every application that reads images (``rnnkit caption``, ``rnnkit handwriting``) goes through this
module, so a missing or unreadable image, a folder without images, a label file naming files that are
not there and images of mixed sizes get the same one-line :class:`~rnnkit.errors.InputError` everywhere.

Images come back as float32 numpy arrays in ``[0, 1]``: ``(height, width)`` in mode ``"L"`` (grayscale)
and ``(height, width, 3)`` in mode ``"RGB"``. A transparent image (PNG with alpha, palette with a
transparent colour) is first laid on ``background`` (white by default), so what was transparent does not
turn into black noise.

**Size policy** (``size_policy``; sizes are ``(height, width)``, numpy's order, everywhere here):

- ``"refuse"`` (the default): every image must have the same size, ``size`` when given, else the size of
  the first image read; an image of another size stops the read with its name, both sizes and the fix
  (crop the images, or ask for ``"resize"``). Nothing is stretched behind the user's back.
- ``"resize"``: every image is resized to ``size`` (or the first image's size) with bilinear filtering;
  the aspect ratio is not kept (a 28×28 classifier wants 28×28).
- ``"height"``: every image is scaled to ``size[0]`` rows (or the first image's height) keeping its
  aspect ratio, so the widths differ: for models that read an image column by column (lines of text).

>>> import tempfile, pathlib
>>> from PIL import Image
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> Image.new("L", (6, 4), 255).save(folder / "a.png")
>>> load_image(folder / "a.png").shape
(4, 6)
>>> load_image(folder / "a.png", size=(8, 8), size_policy="resize").shape
(8, 8)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from rnnkit.data.tables import read_table, require_columns
from rnnkit.errors import InputError

#: File name endings read as images (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")
SIZE_POLICIES = ("refuse", "resize", "height")
MODES = ("L", "RGB")


def _pillow():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise InputError("reading images needs Pillow, which is not installed: pip install 'rnnkit[vision]'") from None
    return Image, UnidentifiedImageError


def _check_options(mode: str, size_policy: str, size: Sequence[int] | None) -> None:
    if mode not in MODES:
        raise InputError(f"image mode {mode!r} is not supported; use 'L' (grayscale) or 'RGB'")
    if size_policy not in SIZE_POLICIES:
        raise InputError(f"size policy {size_policy!r} is not known; use one of {', '.join(SIZE_POLICIES)}")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise InputError(f"image size {tuple(size)} must be two positive numbers (height, width)")


def open_image(path: str | Path, mode: str = "L", background: int = 255):
    """The Pillow image at ``path`` in ``mode``, transparency laid on ``background`` (0 black, 255 white)."""
    Image, Unidentified = _pillow()
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such image file")
    if path.is_dir():
        raise InputError(f"{path} is a directory; pass an image file (PNG, JPEG, ...)")
    try:
        with Image.open(path) as image:
            image.load()
    except (Unidentified, OSError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"{path} is not a readable image ({type(error).__name__}: {error}); "
                         "replace it with a PNG or JPEG, or remove it") from None
    if image.mode.startswith("I") or image.mode == "F":
        image = _to_eight_bits(image, Image)
    if image.mode == "P" or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        layer = Image.new("RGBA", image.size, (background,) * 3 + (255,))
        image = Image.alpha_composite(layer, image.convert("RGBA"))
    return image.convert(mode)


def _to_eight_bits(image, Image):
    """A 16-bit, 32-bit or float grayscale image as 8 bits: Pillow's own conversion clips every value above 255 to
    white, so a 16-bit scan read as a blank page. 16-bit images span 0..65535; 32-bit ones are taken as 16-bit when
    a value exceeds 255; float ones as 0..1 when none exceeds 1."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        peak = 1.0 if values.size and values.max() <= 1.0 else 255.0
    else:
        peak = 65535.0 if image.mode.startswith("I;16") or (values.size and values.max() > 255) else 255.0
    return Image.fromarray(np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8), "L")


def fit_size(image, policy: str, size: Sequence[int] | None, path: str | Path = "image"):
    """``image`` (Pillow) made to follow the size ``policy`` (see the module doc); ``size`` is ``(h, w)``."""
    Image, _ = _pillow()
    height, width = image.height, image.width
    if size is None or (height, width) == tuple(size):
        return image
    target_h, target_w = size
    if policy == "refuse":
        raise InputError(f"{path} is {height}x{width} pixels (height x width) but the other images are "
                         f"{target_h}x{target_w}; give images of one size, or let them be resized "
                         "(--resize on the command line)")
    if policy == "height":
        if height == target_h:
            return image
        target_w = max(1, round(width * target_h / height))
    return image.resize((target_w, target_h), Image.Resampling.BILINEAR)


def to_array(image) -> np.ndarray:
    """A Pillow image as float32 in ``[0, 1]``: ``(h, w)`` for grayscale, ``(h, w, 3)`` for RGB."""
    return np.asarray(image, dtype=np.float32) / 255.0


def load_image(path: str | Path, *, mode: str = "L", size: Sequence[int] | None = None,
               size_policy: str = "refuse", background: int = 255) -> np.ndarray:
    """One image file as a float32 array in ``[0, 1]`` (see the module doc for ``size_policy``)."""
    _check_options(mode, size_policy, size)
    return to_array(fit_size(open_image(path, mode, background), size_policy, size, path))


def load_images(paths: Iterable[str | Path], *, mode: str = "L", size: Sequence[int] | None = None,
                size_policy: str = "refuse", background: int = 255) -> list[np.ndarray]:
    """Several image files; with ``size=None`` the first image's size is the size the others follow."""
    _check_options(mode, size_policy, size)
    arrays: list[np.ndarray] = []
    for path in paths:
        image = open_image(path, mode, background)
        if size is None:
            size = (image.height, image.width)
        arrays.append(to_array(fit_size(image, size_policy, size, path)))
    if not arrays:
        raise InputError("no image files given; pass one or more PNG/JPEG files or a folder of them")
    return arrays


def list_images(directory: str | Path) -> list[Path]:
    """The image files directly inside ``directory``, sorted by name (subfolders are not searched)."""
    directory = Path(directory)
    if not directory.exists():
        raise InputError(f"{directory}: no such folder")
    if not directory.is_dir():
        raise InputError(f"{directory} is a file, not a folder of images")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{directory} holds no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...); "
                         "put the image files directly in it")
    return files


def expand_image_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Image files, with each folder among ``paths`` replaced by the images in it."""
    out: list[Path] = []
    for path in map(Path, paths):
        out.extend(list_images(path) if path.is_dir() else [path])
    if not out:
        raise InputError("no image files given; pass one or more PNG/JPEG files or a folder of them")
    return out


def default_label_file(directory: str | Path) -> Path:
    """``labels.csv``, ``labels.tsv`` or ``labels.jsonl`` (the first present) inside ``directory``."""
    directory = Path(directory)
    for name in ("labels.csv", "labels.tsv", "labels.jsonl"):
        if (directory / name).is_file():
            return directory / name
    raise InputError(f"{directory} has no labels.csv, labels.tsv or labels.jsonl; write one (columns file,label) "
                     "or name the label file")


@dataclasses.dataclass
class LabelledImages:
    """A folder of images with their labels.

    Attributes:
        files: the distinct image files, in the order the label file first names them.
        images: one float32 array per file (see the module doc).
        labels: ``(file index, label)`` per row of the label file: an image may have several rows
            (several captions), each label is a non-empty stripped string.
    """

    files: list[Path]
    images: list[np.ndarray]
    labels: list[tuple[int, str]]


def read_labels(path: str | Path, *, file_column: str = "file", label_column: str = "label",
                encoding: str = "utf-8", what: str = "label") -> list[tuple[str, str]]:
    """``(file name, label)`` rows of a CSV/TSV/JSONL label file; an empty name or label stops the read."""
    columns, rows = read_table(path, encoding=encoding)
    require_columns(path, columns, {"--file-column": file_column, "--label-column": label_column})
    pairs = []
    for number, row in enumerate(rows, start=1):
        name = str(row.get(file_column) or "").strip()
        label = str(row.get(label_column) if row.get(label_column) is not None else "").strip()
        if not name:
            raise InputError(f"{path}, data row {number}: empty file name (column {file_column!r}); fix the row")
        if not label:
            raise InputError(f"{path}, data row {number}: empty {what} for {name} (column {label_column!r}); "
                             f"give every image a {what}, or delete the row")
        pairs.append((name, label))
    return pairs


def labelled_files(directory: str | Path, label_file: str | Path | None = None, *, file_column: str = "file",
                   label_column: str = "label", encoding: str = "utf-8",
                   what: str = "label") -> tuple[list[Path], list[tuple[int, str]]]:
    """``(files, labels)`` of a folder and its label file, checked but not read (see :func:`read_labelled_folder`)."""
    directory = Path(directory)
    list_images(directory)  # a missing folder or one without images fails here, before the labels
    label_file = Path(label_file) if label_file is not None else default_label_file(directory)
    pairs = read_labels(label_file, file_column=file_column, label_column=label_column, encoding=encoding,
                        what=what)
    index: dict[str, int] = {}
    for name, _ in pairs:
        index.setdefault(name, len(index))
    missing = [name for name in index if not (directory / name).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise InputError(f"{label_file} names {len(missing)} image(s) that are not in {directory}: {shown}; "
                         "add the files or remove their rows")
    return [directory / name for name in index], [(index[name], label) for name, label in pairs]


def read_labelled_folder(directory: str | Path, label_file: str | Path | None = None, *,
                         file_column: str = "file", label_column: str = "label", encoding: str = "utf-8",
                         mode: str = "L", size: Sequence[int] | None = None, size_policy: str = "refuse",
                         background: int = 255, what: str = "label") -> LabelledImages:
    """The images of ``directory`` named by ``label_file`` (default ``labels.csv``/``.tsv``/``.jsonl`` in it).

    File names in the label file are relative to ``directory``. Every named file must exist (the error
    lists the first missing ones and their count); images the label file does not name are not read.
    ``what`` names the label in error messages (``"caption"``, ``"text"``).
    """
    _check_options(mode, size_policy, size)
    files, labels = labelled_files(directory, label_file, file_column=file_column, label_column=label_column,
                                   encoding=encoding, what=what)
    images = load_images(files, mode=mode, size=size, size_policy=size_policy, background=background)
    return LabelledImages(files, images, labels)
