"""Nucleotide sequences: reading FASTA/FASTQ, the alphabet, k-mer counts and order-k Markov models.

How sequences are normalised (:func:`normalize`), the same for every reader and every model:

- lower case is upper case (soft-masked repeats are ordinary bases);
- ``U`` is ``T``: RNA and DNA share one alphabet ``A C G T`` (a run remembers whether its data was
  RNA and writes samples with ``U``);
- every IUPAC ambiguity code (``N R Y S W K M B D H V``) becomes ``N``, one token meaning "some
  base"; ``N`` is read as context but never scored (a language model's bits per base and the Markov
  baselines skip positions whose base is unknown; the k-mer features skip k-mers that contain one);
- alignment gaps (``-`` and ``.``) and a trailing ``*`` are removed;
- any other letter (``E F I L P Q X Z`` ...) means the file is not nucleotides (a protein FASTA, say):
  :class:`~rnnkit.errors.InputError`, one line naming the record and the letters.

The Markov baseline (:class:`MarkovModel`) is the classical one, written out: the probability of a
base given the ``k`` bases before it (``^`` pads the start, so the first bases are predicted from a
shorter context, as the recurrent model sees ``BOS``), with add-one (Laplace) or interpolated
Witten-Bell smoothing.

>>> normalize("acgu-nRy")
'ACGTNNN'
>>> MarkovModel(1, "add-one").fit(["AAC"]).probability("A", "C")  # (n(A,C) + 1) / (n(A) + 4)
0.3333333333333333
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from rnnkit.errors import InputError

BASES = "ACGT"
#: IUPAC nucleotide codes that stand for more than one base; each is read as ``N``.
AMBIGUOUS = "NRYSWKMBDHV"
_GAPS = "-.*"
_START = 5  # the padding symbol '^' in the integer code (A C G T N = 0..4)
_CODE = {**{b: i for i, b in enumerate(BASES)}, "N": 4}
_TRANSLATE = str.maketrans({"U": "T", **{c: "N" for c in AMBIGUOUS[1:]}, **{g: None for g in _GAPS}})
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".ffn", ".frn", ".fsa", ".seq")
FASTQ_SUFFIXES = (".fq", ".fastq")


def normalize(sequence: str, record: str = "") -> str:
    """Upper case, ``U`` -> ``T``, ambiguity codes -> ``N``, gaps removed; refuses non-nucleotides.

    Args:
        sequence: the raw sequence.
        record: the record's id, named in the error.
    """
    text = sequence.upper().translate(_TRANSLATE)
    if text.strip(BASES + "N"):
        bad = sorted(set(text) - set(BASES + "N"))
        where = f"record {record!r}" if record else "the sequence"
        shown = ", ".join(repr(c) if not c.isalpha() else c for c in bad[:8])
        hint = " (a protein sequence?)" if any(c.isalpha() for c in bad) else ""
        raise InputError(f"{where} holds letters that are not nucleotide codes: {shown}{hint}; dna takes DNA/RNA "
                         f"(A C G T/U and the IUPAC codes {AMBIGUOUS})")
    return text


@dataclasses.dataclass(frozen=True)
class Record:
    """One sequence: its id, the rest of its header line, the normalised sequence (see :func:`normalize`)
    and whether the raw sequence was RNA (had ``U``)."""

    id: str
    description: str
    sequence: str
    rna: bool = False


def sequence_format(path: str | Path) -> str:
    """``'fasta'`` or ``'fastq'`` from the file name (``.gz`` ignored), else from its first character."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(FASTQ_SUFFIXES):
        return "fastq"
    if name.endswith(FASTA_SUFFIXES):
        return "fasta"
    with _open(path) as handle:
        first = handle.read(1)
    return "fastq" if first == "@" else "fasta"


def _open(path: Path):
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if compressed else open(path, encoding="utf-8")


