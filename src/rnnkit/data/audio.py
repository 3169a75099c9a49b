"""Audio for the speech models: read WAV files, resample, compute features, normalise them, cache them.

Features are computed with librosa (the ``speech`` extra: ``pip install 'rnnkit[speech]'``) on 25 ms
frames every 10 ms (:class:`FeatureSpec`):

- ``logmel``: ``log(mel power spectrogram + 1e-6)`` with ``n`` mel bands (default 40);
- ``mfcc``: the first ``n`` cepstra (default 13) computed the way CMU Sphinx's front end does (pre-emphasis
  0.97, Hamming window, 40 HTK-formula mel bands from 133.33 to 6855.5 Hz, natural log, DCT-II), so that
  Sphinx feature files (the TIDIGITS ``.mfc`` files of ``pocketsphinx-testdata``, :func:`read_sphinx_mfc`)
  and our MFCCs differ mostly by a per-coefficient scale and offset, which per-utterance normalisation removes.

Normalisation (:func:`normalize_utterance`, :class:`Standardizer`): ``utterance`` subtracts each
utterance's own mean and divides by its own standard deviation per feature (cepstral mean and variance
normalisation: removes the channel and much of the speaker), ``train`` uses the training set's mean and
standard deviation per feature (kept in the run), ``none`` leaves the features alone.

:class:`FeatureCache` keeps computed features as ``.npy`` files keyed by a hash of the samples and the
feature settings, so a resumed run, a second epoch or ``evaluate`` never recompute them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rnnkit.errors import InputError

FEATURE_KINDS = ("logmel", "mfcc")
NORMALIZATIONS = ("utterance", "train", "none")
INSTALL = "pip install 'rnnkit[speech]'"


def librosa():
    """The librosa module, or one line saying how to install it."""
    try:
        import librosa as module
    except ImportError:
        raise InputError(f"speech features need librosa and soundfile; install them with `{INSTALL}`") from None
    return module


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """How frames are cut and described: ``kind`` (``logmel`` or ``mfcc``), ``n`` features per frame,
    the ``sample_rate`` audio is resampled to, a ``frame_ms`` window every ``hop_ms``."""

    kind: str = "logmel"
    n: int = 40
    sample_rate: int = 16000
    frame_ms: float = 25.0
    hop_ms: float = 10.0

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ValueError(f"feature kind must be one of {FEATURE_KINDS}, got {self.kind!r}")
        if self.n < 1 or (self.kind == "mfcc" and self.n > 40):
            raise ValueError(f"features per frame must be >= 1 (at most 40 MFCCs), got {self.n}")
        if self.sample_rate < 4000:
            raise ValueError(f"sample_rate must be at least 4000 Hz, got {self.sample_rate}")

    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate * self.frame_ms / 1000))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def n_fft(self) -> int:
        return 1 << (self.win_length - 1).bit_length()

    def frames(self, samples: int) -> int:
        """Frames a clip of ``samples`` samples gives (0 when it is shorter than one window)."""
        return 0 if samples < self.n_fft else 1 + (samples - self.n_fft) // self.hop_length

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


# ----------------------------------------------------------------------------------- reading
def expand_wav_paths(paths: Iterable[str | Path]) -> list[Path]:
    """WAV files, with each folder among ``paths`` replaced by the ``.wav`` files in it (sorted)."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
            if not found:
                raise InputError(f"{path} holds no .wav files; put the WAV files directly in it")
            out.extend(found)
        else:
            out.append(path)
    if not out:
        raise InputError("no audio files given; pass WAV files or a folder of them")
    return out


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """``(mono float32 samples in [-1, 1], sample rate)`` of a WAV file, with one-line errors for a
    missing, empty, non-WAV or corrupt file (several channels are averaged)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio file {path} does not exist; check the path (relative paths in a transcript "
                         "file are read from the file's folder)")
    with open(path, "rb") as handle:
        head = handle.read(12)
    if not head:
        raise InputError(f"audio file {path} is empty (0 bytes); record or synthesise it again")
    if head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
        raise InputError(f"{path} is not a WAV file; convert it first, e.g. "
                         f"`sox {path.name} {path.stem}{'-converted' if path.suffix.lower() == '.wav' else ''}.wav`")
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as error:
        raise InputError(f"{path} is a damaged WAV file ({error}); re-export or re-record it") from None
    if samples.shape[0] == 0:
        raise InputError(f"{path} holds no audio samples; record or synthesise it again")
    return samples.mean(axis=1), int(rate)


def decode_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Samples and rate of an in-memory WAV (what ``espeak-ng --stdout`` writes)."""
    import io

    import soundfile

    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples.mean(axis=1), int(rate)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``target`` Hz (librosa's default high-quality resampler)."""
    if rate == target:
        return samples.astype(np.float32, copy=False)
    return librosa().resample(samples, orig_sr=rate, target_sr=target).astype(np.float32)


# ---------------------------------------------------------------------------------- features
def features(samples: np.ndarray, rate: int, spec: FeatureSpec, *, name: str = "clip") -> np.ndarray:
    """``(frames, spec.n)`` float32 features of mono ``samples`` at ``rate`` Hz (resampled first).

    Raises InputError when the clip is shorter than one analysis window.
    """
    lr = librosa()
    x = resample(samples, rate, spec.sample_rate)
    if spec.frames(len(x)) < 1:
        raise InputError(f"{name} is too short: {len(x) / spec.sample_rate * 1000:.1f} ms is less than one "
                         f"{spec.n_fft / spec.sample_rate * 1000:.0f} ms analysis frame; use a longer clip")
    common = dict(sr=spec.sample_rate, n_fft=spec.n_fft, win_length=spec.win_length, hop_length=spec.hop_length,
                  center=False, power=2.0)
    if spec.kind == "logmel":
        mel = lr.feature.melspectrogram(y=x, n_mels=spec.n, fmin=20.0, fmax=spec.sample_rate / 2, **common)
        return np.log(mel + 1e-6).T.astype(np.float32)
    x = lr.effects.preemphasis(x, coef=0.97)
    mel = lr.feature.melspectrogram(y=x, n_mels=40, fmin=133.33, fmax=min(6855.5, spec.sample_rate / 2),
                                    htk=True, window="hamming", **common)
    return lr.feature.mfcc(S=np.log(mel + 1e-6), n_mfcc=spec.n, dct_type=2, norm="ortho").T.astype(np.float32)


def normalize_utterance(frames: np.ndarray) -> np.ndarray:
    """Per-utterance mean and variance normalisation: each feature to mean 0 and standard deviation 1."""
    mean, std = frames.mean(axis=0), frames.std(axis=0)
    return ((frames - mean) / (std + 1e-5)).astype(np.float32)


@dataclasses.dataclass
class Standardizer:
    """Training-set statistics per feature: ``(x - mean) / std``; JSON-able for the run's facts."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, utterances: list[np.ndarray]) -> Standardizer:
        stacked = np.concatenate(utterances).astype(np.float64)
        return cls(stacked.mean(axis=0).tolist(), (stacked.std(axis=0) + 1e-5).tolist())

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return ((frames - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)


# -------------------------------------------------------------------------------------- cache
class FeatureCache:
    """Features on disk under ``directory``, one ``.npy`` per (samples, feature settings) hash.

    ``directory=None`` keeps them in memory only. Counts ``hits`` and ``misses`` (tests read them).
    """

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.memory: dict[str, np.ndarray] = {}
        self.hits = self.misses = 0

    def get(self, samples: np.ndarray, rate: int, spec: FeatureSpec, *, name: str = "clip") -> np.ndarray:
        digest = hashlib.sha1(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
        digest.update(f"{rate}|{spec.key()}".encode())
        key = digest.hexdigest()
        if key in self.memory:
            self.hits += 1
            return self.memory[key]
        path = self.directory / f"{key}.npy" if self.directory is not None else None
        if path is not None and path.is_file():
            try:
                value = np.load(path)
                self.hits += 1
                self.memory[key] = value
                return value
            except (OSError, ValueError):
                pass  # a damaged cache entry is recomputed
        self.misses += 1
        value = features(samples, rate, spec, name=name)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f"{key}.{os.getpid()}.tmp.npy")  # one per process under torchrun
            np.save(temporary, value)
            temporary.replace(path)
        self.memory[key] = value
        return value


# --------------------------------------------------------------------------------- sphinx mfc
def read_sphinx_mfc(path: str | Path, n: int = 13) -> np.ndarray:
    """``(frames, n)`` cepstra of a CMU Sphinx feature file: an int32 count of floats, then float32
    values (byte order detected from the count matching the file size)."""
    data = Path(path).read_bytes()
    for order in (">", "<"):
        count = int(np.frombuffer(data[:4], dtype=f"{order}i4")[0])
        if count * 4 + 4 == len(data) and count % n == 0:
            return np.frombuffer(data[4:], dtype=f"{order}f4").reshape(-1, n).astype(np.float32)
    raise InputError(f"{path} is not a Sphinx feature file with {n} coefficients per frame")
