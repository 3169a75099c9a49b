"""Nucleotide sequences: classify them, or learn a language model of bases and sample new ones.

Data: FASTA/FASTQ files (plain or gzip, read with Biopython; :mod:`rnnkit.data.nucleotides` says how
lower case, ``U``, IUPAC ambiguity codes and gaps are read), or the built-in 28,645 miRBase hairpins
(:mod:`rnnkit.datasets.dna`). Two tasks:

- ``classify``: a label per sequence, from a TSV (``id<TAB>label``) or a regular expression over the
  record ids (built-in: the organism group of the species). A
  :class:`~rnnkit.models.SequenceClassifier` over bases, reported next to the majority class and a
  k-mer-frequency + logistic-regression baseline trained on the same split, which it should beat.
- ``lm``: a :class:`~rnnkit.models.SequenceTagger` predicting each base from the ones before it
  (``BOS`` first, ``EOS`` after the last base, so sampling ends by itself). Reported in bits per base
  on held-out sequences next to order-k Markov baselines (k = 1..6, add-one and Witten-Bell). The
  model's bits per base use its distribution over the four bases (``EOS`` renormalised out), the
  quantity the Markov models give; positions whose base is ambiguous (``N``) are not scored by either.

The split keeps near-duplicates on one side: records whose ids give the same ``--group-pattern`` match
(built-in: the miRBase family, so ``hsa-mir-21`` and ``mmu-mir-21`` stay together) and records with
identical sequences form one group, and whole groups are drawn (with the seed) into the test and
validation parts.

>>> settings = DnaSettings(task="lm")
>>> settings.model.cell, settings.max_length
('gru', 500)
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from rnnkit.apps import lifecycle
from rnnkit.apps.classify import format_confusion, plot_confusion, predict_ids, scores
from rnnkit.apps.classify import val_metrics as classify_val_metrics
from rnnkit.data import nucleotides
from rnnkit.data.nucleotides import BASES, Record
from rnnkit.data.vocab import BOS_ID, EOS_ID, UNK_ID, Vocabulary, pad_batch
from rnnkit.errors import InputError
from rnnkit.models.classifier import SequenceClassifier, SequenceClassifierConfig
from rnnkit.models.tagger import SequenceTagger, SequenceTaggerConfig
from rnnkit.options import nested, option
from rnnkit.train import TrainConfig
from rnnkit.train.progress import is_shown
from rnnkit.types import IGNORE_INDEX

TASKS = ("classify", "lm")
#: One fixed vocabulary for every run: ids 4-7 are the bases A C G T, 8 is N (any ambiguity code).
VOCAB = Vocabulary([*BASES, "N"], level="char")
BASE_IDS = [VOCAB.token_to_id(b) for b in BASES]
N_ID = VOCAB.token_to_id("N")
BUILTIN = "built-in miRBase hairpins"
MAX_KMER = 8


def kmer_vocabulary(k: int) -> Vocabulary:
    """The tokens of a ``--kmer k`` classifier: ``VOCAB`` for ``k = 1``, else every k-mer over ``A C G T``
    (ids 4.., in the order of :func:`rnnkit.data.nucleotides.kmer_counts`' columns); a k-mer holding an
    ``N`` is ``UNK``.

    >>> kmer_vocabulary(2).tokens[4:7]
    ['AA', 'AC', 'AG']
    """
    if k == 1:
        return VOCAB
    return Vocabulary(nucleotides.all_kmers(k), level="word")


def encode_bases(sequence: str, k: int = 1) -> list[int]:
    """Token ids of a normalised sequence: its bases (``k = 1``) or its overlapping k-mers, stride 1
    (``len - k + 1`` of them; ``[UNK]`` when the sequence is shorter than ``k``).

    >>> encode_bases("ACGT"), encode_bases("ACGNA", 2)  # AC = 4 + 1, CG = 4 + 6; GN, NA hold an N
    ([4, 5, 6, 7], [5, 10, 1, 1])
    """
    if k == 1:
        return VOCAB.encode(sequence) or [UNK_ID]
    return _kmer_vocabularies(k).encode(" ".join(nucleotides.kmers(sequence, k))) or [UNK_ID]


_KMER_VOCABULARIES: dict[int, Vocabulary] = {}


def _kmer_vocabularies(k: int) -> Vocabulary:
    if k not in _KMER_VOCABULARIES:
        _KMER_VOCABULARIES[k] = kmer_vocabulary(k)
    return _KMER_VOCABULARIES[k]


def model_kmer(model: torch.nn.Module) -> int:
    """The k a classifier was trained with, from its input vocabulary size (``4 + 4**k``; ``VOCAB``: 1)."""
    size = model.config.vocab_size
    for k in range(2, MAX_KMER + 1):
        if size == 4 + 4 ** k:
            return k
    return 1


@dataclasses.dataclass
class DnaSettings:
    """The task, where the sequences and labels come from, how they are split, and the model."""

    task: str = option("classify", "'classify' (a label per sequence) or 'lm' (a language model of bases: bits "
                                   "per base, sampling)", choices=TASKS)
    data: tuple[str, ...] = option((), "FASTA/FASTQ files, plain or gzip (none: the built-in miRBase hairpins)")
    labels: str | None = option(None, "classify: a TSV file of 'record id<TAB>label' lines")
    label_pattern: str | None = option(None, "classify: a regular expression over record ids; the label is its "
                                             "first group, else the whole match (built-in default: the organism "
                                             "group of the species prefix)")
    group_pattern: str | None = option(None, "a regular expression over record ids: records whose ids give the "
                                             "same match stay on one side of the split (built-in default: the "
                                             "miRBase family); identical sequences always stay together")
    shuffled_controls: bool = option(False, "classify: label every record 'real' and add a copy of it with its "
                                            "dinucleotides shuffled, labelled 'shuffled', on the same side of the "
                                            "split: can the model see order that composition cannot explain?")
    skip_empty: bool = option(False, "drop records without a sequence instead of stopping")
    max_length: int = option(500, "train on at most this many bases of a sequence (classify also predicts "
                                  "from them; the language model is evaluated on whole sequences)")
    val_fraction: float = option(0.1, "share of the records (whole groups) for validation")
    test_fraction: float = option(0.1, "share of the records (whole groups) for the test")
    kmer: int = option(1, "classify: read overlapping k-mers of this many bases (stride 1) as the tokens, an "
                          "embedding per k-mer as in DNABERT (k-mers holding an N share one token); 1: single "
                          "bases")
    baseline_max_k: int = option(5, "classify: the k-mer baseline tries k-mer lengths up to this")
    markov_max_order: int = option(6, "lm: Markov baselines of orders 1 to this")
    sample_count: int = option(3, "lm: sequences sampled when training ends (0: none)")
    model: SequenceClassifierConfig = nested(
        SequenceClassifierConfig, "the recurrent model (lm: summary and attention_size are not used)", cell="gru",
        hidden_size=128, embedding_dim=16, summary="max", dropout=0.1)

    def __post_init__(self) -> None:
        self.data = tuple(self.data)
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")
        for name in ("max_length", "kmer", "baseline_max_k", "markov_max_order"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sample_count < 0:
            raise ValueError(f"sample_count must be >= 0, got {self.sample_count}")
        if self.kmer > MAX_KMER:
            raise ValueError(f"kmer must be <= {MAX_KMER} (4**k embeddings), got {self.kmer}")
        if self.task == "lm" and self.kmer != 1:
            raise ValueError("--kmer is for --task classify; a language model predicts one base at a time")
        if self.markov_max_order > 8:
            raise ValueError(f"markov_max_order must be <= 8 (6**k contexts), got {self.markov_max_order}")
        if self.task == "lm" and self.model.bidirectional:
            raise ValueError("a language model reads left to right (a backward pass would see the next base); "
                             "drop --bidirectional")
        if self.task == "lm" and (self.labels or self.label_pattern):
            raise ValueError("--labels and --label-pattern are for --task classify; a language model needs none")
        if self.shuffled_controls and (self.task == "lm" or self.labels or self.label_pattern):
            raise ValueError("--shuffled-controls is a --task classify of its own (labels 'real' and 'shuffled'); "
                             "drop it, or drop --task lm, --labels and --label-pattern")
        if self.labels and self.label_pattern:
            raise ValueError("give the labels with --labels FILE or with --label-pattern REGEX, not both")


# ------------------------------------------------------------------------------------------ data
def compile_pattern(pattern: str, flag: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise InputError(f"{flag} {pattern!r} is not a valid regular expression ({error})") from None


def match_key(pattern: re.Pattern, record_id: str) -> str | None:
    """The first group of ``pattern`` searched in ``record_id`` (the whole match without groups), or ``None``."""
    found = pattern.search(record_id)
    if found is None:
        return None
    return found.group(1) if pattern.groups else found.group(0)


def load_records(settings: DnaSettings, files: Sequence[str] | None = None) -> tuple[list[Record], str]:
    """The records of ``files`` (default: the settings' data, else the built-in hairpins) and a description."""
    files = list(files if files is not None else settings.data)
    if not files:
        from rnnkit.datasets.dna import hairpin_path

        return nucleotides.read_records(hairpin_path()), BUILTIN
    records: list[Record] = []
    for path in files:
        records += nucleotides.read_records(path, skip_empty=settings.skip_empty)
    return records, ", ".join(files)


def read_label_file(path: str) -> dict[str, str]:
    """``{record id: label}`` from ``id<TAB>label`` lines (blank lines skipped)."""
    from rnnkit.data.tables import read_text

    labels = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise InputError(f"{path}, line {number}: expected 'record id<TAB>label', got {line[:60]!r}")
        labels[fields[0].strip()] = fields[1].strip()
    if not labels:
        raise InputError(f"{path} holds no 'record id<TAB>label' lines")
    return labels


def label_records(records: list[Record], settings: DnaSettings, builtin: bool) -> tuple[list[tuple[Record, str]], int]:
    """``(record, label)`` for every record that has a label, and how many were dropped for lacking one."""
    if settings.labels:
        table = read_label_file(settings.labels)
        found = [(r, table[r.id]) for r in records if r.id in table]
        if not found:
            raise InputError(f"none of the {len(records)} record ids appears in {settings.labels} (e.g. "
                             f"{records[0].id!r}); its first column must hold the ids of the FASTA headers")
    elif settings.label_pattern or not builtin:
        if not settings.label_pattern:
            raise InputError("--task classify needs labels: --labels FILE (id<TAB>label) or --label-pattern REGEX "
                             "over the record ids")
        pattern = compile_pattern(settings.label_pattern, "--label-pattern")
        found = [(r, key) for r in records if (key := match_key(pattern, r.id))]
        if not found:
            raise InputError(f"--label-pattern {settings.label_pattern!r} matches none of the {len(records)} "
                             f"record ids (e.g. {records[0].id!r}); fix the expression")
    else:
        from rnnkit.datasets.dna import organism_group

        found = [(r, group) for r in records if (group := organism_group(r.id))]
        if not found:
            raise InputError(f"none of the {len(records)} record ids names a miRBase organism (e.g. {records[0].id!r}, "
                             "where the built-in data has ids like 'hsa-mir-21'); pass --labels FILE (id<TAB>label) "
                             "or --label-pattern REGEX")
    return found, len(records) - len(found)


def group_keys(records: Sequence[Record], settings: DnaSettings, builtin: bool) -> list[str]:
    """The split group of each record from its id (each record alone when nothing says otherwise)."""
    if settings.group_pattern:
        pattern = compile_pattern(settings.group_pattern, "--group-pattern")
        return [match_key(pattern, r.id) or f"record:{r.id}" for r in records]
    if builtin:
        from rnnkit.datasets.dna import mirbase_family

        return [mirbase_family(r.id) for r in records]
    return [f"record:{r.id}#{i}" for i, r in enumerate(records)]


def with_shuffled_controls(records: Sequence[Record], keys: Sequence[str],
                           seed: int) -> tuple[list[tuple[Record, str]], list[str]]:
    """``(record, 'real')`` and ``(its dinucleotide shuffle, 'shuffled')`` for each record, with the
    record's split key for both. A shuffle that equals its record (short or repetitive sequences) drops
    the pair, since the one sequence would carry both labels."""
    rng = random.Random(seed)
    pairs, pair_keys = [], []
    for record, key in zip(records, keys):
        shuffled = nucleotides.dinucleotide_shuffle(record.sequence, rng)
        if shuffled != record.sequence:
            pairs += [(record, "real"), (dataclasses.replace(record, id=record.id + "/shuffled",
                                                             sequence=shuffled), "shuffled")]
            pair_keys += [key, key]
    if not pairs:
        raise InputError("every sequence equals its own dinucleotide shuffle (too short or repetitive); "
                         "--shuffled-controls needs longer sequences")
    return pairs, pair_keys


def grouped_split(records: Sequence[Record], keys: Sequence[str], fractions: Sequence[float],
                  seed: int) -> list[list[int]]:
    """Record indices in ``len(fractions) + 1`` parts (the first takes the rest); records sharing a key
    or an identical sequence are one group, and whole groups are drawn, shuffled by ``seed``.

    >>> recs = [Record(str(i), "", s) for i, s in enumerate(["AC", "GT", "AC", "TT"])]
    >>> parts = grouped_split(recs, ["a", "b", "c", "b"], [0.5], seed=0)
    >>> sorted(map(sorted, parts))  # 0 and 2 share a sequence, 1 and 3 a key
    [[0, 2], [1, 3]]
    """
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, (record, key) in enumerate(zip(records, keys)):
        for token in (("key", key), ("sequence", record.sequence)):
            if token in first:
                parent[root(i)] = root(first[token])
            else:
                first[token] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(records)):
        groups.setdefault(root(i), []).append(i)
    order = sorted(groups.values())
    random.Random(seed).shuffle(order)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    targets = [round(f * len(records)) for f in fractions]
    for members in order:
        part = next((p for p, target in enumerate(targets, start=1) if len(parts[p]) < target), 0)
        parts[part].extend(members)
    return [sorted(p) for p in parts]


def split(settings: DnaSettings, seed: int) -> dict:
    """Everything :meth:`Dna.prepare` and ``evaluate`` need: the parts, labels and facts."""
    records, source = load_records(settings)
    builtin = not settings.data
    dropped = 0
    labelled: list[tuple[Record, str]] = [(r, "") for r in records]
    if settings.task == "classify" and not settings.shuffled_controls:
        labelled, dropped = label_records(records, settings, builtin)
        if dropped:
            print(f"note: {dropped} of {len(records)} records have no label and are left out", file=sys.stderr)
    chosen = [r for r, _ in labelled]
    keys = group_keys(chosen, settings, builtin)
    if settings.shuffled_controls:
        labelled, keys = with_shuffled_controls(chosen, keys, seed)
        chosen = [r for r, _ in labelled]
    parts = grouped_split(chosen, keys, [settings.val_fraction, settings.test_fraction], seed)
    train, val, test = ([labelled[i] for i in part] for part in parts)
    if not train:
        raise InputError(f"{source}: no records left to train on after the split; lower --val-fraction and "
                         "--test-fraction")
    labels = sorted({label for _, label in labelled}) if settings.task == "classify" else []
    if settings.task == "classify" and len(labels) < 2:
        raise InputError(f"{source}: every record has the label {labels[0]!r}; classification needs at least two")
    rna = sum(r.rna for r in records) > len(records) / 2
    return {"train": train, "val": val, "test": test, "labels": labels, "source": source, "rna": rna,
            "dropped": dropped}


class ClassifyData(Dataset):
    """Base ids (the first ``max_length``) and class ids."""

    def __init__(self, items: list[tuple[Record, str]], labels: list[str], max_length: int, kmer: int = 1) -> None:
        index = {label: i for i, label in enumerate(labels)}
        self.items = [(encode_bases(r.sequence[:max_length], kmer), index[label]) for r, label in items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def collate_classify(items) -> dict:
    inputs, lengths = pad_batch([ids for ids, _ in items])
    return {"inputs": inputs, "targets": torch.tensor([label for _, label in items]), "lengths": lengths}


class LanguageData(Dataset):
    """Inputs ``[BOS, x_1 .. x_{n-1}]`` (or ``.. x_n`` with ``EOS`` as the last target) and targets; a
    sequence longer than ``max_length`` is cut there and gets no ``EOS`` (it did not end)."""

    def __init__(self, sequences: Sequence[str], max_length: int | None) -> None:
        self.items = []
        for sequence in sequences:
            ids = VOCAB.encode(sequence if max_length is None else sequence[:max_length])
            ended = max_length is None or len(sequence) <= max_length
            targets = ids + [EOS_ID] if ended else ids
            self.items.append(([BOS_ID] + targets[:-1], targets))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def collate_language(items) -> dict:
    inputs, lengths = pad_batch([inputs for inputs, _ in items])
    targets, _ = pad_batch([[t if t != N_ID else IGNORE_INDEX for t in targets]
                            for _, targets in items], pad_value=IGNORE_INDEX)
    return {"inputs": inputs, "targets": targets, "lengths": lengths}


# --------------------------------------------------------------------------------------- metrics
def base_bits(model: torch.nn.Module, batch: dict) -> tuple[float, int]:
    """``(sum of -log2 P(base), bases scored)`` of a language-model batch: the distribution over the four
    bases only (``EOS`` and special tokens renormalised out); ``N``, ``EOS`` and padding are not scored."""
    device = next(model.parameters()).device
    logits = model(batch["inputs"].to(device), lengths=batch["lengths"]).output.float()
    log_probs = torch.log_softmax(logits[..., BASE_IDS], dim=-1)
    targets = batch["targets"].to(device)
    is_base = (targets >= BASE_IDS[0]) & (targets <= BASE_IDS[-1])
    picked = log_probs.gather(-1, (targets - BASE_IDS[0]).clamp(0, 3).unsqueeze(-1)).squeeze(-1)
    return float(-picked[is_base].sum()) / math.log(2), int(is_base.sum())


@torch.no_grad()
def bits_per_base(model: torch.nn.Module, sequences: Sequence[str], batch_size: int = 64) -> float:
    """Bits per base of a trained language model on whole ``sequences`` (shortest first, in batches)."""
    model.eval()
    data = LanguageData(sorted(sequences, key=len), None)
    total, count = 0.0, 0
    for start in range(0, len(data), batch_size):
        bits, n = base_bits(model, collate_language(data.items[start:start + batch_size]))
        total, count = total + bits, count + n
    if not count:
        raise InputError("the sequences hold no unambiguous base (A, C, G, T/U) to score")
    return total / count


def language_val_metrics(model: torch.nn.Module, batches) -> dict:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            bits, n = base_bits(model, batch)
            total, count = total + bits, count + n
    return {"bits_per_base": total / max(count, 1)}


def majority_label(train: list[tuple[Record, str]], labels: list[str]) -> str:
    """The label most frequent in training (the first of ``labels`` on a tie): what the majority baseline says."""
    counts = Counter(label for _, label in train)
    return max(labels, key=lambda label: counts[label])


def classify_metrics(model, items: list[tuple[Record, str]], labels: list[str], max_length: int,
                     majority: str) -> dict:
    """Accuracy, macro-F1 and confusion of a classifier on labelled records, with the majority baseline: the
    accuracy of always saying ``majority``, the training part's most frequent label."""
    unknown = sorted({label for _, label in items} - set(labels))
    if unknown:
        raise InputError(f"labels {unknown[:5]} were not seen in training; the model knows: {', '.join(labels)}")
    truth = [labels.index(label) for _, label in items]
    k = model_kmer(model)
    probabilities = predict_ids(model, [encode_bases(r.sequence[:max_length], k) for r, _ in items])
    result = scores(truth, probabilities.argmax(-1).tolist(), len(labels))
    result["majority_baseline_accuracy"] = sum(label == majority for _, label in items) / len(items)
    result["examples"] = len(items)
    return result


def plot_markov(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for smoothing, row in result["markov_bits_per_base"].items():
        axes.plot([int(k) for k in row], list(row.values()), marker="o", label=f"Markov, {smoothing}")
    axes.axhline(result["bits_per_base"], color="black", linestyle="--", label="recurrent model")
    axes.axhline(2.0, color="grey", linestyle=":", label="uniform (2 bits)")
    axes.set_xlabel("Markov order k")
    axes.set_ylabel("bits per base (held-out sequences)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---------------------------------------------------------------------------------------- the app
class Dna(lifecycle.App):
    name = "dna"
    settings_class = DnaSettings
    train_defaults = {"max_steps": 2000, "batch_size": 32, "lr": 3e-3, "eval_every": 200, "checkpoint_every": 200,
                      "log_every": 50}
    val_metrics = ("val_accuracy", "val_macro_f1", "val_bits_per_base")
    data_fields = ("data", "labels")
    report_settings = ("baseline_max_k", "markov_max_order", "sample_count")

    def normalize(self, settings: DnaSettings) -> DnaSettings:
        return dataclasses.replace(settings, data=tuple(str(Path(f).resolve()) for f in settings.data),
                                   labels=str(Path(settings.labels).resolve()) if settings.labels else None)

    def check(self, settings: DnaSettings, config: TrainConfig) -> None:
        own = ("val_bits_per_base",) if settings.task == "lm" else ("val_accuracy", "val_macro_f1")
        if config.monitor != "val_loss" and config.monitor not in own:
            raise InputError(f"--monitor {config.monitor} is not reported by --task {settings.task}; use val_loss "
                             f"or {', '.join(own)}")
        for flag, pattern in (("--label-pattern", settings.label_pattern), ("--group-pattern", settings.group_pattern)):
            if pattern:
                compile_pattern(pattern, flag)
        for path in (*settings.data, *([settings.labels] if settings.labels else [])):
            if Path(path).is_dir():
                raise InputError(f"{path} is a directory, not a file; name the FASTA/FASTQ files in it")
            if not Path(path).is_file():
                raise InputError(f"{path}: no such file")

    def prepare(self, settings: DnaSettings, config: TrainConfig, run: Path) -> lifecycle.Prepared:
        parts = split(settings, config.seed)
        train, val, test = parts["train"], parts["val"], parts["test"]
        facts = {"task": settings.task, "source": parts["source"], "labels": parts["labels"], "rna": parts["rna"],
                 "unlabelled_left_out": parts["dropped"],
                 "sizes": {"train": len(train), "val": len(val), "test": len(test)},
                 "train_bases": sum(len(r.sequence) for r, _ in train)}
        if settings.task == "classify":
            facts["majority_label"] = majority_label(train, parts["labels"])
            make = lambda items: ClassifyData(items, parts["labels"], settings.max_length, settings.kmer)  # noqa: E731
            collate, metrics = collate_classify, classify_val_metrics
        else:
            make = lambda items: LanguageData([r.sequence for r, _ in items], settings.max_length)  # noqa: E731
            collate, metrics = collate_language, language_val_metrics
        return lifecycle.Prepared(make(train), make(val) if val else None, test={"train": train, "val": val,
                                  "test": test}, vocab=kmer_vocabulary(settings.kmer), facts=facts, collate_fn=collate, metrics_fn=metrics)

    def build_model(self, settings: DnaSettings, data: lifecycle.Prepared) -> torch.nn.Module:
        return build_model(settings, data.facts)

    def describe(self, settings: DnaSettings, data: lifecycle.Prepared, model: torch.nn.Module) -> str:
        facts, config = data.facts, settings.model
        sizes = facts["sizes"]
        what = f"{len(facts['labels'])} classes" if settings.task == "classify" else "language model"
        return (f"dna ({what}): {facts['source']}: {sizes['train']:,} training, {sizes['val']:,} validation and "
                f"{sizes['test']:,} test sequences ({facts['train_bases']:,} training bases); "
                f"{config.cell.upper()}({config.hidden_size}) x {config.num_layers}, "
                f"{sum(p.numel() for p in model.parameters()):,} parameters")

    def report(self, model, settings: DnaSettings, data: lifecycle.Prepared, run: Path, fitted: dict) -> dict:
        parts, facts = data.test, data.facts
        result = {"task": settings.task, **facts["sizes"], "steps": fitted["step"]}
        if not parts["test"]:
            return result
        if settings.task == "classify":
            labels = facts["labels"]
            result.update(labels=labels, **classify_metrics(model, parts["test"], labels, settings.max_length,
                                                            facts["majority_label"]))
            index = {label: i for i, label in enumerate(labels)}
            cut = [[(r.sequence[:settings.max_length], index[label]) for r, label in parts[name]]
                   for name in ("train", "val", "test")]
            predict_kmers, chosen = nucleotides.kmer_logistic_regression(cut[0], cut[1], settings.baseline_max_k,
                                                                         progress=is_shown())
            baseline = scores([y for _, y in cut[2]], predict_kmers([s for s, _ in cut[2]]), len(labels))
            result["kmer_baseline"] = {"accuracy": baseline["accuracy"], "macro_f1": baseline["macro_f1"], **chosen}
            result["beats_kmer_baseline"] = result["accuracy"] > result["kmer_baseline"]["accuracy"]
            plot_confusion(result["confusion"], labels, run / "confusion_matrix.png",
                           f"test: accuracy {result['accuracy']:.3f} (k-mer LR "
                           f"{result['kmer_baseline']['accuracy']:.3f})")
            return result
        test = [r.sequence for r, _ in parts["test"]]
        result["bits_per_base"] = bits_per_base(model, test)
        result["test_bases"] = sum(sum(c in BASES for c in s) for s in test)
        result.update(nucleotides.markov_baselines([r.sequence for r, _ in parts["train"]], test,
                                                   settings.markov_max_order))
        result["beats_markov"] = result["bits_per_base"] < result["best_markov"]["bits_per_base"]
        plot_markov(result, run / "bits_per_base.png")
        if settings.sample_count:
            result["samples"] = [sample_sequence(model, rna=facts["rna"], length=settings.max_length, seed=i)
                                 for i in range(settings.sample_count)]
        return result


def build_model(settings: DnaSettings, facts: dict) -> torch.nn.Module:
    config = settings.model
    if settings.task == "classify":
        return SequenceClassifier(dataclasses.replace(config, vocab_size=len(kmer_vocabulary(settings.kmer)),
                                                      output_size=len(facts["labels"])))
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(SequenceTaggerConfig)
              if hasattr(config, f.name) and f.name not in ("output_size", "task")}
    return SequenceTagger(SequenceTaggerConfig(**{**shared, "vocab_size": len(VOCAB), "output_size": 0}))


APP = Dna()


def train(settings: DnaSettings | None = None, config: TrainConfig | None = None, out: str | Path = "runs/dna", *,
          resume: bool = False, progress: bool = True) -> dict:
    """Train a nucleotide classifier or language model into ``out``; returns the test report (with baselines)."""
    return lifecycle.train(APP, settings, config, out, resume=resume, progress=progress)


def load_run(run: str | Path, device: str = "cpu"):
    """``(model, vocab, run)`` of a dna run directory."""
    return lifecycle.load_run(run, APP, device)


# ------------------------------------------------------------------------------------------ verbs
def evaluate(run: str | Path, files: Sequence[str] | None = None, *, labels: str | None = None,
             label_pattern: str | None = None, device: str = "cpu") -> dict:
    """A trained run on its own test split (rebuilt from its settings and seed) or on ``files``.

    classify: accuracy, macro-F1, confusion and the majority baseline (``files`` need labels: ``labels``
    or ``label_pattern``, default the run's). lm: bits per base, and the Markov baselines fitted on the
    run's training split.
    """
    model, _, info = load_run(run, device)
    settings = info.settings
    if files and settings.shuffled_controls and (labels or label_pattern):
        raise InputError(f"{run} was trained with --shuffled-controls and labels the files itself ('real' and a "
                         "dinucleotide-shuffled copy of each); drop --labels and --label-pattern")
    if files:
        settings = dataclasses.replace(settings, data=tuple(files), labels=labels or settings.labels,
                                       label_pattern=label_pattern or settings.label_pattern)
        if labels:
            settings = dataclasses.replace(settings, label_pattern=None)
        records, where = load_records(settings)
        builtin_labels = not info.settings.data and not settings.labels and not settings.label_pattern
        if settings.shuffled_controls:
            items = with_shuffled_controls(records, [r.id for r in records], info.seed)[0]
        elif settings.task == "classify":
            items = label_records(records, settings, builtin_labels)[0]
        else:
            items = [(r, "") for r in records]
    else:
        parts = split(settings, info.seed)
        items, where = parts["test"], "the run's test split"
        if not items:
            raise InputError(f"{run} has no test split (test_fraction 0); pass FASTA/FASTQ files")
    if settings.task == "classify":
        majority = info.facts.get("majority_label") or \
            majority_label(split(info.settings, info.seed)["train"], info.facts["labels"])  # a run made before it was kept
        result = classify_metrics(model, items, info.facts["labels"], settings.max_length, majority)
        result["labels"] = info.facts["labels"]
    else:
        test = [r.sequence for r, _ in items]
        train_part = split(info.settings, info.seed)["train"]
        result = {"bits_per_base": bits_per_base(model, test),
                  **nucleotides.markov_baselines([r.sequence for r, _ in train_part], test, settings.markov_max_order)}
    result["evaluated_on"] = where
    return result


def predict(run: str | Path, sequences: Sequence[tuple[str, str]], *, device: str = "cpu") -> list[dict]:
    """For each ``(name, sequence)``: ``{"id", "label", "probability", "probabilities"}``."""
    if not sequences:
        raise InputError("no sequences to classify; pass them as arguments or FASTA/FASTQ files with --data")
    model, _, info = load_run(run, device)
    if info.settings.task != "classify":
        raise InputError(f"{run} is a language model (--task lm); predict labels with a --task classify run, or "
                         f"use `rnnkit dna sample` / `evaluate` with this one")
    return classify_sequences(model, sequences, info.facts["labels"], info.settings.max_length)


def classify_sequences(model: torch.nn.Module, sequences: Sequence[tuple[str, str]], labels: Sequence[str],
                       max_length: int) -> list[dict]:
    """:func:`predict` on a loaded classifier: each ``(name, sequence)`` normalised, cut to ``max_length`` and
    read as the model was trained (bases or k-mers, :func:`model_kmer`)."""
    k = model_kmer(model)
    encoded = [encode_bases(nucleotides.normalize(s, name)[:max_length], k) for name, s in sequences]
    probabilities = predict_ids(model, encoded)
    results = []
    for (name, _), row in zip(sequences, probabilities.tolist()):
        best = max(range(len(labels)), key=row.__getitem__)
        results.append({"id": name, "label": labels[best], "probability": row[best],
                        "probabilities": dict(zip(labels, row))})
    return results


def sample_sequence(model: torch.nn.Module, *, rna: bool, prime: str = "", length: int = 500,
                    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                    seed: int | None = None) -> str:
    """One sequence: ``prime`` (normalised) and up to ``length`` sampled bases, ended by the model's ``EOS``."""
    return "".join(stream_bases(model, rna=rna, prime=prime, length=length, temperature=temperature, top_k=top_k,
                                top_p=top_p, seed=seed))


def stream_bases(model: torch.nn.Module, *, rna: bool, prime: str, length: int, temperature: float,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> Iterator[str]:
    """:func:`sample_sequence` piece by piece (the prime first, then one base at a time; ``rnnkit serve``
    streams these); the prime is checked before the first piece is asked for."""
    prime = nucleotides.normalize(prime, "--prime") if prime else ""
    return _bases(model, rna, prime, length, temperature, top_k, top_p, seed)


def _bases(model, rna: bool, prime: str, length: int, temperature: float, top_k, top_p, seed) -> Iterator[str]:
    from rnnkit.sampling import stream

    show = (lambda s: s.replace("T", "U")) if rna else (lambda s: s)
    yield show(prime)
    for token in stream(model, [BOS_ID, *VOCAB.encode(prime)], max_new_tokens=length, temperature=temperature,
                        top_k=top_k, top_p=top_p, seed=seed, eos_id=EOS_ID):
        if token == EOS_ID:
            return
        if token >= BASE_IDS[0]:  # the model never learnt to emit PAD/UNK/BOS; skip them if sampled
            yield show(VOCAB.id_to_token(token))


def sample(run: str | Path, *, count: int = 1, prime: str = "", length: int = 500, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> list[str]:
    """``count`` sequences from a trained language model (sequence ``i`` uses ``seed + i``)."""
    for name, value, ok in (("--count", count, count >= 1), ("--length", length, length >= 1),
                            ("--temperature", temperature, math.isfinite(temperature) and temperature >= 0)):
        if not ok:
            raise InputError(f"{name} must be {'a number >= 0' if name == '--temperature' else '>= 1'}, got {value}")
    model, _, info = load_run(run)
    if info.settings.task != "lm":
        raise InputError(f"{run} is a classifier (--task classify); sample from a --task lm run, or use "
                         f"`rnnkit dna predict` with this one")
    return [sample_sequence(model, rna=info.facts["rna"], prime=prime, length=length, temperature=temperature,
                            top_k=top_k, top_p=top_p, seed=None if seed is None else seed + i) for i in range(count)]


def describe(result: dict) -> str:
    """The test report in a few lines: metrics next to the baselines (and the confusion matrix)."""
    from rnnkit.apps.common import format_metrics

    if "bits_per_base" in result:
        best = result["best_markov"]
        lines = [format_metrics({"bits_per_base": result["bits_per_base"],
                                 f"best_markov (order {best['order']}, {best['smoothing']})": best["bits_per_base"]})]
        for smoothing, row in result["markov_bits_per_base"].items():
            lines.append(f"  Markov {smoothing}: " + "  ".join(f"k={k} {v:.4f}" for k, v in row.items()))
        return "\n".join(lines)
    if "accuracy" not in result:
        return format_metrics({k: result[k] for k in ("train", "val", "test", "steps") if k in result})
    values = {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"],
              "majority_baseline": result["majority_baseline_accuracy"]}
    if "kmer_baseline" in result:
        values.update(kmer_lr_accuracy=result["kmer_baseline"]["accuracy"],
                      kmer_lr_macro_f1=result["kmer_baseline"]["macro_f1"])
    return (f"{format_metrics(values)}  ({result['examples']} sequences)\n"
            f"{format_confusion(result['confusion'], result['labels'])}")