def read_records(path: str | Path, *, skip_empty: bool = False) -> list[Record]:
    """Every record of a FASTA or FASTQ file (gzip or plain), read with Biopython and normalised.

    Raises :class:`~rnnkit.errors.InputError` (one line) for a missing, empty, malformed or binary
    file, a record without a sequence (unless ``skip_empty``: then it is dropped) and non-nucleotides.
    """
    from Bio import SeqIO

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file" if not path.exists() else f"{path} is a directory, not a file")
    try:
        fmt = sequence_format(path)
    except UnicodeDecodeError:
        fmt = "fasta"  # the parse below says it is not text
    records, empty = [], []
    try:
        with _open(path) as handle:
            for item in SeqIO.parse(handle, fmt):
                raw = str(item.seq)
                if not raw.strip(_GAPS):
                    empty.append(item.id)
                    continue
                sequence = normalize(raw, item.id)
                records.append(Record(item.id, item.description.partition(" ")[2], sequence,
                                      "U" in raw or "u" in raw))
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text {fmt.upper()} file (gzip or plain text)") from None
    except (ValueError, EOFError, OSError) as error:
        if isinstance(error, InputError):
            raise
        detail = " ".join(str(error).split())
        detail = detail.split(". ")[0] if "comments at the beginning" in detail else detail
        raise InputError(f"{path} is not a valid {fmt.upper()} file ({detail[:160]}); fix the file") from None
    if empty and not skip_empty:
        raise InputError(f"{path}: record {empty[0]!r} has no sequence ({len(empty)} empty record(s)); remove them "
                         "or pass --skip-empty")
    if not records:
        what = "only empty records" if empty else f"no {fmt.upper()} records (a {fmt} file starts with " \
                                                  f"{'>' if fmt == 'fasta' else '@'})"
        raise InputError(f"{path} holds {what}; give a FASTA or FASTQ file of nucleotide sequences")
    return records


_LOOKUP = np.full(256, 4, dtype=np.int64)  # byte -> code; normalised sequences hold only A C G T N
for _base, _index in _CODE.items():
    _LOOKUP[ord(_base)] = _index


def encode(sequence: str) -> np.ndarray:
    """A normalised sequence as integers ``A C G T N`` = ``0 1 2 3 4``.

    >>> encode("ACGTN").tolist()
    [0, 1, 2, 3, 4]
    """
    return _LOOKUP[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]


def encode_many(sequences: Iterable[str]) -> list[np.ndarray]:
    """:func:`encode` for each sequence."""
    return [encode(s) for s in sequences]


# ------------------------------------------------------------------------------------------ k-mers
def kmer_counts(sequences: Sequence[str], k: int) -> np.ndarray:
    """``(len(sequences), 4**k)`` counts of every k-mer over ``A C G T`` (k-mers with an ``N`` skipped).

    Column ``j`` is the k-mer whose letters are the base-4 digits of ``j``, most significant first
    (``AA..A`` is column 0, ``TT..T`` the last).

    >>> kmer_counts(["ACGTA", "AANA"], 2)[:, [1, 6, 11, 12, 0]].tolist()  # AC, CG, GT, TA, AA
    [[1, 1, 1, 1, 0], [0, 0, 0, 0, 1]]
    """
    out = np.zeros((len(sequences), 4 ** k), dtype=np.int64)
    for row, codes in enumerate(encode_many(sequences)):
        if len(codes) < k:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(codes, k)
        valid = (windows < 4).all(axis=1)
        index = windows[valid] @ (4 ** np.arange(k - 1, -1, -1))
        out[row] = np.bincount(index, minlength=4 ** k)
    return out


def all_kmers(k: int) -> list[str]:
    """Every k-mer over ``A C G T`` in the column order of :func:`kmer_counts` (``AA..A`` first).

    >>> all_kmers(2)[:5]
    ['AA', 'AC', 'AG', 'AT', 'CA']
    """
    import itertools

    return ["".join(letters) for letters in itertools.product(BASES, repeat=k)]


def kmers(sequence: str, k: int) -> list[str]:
    """The overlapping k-mers of a sequence, stride 1: ``len(sequence) - k + 1`` of them (none if shorter).

    >>> kmers("ACGTA", 3)
    ['ACG', 'CGT', 'GTA']
    """
    return [sequence[i:i + k] for i in range(len(sequence) - k + 1)]


