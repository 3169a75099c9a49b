"""Built-in music corpora, read from the corpus music21 ships in its wheel (nothing is downloaded).

- ``bach_chorales``: the 371 four-part Bach chorales of ``music21.corpus.chorales.Iterator()``
  (MusicXML encodings; the JSB Chorales benchmark of Boulanger-Lewandowski et al. 2012 is drawn from
  the same 371-chorale collection, quantised to quarter notes). About 0.1-0.4 s per chorale to
  parse the first time; then read from the cache (:func:`rnnkit.data.music.read_files`).
- ``essen``: the Essen folk-song collection (``corpus/essenFolksong/*.abc``: 31 ABC books, about
  8,500 monophonic tunes, mostly German and Chinese), about 2 minutes to parse the first time.

Licence: the works are out of copyright; music21's ``corpus/license.txt`` says some encodings may
carry non-commercial restrictions, and the legal status of the Essen encodings is unclear. Good for
examples and research; cite music21 and the Essen Folksong Collection (Schaffrath 1995).

>>> sorted(CORPORA)
['bach_chorales', 'essen']
"""

from __future__ import annotations

from pathlib import Path

from rnnkit.data.music import Piece, read_files
from rnnkit.datasets._common import DatasetUnavailable, import_module

CORPORA = {
    "bach_chorales": "371 Bach chorales, four parts (music21 corpus, MusicXML)",
    "essen": "Essen folk songs, about 8,500 monophonic tunes in 31 ABC books (music21 corpus)",
}
_FIX = "pip install 'rnnkit[music]' (music21 ships its corpus in the wheel)"


def _corpus():
    return import_module("bach_chorales", "music21.corpus", _FIX)


def chorale_files() -> list[Path]:
    """The files of the 371 chorales, in music21's chorale-iterator order."""
    corpus = _corpus()
    names = list(corpus.chorales.Iterator(returnType="filename"))
    files = [corpus_file(corpus.getWork(name)) for name in names]
    if not files:
        raise DatasetUnavailable(f"music21's corpus has no Bach chorales; reinstall it: {_FIX}")
    return files


def corpus_file(found) -> Path:
    """One file of a work music21 has in several encodings (MusicXML preferred over Humdrum)."""
    if isinstance(found, (list, tuple)):
        found = sorted(found, key=lambda p: (Path(str(p)).suffix != ".mxl", str(p)))[0]
    return Path(str(found))


def essen_files() -> list[Path]:
    """The 31 ABC books of the Essen folk-song collection, sorted by name."""
    corpus = _corpus()
    files = sorted(Path(str(p)) for p in corpus.getWork("essenFolksong"))
    if not files:
        raise DatasetUnavailable(f"music21's corpus has no essenFolksong folder; reinstall it: {_FIX}")
    return files


def load(name: str, *, progress: bool = True) -> list[Piece]:
    """The pieces of a built-in corpus (``bach_chorales`` or ``essen``), parsed once, then cached."""
    if name == "bach_chorales":
        return read_files(chorale_files(), progress=progress, what="Bach chorales")
    if name == "essen":
        return read_files(essen_files(), progress=progress, what="Essen ABC books")
    raise KeyError(name)
