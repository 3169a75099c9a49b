"""Music: polyphonic piano rolls or monophonic melodies, learned, measured and sampled as MIDI.

Two modes, one command:

- ``polyphonic`` (default; the benchmark of Boulanger-Lewandowski et al. 2012): each piece becomes a
  piano roll of 88 keys sampled every ``step`` quarter notes (1.0 = quarter notes, as the JSB Chorales
  set), and a :class:`~rnnkit.models.PianoRollModel` predicts which keys sound in the next frame with
  **88 independent Bernoulli outputs** (no autoregression over the keys). The first frame is predicted
  from a silent frame, so every frame of a piece is scored. The metric is the negative log-likelihood
  per frame (time step) in nats on held-out pieces, beside two baselines fitted on the same training
  split: independent per-key frequencies, and "repeat the previous step" (each key keeps its value
  with a probability fitted on the training frames).
- ``melodic``: the top line of each piece as tokens ``"<pitch>:<duration>"`` (``"r:<duration>"`` for
  rests), one tune one sequence ending in ``EOS``, learned by a :class:`~rnnkit.models.SequenceGenerator`
  (its condition is one constant class, i.e. a learned start state); the metric is nats per token
  (``EOS`` included) beside a unigram baseline.

Pieces are split into train, validation and test parts with the seed, after exact duplicates are
removed (the same roll or token sequence twice would leak across the split). Data: music files or
folders (:mod:`rnnkit.data.music`: MIDI, MusicXML, ABC, ...) or the built-in ``bach_chorales`` and
``essen`` corpora (:mod:`rnnkit.datasets.music`).

>>> settings = MusicSettings(dataset="essen")
>>> APP.normalize(settings).mode, MusicSettings().model.cell
('melodic', 'lstm')
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rnnkit.apps import lifecycle
from rnnkit.data import music as notation
from rnnkit.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary
from rnnkit.errors import InputError
from rnnkit.models.common import RecurrentConfig
from rnnkit.models.generator import SequenceGenerator
from rnnkit.models.pianoroll import PianoRollModel
from rnnkit.options import nested, option
from rnnkit.train import TrainConfig
from rnnkit.train.progress import is_shown
from rnnkit.types import IGNORE_INDEX

MODES = ("polyphonic", "melodic")
DATASETS = ("bach_chorales", "essen")


@dataclasses.dataclass
class MusicSettings:
    """Where the music comes from, how it becomes sequences, how it is split, and the network."""

    data: tuple[str, ...] = option((), "music files or folders (MIDI, MusicXML, ABC); none: a built-in --dataset")
    dataset: str | None = option(None, "built-in corpus when no --data: bach_chorales (polyphonic) or essen "
                                       "(melodic folk tunes)")
    mode: str | None = option(None, "'polyphonic' (88-key piano roll) or 'melodic' (pitch:duration tokens of the "
                                    "top line); default: melodic for essen, else polyphonic")
    step: float = option(1.0, "polyphonic: piano-roll time step in quarter notes (1.0: quarter notes, as JSB)")
    chunk_length: int = option(200, "longest training sequence: longer rolls are cut into chunks, longer tunes "
                                    "truncated (evaluation uses whole pieces)")
    val_fraction: float = option(0.2, "share of the pieces for validation")
    test_fraction: float = option(0.2, "share of the pieces for the test")
    max_pieces: int = option(0, "use at most this many pieces, drawn with the seed (0: all)")
    min_freq: int = option(1, "melodic: keep tokens seen at least this often in training (others become <unk>)")
    embedding_dim: int = option(32, "melodic: size of the token embeddings")
    model: RecurrentConfig = nested(RecurrentConfig, "the recurrent network", cell="lstm", hidden_size=128)

    def __post_init__(self) -> None:
        self.data = tuple(self.data)
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"mode must be 'polyphonic' or 'melodic', got {self.mode!r}")
        if self.dataset is not None and self.dataset not in DATASETS:
            raise ValueError(f"unknown music dataset {self.dataset!r}; choose bach_chorales or essen")
        if not (isinstance(self.step, (int, float)) and math.isfinite(self.step) and self.step > 0):
            raise ValueError(f"step must be a positive number of quarter notes, got {self.step}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")
        for name, low in (("chunk_length", 2), ("min_freq", 1), ("embedding_dim", 1), ("max_pieces", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")


# ------------------------------------------------------------------------------------------ data
def load_pieces(settings: MusicSettings, progress: bool = True) -> tuple[list[notation.Piece], str]:
    """The pieces of the user's files or of the built-in corpus, and a description of the source."""
    if settings.data:
        return notation.read_pieces(settings.data, progress=progress), ", ".join(settings.data)
    from rnnkit.datasets import music as corpora

    return corpora.load(settings.dataset, progress=progress), f"built-in dataset {settings.dataset}"


