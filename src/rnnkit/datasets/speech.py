"""Synthesised speech, offline: Debian's ``espeak-ng`` and ``flite`` speaking words and digit strings.

A *voice* is one engine setting: ``espeak:<accent>+<variant>`` (7 English accents x 12 speaker variants,
``+m1..m7``, ``+f1..f5``; 84 voices) or ``flite:<name>`` (kal, kal16, awb, rms, slt). Every clip gets its
own speaking rate and pitch, and white noise at a random signal-to-noise ratio. :func:`voices` lists
them in a fixed interleaved order (accents, variants and engines mixed, so a few voices already cover
several accents); :func:`split_voices` holds whole voices out, so a test measures unseen speakers.

The audio is generated (unrestricted; espeak-ng is GPL-3, flite BSD-like, neither ships with rnnkit).
Measured: about 100 espeak-ng clips per second of one core.

>>> voices(3)
['espeak:en-us+m1', 'espeak:en-gb+m2', 'flite:kal']
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rnnkit.errors import InputError

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: The transcription vocabulary of spoken digit strings: TIDIGITS also says "oh" for 0.
SPOKEN_DIGITS = (*DIGITS, "oh")
#: The ten command words of Speech Commands' classic task.
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
WORD_SETS = {"digits": DIGITS, "commands": COMMANDS}

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
FLITE_VOICES = ("kal", "awb", "rms", "slt", "kal16")
TOOLS = {"espeak": "espeak-ng", "flite": "flite"}


def voices(count: int | None = None) -> list[str]:
    """The first ``count`` voices (all 89 by default) in a fixed order: a flite voice every fourth place
    until they run out, espeak-ng's accent x variant pairs in between (7 and 12 are coprime, so
    stepping both together visits every pair once)."""
    espeak = [f"espeak:{ESPEAK_ACCENTS[i % 7]}+{ESPEAK_VARIANTS[i % 12]}" for i in range(7 * 12)]
    order, flite = [], list(FLITE_VOICES)
    while espeak or flite:
        if flite and len(order) % 4 == 2:
            order.append(f"flite:{flite.pop(0)}")
        elif espeak:
            order.append(espeak.pop(0))
        else:
            order.append(f"flite:{flite.pop(0)}")
    return order if count is None else order[:count]


def check_tools(names: list[str]) -> None:
    """Every engine the voices need is installed, else one line with the install command."""
    for engine in sorted({name.split(":")[0] for name in names}):
        program = TOOLS[engine]
        if shutil.which(program) is None:
            raise InputError(f"{program} is not installed (needed to synthesise the built-in speech data); install "
                             f"it with `sudo apt-get install {program}`")


def speak(voice: str, text: str, speed: float = 1.0, pitch: float = 1.0) -> tuple[np.ndarray, int]:
    """``(samples, rate)`` of ``text`` said by ``voice``; ``speed`` and ``pitch`` scale the voice's defaults."""
    from rnnkit.data.audio import decode_wav_bytes, read_wav

    engine, name = voice.split(":", 1)
    if engine == "espeak":
        command = ["espeak-ng", "--stdout", "-v", name, "-s", str(int(round(165 * speed))),
                   "-p", str(int(round(50 * pitch))), text]
        return decode_wav_bytes(subprocess.run(command, capture_output=True, check=True).stdout)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.wav"
        subprocess.run(["flite", "-voice", name, "--setf", f"duration_stretch={1 / speed:.3f}",
                        "--setf", f"int_f0_target_mean={110 * pitch:.1f}", "-t", text, "-o", str(path)],
                       capture_output=True, check=True)
        return read_wav(path)


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``samples`` plus white Gaussian noise at ``snr_db`` decibels below the clip's mean power."""
    power = float(np.mean(samples.astype(np.float64) ** 2)) or 1e-8
    noise = rng.standard_normal(len(samples)) * np.sqrt(power / 10 ** (snr_db / 10))
    return (samples + noise).astype(np.float32)


@dataclasses.dataclass
class Clip:
    """One synthesised utterance."""

    text: str
    voice: str
    samples: np.ndarray
    rate: int


def plan_clips(task: str, words: tuple[str, ...], voice_names: list[str], per_voice: int, *, max_words: int = 4,
               snr_db: tuple[float, float] = (10.0, 30.0),
               seed: int = 0) -> list[tuple[str, str, float, float, float, int]]:
    """What :func:`synthesize` will say, without synthesising: ``(voice, text, speed, pitch, snr_db, noise
    seed)`` per clip, voice by voice, drawn from ``seed`` (cheap: ``rnnkit datasets show`` lists these).

    >>> [text for _, text, *_ in plan_clips("words", ("yes", "no"), ["flite:kal"], 3)]
    ['yes', 'no', 'yes']
    """
    rng = np.random.default_rng(seed)
    jobs = []
    for voice in voice_names:
        for k in range(per_voice):
            if task == "words":
                text = words[k % len(words)]
            else:
                text = " ".join(rng.choice(words, size=int(rng.integers(1, max_words + 1))))
            jobs.append((voice, text, float(rng.uniform(0.75, 1.35)), float(rng.uniform(0.6, 1.5)),
                         float(rng.uniform(*snr_db)), int(rng.integers(2**31))))
    return jobs