def dinucleotide_shuffle(sequence: str, rng: random.Random) -> str:
    """A random sequence with exactly the dinucleotide counts (hence also the base counts) of ``sequence``
    and its first and last letters, drawn uniformly among all such sequences (Altschul & Erickson 1985).

    The sequence is an Eulerian walk through the multigraph whose edges are its dinucleotides; every
    other walk is obtained by fixing, for each letter but the last, a random *last* exit such that these
    exits form a tree towards the last letter (Kandel et al. 1996), ordering the other exits of each
    letter at random, and walking from the first letter. Used for controls: a shuffled hairpin keeps
    its composition and loses its order (the pairing of its stem).

    >>> shuffled = dinucleotide_shuffle("ACGTTGCAACGT", random.Random(0))
    >>> sorted(kmers(shuffled, 2)) == sorted(kmers("ACGTTGCAACGT", 2)), shuffled[0], shuffled[-1]
    (True, 'A', 'T')
    """
    if len(sequence) < 3:
        return sequence
    exits: dict[str, list[str]] = {}
    for a, b in zip(sequence, sequence[1:]):
        exits.setdefault(a, []).append(b)
    end = sequence[-1]
    while True:  # rejection sampling of the last exits: accepted when every letter reaches ``end``
        last = {v: rng.choice(e) for v, e in exits.items() if v != end}
        reaches = {end}
        for v in last:
            path = [v]
            while path[-1] not in reaches and len(path) <= len(last):
                path.append(last[path[-1]])
            if path[-1] not in reaches:
                break
            reaches.update(path)
        else:
            break
    order = {}
    for v, e in exits.items():
        rest = list(e)
        if v in last:
            rest.remove(last[v])
        rng.shuffle(rest)
        order[v] = rest + ([last[v]] if v in last else [])
    walk, position = [sequence[0]], {v: 0 for v in order}
    for _ in range(len(sequence) - 1):
        v = walk[-1]
        walk.append(order[v][position[v]])
        position[v] += 1
    return "".join(walk)


def kmer_features(sequences: Sequence[str], max_k: int) -> np.ndarray:
    """k-mer frequencies for ``k = 1..max_k`` (each block divided by its number of k-mers) and
    ``log(length)``: the features of the logistic-regression baseline."""
    blocks = []
    for k in range(1, max_k + 1):
        counts = kmer_counts(sequences, k).astype(np.float32)
        blocks.append(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1))
    lengths = np.log(np.array([[max(len(s), 1)] for s in sequences], dtype=np.float32))
    return np.hstack([*blocks, lengths])


