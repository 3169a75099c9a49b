"""Music as data: reading MIDI / MusicXML / ABC into notes, piano rolls, melody tokens, and MIDI out.

Every reader turns a file into :class:`Piece` objects, each a list of :class:`Note` s (onset and
duration in quarter notes, MIDI pitch, voice). Two views are derived from notes:

- :func:`piano_roll`: a ``(T, 88)`` 0/1 array (keys A0 = MIDI 21 to C8 = MIDI 108), sampled every
  ``step`` quarter notes as the JSB Chorales set is (Boulanger-Lewandowski et al. 2012): a key is on
  in frame ``t`` when a note of that pitch sounds at time ``t * step`` (``onset <= t * step < end``).
- :func:`melody_tokens`: one token per note or rest of the top line, ``"<pitch>:<duration>"`` (e.g.
  ``"60:1/2"``; ``"r:1"`` for a rest), durations as fractions of a quarter note.

MIDI is read with mido (exact ticks, fast); MusicXML, MuseData, Humdrum and the other score formats
with music21; ABC with music21's ABC tokenizer without building a score (about 25 times faster
than ``music21.converter.parse``: 6.6 s against 186 s for the 554 tunes of Essen's ``han1.abc``; tested
equal to it). Parsed files are cached in
``$RNNKIT_DATA/music`` (else ``~/.cache/rnnkit/music``), keyed by a hash of the file's bytes.
Anything that cannot be read raises :class:`~rnnkit.errors.InputError` naming the file and the fix.

>>> notes = [Note(0, 1, 60), Note(0, 2, 64), Note(1, 1, 62)]
>>> piano_roll(notes)[:, [60 - 21, 62 - 21, 64 - 21]].tolist()
[[1, 0, 1], [0, 1, 1]]
>>> melody_tokens([Note(0, 1, 60), Note(2, 0.5, 62)])
['60:1', 'r:1', '62:1/2']
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from rnnkit.errors import InputError

LOWEST, KEYS = 21, 88  # the piano's A0 and its 88 keys
MIDI_SUFFIXES = (".mid", ".midi", ".smf")
SCORE_SUFFIXES = (".xml", ".musicxml", ".mxl", ".krn", ".mei", ".md", ".mus")
ABC_SUFFIXES = (".abc",)
SUFFIXES = MIDI_SUFFIXES + SCORE_SUFFIXES + ABC_SUFFIXES
#: Bump when the extraction changes: cached notes of an older version are not reused.
CACHE_VERSION = 1
_EPS = 1e-6


class Note:
    """One sounding note: ``onset`` and ``duration`` in quarter notes, MIDI ``pitch``, ``voice`` (part)."""

    __slots__ = ("onset", "duration", "pitch", "voice")

    def __init__(self, onset: float, duration: float, pitch: int, voice: int = 0) -> None:
        self.onset, self.duration, self.pitch, self.voice = float(onset), float(duration), int(pitch), int(voice)

    @property
    def end(self) -> float:
        return self.onset + self.duration

    def __iter__(self):
        return iter((self.onset, self.duration, self.pitch, self.voice))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Note) and tuple(self) == tuple(other)

    def __repr__(self) -> str:
        return f"Note({self.onset:g}, {self.duration:g}, {self.pitch}, voice={self.voice})"


@dataclasses.dataclass
class Piece:
    """A piece of music: its ``name`` (file, and tune number for ABC books) and its notes."""

    name: str
    notes: list[Note]


# ----------------------------------------------------------------------------------- views
def piano_roll(notes: Iterable[Note], step: float = 1.0) -> np.ndarray:
    """``(T, 88)`` uint8 piano roll sampled every ``step`` quarter notes (JSB style; see the module doc).

    ``T`` covers the last note's end. Pitches outside the piano (below 21, above 108) are dropped.
    """
    notes = [n for n in notes if LOWEST <= n.pitch < LOWEST + KEYS and n.duration > 0]
    if step <= 0:
        raise ValueError(f"step must be > 0 quarter notes, got {step}")
    end = max((n.end for n in notes), default=0.0)
    frames = int(np.ceil(end / step - _EPS)) if end > 0 else 0
    roll = np.zeros((frames, KEYS), dtype=np.uint8)
    for note in notes:
        first = int(np.ceil(note.onset / step - _EPS))
        last = int(np.ceil(note.end / step - _EPS))  # exclusive: a frame at the note's end is not covered
        roll[first:last, note.pitch - LOWEST] = 1
    return roll


def roll_to_notes(roll: np.ndarray, step: float = 1.0) -> list[Note]:
    """Notes of a piano roll: a key on in consecutive frames is one held note (the inverse of
    :func:`piano_roll` up to how repeated notes are told apart, which a sampled roll cannot)."""
    roll = np.asarray(roll)
    notes = []
    for key in range(roll.shape[1]):
        column = np.concatenate([[0], roll[:, key] > 0, [0]]).astype(np.int8)
        changes = np.flatnonzero(np.diff(column))
        for start, stop in zip(changes[::2], changes[1::2]):
            notes.append(Note(start * step, (stop - start) * step, LOWEST + key))
    return sorted(notes, key=lambda n: (n.onset, n.pitch))


def melody(notes: Iterable[Note]) -> list[Note]:
    """The top line: the lowest voice number present, and of notes starting together the highest."""
    notes = [n for n in notes if n.duration > 0]
    if not notes:
        return []
    voice = min(n.voice for n in notes)
    line: dict[float, Note] = {}
    for note in notes:
        if note.voice == voice and (note.onset not in line or note.pitch > line[note.onset].pitch):
            line[note.onset] = note
    return [line[onset] for onset in sorted(line)]


def _fraction(value: float) -> str:
    return str(Fraction(value).limit_denominator(48))


def melody_tokens(notes: Iterable[Note]) -> list[str]:
    """One token per note and rest of the top line: ``"<pitch>:<duration>"`` / ``"r:<duration>"``.

    A note cut short by the next onset (an overlap) lasts until that onset; a gap becomes a rest.
    """
    line, tokens, time_ = melody(notes), [], None
    for index, note in enumerate(line):
        if time_ is not None and note.onset > time_ + _EPS:
            tokens.append(f"r:{_fraction(note.onset - time_)}")
        following = line[index + 1].onset if index + 1 < len(line) else note.end
        duration = min(note.duration, following - note.onset)
        tokens.append(f"{note.pitch}:{_fraction(duration)}")
        time_ = note.onset + duration
    return tokens


def _token_parts(token: str) -> tuple[str, float] | None:
    pitch, _, duration = token.partition(":")
    try:
        length = float(Fraction(duration))
    except (ValueError, ZeroDivisionError):
        return None
    return (pitch, length) if pitch == "r" or pitch.isdigit() else None


def tokens_to_notes(tokens: Iterable[str]) -> list[Note]:
    """Notes of melody tokens (rests advance the time); other tokens (e.g. ``<unk>``) are skipped."""
    notes, time_ = [], 0.0
    for token in tokens:
        parts = _token_parts(token)
        if parts is None:
            continue
        if parts[0] != "r":
            notes.append(Note(time_, parts[1], int(parts[0])))
        time_ += parts[1]
    return notes


def tokens_duration(tokens: Iterable[str]) -> float:
    """Quarter notes the melody tokens last, rests included.

    >>> tokens_duration(["60:1", "r:1/2", "<unk>", "62:3/2"])
    3.0
    """
    return sum(parts[1] for parts in map(_token_parts, tokens) if parts is not None)


# --------------------------------------------------------------------------------- readers
def read_midi(path: str | Path) -> list[Note]:
    """Notes of a Standard MIDI File (every track and channel except General MIDI drums, channel 10).

    Onsets and durations are ticks / ticks-per-beat; a note still on at its track's end ends there.
    """
    import mido

    try:
        midi = mido.MidiFile(str(path))
    except Exception as error:  # mido raises OSError, EOFError, KeyError, ValueError... for damaged files
        raise InputError(f"{path} is not a readable MIDI file ({type(error).__name__}: {error}); "
                         "check the file, or export it again from your editor") from None
    if midi.type == 2:
        raise InputError(f"{path} is a type-2 MIDI file (independent patterns), which has no single timeline; "
                         "convert it to type 0 or 1")
    if not midi.ticks_per_beat or midi.ticks_per_beat <= 0:
        raise InputError(f"{path}: MIDI header has SMPTE or zero timing; export it with ticks per beat")
    beat = float(midi.ticks_per_beat)
    notes = []
    for voice, track in enumerate(midi.tracks):
        tick, sounding = 0, {}
        for message in track:
            tick += message.time
            if message.type not in ("note_on", "note_off") or message.channel == 9:
                continue
            key = (message.channel, message.note)
            if key in sounding:  # a note_off, or a note_on repeating a sounding key, ends it
                start = sounding.pop(key)
                if tick > start:
                    notes.append(Note(start / beat, (tick - start) / beat, message.note, voice))
            if message.type == "note_on" and message.velocity > 0:
                sounding[key] = tick
        notes += [Note(start / beat, (tick - start) / beat, pitch, voice)
                  for (_, pitch), start in sounding.items() if tick > start]
    return sorted(notes, key=lambda n: (n.onset, n.voice, n.pitch))


def _score_notes(score) -> list[Note]:
    """Notes of a music21 Score (or Part): ties merged, chord symbols and grace notes left out."""
    from music21 import harmony, stream

    parts = list(score.parts) if isinstance(score, stream.Score) and score.parts else [score]
    notes = []
    for voice, part in enumerate(parts):
        tied: dict[int, Note] = {}  # pitch -> the note a tie continues (cheaper than music21's stripTies)
        for element in part.flatten().notes:
            if isinstance(element, harmony.Harmony) or element.quarterLength <= 0:
                continue
            members = element.notes if element.isChord else [element]
            for member in members:
                tie = member.tie if member.tie is not None else element.tie
                kind, pitch = (tie.type if tie is not None else None), member.pitch
                previous = tied.get(pitch.midi)
                if kind in ("stop", "continue") and previous is not None and abs(previous.end - element.offset) < _EPS:
                    previous.duration += float(element.quarterLength)
                    if kind == "stop":
                        del tied[pitch.midi]
                    continue
                note = Note(element.offset, element.quarterLength, pitch.midi, voice)
                notes.append(note)
                if kind == "start":
                    tied[pitch.midi] = note
    return sorted(notes, key=lambda n: (n.onset, n.voice, n.pitch))


def read_score(path: str | Path) -> list[Piece]:
    """Pieces of a MusicXML (.xml, .musicxml, .mxl), Humdrum (.krn), MEI or MuseData file, via music21."""
    from music21 import converter, stream

    try:
        parsed = converter.parse(str(path))
    except Exception as error:  # music21 raises many types for a damaged file
        raise InputError(f"{path} could not be read as a score ({type(error).__name__}: {error}); "
                         "check the file or export it again") from None
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    name = Path(path).name
    return [Piece(name if len(scores) == 1 else f"{name}#{index + 1}", _score_notes(score))
            for index, score in enumerate(scores)]


@functools.lru_cache(maxsize=512)
def _midi_of(name: str) -> int:
    from music21 import pitch

    return pitch.Pitch(name).midi


def _abc_pitches(token) -> list[int]:
    from music21 import abcFormat

    if isinstance(token, abcFormat.ABCChord):
        return [p for t in token.subTokens if isinstance(t, abcFormat.ABCNote) for p in _abc_pitches(t)]
    return [] if token.isRest or token.pitchName is None else [_midi_of(token.pitchName)]


def _abc_tune(handler, name: str) -> Piece:
    """Notes of one tune from music21's ABC tokens: durations with broken rhythm and tuplets, key
    signatures and accidentals as music21 applies them, ties merged, grace notes skipped."""
    from music21 import abcFormat

    notes: list[Note] = []
    time_, tied = 0.0, {}
    for token in handler.tokens:
        if not isinstance(token, abcFormat.ABCNote) or token.inGrace:
            continue
        length = float(token.quarterLength)
        if token.activeTuplet is not None:
            length *= float(token.activeTuplet.tupletMultiplier())
        for midi in _abc_pitches(token):
            if token.tie in ("stop", "continue") and midi in tied:
                tied[midi].duration += length
                if token.tie == "stop":
                    del tied[midi]
                continue
            note = Note(time_, length, midi)
            notes.append(note)
            if token.tie == "start":
                tied[midi] = note
        time_ += length
    return Piece(name, notes)


def read_abc(path: str | Path, text: str | None = None) -> list[Piece]:
    """Every tune of an ABC file (an ABC book holds many, each starting with ``X:``)."""
    from music21 import abcFormat

    if text is None:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8") if _is_utf8(raw) else raw.decode("latin-1")
    try:
        handler = abcFormat.ABCHandler()
        handler.process(text)
        books = handler.splitByReferenceNumber() if handler.definesReferenceNumbers() else {None: handler}
        name = Path(path).name
        return [_abc_tune(tune, name if number is None or len(books) == 1 else f"{name}#{number}")
                for number, tune in books.items()]
    except Exception as error:  # the tokenizer raises several types for malformed ABC
        raise InputError(f"{path} could not be read as ABC ({type(error).__name__}: {error}); check the file") from None


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def read_file(path: str | Path) -> list[Piece]:
    """Pieces of one music file by its suffix (no cache; :func:`read_files` caches)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    if suffix in MIDI_SUFFIXES:
        return [Piece(path.name, read_midi(path))]
    if suffix in ABC_SUFFIXES:
        return read_abc(path)
    if suffix in SCORE_SUFFIXES:
        return read_score(path)
    raise InputError(f"{path}: unknown music file type {suffix or '(none)'}; rnnkit reads {', '.join(SUFFIXES)}")