def synthesize(task: str, words: tuple[str, ...], voice_names: list[str], per_voice: int, *, max_words: int = 4,
               snr_db: tuple[float, float] = (10.0, 30.0), seed: int = 0, progress: bool = True,
               only: set[str] | None = None) -> list[Clip]:
    """``per_voice`` clips for every voice, reproducible from ``seed``.

    ``task="words"``: each voice says the words in turn (``per_voice`` clips cycle through them);
    ``task="ctc"``: each clip is 1 to ``max_words`` words drawn at random (a digit string).
    Speed (x0.75-1.35), pitch (x0.6-1.5) and the noise level are drawn per clip. ``only`` renders just
    those voices' clips (the same clips as in the full set: every draw is made for every voice).
    """
    check_tools(voice_names if only is None else sorted(only))
    jobs = plan_clips(task, words, voice_names, per_voice, max_words=max_words, snr_db=snr_db, seed=seed)
    if only is not None:
        jobs = [job for job in jobs if job[0] in only]
    started, done, clips = time.perf_counter(), 0, []
    shown = started
    with ThreadPoolExecutor(max_workers=4) as pool:
        for (voice, text, _, _, snr, noise_seed), (samples, rate) in zip(
                jobs, pool.map(lambda job: speak(job[0], job[1], job[2], job[3]), jobs)):
            clips.append(Clip(text, voice, add_noise(samples, snr, np.random.default_rng(noise_seed)), rate))
            done += 1
            if progress and time.perf_counter() - shown > 2:
                shown = time.perf_counter()
                print(f"synthesising speech: {done}/{len(jobs)} clips", file=sys.stderr)
    if progress and time.perf_counter() - started > 2:
        print(f"synthesised {len(jobs)} clips in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return clips


def split_voices(names: list[str], val: int, test: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """``(train, val, test)`` voice lists: ``val`` and ``test`` whole voices held out, chosen by ``seed``."""
    if val + test >= len(names):
        raise InputError(f"{len(names)} voices cannot hold out {val} for validation and {test} for the test; "
                         "raise --voices or lower --val-voices/--test-voices")
    order = list(names)
    np.random.default_rng(seed).shuffle(order)
    return sorted(order[val + test:]), sorted(order[:val]), sorted(order[val:val + test])


# ------------------------------------------------------------------------------------- real speech
#: Debian pocketsphinx-testdata: 31 TIDIGITS utterances (2 adult speakers) as Sphinx MFCC files.
TIDIGITS = Path("/usr/share/pocketsphinx/test/data/tidigits")


def tidigits() -> tuple[list[str], list[np.ndarray]]:
    """``(transcripts, (frames, 13) Sphinx MFCCs)`` of the 31 TIDIGITS utterances, in tidigits.lsn's order."""
    from rnnkit.data.audio import read_sphinx_mfc

    listing = TIDIGITS / "tidigits.lsn"
    if not listing.is_file():
        raise InputError(f"{listing} is missing; install it with `sudo apt-get install pocketsphinx-testdata`")
    texts, frames = [], []
    for line in listing.read_text().splitlines():
        if line.strip():
            text, _, name = line.rpartition("(")
            texts.append(text.strip())
            frames.append(read_sphinx_mfc(TIDIGITS / f"{name.strip(' )')}.mfc"))
    return texts, frames


def japanese_vowels() -> tuple[list[tuple[np.ndarray, str]], list[tuple[np.ndarray, str]]]:
    """sktime's Japanese Vowels (UCI, CC BY 4.0): ``(train, test)`` lists of ``((frames, 12) LPC cepstra,
    "speaker N")``; 270 and 370 utterances of 9 speakers, 7-29 frames each."""
    try:
        from sktime.datasets import load_japanese_vowels
    except ImportError:
        raise InputError("the japanese_vowels data set needs sktime; install it with `pip install sktime`") from None
    parts = []
    for split in ("train", "test"):
        table, labels = load_japanese_vowels(split=split, return_X_y=True)
        parts.append([(np.stack([np.asarray(table.iloc[i, c], dtype=np.float32) for c in range(table.shape[1])],
                                axis=1), f"speaker {label}") for i, label in enumerate(labels)])
    return parts[0], parts[1]
