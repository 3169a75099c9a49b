"""Speech recognition from audio: word recognition (many-to-one) and transcription (CTC), one app.

- ``task="words"``: one word per clip -> its label, a :class:`~rnnkit.models.SequenceClassifier` over
  the feature frames (pooled over the valid frames); accuracy and a confusion-matrix PNG.
- ``task="ctc"``: a clip of several words -> its text, a :class:`~rnnkit.models.CTCRecognizer`
  (stacked bidirectional recurrent layers over frames, CTC loss); greedy and prefix-beam decoding,
  character and word error rates, a spectrogram PNG with the CTC alignment of one test clip.

Data: ``--data FILE`` (CSV/TSV/JSONL with a WAV path and a transcript per row; any sample rate), the
built-in ``synthetic`` speech (:mod:`rnnkit.datasets.speech`: espeak-ng and flite voices; whole voices
held out for validation and test), or ``japanese_vowels`` (sktime: 9 speakers, 12 LPC cepstra per
frame; the words task then recognises the speaker). Features (:mod:`rnnkit.data.audio`): log-mel or
Sphinx-style MFCCs, normalised per utterance or with training-set statistics, cached in the run's
``features/`` (or ``--cache-dir``). A CTC run on 13 MFCCs over digits is also checked on the 31 real
TIDIGITS utterances of Debian's ``pocketsphinx-testdata``.

>>> settings = SpeechSettings(task="ctc")
>>> settings.model.bidirectional, settings.features
(True, 'logmel')
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rnnkit.apps import lifecycle
from rnnkit.apps.classify import format_confusion, plot_confusion, scores
from rnnkit.apps.common import check_output_file, format_metrics
from rnnkit.data import audio
from rnnkit.data.vocab import UNK_ID, Vocabulary
from rnnkit.datasets import speech as synth
from rnnkit.errors import InputError
from rnnkit.models.classifier import SequenceClassifier, SequenceClassifierConfig
from rnnkit.models.ctc import (
    CTCRecognizer, CTCRecognizerConfig, beam_decode, frames_needed, greedy_decode, text_error_rates, transcript,
)
from rnnkit.options import nested, option
from rnnkit.train import TrainConfig
from rnnkit.train.progress import is_shown
from rnnkit.types import IGNORE_INDEX

TASKS = ("words", "ctc")
DATASETS = ("synthetic", "japanese_vowels")
ALPHABET = "abcdefghijklmnopqrstuvwxyz' "

#: Published numbers put beside ours: different data, so never compared as equal (shared/ANCHORS.md §10).
ANCHORS = {
    "words": [
        {"result": "test accuracy 85.5 %", "setting": "Free Spoken Digit Dataset, GRU 2x512/2x256/1x128 + attention, "
         "13 MFCC, 3 epochs (eonu/torch-fsdd demo)", "differs": "real recordings (8 kHz, 3+ speakers, their split), "
         "a far larger model; ours: synthetic voices, unseen voices in the test"},
        {"result": "test accuracy 94.4 %", "setting": "Google Speech Commands, 1-layer LSTM 512, 18k iterations "
         "(dsalaj/GoogleSpeechCommandsRNN)", "differs": "real crowd-sourced recordings of 10 commands plus silence "
         "and unknown, ~2000 speakers; ours: synthetic voices"},
    ],
    "ctc": [
        {"result": "phone error rate 18.6 %", "setting": "TIMIT core test, CTC 3-layer bidirectional LSTM 250 "
         "(Graves, Mohamed, Hinton 2013)", "differs": "phones of read English sentences by 630 speakers, beam 100; "
         "ours: digit strings from synthetic voices, characters or words"},
    ],
    "japanese_vowels": [
        {"result": "test accuracy 94.1 %", "setting": "Japanese Vowels speaker recognition, the same 270/370 split: "
         "Kudo, Toyama, Shimbo 1999, 'Multidimensional curve classification using passing-through regions', "
         "Pattern Recognition Letters 20(11-13):1103-1111 (as quoted by the UCI data set page)",
         "differs": "same data and split; a non-neural method"},
    ],
}


@dataclasses.dataclass
class SpeechSettings:
    """What to recognise, from which audio, with which features and network."""

    task: str = option("words", "'words' (one word per clip -> its label) or 'ctc' (a clip of words -> its text)",
                       choices=TASKS)
    data: str | None = option(None, "a CSV, TSV or JSONL transcript file: a WAV path and a text per row")
    dataset: str | None = option(None, "built-in data when --data is not given: 'synthetic' (espeak-ng and "
                                       "flite) or 'japanese_vowels' (words task: speaker recognition)")
    audio_column: str = option("file", "column of --data holding the WAV path (relative to the file's folder)")
    text_column: str = option("text", "column of --data holding the word (words task) or transcript (ctc)")
    speaker_column: str | None = option(None, "column of --data naming the speaker: whole speakers are held out")
    encoding: str = option("utf-8", "encoding of --data")
    val_fraction: float = option(0.1, "--data: share of the clips (or speakers) for validation")
    test_fraction: float = option(0.2, "--data: share of the clips (or speakers) for the test")
    words: str = option("digits", "synthetic words task: 'digits', 'commands' or a comma-separated word list")
    voices: int = option(24, "synthetic: how many voices speak (of 89: 84 espeak-ng accent x variant, 5 flite)")
    clips_per_voice: int = option(20, "synthetic: clips each voice says")
    max_words: int = option(4, "synthetic ctc task: at most this many digits per clip")
    val_voices: int = option(3, "synthetic: whole voices held out for validation")
    test_voices: int = option(4, "synthetic: whole voices held out for the test (unseen speakers)")
    snr_db: float = option(15.0, "synthetic: lowest signal-to-noise ratio of the added white noise in dB "
                                 "(each clip draws one up to 20 dB higher)")
    features: str = option("logmel", "'logmel' (log mel filterbank) or 'mfcc' (Sphinx-style cepstra)",
                           choices=audio.FEATURE_KINDS)
    n_features: int = option(0, "features per frame; 0: 40 mel bands or 13 MFCCs")
    sample_rate: int = option(16000, "audio is resampled to this rate before the features")
    normalize: str = option("auto", "'utterance' (each clip's own mean and std per feature), 'train' (the "
                                    "training set's), 'none'; auto: train for japanese_vowels, else utterance",
                            choices=("auto", *audio.NORMALIZATIONS))
    unit: str = option("word", "ctc: output units, 'word' (the training transcripts' words) or 'char' (--alphabet)",
                       choices=("word", "char"))
    alphabet: str = option(ALPHABET, "ctc with --unit char: the characters a (lowercased) transcript may hold")
    beam_size: int = option(8, "ctc: prefix beam search width for the reported beam error rates")
    summary: str = option("mean", "words task: how the classifier pools the frames (last, mean, max, attention)",
                          choices=("last", "mean", "max", "attention"))
    cache_dir: str | None = option(None, "where computed features are kept (default: the run's features/)")
    model: CTCRecognizerConfig = nested(
        CTCRecognizerConfig, "the recurrent network (the words task builds a SequenceClassifier with the same "
        "cell, sizes and layers)", cell="gru", hidden_size=96, num_layers=2, bidirectional=True, dropout=0.1)

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("voices", "clips_per_voice", "max_words", "beam_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_features < 0:
            raise ValueError(f"n_features must be >= 0, got {self.n_features}")
        if self.dataset is not None and self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; built-in speech data: {', '.join(DATASETS)}")

    def spec(self) -> audio.FeatureSpec:
        n = self.n_features or (13 if self.features == "mfcc" else 40)
        return audio.FeatureSpec(self.features, n, self.sample_rate)

    @property
    def normalization(self) -> str:
        if self.normalize != "auto":
            return self.normalize
        return "train" if self.dataset == "japanese_vowels" else "utterance"

    def word_list(self) -> tuple[str, ...]:
        if self.words in synth.WORD_SETS:
            return synth.WORD_SETS[self.words]
        words = tuple(w.strip().lower() for w in self.words.split(",") if w.strip())
        if len(words) < 2:
            raise InputError(f"--words {self.words!r}: give 'digits', 'commands' or at least two comma-separated words")
        return words


@dataclasses.dataclass
class Utterance:
    """One example: its audio (or ready-made frames), its text or label, where it came from."""

    name: str
    text: str
    group: str = ""
    samples: np.ndarray | None = None
    rate: int = 0
    frames: np.ndarray | None = None


Parts = tuple[list[Utterance], list[Utterance], list[Utterance]]


# ------------------------------------------------------------------------------------------ data
def read_transcripts(path: str, audio_column: str, text_column: str, *, speaker_column: str | None = None,
                     encoding: str = "utf-8") -> list[Utterance]:
    """Every row of a transcript file as an Utterance with its audio read (one-line errors per file)."""
    from rnnkit.data.tables import read_table, require_columns

    columns, rows = read_table(path, encoding=encoding)
    wanted = {"--audio-column": audio_column, "--text-column": text_column}
    if speaker_column:
        wanted["--speaker-column"] = speaker_column
    require_columns(path, columns, wanted)
    folder, items = Path(path).resolve().parent, []
    for number, row in enumerate(rows, start=1):
        file, text = str(row.get(audio_column) or "").strip(), str(row.get(text_column) or "").strip()
        if not file or not text:
            what = audio_column if not file else text_column
            raise InputError(f"{path}, data row {number}: empty {what!r}; every row needs a WAV file and its text")
        wav = Path(file) if Path(file).is_absolute() else folder / file
        samples, rate = audio.read_wav(wav)
        items.append(Utterance(str(wav), text, str(row.get(speaker_column) or "") if speaker_column else "",
                               samples, rate))
    if not items:
        raise InputError(f"{path} has no rows; add a WAV path and its text per row")
    return items


def _split_groups(items: list[Utterance], fractions: Sequence[float], seed: int) -> Parts:
    """Split by group (speaker) when groups are given, else by clip; shuffled with ``seed``."""
    keys = sorted({u.group for u in items}) if any(u.group for u in items) else None
    units = keys if keys is not None else list(range(len(items)))
    random.Random(seed).shuffle(units)
    counts = [round(len(units) * f) for f in fractions]
    val_units = set(units[:counts[0]])
    test_units = set(units[counts[0]:counts[0] + counts[1]])
    parts: Parts = ([], [], [])
    for index, item in enumerate(items):
        unit = item.group if keys is not None else index
        parts[1 if unit in val_units else 2 if unit in test_units else 0].append(item)
    return parts


def _synthetic(settings: SpeechSettings, seed: int, progress: bool, only: str | None = None) -> Parts:
    words = synth.SPOKEN_DIGITS if settings.task == "ctc" else settings.word_list()
    names = synth.voices(settings.voices)
    train, val, test = synth.split_voices(names, settings.val_voices, settings.test_voices, seed)
    keep = {"train": train, "val": val, "test": test}
    wanted = set(names) if only is None else set(keep[only])
    clips = synth.synthesize(settings.task, words, names, settings.clips_per_voice, max_words=settings.max_words,
                             snr_db=(settings.snr_db, settings.snr_db + 20), seed=seed, progress=progress,
                             only=wanted)
    items = [Utterance(f"{c.voice}#{i}", c.text, c.voice, c.samples, c.rate) for i, c in enumerate(clips)]
    return tuple([u for u in items if u.group in keep[part]] for part in ("train", "val", "test"))  # type: ignore


def _japanese_vowels(settings: SpeechSettings, seed: int) -> Parts:
    train, test = synth.japanese_vowels()
    parts = [[Utterance(f"{split}{i}", label, label, frames=frames) for i, (frames, label) in enumerate(items)]
             for split, items in (("train", train), ("test", test))]
    order = list(range(len(parts[0])))
    random.Random(seed).shuffle(order)
    cut = round(len(order) * settings.val_fraction)
    return [parts[0][i] for i in sorted(order[cut:])], [parts[0][i] for i in sorted(order[:cut])], parts[1]


def load_parts(settings: SpeechSettings, seed: int, *, progress: bool = True, only: str | None = None) -> Parts:
    """``(train, val, test)`` utterances as the settings describe (``only`` names the one part wanted)."""
    if settings.data is not None:
        items = read_transcripts(settings.data, settings.audio_column, settings.text_column,
                                 speaker_column=settings.speaker_column, encoding=settings.encoding)
        return _split_groups(items, [settings.val_fraction, settings.test_fraction], seed)
    if settings.dataset == "japanese_vowels":
        return _japanese_vowels(settings, seed)
    return _synthetic(settings, seed, progress, only)


def normalize_text(text: str) -> str:
    return " ".join(text.lower().split())


def frames_of(items: list[Utterance], settings: SpeechSettings, cache: audio.FeatureCache) -> list[np.ndarray]:
    """Un-normalised feature frames of every utterance (computed once, then read from the cache)."""
    spec = settings.spec()
    out = []
    for item in items:
        if item.frames is not None:
            out.append(item.frames)
        else:
            out.append(cache.get(item.samples, item.rate, spec, name=item.name))
    return out


def normalizer(settings: SpeechSettings, facts: dict):
    """The normalisation a run applies to every utterance's frames."""
    if settings.normalization == "utterance":
        return audio.normalize_utterance
    if settings.normalization == "train":
        return audio.Standardizer(**facts["standardizer"])
    return lambda frames: frames.astype(np.float32)