# ---------------------------------------------------------------------------------- caching
def cache_dir() -> Path:
    """``$RNNKIT_DATA/music``, else ``~/.cache/rnnkit/music`` (the data sets' directory)."""
    from rnnkit.datasets._common import data_dir

    return data_dir() / "music"


def _cache_path(path: Path) -> Path:
    digest = hashlib.sha256(path.read_bytes())
    digest.update(f"{CACHE_VERSION}:{path.suffix.lower()}".encode())
    return cache_dir() / f"{digest.hexdigest()[:32]}.json.gz"


def _load_cached(cached: Path) -> list[Piece] | None:
    try:
        with gzip.open(cached, "rt", encoding="utf-8") as file:
            data = json.load(file)
        return [Piece(name, [Note(*n) for n in notes]) for name, notes in data]
    except (OSError, ValueError, TypeError, EOFError):
        return None  # damaged or half-written: parse again


def _store(cached: Path, pieces: list[Piece]) -> None:
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")  # ranks of one torchrun may both write
        with gzip.open(partial, "wt", encoding="utf-8") as file:
            json.dump([[p.name, [list(n) for n in p.notes]] for p in pieces], file)
        partial.replace(cached)
    except OSError as error:  # a read-only cache only costs time
        print(f"note: could not cache parsed music in {cached.parent} ({error})", file=sys.stderr)


