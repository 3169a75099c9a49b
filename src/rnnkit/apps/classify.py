"""Text classification (sentiment, topics): train on a labelled file or a built-in data set, evaluate,
predict.

The texts are tokenised (words and punctuation, or characters), a vocabulary is built on the training
split only, and a :class:`~rnnkit.models.SequenceClassifier` (by default a bidirectional GRU with max
pooling over time) is trained with :class:`~rnnkit.train.Trainer`. The data is split into train,
validation and test parts stratified by label with a seed (a built-in data set's own test part is kept
as the test part). The test part's accuracy, macro-F1 and confusion matrix are reported next to the
majority-class baseline; the class labels, the tokenisation and the split are saved in the run
directory's ``app.json``, the model and its vocabulary in ``model/``.

>>> settings = ClassifySettings(data="reviews.csv", text_column="review", label_column="stars")
>>> settings.level, settings.model.cell, settings.model.bidirectional
('word', 'gru', True)
"""

from __future__ import annotations

import dataclasses
import functools
import random
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from rnnkit.apps import lifecycle
from rnnkit.apps.common import format_metrics
from rnnkit.data.subwords import SubwordEncoder, pad_subwords
from rnnkit.data.tables import read_table, require_columns
from rnnkit.data.vocab import UNK_ID, Vocabulary, pad_batch
from rnnkit.errors import InputError
from rnnkit.models.classifier import (
    ClassifierEnsemble, SequenceClassifier, SequenceClassifierConfig, classifier_or_ensemble,
)
from rnnkit.nn import RECURRENT_REGULARIZERS
from rnnkit.options import flag, nested, option
from rnnkit.train import TrainConfig, distributed
from rnnkit.train.batches import to_device