def encode_pieces(pieces: list[notation.Piece], settings: MusicSettings) -> list[tuple[str, object]]:
    """``(name, roll or tokens)`` per piece, empty ones and exact duplicates left out."""
    seen, encoded = set(), []
    for piece in pieces:
        if settings.mode == "polyphonic":
            value = notation.piano_roll(piece.notes, settings.step)
            key = hashlib.sha256(value.tobytes() + str(value.shape).encode()).hexdigest()
            empty = not value.any()
        else:
            value = notation.melody_tokens(piece.notes)
            key, empty = " ".join(value), not value
        if not empty and key not in seen:
            seen.add(key)
            encoded.append((piece.name, value))
    return encoded


def split_pieces(items: list, settings: MusicSettings, seed: int) -> tuple[list, list, list]:
    """``(train, val, test)``: the items shuffled with ``seed`` (``max_pieces`` kept), then cut."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    if settings.max_pieces:
        order = order[:settings.max_pieces]
    n = len(order)
    n_test, n_val = round(n * settings.test_fraction), round(n * settings.val_fraction)
    if n - n_test - n_val < 1 or (settings.test_fraction and n_test < 1):
        raise InputError(f"{n} distinct piece(s) are too few to split into train, validation and test parts; give "
                         "more music or lower --val-fraction/--test-fraction")
    parts = order[:n - n_test - n_val], order[n - n_test - n_val:n - n_test], order[n - n_test:]
    return tuple([items[i] for i in part] for part in parts)


def shifted(roll: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` of a roll: the inputs are the frames shifted right after a silent frame."""
    frames = torch.from_numpy(np.asarray(roll, dtype=np.float32))
    return torch.cat([torch.zeros(1, frames.shape[1]), frames[:-1]]), frames


