"""Bad input that used to get through: a byte-order mark, rows that do not match the header, a repeated
column name, a huge field, infinities and repeated times in a series. Each is read correctly or refused
with one line before any training starts."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rnnkit.apps.classify import read_examples
from rnnkit.apps.forecast import ForecastSettings, errors, load_series, model_forecast, prepare
from rnnkit.apps.lifecycle import RUN_FORMAT
from rnnkit.apps.textgen import load_documents
from rnnkit.data.tables import read_table, read_text
from rnnkit.data.timeseries import guess_season, read_series
from rnnkit.errors import InputError

BOM = b"\xef\xbb\xbf"  # what Excel's "CSV UTF-8" writes first


def write(path, text: str, prefix: bytes = b""):
    path.write_bytes(prefix + text.encode("utf-8"))
    return path


def monthly_csv(path, rows=30, value=lambda t: f"{10 + t % 12}", prefix=b""):
    lines = ["month,load"] + [f"{2000 + t // 12}-{t % 12 + 1:02d}-01,{value(t)}" for t in range(rows)]
    return write(path, "\n".join(lines) + "\n", prefix)


def forecast_settings(data, **changes):
    return ForecastSettings(data=str(data), **changes)


# ------------------------------------------------------------------------------ byte-order mark
def test_byte_order_mark_is_not_text(tmp_path):
    path = write(tmp_path / "bom.txt", "hello", BOM)
    assert read_text(path) == "hello"
    documents, _ = load_documents([str(path)], None)
    assert documents == ["hello"]  # textgen does not learn the mark as a character


def test_byte_order_mark_leaves_the_first_column_name_alone(tmp_path):
    path = write(tmp_path / "excel.csv", "text,label\ngood film,pos\nbad film,neg\n", BOM)
    assert read_table(path)[0] == ["text", "label"]
    assert read_examples(str(path), "text", "label") == [("good film", "pos"), ("bad film", "neg")]


def test_byte_order_mark_keeps_the_forecast_time_column(tmp_path):
    series = read_series(str(monthly_csv(tmp_path / "excel.csv", prefix=BOM)), None, None)
    assert series.names == ["load"] and guess_season(series.times) == 12


# ------------------------------------------------------------------------------ rows vs header
def test_unquoted_comma_is_refused_naming_the_line(tmp_path, cli_error):
    path = write(tmp_path / "reviews.csv", "text,label\ngood film,pos\nslow, but good,pos\n")
    with pytest.raises(InputError, match=r"line 3: 3 fields but the header has 2 columns.*double quotes"):
        read_table(path)
    err = cli_error(["classify", "train", "--data", str(path), "--out", str(tmp_path / "run")])
    assert "line 3" in err and "double quotes" in err


def test_quoted_fields_keep_their_commas_and_line_breaks(tmp_path):
    path = write(tmp_path / "quoted.csv", 'text,label\n"slow, but good",pos\n"line one\nline two",neg\n')
    assert read_table(path)[1] == [{"text": "slow, but good", "label": "pos"},
                                   {"text": "line one\nline two", "label": "neg"}]


def test_short_row_is_refused_but_blank_lines_are_skipped(tmp_path):
    path = write(tmp_path / "short.csv", "text,label\ngood film,pos\nbad film\n")
    with pytest.raises(InputError, match=r"line 3: 1 fields but the header has 2 columns.*empty"):
        read_table(path)
    path = write(tmp_path / "gaps.csv", "text,label\n\ngood film,pos\n   \nbad film,\n")
    assert read_table(path)[1] == [{"text": "good film", "label": "pos"}, {"text": "bad film", "label": ""}]


def test_tab_in_a_tsv_field_is_named(tmp_path):
    path = write(tmp_path / "t.tsv", "text\tlabel\ngood\tfilm\tpos\n")
    with pytest.raises(InputError, match="a field that holds a tab must be in double quotes"):
        read_table(path)


def test_repeated_column_name_is_refused(tmp_path, cli_error):
    path = write(tmp_path / "twice.csv", "text,label,label\ngood film,pos,neg\n")
    with pytest.raises(InputError, match=r"column 'label' twice \(columns 2 and 3\); rename one"):
        read_table(path)
    err = cli_error(["classify", "train", "--data", str(path), "--out", str(tmp_path / "run")])
    assert "'label' twice" in err


def test_a_field_over_the_csv_modules_default_limit_is_read(tmp_path):
    long_text = "word " * 40_000  # 200 000 characters; the csv module's default limit is 131 072
    path = write(tmp_path / "long.csv", f"text,label\n{long_text},pos\nshort,neg\n")
    rows = read_table(path)[1]
    assert rows[0]["text"] == long_text and rows[1]["label"] == "neg"


def test_json_lines_keep_a_line_separator_inside_a_string(tmp_path):
    path = write(tmp_path / "t.jsonl", '{"text": "one\u2028two", "label": "pos"}\n')
    assert read_table(path)[1] == [{"text": "one\u2028two", "label": "pos"}]


# ------------------------------------------------------------------------------ series values and times
@pytest.mark.parametrize("word", ["inf", "-inf", "Infinity", "1e999"])
def test_infinity_in_a_series_is_refused_naming_row_and_column(tmp_path, word):
    path = monthly_csv(tmp_path / "s.csv", value=lambda t: word if t == 7 else "5")
    with pytest.raises(InputError, match=rf"data row 8, column 'load': '{word}' is not a finite number"):
        read_series(str(path), None, None)


def test_infinity_is_refused_even_with_fill(tmp_path, cli_error):
    path = monthly_csv(tmp_path / "s.csv", value=lambda t: "inf" if t == 7 else "5")
    err = cli_error(["forecast", "train", "--data", str(path), "--fill", "ffill", "--out", str(tmp_path / "run")])
    assert "data row 8" in err and "not a finite number" in err and "blank it" in err


def test_infinity_in_json_lines_is_refused(tmp_path):
    path = write(tmp_path / "s.jsonl", '{"t": 1, "y": 2}\n{"t": 2, "y": Infinity}\n')
    with pytest.raises(InputError, match="data row 2, column 'y': inf is not a finite number"):
        read_series(str(path), "t", None)


def test_repeated_time_is_refused_naming_the_time_and_rows(tmp_path, cli_error):
    lines = ["date,y"] + [f"2020-01-{d:02d},{d}" for d in (1, 2, 3, 3, 4, 5, 5, 5)]
    path = write(tmp_path / "s.csv", "\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"time '2020-01-03' appears in data rows 3, 4 \(2 repeated times in all\)"):
        read_series(str(path), None, None)
    err = cli_error(["forecast", "train", "--data", str(path), "--out", str(tmp_path / "run")])
    assert "'2020-01-03'" in err and "one row per time" in err


def test_repeated_time_is_found_before_sorting(tmp_path):
    path = write(tmp_path / "s.csv", "time,y\n3,1\n1,2\n3,3\n2,4\n")
    with pytest.raises(InputError, match=r"time '3' appears in data rows 1, 3;"):
        load_series(forecast_settings(path))


# ------------------------------------------------------------------------------ metrics never read as perfect
def test_errors_with_a_nan_are_nan_not_a_perfect_smape():
    result = errors(np.array([1.0, math.nan]), np.array([1.0, 2.0]))
    assert all(math.isnan(v) for v in result.values())
    assert errors(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == {"mae": 0.0, "rmse": 0.0, "smape": 0.0}


class _NaNModel(torch.nn.Module):
    """Stands in for a model whose forecasts overflowed."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return SimpleNamespace(output=torch.full((len(x), 1), math.nan))