def stack(frames: np.ndarray, k: int) -> np.ndarray:
    """Every ``k`` consecutive frames side by side (zero-padded at the end), as CTCRecognizer stacks them."""
    if k == 1:
        return frames
    pad = (-len(frames)) % k
    frames = np.concatenate([frames, np.zeros((pad, frames.shape[1]), frames.dtype)]) if pad else frames
    return frames.reshape(len(frames) // k, k * frames.shape[1])


def encode_text(text: str, vocab: Vocabulary, settings: SpeechSettings, where: str) -> list[int]:
    """CTC target ids of a transcript; a character outside the alphabet is an error naming it."""
    text = normalize_text(text)
    if settings.unit == "char":
        unknown = sorted({c for c in text if c not in vocab})
        if unknown:
            raise InputError(f"{where}: transcript {text!r} holds {''.join(unknown)!r}, outside the alphabet "
                             f"{settings.alphabet!r}; add them to --alphabet or fix the transcript")
        return vocab.encode(text)
    return [vocab.token_to_id(w) if w in vocab else UNK_ID for w in text.split()]


class FramesDataset(Dataset):
    """``(frames tensor, target)`` pairs: a class id (words task) or a list of CTC target ids."""

    def __init__(self, frames: list[np.ndarray], targets: list) -> None:
        self.items = [(torch.from_numpy(np.ascontiguousarray(f)), t) for f, t in zip(frames, targets)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def collate(items) -> dict:
    frames = [f for f, _ in items]
    inputs = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)
    lengths = torch.tensor([len(f) for f in frames])
    targets = [t for _, t in items]
    if isinstance(targets[0], int):
        return {"inputs": inputs, "targets": torch.tensor(targets), "lengths": lengths}
    longest = max(1, max(len(t) for t in targets))
    padded = torch.full((len(targets), longest), IGNORE_INDEX, dtype=torch.int64)
    for row, t in zip(padded, targets):
        row[:len(t)] = torch.tensor(t, dtype=torch.int64)
    return {"inputs": inputs, "targets": padded, "lengths": lengths}


def build_vocab(settings: SpeechSettings, texts: list[str]) -> Vocabulary:
    if settings.unit == "char":
        return Vocabulary(dict.fromkeys(settings.alphabet), level="char")
    return Vocabulary(sorted({w for t in texts for w in normalize_text(t).split()}), level="word")


# --------------------------------------------------------------------------------------- metrics
@torch.no_grad()
def log_probs_of(model, frames: list[np.ndarray], batch_size: int = 64):
    """``(list of (T', C) log-probs, words: (n, classes) probabilities)`` for frame arrays."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(frames), batch_size):
        batch = collate([(torch.from_numpy(np.ascontiguousarray(f)), 0) for f in frames[start:start + batch_size]])
        result = model(batch["inputs"].to(device), lengths=batch["lengths"]).output.float().cpu()
        if isinstance(model, CTCRecognizer):
            for row, n in zip(result, model.output_lengths(batch["lengths"]).tolist()):
                out.append(row[:n])
        else:
            out.append(torch.softmax(result, -1))
    return out if isinstance(model, CTCRecognizer) else torch.cat(out)


def decode_texts(model, vocab: Vocabulary, frames: list[np.ndarray], beam_size: int = 1) -> list[str]:
    texts = []
    for lp in log_probs_of(model, frames):
        ids = greedy_decode(lp[None])[0] if beam_size <= 1 else beam_decode(lp[None], beam_size=beam_size)[0]
        texts.append(transcript(vocab, ids))
    return texts


def make_val_metrics(vocab: Vocabulary | None):
    def metrics(model, batches) -> dict:
        model.eval()
        device = next(model.parameters()).device
        truth, guessed, refs, hyps = [], [], [], []
        with torch.no_grad():
            for batch in batches:
                out = model(batch["inputs"].to(device), lengths=batch["lengths"]).output
                if vocab is None:
                    truth += batch["targets"].tolist()
                    guessed += out.argmax(-1).tolist()
                    continue
                lengths = model.output_lengths(batch["lengths"])
                for row, ids in zip(batch["targets"].tolist(), greedy_decode(out, lengths)):
                    refs.append(transcript(vocab, [t for t in row if t >= 0]))
                    hyps.append(transcript(vocab, ids))
        if vocab is None:
            return {"accuracy": sum(t == g for t, g in zip(truth, guessed)) / max(len(truth), 1)}
        return text_error_rates(refs, hyps)
    return metrics


def spectrogram_alignment_plot(frames: np.ndarray, log_probs: torch.Tensor, vocab: Vocabulary, subsample: int,
                               path: Path, title: str) -> None:
    """Features over time above the per-frame CTC posteriors of the labels, with the best path's labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = log_probs.exp().numpy()
    best = probs.argmax(-1)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.imshow(frames.T, origin="lower", aspect="auto", cmap="magma", extent=(0, len(frames), 0, frames.shape[1]))
    top.set_ylabel("feature")
    top.set_title(title)
    times = (np.arange(len(probs)) + 0.5) * subsample
    bottom.plot(times, probs[:, 0], color="0.7", linestyle="--", label="blank")
    for c in sorted(set(best.tolist()) - {0}):
        bottom.plot(times, probs[:, c], label=vocab.id_to_token(c))
    previous = 0
    for t, c in enumerate(best.tolist()):
        if c != 0 and c != previous:
            bottom.annotate(vocab.id_to_token(c), (times[t], probs[t, c]), textcoords="offset points", xytext=(0, 4),
                            ha="center", fontsize=8)
        previous = c
    bottom.set_xlabel("input frame (10 ms)")
    bottom.set_ylabel("CTC posterior")
    bottom.set_ylim(0, 1.1)
    bottom.legend(fontsize=7, ncol=6, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def words_metrics(model, facts: dict, frames: list[np.ndarray], texts: list[str]) -> dict:
    labels = facts["labels"]
    unknown = sorted(set(texts) - set(labels))
    if unknown:
        raise InputError(f"labels {unknown} were not seen in training; the model knows: {', '.join(labels)}")
    truth = [labels.index(t) for t in texts]
    result = scores(truth, log_probs_of(model, frames).argmax(-1).tolist(), len(labels))
    majority = facts["majority_label"]
    result["majority_baseline_accuracy"] = sum(t == majority for t in texts) / max(len(texts), 1)
    result["examples"] = len(texts)
    return result


def ctc_metrics(model, vocab: Vocabulary, frames: list[np.ndarray], texts: list[str], beam_size: int) -> dict:
    refs = [normalize_text(t) for t in texts]
    greedy = decode_texts(model, vocab, frames)
    result = {f"greedy_{k}": v for k, v in text_error_rates(refs, greedy).items()}
    if beam_size > 1:
        beam = decode_texts(model, vocab, frames, beam_size)
        result.update({f"beam_{k}": v for k, v in text_error_rates(refs, beam).items()}, beam_size=beam_size)
    result["examples"] = len(texts)
    result["samples"] = [{"reference": r, "greedy": g} for r, g in list(zip(refs, greedy))[:5]]
    return result


def tidigits_check(model, vocab: Vocabulary, settings: SpeechSettings, facts: dict, beam_size: int = 8) -> dict:
    """Error rates on the 31 real TIDIGITS utterances (Sphinx MFCCs) of a CTC model trained on 13 MFCCs."""
    if settings.task != "ctc" or settings.features != "mfcc" or settings.spec().n != 13:
        raise InputError("the TIDIGITS check needs a ctc run on 13 MFCCs (train with --task ctc --features mfcc)")
    texts, raw = synth.tidigits()
    norm = normalizer(settings, facts)
    frames = [norm(f) for f in raw]
    result = ctc_metrics(model, vocab, frames, texts, beam_size)
    result["source"] = str(synth.TIDIGITS)
    return result


# ---------------------------------------------------------------------------------------- the app
class Speech(lifecycle.App):
    name = "speech"
    settings_class = SpeechSettings
    train_defaults = {"max_steps": 1500, "batch_size": 32, "lr": 2e-3, "eval_every": 100, "checkpoint_every": 100,
                      "log_every": 50, "early_stopping_patience": 6, "clip_norm": 5.0}
    val_metrics = ("val_accuracy", "val_cer", "val_wer")
    data_fields = ("data", "dataset")
    report_settings = ("beam_size",)

    def normalize(self, settings: SpeechSettings) -> SpeechSettings:
        if settings.data is None:
            return dataclasses.replace(settings, dataset=settings.dataset or "synthetic")
        return dataclasses.replace(settings, data=str(Path(settings.data).resolve()))

    def check(self, settings: SpeechSettings, config: TrainConfig) -> None:
        if settings.dataset == "japanese_vowels" and settings.task != "words":
            raise InputError("japanese_vowels is a speaker-recognition set: use it with --task words")
        wanted = {"words": ("val_accuracy",), "ctc": ("val_cer", "val_wer")}[settings.task]
        other = [m for m in self.val_metrics if m not in wanted]
        if config.monitor in other:
            raise InputError(f"--monitor {config.monitor} is not reported by the {settings.task} task; "
                             f"use val_loss or {', '.join(wanted)}")
        if settings.data is None and settings.dataset == "synthetic":
            synth.check_tools(synth.voices(settings.voices))
            settings.word_list()  # a bad --words list fails here, before any audio is made
        if settings.data is not None or settings.dataset != "japanese_vowels":
            audio.librosa()

    def prepare(self, settings: SpeechSettings, config: TrainConfig, run: Path) -> lifecycle.Prepared:
        parts = load_parts(settings, config.seed, progress=is_shown())
        if not parts[0]:
            raise InputError("nothing left to train on after the split; add data or lower the held-out shares")
        cache = audio.FeatureCache(settings.cache_dir or run / "features")
        raw = [frames_of(part, settings, cache) for part in parts]
        facts: dict = {"task": settings.task, "source": settings.data or settings.dataset,
                       "sizes": {k: len(p) for k, p in zip(("train", "val", "test"), parts)},
                       "groups": {k: sorted({u.group for u in p}) for k, p in zip(("train", "val", "test"), parts)},
                       "input_size": int(raw[0][0].shape[1]), "normalization": settings.normalization}
        if settings.normalization == "train":
            facts["standardizer"] = dataclasses.asdict(audio.Standardizer.fit(raw[0]))
        norm = normalizer(settings, facts)
        frames = [[norm(f) for f in part] for part in raw]
        if settings.task == "words":
            return self._prepare_words(settings, parts, frames, facts)
        return self._prepare_ctc(settings, parts, frames, facts)

    def _prepare_words(self, settings, parts, frames, facts) -> lifecycle.Prepared:
        texts = [[normalize_text(u.text) for u in part] for part in parts]
        labels = sorted(set(texts[0]))
        if len(labels) < 2:
            raise InputError(f"the training clips hold a single word ({labels[0]!r}); word recognition needs two")
        unseen = sorted(set(texts[1] + texts[2]) - set(labels))
        if unseen:
            raise InputError(f"words {unseen} are held out but never in the training clips; add training clips of them")
        k = settings.model.subsample
        counts = {label: texts[0].count(label) for label in labels}
        facts.update(labels=labels, majority_label=max(labels, key=counts.__getitem__))
        stacked = [[stack(f, k) for f in part] for part in frames]
        datasets = [FramesDataset(part, [labels.index(t) for t in ts]) for part, ts in zip(stacked, texts)]
        return lifecycle.Prepared(datasets[0], datasets[1] if len(datasets[1]) else None,
                                  test=(stacked[2], texts[2]), facts=facts, collate_fn=collate,
                                  metrics_fn=make_val_metrics(None))

    def _prepare_ctc(self, settings, parts, frames, facts) -> lifecycle.Prepared:
        vocab = build_vocab(settings, [u.text for u in parts[0]])
        spec_k = settings.model.subsample
        targets = []
        for part, part_frames in zip(parts, frames):
            ids = []
            for u, f in zip(part, part_frames):
                target = encode_text(u.text, vocab, settings, u.name)
                available = -(-len(f) // spec_k)
                if frames_needed(target) > available:
                    raise InputError(f"{u.name}: its transcript needs {frames_needed(target)} CTC frames but the clip "
                                     f"gives {available} ({len(f)} frames / --subsample {spec_k}); lower --subsample, "
                                     "or split the clip")
                ids.append(target)
            targets.append(ids)
        facts.update(vocab_size=len(vocab))
        datasets = [FramesDataset(f, t) for f, t in zip(frames, targets)]
        return lifecycle.Prepared(datasets[0], datasets[1] if len(datasets[1]) else None,
                                  test=(frames[2], [u.text for u in parts[2]]), vocab=vocab, facts=facts,
                                  collate_fn=collate, metrics_fn=make_val_metrics(vocab))

    def build_model(self, settings: SpeechSettings, data: lifecycle.Prepared) -> torch.nn.Module:
        return build_model(settings, data.facts)

    def describe(self, settings, data, model) -> str:
        parameters = sum(p.numel() for p in model.parameters())
        sizes = data.facts["sizes"]
        kind = "LPC cepstra" if settings.dataset == "japanese_vowels" else settings.spec().kind
        return (f"speech ({settings.task}): {sizes['train']} training clips from {len(data.facts['groups']['train'])} "
                f"voices/speakers, {sizes['val']} validation, {sizes['test']} test; {kind} "
                f"x{data.facts['input_size']}; {type(model).__name__}, {parameters:,} parameters")

    def report(self, model, settings: SpeechSettings, data: lifecycle.Prepared, run: Path, fitted: dict) -> dict:
        result = {"task": settings.task, **data.facts["sizes"], "steps": fitted["step"],
                  "train_seconds": fitted.get("train_seconds")}
        frames, texts = data.test
        anchors = "japanese_vowels" if settings.dataset == "japanese_vowels" else settings.task
        if settings.data is None:  # the anchors describe what differs from the built-in data, not a user's
            result["anchors"] = ANCHORS[anchors]
        if not texts:
            return result
        if settings.task == "words":
            result.update(words_metrics(model, data.facts, frames, texts))
            result["labels"] = data.facts["labels"]
            plot_confusion(result["confusion"], result["labels"], run / "confusion_matrix.png",
                           f"test: accuracy {result['accuracy']:.3f}")
            return result
        result.update(ctc_metrics(model, data.vocab, frames, texts, settings.beam_size))
        lp = log_probs_of(model, frames[:1])[0]
        spectrogram_alignment_plot(frames[0], lp, data.vocab, settings.model.subsample, run / "ctc_alignment.png",
                                   f"{normalize_text(texts[0])!r} -> {transcript(data.vocab, greedy_decode(lp[None])[0])!r}")
        if settings.features == "mfcc" and settings.spec().n == 13 and synth.TIDIGITS.is_dir() \
                and settings.data is None and settings.unit == "word":
            result["tidigits"] = tidigits_check(model, data.vocab, settings, data.facts, settings.beam_size)
        return result


APP = Speech()


def build_model(settings: SpeechSettings, facts: dict) -> torch.nn.Module:
    config = settings.model
    if settings.task == "ctc":
        return CTCRecognizer(dataclasses.replace(config, input_size=facts["input_size"], num_classes=facts["vocab_size"]))
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
              if f.name in {g.name for g in dataclasses.fields(SequenceClassifierConfig)} and f.name != "input_size"}
    return SequenceClassifier(SequenceClassifierConfig(**shared, input_size=facts["input_size"] * config.subsample,
                                                       output_size=len(facts["labels"]), summary=settings.summary))


def train(settings: SpeechSettings, config: TrainConfig | None = None, out: str | Path = "runs/speech", *,
          resume: bool = False, progress: bool = True) -> dict:
    """Train a speech model into ``out``; returns the test metrics (accuracy and confusion matrix for the
    words task; greedy and beam CER/WER, and the TIDIGITS check when it applies, for ctc)."""
    return lifecycle.train(APP, settings, config, out, resume=resume, progress=progress)


def load_run(run: str | Path, device: str = "cpu"):
    return lifecycle.load_run(run, APP, device)


def prepared_frames(settings: SpeechSettings, facts: dict, items: list[Utterance], run: str | Path | None) -> list:
    """The frames a run's model reads for ``items`` (features cached under the run; ``run=None``: in memory)."""
    cache = audio.FeatureCache(settings.cache_dir or Path(run) / "features" if run is not None else None)
    norm = normalizer(settings, facts)
    k = settings.model.subsample if settings.task == "words" else 1
    return [stack(norm(f), k) for f in frames_of(items, settings, cache)]


#: What :func:`evaluate` may read differently from the run's training data.
READING = ("audio_column", "text_column", "encoding")


def evaluate(run: str | Path, *, data: str | None = None, tidigits: bool = False, beam_size: int | None = None,
             device: str = "cpu", progress: bool = False, reading: dict | None = None) -> dict:
    """Metrics of a trained run on ``data`` (a transcript file), on the TIDIGITS utterances, or on the
    run's own test split (rebuilt from its settings and seed). ``reading`` overrides the run's
    :data:`READING` settings for ``data``."""
    model, vocab, info = load_run(run, device)
    settings, facts = info.settings, info.facts
    beam = beam_size or settings.beam_size
    if tidigits:
        return {"evaluated_on": "TIDIGITS (pocketsphinx-testdata)", **tidigits_check(model, vocab, settings, facts, beam)}
    if data is not None:
        given = dataclasses.replace(settings, **(reading or {}))
        items, where = read_transcripts(data, given.audio_column, given.text_column, encoding=given.encoding), data
    else:
        items, where = load_parts(settings, info.seed, progress=progress, only="test")[2], "the run's test split"
        if not items:
            raise InputError(f"{run} has no test split; pass --data FILE")
    frames = prepared_frames(settings, facts, items, run)
    texts = [normalize_text(u.text) for u in items]
    if settings.task == "words":
        result = words_metrics(model, facts, frames, texts)
        result["labels"] = facts["labels"]
    else:
        for u in items:
            encode_text(u.text, vocab, settings, u.name)
        result = ctc_metrics(model, vocab, frames, texts, beam)
    result["evaluated_on"] = where
    return result


def transcribe(run: str | Path, files: Sequence[str], *, beam_size: int = 1, top: int = 3, plot: str | None = None,
               device: str = "cpu") -> list[dict]:
    """For each WAV file (folders are expanded): ``{"file", "text"}`` (ctc) or ``{"file", "text", "probability",
    "top"}`` (words). ``plot`` (ctc runs): the first clip's spectrogram with its alignment, saved there."""
    files = audio.expand_wav_paths(files)
    model, vocab, info = load_run(run, device)
    settings, facts = info.settings, info.facts
    if settings.dataset == "japanese_vowels":
        raise InputError(f"{run} was trained on Japanese Vowels LPC features, not audio; it cannot read WAV files")
    if plot:
        if settings.task != "ctc":
            raise InputError(f"--plot draws a CTC alignment; {run} is a {settings.task} run (drop --plot)")
        check_output_file("--plot", plot)
    items = []
    for file in files:
        samples, rate = audio.read_wav(file)
        items.append(Utterance(str(file), "", samples=samples, rate=rate))
    frames = prepared_frames(settings, facts, items, run)
    results = [{"file": str(file), **{k: v for k, v in answer.items() if k != "probabilities"}}
               for file, answer in zip(files, recognise(model, vocab, facts, frames, beam_size=beam_size, top=top))]
    if plot:
        lp = log_probs_of(model, frames[:1])[0]
        spectrogram_alignment_plot(frames[0], lp, vocab, settings.model.subsample, Path(plot),
                                   f"{Path(files[0]).name} -> {results[0]['text']!r}")
    return results


def recognise(model, vocab: Vocabulary | None, facts: dict, frames: list[np.ndarray], *, beam_size: int = 1,
              top: int = 3) -> list[dict]:
    """:func:`transcribe` on a loaded model and prepared frames: per clip ``{"text"}`` (ctc) or ``{"text",
    "probability", "top" (the ``top`` likeliest words), "probabilities" (every word)}`` (words)."""
    if isinstance(model, CTCRecognizer):
        return [{"text": text} for text in decode_texts(model, vocab, frames, beam_size)]
    labels, results = facts["labels"], []
    for row in log_probs_of(model, frames).tolist():
        ranked = sorted(range(len(row)), key=row.__getitem__, reverse=True)
        results.append({"text": labels[ranked[0]], "probability": row[ranked[0]],
                        "top": [(labels[i], row[i]) for i in ranked[:top]], "probabilities": dict(zip(labels, row))})
    return results


def describe(result: dict) -> str:
    """The test metrics of a report or an evaluation, then (words task) the confusion matrix."""
    if "accuracy" in result:
        head = format_metrics({"accuracy": result["accuracy"],
                               "majority_baseline": result["majority_baseline_accuracy"]})
        return f"{head}  ({result['examples']} clips)\n{format_confusion(result['confusion'], result['labels'])}"
    if "greedy_cer" not in result:
        return "no test clips"
    keys = [k for k in ("greedy_cer", "greedy_wer", "beam_cer", "beam_wer") if k in result]
    lines = [f"{format_metrics({k: result[k] for k in keys})}  ({result['examples']} clips)"]
    lines += [f"  {s['reference']!r} -> {s['greedy']!r}" for s in result.get("samples", [])]
    if "tidigits" in result:
        t = result["tidigits"]
        lines.append(f"real speech, 31 TIDIGITS utterances: greedy WER {t['greedy_wer']:.3f}"
                     + (f", beam WER {t['beam_wer']:.3f}" if "beam_wer" in t else ""))
    return "\n".join(lines)


def describe_anchors(result: dict) -> str:
    if not result.get("anchors"):
        return ""
    lines = ["published anchors, beside ours (what differs is named; different data is never comparable as equal):"]
    for a in result.get("anchors", []):
        lines.append(f"  {a['result']}: {a['setting']}; differs: {a['differs']}")
    return "\n".join(lines)