def read_files(paths: Sequence[str | Path], *, cache: bool = True, progress: bool = True,
               what: str = "music files") -> list[Piece]:
    """Pieces of every file, parsed once and then read from the cache (keyed by the file's content).

    Shows progress on stderr while parsing takes longer than a few seconds.
    """
    pieces, started, shown = [], time.monotonic(), 0.0
    for index, raw in enumerate(paths):
        path = Path(raw)
        if not path.is_file():
            raise InputError(f"{path} does not exist or is not a file")
        cached = _cache_path(path) if cache else None
        found = _load_cached(cached) if cached is not None and cached.exists() else None
        if found is None:
            found = read_file(path)
            if cached is not None:
                _store(cached, found)
        pieces += found
        now = time.monotonic()
        if progress and now - started > 3 and now - shown > 5:
            shown = now
            print(f"music: read {index + 1}/{len(paths)} {what} ({now - started:.0f} s; parsed files are cached "
                  f"in {cache_dir()})", file=sys.stderr, flush=True)
    return pieces


def find_files(sources: Sequence[str | Path]) -> list[Path]:
    """Music files among ``sources`` (files, or folders searched recursively), sorted within each folder."""
    found = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            inside = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not inside:
                raise InputError(f"folder {source} holds no music files ({', '.join(SUFFIXES)})")
            found += inside
        elif source.is_file():
            if source.suffix.lower() not in SUFFIXES:
                raise InputError(f"{source}: unknown music file type {source.suffix or '(none)'}; "
                                 f"rnnkit reads {', '.join(SUFFIXES)}")
            found.append(source)
        else:
            raise InputError(f"{source} does not exist; give music files or folders of them")
    return found