def test_forecasts_that_are_not_finite_are_an_error(tmp_path):
    series = load_series(forecast_settings(monthly_csv(tmp_path / "s.csv")))
    settings = forecast_settings(series.source, lookback=4, horizon=1, val_fraction=0.0, test_fraction=0.2,
                                 input_mode="relative", target_mode="delta")
    prep = prepare(series, settings)
    with pytest.raises(InputError, match="forecasts on .* are not finite numbers"):
        model_forecast(_NaNModel(), prep, prep.ends["test"])


@pytest.mark.parametrize("content, message", [
    ("[]", "not a JSON object"),
    ('{"app": "classify", "format": "2", "train": {}}', "format is not a number"),
    ('{"app": "classify", "format": %d}' % RUN_FORMAT, "train settings are missing"),
])
@pytest.mark.parametrize("verb", [["classify", "evaluate"], ["export"], ["serve"], ["classify", "train", "--resume"]])
def test_a_damaged_app_json_is_one_line(tmp_path, cli_error, content, message, verb):
    """Valid JSON that is not a run's description: one line from every command that reads a run."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "app.json").write_text(content)
    argv = [*verb, "--out" if "train" in verb else "--run", str(run)]
    line = cli_error(argv)  # one line, no traceback
    if verb[0] == "classify" or content == "[]":  # export and serve read only which app the run is
        assert "is damaged" in line and message in line, line


def test_a_binary_file_where_text_belongs_is_named_for_what_it_is(tmp_path):
    """A WAV passed as the transcript table was called 'not valid utf-8', and --encoding latin-1, the
    suggested fix, then read it as a broken CSV."""
    from rnnkit.data.nucleotides import read_records

    wav = tmp_path / "clip.wav"
    wav.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\xa4\x1f")
    for encoding in ("utf-8", "latin-1"):
        with pytest.raises(InputError, match=r"clip.wav is a WAV \(RIFF\) file, not text"):
            read_table(wav, encoding=encoding)
    blob = tmp_path / "data.csv"
    blob.write_bytes(b"text,label\n\x00\x01\x02,a\n")
    with pytest.raises(InputError, match="is a binary file, not text"):
        read_text(blob)
    utf16 = tmp_path / "utf16.txt"
    utf16.write_text("text,label\nhello,a\n", encoding="utf-16")  # NUL bytes, but text: it has a byte-order mark
    assert read_text(utf16, "utf-16").startswith("text,label")
    with pytest.raises(InputError, match="not a text FASTA file"):  # was a bare 'utf-8' codec error
        read_records(wav)


@pytest.mark.parametrize("argv", [
    ["textgen", "train", "--out", "x", "--clip-norm", "nan"], ["textgen", "train", "--out", "x", "--lr", "inf"],
    ["classify", "train", "--out", "x", "--max-minutes", "nan"], ["lab", "adding", "--out", "x", "--forget-bias", "nan"],
])
def test_non_finite_numbers_are_refused_before_any_work(argv, capsys):
    """--clip-norm nan trained to a NaN loss and then crashed while sampling; --lr inf the same."""
    from rnnkit.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and "must be a finite number" in capsys.readouterr().err


@pytest.mark.parametrize("field, value, message", [("lr", math.nan, "finite"), ("min_lr", math.inf, "finite"),
                                                   ("warmup_steps", -1, ">= 0"), ("momentum", -0.5, ">= 0"),
                                                   ("lr_decay", 0.0, r"\(0, 1\]")])
def test_train_config_refuses_what_cannot_train(field, value, message):
    from rnnkit.train import TrainConfig

    with pytest.raises(ValueError, match=f"{field} must be .*{message}"):
        TrainConfig(**{field: value})


def test_a_time_column_that_does_not_read_as_times_is_refused(tmp_path):
    """dd/mm/YYYY dates were dropped without a word: the series kept file order, shuffled as it was."""
    path = tmp_path / "dmy.csv"
    path.write_text("date,value\n24/04/2000,2\n23/04/2000,1\n25/04/2000,3\n")
    with pytest.raises(InputError, match=r"data row 1, time column 'date': '24/04/2000' is not a time; use ISO"):
        read_series(str(path), None, None)
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("t,value\n1,2\n2000-01-02,1\n")
    with pytest.raises(InputError, match="mixes numbers and dates"):
        read_series(str(mixed), "t", None)


def test_a_column_named_twice_is_refused():
    from rnnkit.apps.forecast import _columns

    assert _columns("load, temp") == ["load", "temp"]
    with pytest.raises(InputError, match="column 'load' is named twice in 'load,load'"):  # two targets of one column
        _columns("load,load")


def test_textgen_reads_windows_line_ends_as_line_ends(tmp_path):
    """A CRLF file put '\\r' into the vocabulary, and from there into the samples."""
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"first line\r\nsecond line\r\n")
    documents, _ = load_documents([str(path)], None)
    assert documents == ["first line\nsecond line\n"]


# ------------------------------------------------------------------------------ output files, checked first
@pytest.mark.parametrize("argv, flag", [
    (["forecast", "evaluate", "--run", "{run}", "--plot", "{missing}/f.png"], "--plot"),
    (["translate", "evaluate", "--run", "{run}", "--predictions", "{missing}/p.tsv"], "--predictions"),
    (["translate", "evaluate", "--run", "{run}", "--predictions", "{folder}"], "--predictions"),
])
def test_an_output_file_that_cannot_be_written_is_refused_before_the_work(tmp_path, capsys, argv, flag):
    """The run is not even read (it does not exist here), so nothing is decoded for minutes before the refusal."""
    from rnnkit.cli.main import main

    argv = [a.format(run=tmp_path / "no-run", missing=tmp_path / "missing", folder=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f": error: {flag} " in err, err
    assert "does not exist; create it first" in err or "is a folder" in err


@pytest.mark.parametrize("fill, expected", [("ffill", 20.0), ("interpolate", 30.0)])
def test_a_newest_first_file_is_filled_in_time_order(tmp_path, fill, expected, capsys):
    """ffill on a newest-first export copied the next day's value into the gap (filled in file order, then sorted)."""
    rows = ["day,load", "2020-01-05,50", "2020-01-04,40", "2020-01-03,", "2020-01-02,20", "2020-01-01,10"]
    path = write(tmp_path / "newest_first.csv", "\n".join(rows) + "\n")
    series = load_series(forecast_settings(path, fill=fill))
    assert series.values[:, 0].tolist() == [10.0, 20.0, expected, 40.0, 50.0]
    err = capsys.readouterr().err  # "day" is no time name, but its values are dates
    assert "using 'day' as the time column" in err and "not in time order" in err