DEFAULT_DATASET = "tweets"
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclasses.dataclass
class ClassifySettings:
    """What to train on and which model to train (everything but the optimisation)."""

    data: str | None = option(None, "a CSV, TSV or JSONL file with a text and a label column")
    dataset: str | None = option(None, f"a built-in classification data set when --data is not given "
                                       f"(tweets or drug_reviews; default {DEFAULT_DATASET})")
    text_column: str = option("text", "column holding the text")
    label_column: str = option("label", "column holding the class label")
    encoding: str = option("utf-8", "encoding of --data, e.g. latin-1")
    skip_empty: bool = option(False, "drop rows whose text or label is empty instead of stopping")
    level: str = option("word", "tokens: 'word' (words and punctuation) or 'char'")
    lowercase: bool = option(True, "lowercase the text before tokenising")
    min_freq: int = option(2, "keep tokens seen at least this often in the training split")
    max_vocab: int = option(20000, "keep at most this many tokens")
    max_length: int = option(200, "truncate texts to this many tokens")
    val_fraction: float = option(0.1, "share of the data for validation (stratified)")
    init_from: str | None = option(None, "start from the model of an earlier classify run (transfer, e.g. from a run "
                                         "on the tweets): its architecture, its vocabulary extended by this data's "
                                         "new tokens, its weights, and its output layer when the labels are the same")
    test_fraction: float = option(0.2, "share of the data for the test (stratified; a built-in set keeps its own)")
    ensemble: int = option(1, metavar="K", help="train this many classifiers one after the other, each from its own initial weights, "
                              "with its own data order and dropout and its own early stopping (--max-steps applies "
                              "to each), and predict with the mean of their class probabilities; 1 = one model")
    # The defaults are the configuration that beat TF-IDF + logistic regression on the built-in tweets over
    # three seeds (docs/applications.md, benchmarks/bench_sentiment.py).
    model: SequenceClassifierConfig = nested(SequenceClassifierConfig, "the classifier", cell="gru", hidden_size=128,
                                             embedding_dim=128, bidirectional=True, summary="max_mean", dropout=0.5)

    def __post_init__(self) -> None:
        if self.level not in ("word", "char"):
            raise ValueError(f"level must be 'word' or 'char', got {self.level!r}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")
        for name in ("min_freq", "max_vocab", "max_length", "ensemble"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.model.subword_buckets and self.level != "word":
            raise ValueError("--subword-buckets reads the characters of each word; it needs --level word "
                             "(a character-level model already reads every character)")


Examples = list[tuple[str, str]]


# ------------------------------------------------------------------------------------------ data
def normalize(text: str, level: str, lowercase: bool) -> str:
    """The text as the vocabulary sees it: lowercased, words and punctuation separated by spaces."""
    text = text.lower() if lowercase else text
    return " ".join(_TOKEN.findall(text)) if level == "word" else text


def read_examples(path: str, text_column: str, label_column: str, *, encoding: str = "utf-8",
                  skip_empty: bool = False, need_labels: bool = True) -> Examples:
    """``(text, label)`` pairs from a CSV/TSV/JSONL file, with one-line errors naming the row."""
    columns, rows = read_table(path, encoding=encoding)
    wanted = {"--text-column": text_column, **({"--label-column": label_column} if need_labels else {})}
    require_columns(path, columns, wanted)
    examples, dropped = [], 0
    for number, row in enumerate(rows, start=1):
        text, label = row.get(text_column), row.get(label_column) if need_labels else ""
        text = "" if text is None else str(text)
        label = "" if label is None else str(label).strip()
        if not text.strip() or (need_labels and not label):
            if skip_empty:
                dropped += 1
                continue
            what = "text" if not text.strip() else "label"
            column = text_column if what == "text" else label_column
            raise InputError(f"{path}, data row {number}: empty {what} (column {column!r}); fix the file or "
                           f"pass --skip-empty to drop such rows")
        examples.append((text, label))
    if dropped:
        print(f"note: dropped {dropped} rows with an empty text or label", file=sys.stderr)
    if not examples:
        raise InputError(f"{path} has no rows with both a text and a label")
    return examples


def load_dataset(name: str) -> tuple[Examples, Examples]:
    """A built-in classification data set as ``(train, test)``."""
    from rnnkit import datasets

    info = datasets.info(name)
    if info.kind != "classification":
        known = ", ".join(d.name for d in datasets.list_datasets(kind="classification"))
        raise InputError(f"data set {name!r} is a {info.kind} data set; classify takes one of: {known}")
    split = datasets.load(name)
    return [tuple(e) for e in split.train], [tuple(e) for e in split.test]


def stratified_split(examples: Examples, fractions: Sequence[float], seed: int) -> list[Examples]:
    """Split into ``len(fractions) + 1`` parts (the first takes the rest), per label, shuffled by ``seed``."""
    by_label: dict[str, list] = {}
    for example in examples:
        by_label.setdefault(example[1], []).append(example)
    parts: list[Examples] = [[] for _ in range(len(fractions) + 1)]
    rng = random.Random(seed)
    for label in sorted(by_label):
        items = by_label[label]
        rng.shuffle(items)
        start = len(items)
        for index, fraction in enumerate(fractions, start=1):
            count = round(len(items) * fraction) if len(items) >= 3 else 0
            parts[index].extend(items[start - count:start])
            start -= count
        parts[0].extend(items[:start])
    for part in parts:
        rng.shuffle(part)
    return parts


def split_data(settings: ClassifySettings, seed: int) -> tuple[Examples, Examples, Examples, str]:
    """``(train, val, test, source)`` as the settings describe."""
    if settings.data is not None:
        examples = read_examples(settings.data, settings.text_column, settings.label_column,
                                 encoding=settings.encoding, skip_empty=settings.skip_empty)
        train, val, test = stratified_split(examples, [settings.val_fraction, settings.test_fraction], seed)
        return train, val, test, settings.data
    name = settings.dataset or DEFAULT_DATASET
    pool, test = load_dataset(name)
    train, val = stratified_split(pool, [settings.val_fraction], seed)
    return train, val, test, f"data set {name}"


class TextDataset(Dataset):
    """Token ids (truncated, never empty), class ids and, with subwords, each token's n-gram ids."""

    def __init__(self, examples: Examples, vocab: Vocabulary, labels: list[str], settings: ClassifySettings) -> None:
        index = {label: i for i, label in enumerate(labels)}
        self.items = [(encode(text, vocab, settings), index[label], spell(text, settings)) for text, label in examples]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def encode(text: str, vocab: Vocabulary, settings: ClassifySettings) -> list[int]:
    ids = vocab.encode(normalize(text, settings.level, settings.lowercase))[: settings.max_length]
    return ids or [UNK_ID]


def spell(text: str, settings: ClassifySettings) -> list[list[int]] | None:
    """The character n-gram bucket ids of each token ``encode`` keeps (``None`` for a words-only model)."""
    buckets = settings.model.subword_buckets
    if not buckets:
        return None
    words = normalize(text, settings.level, settings.lowercase).split()[: settings.max_length]
    return _subword_encoder(buckets)(words) or [[]]  # the lone <unk> of an empty text has no spelling


@functools.lru_cache(maxsize=4)
def _subword_encoder(buckets: int) -> SubwordEncoder:
    return SubwordEncoder(buckets)


def model_inputs(ids: list[list[int]], subwords: list | None = None) -> dict:
    """``inputs``, ``lengths`` and, for a model that reads subwords, ``subwords``: what the classifier takes."""
    inputs, lengths = pad_batch(ids)
    batch = {"inputs": inputs, "lengths": lengths}
    if subwords is not None:
        batch["subwords"] = pad_subwords(subwords, inputs.shape[1])
    return batch


def collate(items) -> dict:
    spelled = items[0][2] is not None
    batch = model_inputs([ids for ids, _, _ in items], [grams for _, _, grams in items] if spelled else None)
    return {**batch, "targets": torch.tensor([label for _, label, _ in items])}


# -------------------------------------------------------------------------------------- transfer
#: Model options a run started --init-from another may change: regularisation and how it runs, not shapes.
TRANSFER_FREE = ("vocab_size", "output_size", "task", "dropout", "word_dropout", *RECURRENT_REGULARIZERS, "backend")


def check_transfer(settings: ClassifySettings) -> None:
    """``--init-from``: the earlier run must tokenise the same way and have this run's architecture."""
    source = lifecycle.read_run(settings.init_from, APP)
    if source.settings.ensemble > 1:
        raise InputError(f"--init-from {settings.init_from} is an ensemble of {source.settings.ensemble} classifiers; "
                         "start from a one-model run (trained without --ensemble)")
    flags = []
    for name in ("level", "lowercase"):
        if getattr(source.settings, name) != getattr(settings, name):
            flags.append((name, getattr(source.settings, name), getattr(settings, name)))
    for field in dataclasses.fields(settings.model):
        mine, theirs = getattr(settings.model, field.name), getattr(source.settings.model, field.name)
        if field.name not in TRANSFER_FREE and mine != theirs:
            flags.append((field.name, theirs, mine))
    if flags:
        differences = ", ".join(f"{flag(name)} {theirs} (not {mine})" for name, theirs, mine in flags)
        raise InputError(f"--init-from {settings.init_from} was trained with {differences}; give the same, or train "
                         "from scratch without --init-from")


def transfer_vocabulary(source: Vocabulary, texts: list[str], settings: ClassifySettings) -> Vocabulary:
    """The earlier run's tokens (their ids unchanged), then this data's frequent tokens it lacks."""
    own = Vocabulary.build(texts, level=settings.level, min_freq=settings.min_freq, max_size=settings.max_vocab)
    return Vocabulary(source.tokens[4:] + [t for t in own.tokens[4:] if t not in source], level=settings.level)


def transfer_weights(model: SequenceClassifier, source: SequenceClassifier, same_labels: bool) -> None:
    """Copy ``source``'s weights into ``model``: every recurrent weight, the embedding rows of the tokens
    both know (ids are shared: the vocabulary extends the source's), the head when the labels match."""
    theirs = source.state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.startswith("head.") and not same_labels:
                continue
            if name == "encoder.embedding.weight":
                tensor[: theirs[name].shape[0]] = theirs[name]
            else:
                tensor.copy_(theirs[name])


# --------------------------------------------------------------------------------------- metrics
@torch.no_grad()
def predict_ids(model: torch.nn.Module, ids: list[list[int]], batch_size: int = 256,
                subwords: list | None = None) -> torch.Tensor:
    """Class probabilities ``(n, classes)`` for lists of token ids (and their n-gram ids, see ``spell``)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(ids), batch_size):
        batch = model_inputs(ids[start:start + batch_size],
                             None if subwords is None else subwords[start:start + batch_size])
        out.append(torch.softmax(model(**to_device(batch, device)).output.float(), -1).cpu())
    return torch.cat(out)


def predict_texts(model: torch.nn.Module, texts: list[str], vocab: Vocabulary, settings: ClassifySettings):
    """Class probabilities ``(n, classes)`` of raw texts, tokenised as the run was trained."""
    spelled = [spell(text, settings) for text in texts] if settings.model.subword_buckets else None
    return predict_ids(model, [encode(text, vocab, settings) for text in texts], subwords=spelled)


def confusion_matrix(truth: list[int], predicted: list[int], classes: int) -> list[list[int]]:
    """Counts of (true class, predicted class): rows true, columns predicted."""
    confusion = [[0] * classes for _ in range(classes)]
    for t, p in zip(truth, predicted):
        confusion[t][p] += 1
    return confusion


def scores(truth: list[int], predicted: list[int], classes: int) -> dict:
    """Accuracy, macro-F1 (over the classes present in truth or predictions) and the confusion matrix."""
    return confusion_scores(confusion_matrix(truth, predicted, classes))


def confusion_scores(confusion: list[list[int]]) -> dict:
    """:func:`scores` from a confusion matrix (rows true, columns predicted)."""
    classes = len(confusion)
    f1s = []
    for c in range(classes):
        tp = confusion[c][c]
        actual, guessed = sum(confusion[c]), sum(row[c] for row in confusion)
        if actual or guessed:
            f1s.append(2 * tp / (actual + guessed))
    accuracy = sum(confusion[c][c] for c in range(classes)) / max(sum(map(sum, confusion)), 1)
    return {"accuracy": accuracy, "macro_f1": sum(f1s) / max(len(f1s), 1), "confusion": confusion}


def val_metrics(model: torch.nn.Module, batches) -> dict:
    """Validation accuracy and macro-F1; under torchrun the confusion counts are summed over the processes, so
    every process reports those of the whole validation data."""
    truth, predicted = [], []
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for batch in batches:
            logits = model(**to_device({k: v for k, v in batch.items() if k != "targets"}, device)).output
            truth += batch["targets"].tolist()
            predicted += logits.argmax(-1).tolist()
    classes = model.config.output_size
    counts = [n for row in confusion_matrix(truth, predicted, classes) for n in row]
    counts = distributed.all_sum(counts, distributed.current(), device)
    result = confusion_scores([[round(n) for n in counts[c * classes:(c + 1) * classes]] for c in range(classes)])
    return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}


def test_metrics(model, vocab: Vocabulary, settings: ClassifySettings, facts: dict, examples: Examples) -> dict:
    """Accuracy, macro-F1, confusion matrix and the majority-class baseline on labelled ``examples``."""
    labels = facts["labels"]
    unknown = sorted({label for _, label in examples} - set(labels))
    if unknown:
        raise InputError(f"labels {unknown} were not seen in training; the model knows: {', '.join(labels)}")
    truth = [labels.index(label) for _, label in examples]
    probs = predict_texts(model, [text for text, _ in examples], vocab, settings)
    result = scores(truth, probs.argmax(-1).tolist(), len(labels))
    majority = facts["majority_label"]
    result["majority_baseline_accuracy"] = sum(label == majority for _, label in examples) / len(examples)
    result["examples"] = len(examples)
    return result


def format_confusion(confusion: list[list[int]], labels: list[str]) -> str:
    """The confusion matrix as text: rows are the true labels, columns the predictions."""
    width = max(8, *(len(label) for label in labels)) + 1
    lines = ["true \\ predicted".ljust(width) + "".join(label[:width - 1].rjust(width) for label in labels)]
    for label, row in zip(labels, confusion):
        lines.append(label[:width - 1].ljust(width) + "".join(str(n).rjust(width) for n in row))
    return "\n".join(lines)


def plot_confusion(confusion: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.6 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size * 0.85))
    axes.imshow(confusion, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    top = max(max(row) for row in confusion) or 1
    for i, row in enumerate(confusion):
        for j, n in enumerate(row):
            axes.text(j, i, str(n), ha="center", va="center", color="white" if n > top / 2 else "black")
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---------------------------------------------------------------------------------------- verbs
class Classify(lifecycle.App):
    name = "classify"
    settings_class = ClassifySettings
    train_defaults = {"max_steps": 6000, "batch_size": 32, "lr": 2e-3, "eval_every": 250, "checkpoint_every": 250,
                      "log_every": 50, "early_stopping_patience": 6, "monitor": "val_macro_f1"}
    val_metrics = ("val_accuracy", "val_macro_f1")

    def normalize(self, settings: ClassifySettings) -> ClassifySettings:
        if settings.init_from is not None:
            settings = dataclasses.replace(settings, init_from=str(Path(settings.init_from).resolve()))
        if settings.data is None:
            return dataclasses.replace(settings, dataset=settings.dataset or DEFAULT_DATASET)
        return dataclasses.replace(settings, data=str(Path(settings.data).resolve()))

    def check(self, settings: ClassifySettings, config: TrainConfig) -> None:
        if settings.data is not None and settings.text_column == settings.label_column:
            raise InputError(f"--text-column and --label-column both name {settings.text_column!r}: the model would "
                             "read its own label; name the text and the label columns")
        if settings.init_from is not None:
            check_transfer(settings)

    def prepare(self, settings: ClassifySettings, config: TrainConfig, run: Path) -> lifecycle.Prepared:
        return self.prepare_parts(settings, *split_data(settings, config.seed))

    def prepare_parts(self, settings: ClassifySettings, train_part: Examples, val_part: Examples, test_part: Examples,
                      source: str) -> lifecycle.Prepared:
        """The data step on given train, validation and test parts (``prepare`` gives those of the seeded split)."""
        if not train_part:
            raise InputError(f"{source}: nothing left to train on after the split")
        labels = sorted({label for _, label in train_part + val_part + test_part})
        if len(labels) < 2:
            raise InputError(f"{source} has a single label ({labels[0]!r}); classification needs at least two")
        texts = [normalize(t, settings.level, settings.lowercase) for t, _ in train_part]
        counts = {label: sum(1 for _, l in train_part if l == label) for label in labels}
        facts = {"labels": labels, "source": source, "majority_label": max(labels, key=counts.__getitem__),
                 "sizes": {"train": len(train_part), "val": len(val_part), "test": len(test_part)}}
        if settings.init_from is None:
            vocab = Vocabulary.build(texts, level=settings.level, min_freq=settings.min_freq,
                                     max_size=settings.max_vocab)
        else:
            _, earlier_vocab, run = load_run(settings.init_from)
            vocab = transfer_vocabulary(earlier_vocab, texts, settings)
            facts["transfer"] = {"tokens_carried": len(earlier_vocab) - 4, "tokens_new": len(vocab) - len(earlier_vocab),
                                 "head_carried": run.facts["labels"] == labels}
        facts["vocab_size"] = len(vocab)
        return lifecycle.Prepared(
            TextDataset(train_part, vocab, labels, settings),
            TextDataset(val_part, vocab, labels, settings) if val_part else None,
            test=test_part, vocab=vocab, facts=facts, collate_fn=collate, metrics_fn=val_metrics)

    def build_model(self, settings: ClassifySettings,
                    data: lifecycle.Prepared) -> SequenceClassifier | ClassifierEnsemble:
        config = dataclasses.replace(settings.model, vocab_size=data.facts["vocab_size"],
                                     output_size=len(data.facts["labels"]))
        model = classifier_or_ensemble(config, settings.ensemble)
        if settings.init_from is not None:
            source = load_run(settings.init_from)[0]
            for member in self.members(model) or [model]:
                transfer_weights(member, source, data.facts["transfer"]["head_carried"])
        return model

    def describe(self, settings: ClassifySettings, data: lifecycle.Prepared, model: torch.nn.Module) -> str:
        line = super().describe(settings, data, model)
        transfer = data.facts.get("transfer")
        if transfer:
            line += (f"; from {settings.init_from}: {transfer['tokens_carried']:,} tokens and the recurrent weights"
                     f"{' and the output layer' if transfer['head_carried'] else ''} carried over, "
                     f"{transfer['tokens_new']:,} new tokens")
        return line

    def report(self, model, settings: ClassifySettings, data: lifecycle.Prepared, run: Path, fitted: dict) -> dict:
        labels = data.facts["labels"]
        result = {"labels": labels, **data.facts["sizes"], "steps": fitted["step"]}  # an ensemble: one per member
        if self.members(model) and "val_accuracy" in fitted:
            result["ensemble_val"] = {"accuracy": fitted["val_accuracy"], "macro_f1": fitted["val_macro_f1"]}
        if data.test:
            result.update(test_metrics(model, data.vocab, settings, data.facts, data.test))
            plot_confusion(result["confusion"], labels, run / "confusion_matrix.png",
                           f"test: accuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}")
        return result


APP = Classify()


def train(settings: ClassifySettings, config: TrainConfig | None = None, out: str | Path = "runs/classify", *,
          resume: bool = False, progress: bool = True) -> dict:
    """Train a classifier into the run directory ``out``; returns the test metrics.

    The result holds ``accuracy``, ``macro_f1``, ``confusion`` (rows true, columns predicted, in the
    order of ``labels``), ``majority_baseline_accuracy``, ``labels`` and the split sizes.
    """
    return lifecycle.train(APP, settings, config, out, resume=resume, progress=progress)


def load_run(run: str | Path, device: str = "cpu"):
    """``(model, vocab, run)`` of a classify run directory."""
    return lifecycle.load_run(run, APP, device)


def evaluate(run: str | Path, *, data: str | None = None, text_column: str | None = None,
             label_column: str | None = None, encoding: str = "utf-8", skip_empty: bool = False,
             seed: int | None = None, device: str = "cpu") -> dict:
    """Accuracy, macro-F1 and confusion matrix of a trained run: on ``data`` (every row) if given, else
    on the run's own test split (rebuilt from its saved settings and ``seed``, default the run's)."""
    model, vocab, info = load_run(run, device)
    settings = info.settings
    if data is not None:
        examples = read_examples(data, text_column or settings.text_column, label_column or settings.label_column,
                                 encoding=encoding, skip_empty=skip_empty)
        where = data
    else:
        examples, where = split_data(settings, info.seed if seed is None else seed)[2], "the run's test split"
        if not examples:
            raise InputError(f"{run} has no test split (test_fraction 0); pass --data FILE")
    result = test_metrics(model, vocab, settings, info.facts, examples)
    result["labels"], result["evaluated_on"] = info.facts["labels"], where
    return result


def predict(run: str | Path, texts: Sequence[str], *, device: str = "cpu") -> list[dict]:
    """For each text: ``{"text", "label", "probability", "probabilities": {label: p}}``."""
    if not texts:
        raise InputError("no texts to classify; pass them as arguments, with --file, or on stdin")
    model, vocab, info = load_run(run, device)
    probs = predict_texts(model, list(texts), vocab, info.settings)
    labels = info.facts["labels"]
    results = []
    for text, row in zip(texts, probs.tolist()):
        best = max(range(len(labels)), key=row.__getitem__)
        results.append({"text": text, "label": labels[best], "probability": row[best],
                        "probabilities": dict(zip(labels, row))})
    return results


def describe(result: dict) -> str:
    """The test metrics on one line, then the confusion matrix."""
    head = format_metrics({"accuracy": result["accuracy"], "macro_f1": result["macro_f1"],
                           "majority_baseline": result["majority_baseline_accuracy"]})
    return f"{head}  ({result['examples']} examples)\n{format_confusion(result['confusion'], result['labels'])}"