def read_pieces(sources: Sequence[str | Path], *, progress: bool = True) -> list[Piece]:
    """Every piece in ``sources`` (files or folders); a piece with no notes is refused, naming it."""
    pieces = read_files(find_files(sources), progress=progress)
    for piece in pieces:
        if not piece.notes:
            raise InputError(f"{piece.name} has no notes (only rests, drums or meta events); remove it from "
                             "the data")
    return pieces


# ------------------------------------------------------------------------------------ writing
def write_midi(notes: Iterable[Note], path: str | Path, *, tempo_bpm: float = 100.0, program: int = 0,
               ticks_per_beat: int = 480, velocity: int = 80) -> Path:
    """A type-1 MIDI file of ``notes`` (one track, channel 1, General MIDI ``program``; 0 = piano)."""
    import mido

    events = []
    for note in notes:
        if note.duration <= 0 or not 0 <= note.pitch <= 127:
            continue
        start, stop = round(note.onset * ticks_per_beat), round(note.end * ticks_per_beat)
        events += [(stop, 0, note.pitch), (start, 1, note.pitch)]  # at equal times offs come before ons
    events.sort()
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0),
                            mido.Message("program_change", program=program, time=0)])
    now = 0
    for tick, is_on, pitch in events:
        track.append(mido.Message("note_on" if is_on else "note_off", note=pitch, velocity=velocity if is_on else 0,
                                  time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path


def plot_piano_roll(roll: np.ndarray, path: str | Path, *, title: str = "", step: float = 1.0,
                    primed: int = 0) -> Path:
    """A PNG of a ``(T, 88)`` piano roll (time across, pitch up); a line marks the end of a prime."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roll = np.asarray(roll)
    used = np.flatnonzero(roll.any(axis=0)) if roll.size else np.array([])
    low, high = (int(used.min()), int(used.max())) if used.size else (39, 51)
    low, high = max(0, low - 2), min(KEYS - 1, high + 2)
    width = min(16.0, max(6.0, roll.shape[0] * 0.06))
    figure, axes = plt.subplots(figsize=(width, 4))
    axes.imshow(roll[:, low:high + 1].T, origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
                extent=(0, roll.shape[0] * step, LOWEST + low - 0.5, LOWEST + high + 0.5))
    if primed:
        axes.axvline(primed * step, color="tab:red", linewidth=1, label="end of prime")
        axes.legend(loc="upper right")
    axes.set_xlabel("time (quarter notes)")
    axes.set_ylabel("MIDI pitch")
    axes.set_title(title)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