def test_a_bad_setting_is_named_by_its_flag(cli_error):
    """Settings refuse bad values by field name (val_fraction); the command line says the flag the user typed."""
    assert "error: --drop-longer-than must be >= 0" in cli_error(["translate", "train", "--drop-longer-than", "-1",
                                                                 "--out", "x"])
    assert "error: --val-fraction + --test-fraction must be below 1" in cli_error(
        ["classify", "train", "--val-fraction", "0.5", "--test-fraction", "0.5", "--out", "x"])
    assert "error: --hidden-size must be" in cli_error(["classify", "train", "--hidden-size", "0", "--out", "x"])


@pytest.mark.parametrize("argv", [
    ["classify", "evaluate", "--run", "r", "--device", "cuda:7"],
    ["classify", "predict", "--run", "r", "--device", "nope", "hi"],
    ["forecast", "predict", "--run", "r", "--device", "nope"],
    ["translate", "translate", "--run", "r", "--device", "nope", "x"],
])
def test_a_bad_device_on_any_verb_is_one_line(argv, cli_error):
    """Train verbs checked --device; the others crashed with a traceback (AssertionError: Torch not compiled with
    CUDA enabled) once the model was loaded."""
    assert "--device" in cli_error(argv)


@pytest.mark.parametrize("argv", [["speech", "transcribe", "--run", "r", "a.wav", "--beam-size", "-3"],
                                  ["handwriting", "read", "--run", "r", "a.png", "--beam-size", "-1"]])
def test_a_negative_beam_width_is_refused(argv, capsys):
    """It was taken as greedy without a word."""
    from rnnkit.cli.main import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2 and "must be >= 0 (1 is greedy)" in capsys.readouterr().err


def test_an_optional_settings_help_does_not_contradict_its_default(capsys):
    """'(default tweets) ('none' turns it off) (default: None)' said three things about one default."""
    from rnnkit.cli.main import main

    with pytest.raises(SystemExit):
        main(["classify", "train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(tweets or drug_reviews; default tweets) --text-column" in text