class RollChunks(Dataset):
    """Pieces as ``(inputs, targets)`` frame chunks of at most ``chunk`` frames."""

    def __init__(self, rolls: list[np.ndarray], chunk: int | None) -> None:
        self.items = []
        for roll in rolls:
            inputs, targets = shifted(roll)
            size = chunk or len(roll)
            self.items += [(inputs[i:i + size], targets[i:i + size]) for i in range(0, len(roll), size)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def collate_rolls(items) -> dict:
    lengths = torch.tensor([len(x) for x, _ in items])
    inputs = torch.nn.utils.rnn.pad_sequence([x for x, _ in items], batch_first=True)
    targets = torch.nn.utils.rnn.pad_sequence([y for _, y in items], batch_first=True)
    return {"inputs": inputs, "targets": targets, "lengths": lengths}


class TuneDataset(Dataset):
    """Tunes as target ids ending in ``EOS`` (cut to ``max_length``); the condition is class 0."""

    def __init__(self, tunes: list[list[str]], vocab: Vocabulary, max_length: int | None) -> None:
        encoded = [[vocab.token_to_id(t) if t in vocab else UNK_ID for t in tokens] + [EOS_ID] for tokens in tunes]
        self.items = [ids[:max_length] if max_length else ids for ids in encoded]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def collate_tunes(items) -> dict:
    targets = torch.full((len(items), max(len(t) for t in items)), IGNORE_INDEX, dtype=torch.int64)
    for row, ids in enumerate(items):
        targets[row, :len(ids)] = torch.tensor(ids)
    return {"inputs": torch.zeros(len(items), dtype=torch.int64), "targets": targets}


# ------------------------------------------------------------------------------------ baselines
def fit_roll_baselines(rolls: list[np.ndarray]) -> dict:
    """Per-key on-frequencies and the probability that a key keeps its value from one frame to the next,
    on training rolls, each with add-one smoothing (so no probability is 0 or 1)."""
    frames = np.concatenate(rolls).astype(np.float64)
    on = frames.sum(0)
    kept = total = 0
    for roll in rolls:
        before = np.concatenate([np.zeros((1, roll.shape[1]), roll.dtype), roll[:-1]])
        kept += int((before == roll).sum())
        total += roll.size
    return {"key_frequencies": ((on + 1) / (len(frames) + 2)).tolist(), "repeat_probability": (kept + 1) / (total + 2)}


def roll_baseline_nll(rolls: list[np.ndarray], baselines: dict) -> dict:
    """NLL per frame (nats) of the two baselines on ``rolls`` (every frame, the first after silence)."""
    p = np.asarray(baselines["key_frequencies"])
    a = baselines["repeat_probability"]
    frequency = repeat = 0.0
    frames = 0
    for roll in rolls:
        x = roll.astype(np.float64)
        before = np.concatenate([np.zeros((1, x.shape[1])), x[:-1]])
        frequency -= float((x * np.log(p) + (1 - x) * np.log1p(-p)).sum())
        same = (x == before).sum()
        repeat -= float(same * math.log(a) + (x.size - same) * math.log1p(-a))
        frames += len(x)
    return {"frequency_baseline_nll": frequency / frames, "repeat_baseline_nll": repeat / frames}


def unigram_counts(tunes: list[list[int]], vocab_size: int) -> list[int]:
    counts = Counter(t for ids in tunes for t in ids)
    return [counts.get(i, 0) for i in range(vocab_size)]


def unigram_nll(tunes: list[list[int]], counts: list[int]) -> float:
    """Nats per token of the add-one unigram model over the tokens that can be targets (not PAD or BOS)."""
    targets = [i for i in range(len(counts)) if i not in (PAD_ID, BOS_ID)]
    total = sum(counts[i] for i in targets) + len(targets)
    log_p = {i: math.log((counts[i] + 1) / total) for i in targets}
    tokens = [t for ids in tunes for t in ids]
    return -sum(log_p[t] for t in tokens) / len(tokens)


# --------------------------------------------------------------------------------------- metrics
@torch.no_grad()
def roll_nll(model: PianoRollModel, rolls: list[np.ndarray], batch_size: int = 16) -> float:
    """The model's NLL per frame (nats) over whole pieces, weighted by their frames."""
    model.eval()
    device = next(model.parameters()).device
    total, frames = 0.0, 0
    data = RollChunks(rolls, None)
    for start in range(0, len(data), batch_size):
        batch = collate_rolls([data[i] for i in range(start, min(start + batch_size, len(data)))])
        loss = model(batch["inputs"].to(device), batch["targets"].to(device), lengths=batch["lengths"]).loss
        total += float(loss) * int(batch["lengths"].sum())
        frames += int(batch["lengths"].sum())
    return total / frames


@torch.no_grad()
def tune_nll(model: SequenceGenerator, tunes: list[list[int]], batch_size: int = 64) -> float:
    """The model's nats per token over whole tunes (``EOS`` included)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(tunes), batch_size):
        batch = collate_tunes(tunes[start:start + batch_size])
        loss = model(batch["inputs"].to(device), batch["targets"].to(device)).loss
        counted = int((batch["targets"] != IGNORE_INDEX).sum())
        total, count = total + float(loss) * counted, count + counted
    return total / count


def measure(model, settings: MusicSettings, facts: dict, items: list, vocab: Vocabulary | None) -> dict:
    """Test metrics of ``items`` (rolls or token lists) with the baselines fitted in training."""
    if settings.mode == "polyphonic":
        result = {"nll_per_step": roll_nll(model, items), **roll_baseline_nll(items, facts["baselines"]),
                  "frames": int(sum(len(r) for r in items))}
        result["beats_baselines"] = result["nll_per_step"] < min(result["frequency_baseline_nll"],
                                                                 result["repeat_baseline_nll"])
    else:
        tunes = TuneDataset(items, vocab, None).items
        result = {"nats_per_token": tune_nll(model, tunes), "unigram_baseline_nats": unigram_nll(
            tunes, facts["unigram_counts"]), "tokens": sum(len(t) for t in tunes)}
        result["bits_per_token"] = result["nats_per_token"] / math.log(2)
        result["beats_baselines"] = result["nats_per_token"] < result["unigram_baseline_nats"]
    result["pieces"] = len(items)
    return result


@torch.no_grad()
def plot_prediction(model: PianoRollModel, roll: np.ndarray, path: Path, step: float) -> None:
    """A test piece's roll above the model's probability of each key at each frame, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    inputs, _ = shifted(roll)
    probs = torch.sigmoid(model(inputs[None].to(next(model.parameters()).device)).output[0]).cpu().numpy()
    used = np.flatnonzero(roll.any(axis=0))
    low, high = max(0, int(used.min()) - 3), min(notation.KEYS - 1, int(used.max()) + 3)
    extent = (0, len(roll) * step, notation.LOWEST + low - 0.5, notation.LOWEST + high + 0.5)
    figure, axes = plt.subplots(2, 1, figsize=(min(16.0, max(6.0, len(roll) * 0.12)), 6), sharex=True)
    for ax, image, title in ((axes[0], roll, "test piece"), (axes[1], probs, "model: p(key sounds | frames before)")):
        shown = ax.imshow(image[:, low:high + 1].T, origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1,
                          interpolation="nearest", extent=extent)
        ax.set_ylabel("MIDI pitch")
        ax.set_title(title)
    figure.colorbar(shown, ax=axes, fraction=0.03)
    axes[1].set_xlabel("time (quarter notes)")
    figure.savefig(path, dpi=100)
    plt.close(figure)


# ---------------------------------------------------------------------------------------- verbs
class Music(lifecycle.App):
    name = "music"
    settings_class = MusicSettings
    train_defaults = {"max_steps": 2000, "batch_size": 16, "lr": 3e-3, "eval_every": 100, "checkpoint_every": 100,
                      "log_every": 50, "early_stopping_patience": 5}

    def normalize(self, settings: MusicSettings) -> MusicSettings:
        if settings.data:
            data, dataset = tuple(str(Path(p).resolve()) for p in settings.data), None
        else:
            data, dataset = (), settings.dataset or ("essen" if settings.mode == "melodic" else "bach_chorales")
        mode = settings.mode or ("melodic" if dataset == "essen" else "polyphonic")
        return dataclasses.replace(settings, data=data, dataset=dataset, mode=mode)

    def prepare(self, settings: MusicSettings, config: TrainConfig, run: Path) -> lifecycle.Prepared:
        pieces, source = load_pieces(settings, progress=is_shown())
        items = encode_pieces(pieces, settings)
        train_part, val_part, test_part = split_pieces([v for _, v in items], settings, config.seed)
        sizes = {"train": len(train_part), "val": len(val_part), "test": len(test_part),
                 "duplicates_removed": len(pieces) - len(items)}
        facts = {"source": source, "mode": settings.mode, "pieces": sizes}
        if settings.mode == "polyphonic":
            facts.update(frames={"train": int(sum(map(len, train_part)))}, baselines=fit_roll_baselines(train_part))
            return lifecycle.Prepared(RollChunks(train_part, settings.chunk_length),
                                      RollChunks(val_part, settings.chunk_length) if val_part else None,
                                      test=test_part, facts=facts, collate_fn=collate_rolls)
        vocab = Vocabulary.build([" ".join(t) for t in train_part], level="word", min_freq=settings.min_freq)
        if len(vocab) <= 4:
            raise InputError(f"{source}: no melody token is seen {settings.min_freq} times in training; lower --min-freq")
        train_set = TuneDataset(train_part, vocab, settings.chunk_length)
        facts.update(vocab_size=len(vocab), unigram_counts=unigram_counts(train_set.items, len(vocab)),
                     tokens={"train": sum(map(len, train_set.items))})
        return lifecycle.Prepared(train_set, TuneDataset(val_part, vocab, settings.chunk_length) if val_part else None,
                                  test=test_part, vocab=vocab, facts=facts, collate_fn=collate_tunes)

    def build_model(self, settings: MusicSettings, data: lifecycle.Prepared) -> torch.nn.Module:
        recurrent = dataclasses.asdict(settings.model)
        if settings.mode == "polyphonic":
            return PianoRollModel(keys=notation.KEYS, **recurrent)
        return SequenceGenerator(vocab_size=data.facts["vocab_size"], embedding_dim=settings.embedding_dim,
                                 num_conditions=1, condition_size=settings.model.hidden_size, bos_id=BOS_ID,
                                 eos_id=EOS_ID, pad_id=PAD_ID, max_length=settings.chunk_length, **recurrent)

    def describe(self, settings: MusicSettings, data: lifecycle.Prepared, model: torch.nn.Module) -> str:
        facts, config = data.facts, settings.model
        pieces = facts["pieces"]
        unit = (f"{facts['frames']['train']:,} training frames of {settings.step:g} quarter notes"
                if settings.mode == "polyphonic" else
                f"{facts['tokens']['train']:,} training tokens, vocabulary {facts['vocab_size']}")
        return (f"music ({settings.mode}): {facts['source']}: {pieces['train']}/{pieces['val']}/{pieces['test']} "
                f"pieces (train/val/test; {pieces['duplicates_removed']} duplicates removed), {unit}; "
                f"{config.cell.upper()}({config.hidden_size}) x {config.num_layers}, "
                f"{sum(p.numel() for p in model.parameters()):,} parameters")

    def report(self, model, settings: MusicSettings, data: lifecycle.Prepared, run: Path, fitted: dict) -> dict:
        result = {"mode": settings.mode, "steps": fitted.get("step"), "train_seconds": fitted.get("train_seconds")}
        if data.test:
            result["test"] = measure(model, settings, data.facts, data.test, data.vocab)
            if settings.mode == "polyphonic":
                plot_prediction(model, data.test[0], run / "prediction.png", settings.step)
        return result


APP = Music()


def train(settings: MusicSettings | None = None, config: TrainConfig | None = None, out: str | Path = "runs/music",
          *, resume: bool = False, progress: bool = True) -> dict:
    """Train as ``settings`` say (default: polyphonic Bach chorales) into ``out``; returns the test report."""
    return lifecycle.train(APP, settings, config, out, resume=resume, progress=progress)


def load_run(run: str | Path, device: str = "cpu"):
    """The trained model (evaluation mode), its vocabulary (melodic) and the run."""
    return lifecycle.load_run(run, APP, device)


def evaluate(run: str | Path, data: list[str] | None = None, *, device: str = "cpu") -> dict:
    """Test metrics and baselines on music files or folders (default: the run's own test split)."""
    model, vocab, info = load_run(run, device)
    settings = info.settings
    if data:
        settings = dataclasses.replace(settings, data=tuple(data), max_pieces=0)
        items = [v for _, v in encode_pieces(notation.read_pieces(data), settings)]
        where = ", ".join(data)
        if not items:
            raise InputError(f"{where}: no piece with notes {'on the piano' if settings.mode == 'polyphonic' else ''}")
    else:
        items = split_pieces([v for _, v in encode_pieces(load_pieces(settings)[0], settings)], settings, info.seed)[2]
        where = "the run's test split"
        if not items:
            raise InputError(f"{run} has no test split (test_fraction 0); pass --data FILES")
    result = measure(model, settings, info.facts, items, vocab)
    result["evaluated_on"], result["mode"] = where, settings.mode
    return result


# -------------------------------------------------------------------------------------- sampling
def read_prime(prime: str) -> notation.Piece:
    """The piece ``prime`` names: a file (``FILE#N``: its N-th piece, e.g. a tune of an ABC book) or a
    work of music21's corpus (``bach/bwv66.6``)."""
    name, _, number = prime.partition("#")
    path = Path(name)
    if not path.exists():
        from music21 import corpus

        try:
            found = corpus.getWork(name)
        except Exception:  # music21's CorpusException, or a malformed name
            found = None
        if not found:
            raise InputError(f"--prime {prime}: no such file, nor a work of music21's corpus (e.g. bach/bwv66.6)")
        from rnnkit.datasets.music import corpus_file

        path = corpus_file(found)
    pieces = notation.read_files([path], progress=False)
    if number and (not number.isdigit() or not 1 <= int(number) <= len(pieces)):
        raise InputError(f"--prime {prime}: {path.name} holds {len(pieces)} piece(s); use #1 to #{len(pieces)}")
    piece = pieces[int(number) - 1 if number else 0]
    if not piece.notes:
        raise InputError(f"--prime {prime}: {piece.name} has no notes")
    return piece


def _check_sampling(temperature: float, top_k: int | None, top_p: float | None, length: int, prime_length: int,
                    tempo: float, out: str | Path) -> None:
    if Path(out).suffix.lower() not in (".mid", ".midi"):
        raise InputError(f"--out {out}: the sample is a MIDI file; name it *.mid")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise InputError(f"--temperature must be a number >= 0 (0: the likeliest choice), got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise InputError(f"--top-p must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    for name, value in (("--length", length), ("--prime-length", prime_length)):
        if value < 1:
            raise InputError(f"{name} must be >= 1, got {value}")
    if not (math.isfinite(tempo) and tempo > 0):
        raise InputError(f"--tempo must be a positive number of beats per minute, got {tempo}")


def _sample_roll(model: PianoRollModel, opening, settings: MusicSettings, prime_length: int, length: int,
                 temperature: float, seed: int | None) -> tuple[list, np.ndarray, float, int]:
    """``(notes, roll, step, primed frames)``: the prime's first frames, then ``length`` sampled frames."""
    primed = notation.piano_roll(opening.notes, settings.step)[:prime_length] if opening else np.zeros((0, 88))
    prefix = torch.cat([torch.zeros(1, notation.KEYS), torch.from_numpy(primed.astype(np.float32))])[None]
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    new = model.generate(prefix, length, temperature=temperature, generator=generator)[0].numpy()
    roll = np.concatenate([primed, new]).astype(np.uint8)
    return notation.roll_to_notes(roll, settings.step), roll, settings.step, len(primed)


def _sample_melody(model: SequenceGenerator, vocab: Vocabulary, opening, prime_length: int, length: int,
                   **options) -> tuple[list, np.ndarray, float, int]:
    """``(notes, roll, step, primed frames)``: the prime's first notes, then tokens until ``EOS`` or ``length``."""
    from rnnkit.sampling import stream

    opening_tokens = notation.melody_tokens(opening.notes)[:prime_length] if opening else []
    ids = [vocab.token_to_id(t) if t in vocab else UNK_ID for t in opening_tokens]
    state = model.initial_state(torch.zeros(1, dtype=torch.int64))
    generated = stream(model, [BOS_ID, *ids], state=state, max_new_tokens=length, eos_id=EOS_ID, **options)
    tokens = opening_tokens + [vocab.id_to_token(i) for i in generated if i > EOS_ID]
    notes, step = notation.tokens_to_notes(tokens), 0.25
    return notes, notation.piano_roll(notes, step), step, round(notation.tokens_duration(opening_tokens) / step)


def sample(run: str | Path, out: str | Path, *, prime: str | None = None, prime_length: int = 8, length: int = 64,
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
           tempo: float = 100.0) -> dict:
    """Generate music into the MIDI file ``out`` and a piano-roll PNG beside it (same name, ``.png``).

    ``prime`` (a file or corpus work, see :func:`read_prime`) gives the opening: its first
    ``prime_length`` frames (polyphonic) or notes (melodic), which the output repeats before the
    ``length`` new frames or tokens. Polyphonic runs sample each key from its Bernoulli with logits
    divided by ``temperature`` (top-k/top-p do not apply to independent keys); melodic runs sample
    tokens with ``rnnkit.sampling`` (temperature, top-k, top-p) until ``EOS`` or ``length``.
    """
    _check_sampling(temperature, top_k, top_p, length, prime_length, tempo, out)
    model, vocab, info = load_run(run)
    opening = read_prime(prime) if prime else None
    return sample_model(model, vocab, info.settings, out, opening=opening, prime_length=prime_length, length=length,
                        temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, tempo=tempo)


def sample_model(model: torch.nn.Module, vocab: Vocabulary | None, settings: MusicSettings, out: str | Path, *,
                 opening: notation.Piece | None = None, prime_length: int = 8, length: int = 64,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 seed: int | None = None, tempo: float = 100.0) -> dict:
    """:func:`sample` on a loaded model (``rnnkit serve`` uses it): the MIDI file ``out`` and its PNG,
    ``opening`` a piece already read (:func:`read_prime`) or ``None``."""
    _check_sampling(temperature, top_k, top_p, length, prime_length, tempo, out)
    out = Path(out)
    if settings.mode == "polyphonic" and (top_k is not None or top_p is not None):
        raise InputError("--top-k/--top-p choose among tokens; a polyphonic run samples 88 independent keys: "
                         "use --temperature only")
    if settings.mode == "polyphonic":
        notes, roll, step, primed = _sample_roll(model, opening, settings, prime_length, length, temperature, seed)
    else:
        notes, roll, step, primed = _sample_melody(model, vocab, opening, prime_length, length, temperature=temperature,
                                                   top_k=top_k, top_p=top_p, seed=seed)
    if not notes:
        raise InputError("the model generated only silence; raise --temperature or give a --prime")
    notation.write_midi(notes, out, tempo_bpm=tempo)
    picture = notation.plot_piano_roll(roll, out.with_suffix(".png"), step=step, primed=primed,
                                       title=f"{settings.mode} sample, temperature {temperature:g}")
    return {"midi": str(out), "png": str(picture), "notes": len(notes), "seconds": round(
        max(n.end for n in notes) * 60 / tempo, 1), "primed_with": opening.name if opening else None}