def kmer_logistic_regression(train: Sequence[tuple[str, int]], val: Sequence[tuple[str, int]], max_k: int, *,
                             progress: bool = True) -> tuple[Callable[[Sequence[str]], list[int]], dict]:
    """The k-mer baseline of a classifier: :func:`kmer_features` (k = 1..K), standardised, into a
    multinomial logistic regression (scikit-learn), on ``(sequence, class id)`` pairs.

    K (from ``max(1, max_k - 2)`` to ``max_k``) and the inverse regularisation C (0.1 or 1) are chosen by
    accuracy on ``val`` (on ``train`` when ``val`` is empty). Returns ``(predict, {"max_k", "C",
    "val_accuracy"})`` where ``predict(sequences)`` gives class ids.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def xy(part, k):
        return kmer_features([s for s, _ in part], k), np.array([y for _, y in part])

    best = None
    for k in range(max(1, max_k - 2), max_k + 1):
        x_train, y_train = xy(train, k)
        x_val, y_val = xy(val, k) if val else (x_train, y_train)
        for c in (0.1, 1.0):
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
            model.fit(x_train, y_train)
            accuracy = float((model.predict(x_val) == y_val).mean())
            if progress:
                print(f"k-mer baseline: k <= {k}, C = {c}: validation accuracy {accuracy:.4f}", file=sys.stderr)
            if best is None or accuracy > best[0]:
                best = (accuracy, k, c, model)
    accuracy, k, c, model = best
    return (lambda sequences: model.predict(kmer_features(sequences, k)).tolist()), \
        {"max_k": k, "C": c, "val_accuracy": accuracy}


# ----------------------------------------------------------------------------------------- Markov
SMOOTHINGS = ("add-one", "witten-bell")


class MarkovModel:
    """Order-k Markov model of bases: ``P(x_i | x_{i-k} .. x_{i-1})`` from counts.

    Contexts are strings over ``A C G T N`` and ``^`` (before the sequence start); only targets in
    ``A C G T`` are counted or scored. With ``n(c, x)`` the count of base ``x`` after context ``c``,
    ``n(c) = sum_x n(c, x)`` and ``T(c)`` the number of distinct bases seen after ``c``:

    - add-one: ``P(x | c) = (n(c, x) + 1) / (n(c) + 4)``;
    - Witten-Bell (interpolated, Witten & Bell 1991; Chen & Goodman 1998):
      ``P_k(x | c) = (n(c, x) + T(c) P_{k-1}(x | c')) / (n(c) + T(c))`` where ``c'`` drops the oldest
      symbol of ``c``, ``P_{k-1}`` for an unseen context (``n(c) = 0``), and ``P_{-1}(x) = 1/4``.

    Args:
        order: ``k >= 0``, the number of preceding symbols in a context.
        smoothing: ``'add-one'`` or ``'witten-bell'``.

    >>> model = MarkovModel(2, "witten-bell").fit(["ACGTACGT"])
    >>> round(model.bits_per_base(["ACGT"]), 3)
    0.186
    """

    def __init__(self, order: int, smoothing: str = "witten-bell") -> None:
        if isinstance(order, bool) or not isinstance(order, int) or order < 0:
            raise ValueError(f"order must be an integer >= 0, got {order!r}")
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHINGS)}, got {smoothing!r}")
        self.order, self.smoothing = order, smoothing
        self.tables: list[np.ndarray] = []  # tables[j]: (6**j, 4) probabilities for contexts of length j

    def fit(self, sequences: Iterable[str]) -> MarkovModel:
        """Count every order up to ``order`` and build the smoothed probability tables."""
        contexts, targets = _contexts(sequences, self.order)
        previous = np.full((1, 4), 0.25)
        self.tables = []
        for j in range(self.order + 1):
            counts = np.bincount(contexts[j] * 4 + targets, minlength=6 ** j * 4).reshape(6 ** j, 4).astype(float)
            total = counts.sum(axis=1, keepdims=True)
            if self.smoothing == "add-one":
                table = (counts + 1) / (total + 4)
            else:
                lower = previous[np.arange(6 ** j) % max(6 ** (j - 1), 1)] if j else previous
                types = (counts > 0).sum(axis=1, keepdims=True)
                with np.errstate(invalid="ignore", divide="ignore"):
                    table = np.where(total > 0, (counts + types * lower) / (total + types), lower)
            self.tables.append(table)
            previous = table
        return self

    def probability(self, context: str, base: str) -> float:
        """``P(base | context)``; ``context`` holds the ``order`` preceding symbols (``^`` before the start)."""
        if len(context) != self.order:
            raise ValueError(f"context must have {self.order} symbols, got {context!r}")
        code = sum((_CODE[c] if c != "^" else _START) * 6 ** m for m, c in enumerate(reversed(context)))
        return float(self.tables[self.order][code, _CODE[base]])

    def log2_likelihood(self, sequences: Iterable[str]) -> tuple[float, int]:
        """``(sum of log2 P over every scored base, number of scored bases)``."""
        if not self.tables:
            raise RuntimeError("fit the model first")
        contexts, targets = _contexts(sequences, self.order)
        probabilities = self.tables[self.order][contexts[self.order], targets]
        return float(np.log2(probabilities).sum()), int(targets.size)

    def bits_per_base(self, sequences: Iterable[str]) -> float:
        """Mean ``-log2 P`` per scored base (``nan`` when nothing is scored)."""
        total, count = self.log2_likelihood(sequences)
        return -total / count if count else math.nan


def _contexts(sequences: Iterable[str], order: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Context codes of every order ``0..order`` and the targets, for every base in ``A C G T``.

    Each sequence is preceded by ``order`` start symbols, so a context never reaches into the sequence
    before it; the code of a context is ``sum_m symbol(x_{i-m}) * 6**(m-1)`` (nearest symbol lowest).
    """
    parts = []
    for codes in encode_many(sequences):
        parts.append(np.full(order, _START, dtype=np.int64))
        parts.append(codes)
    symbols = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    positions = np.flatnonzero(symbols < 4)
    targets = symbols[positions]
    contexts = [np.zeros(positions.size, dtype=np.int64)]
    for j in range(1, order + 1):
        contexts.append(contexts[-1] + symbols[positions - j] * 6 ** (j - 1))
    return contexts, targets


def markov_baselines(train: Sequence[str], test: Sequence[str], max_order: int) -> dict:
    """Bits per base on ``test`` of Markov models of orders 1..``max_order`` fitted on ``train``, with
    each smoothing: ``{"markov_bits_per_base": {smoothing: {order: bits}}, "best_markov": {...}}``."""
    table: dict[str, dict[str, float]] = {smoothing: {} for smoothing in SMOOTHINGS}
    for smoothing in SMOOTHINGS:
        for order in range(1, max_order + 1):
            table[smoothing][str(order)] = MarkovModel(order, smoothing).fit(train).bits_per_base(test)
    best = min((bits, smoothing, int(order)) for smoothing, row in table.items() for order, bits in row.items())
    return {"markov_bits_per_base": table,
            "best_markov": {"bits_per_base": best[0], "smoothing": best[1], "order": best[2]}}
