"""rnnkit forecast: beats the naive baselines on sine + trend, predicts with timestamps, refuses bad input."""

import datetime as dt
import json
import math
import random

import pytest

from app_support import write_run_marker
from rnnkit.apps.forecast import guess_season, next_times
from rnnkit.cli.main import main

FAST = ["--hidden-size", "32", "--lookback", "24", "--season", "12", "--eval-every", "50", "--quiet"]


def series_csv(path, rows=240, seed=0, blank=None, text=None):
    """Monthly sine (period 12) plus trend, with a noisy covariate; optionally a blank or a word in it."""
    rng = random.Random(seed)
    lines = ["month,load,noise"]
    for t in range(rows):
        month = dt.date(2000 + t // 12, t % 12 + 1, 1).isoformat()
        load = 10 + 0.08 * t + 3 * math.sin(2 * math.pi * t / 12) + rng.gauss(0, 0.2)
        value = "" if t == blank else text if (text and t == 5) else f"{load:.4f}"
        lines.append(f"{month},{value},{rng.gauss(0, 1):.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    data, run = series_csv(root / "load.csv"), root / "run"
    assert main(["forecast", "train", "--data", str(data), "--targets", "load", "--horizon", "3", "--out", str(run),
                 "--max-steps", "300", *FAST]) == 0
    return data, run


@pytest.mark.slow
def test_beats_naive_and_seasonal_naive(trained):
    _, run = trained
    result = json.loads((run / "results.json").read_text())
    assert result["targets"] == ["load"] and result["season"] == 12
    assert result["model"]["rmse"] < 0.7 * result["seasonal_naive"]["rmse"]
    assert result["model"]["rmse"] < 0.5 * result["naive"]["rmse"]
    assert (run / "forecast.png").stat().st_size > 0
    facts = json.loads((run / "app.json").read_text())["facts"]
    assert facts["inputs"] == ["load", "noise"] and facts["time_step"] == {"months": 1}
    assert len(facts["scaling"]["mean"]) == 2


@pytest.mark.slow
def test_predict_next_horizon_with_timestamps(trained, capsys):
    _, run = trained
    assert main(["forecast", "predict", "--run", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["times"] == ["2020-01-01 00:00:00", "2020-02-01 00:00:00", "2020-03-01 00:00:00"]
    expected = [10 + 0.08 * t + 3 * math.sin(2 * math.pi * t / 12) for t in (240, 241, 242)]
    assert all(abs(v[0] - e) < 1.5 for v, e in zip(result["values"], expected))
    assert main(["forecast", "evaluate", "--run", str(run)]) == 0
    assert "seasonal naive (12)" in capsys.readouterr().out


@pytest.mark.slow
def test_predict_from_an_excel_csv_with_a_byte_order_mark(trained, tmp_path, capsys):
    data, run = trained
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbf" + data.read_bytes())  # Excel's "CSV UTF-8"
    assert main(["forecast", "predict", "--run", str(run), "--data", str(excel), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["times"][0] == "2020-01-01 00:00:00"  # the month column was kept


@pytest.mark.slow
def test_fill_options(tmp_path, capsys, cli_error):
    holed = series_csv(tmp_path / "holed.csv", rows=80, blank=30)
    base = ["forecast", "train", "--data", str(holed), "--max-steps", "2", *FAST]
    err = cli_error([*base, "--out", str(tmp_path / "a")])
    assert "data row 31" in err and "'load'" in err and "--fill" in err
    for fill in ("ffill", "interpolate", "drop"):
        assert main([*base, "--out", str(tmp_path / fill), "--fill", fill]) == 0
    capsys.readouterr()


def test_bad_input_one_line(tmp_path, cli_error):
    good = series_csv(tmp_path / "good.csv", rows=80)
    train = ["forecast", "train", "--out", str(tmp_path / "x"), "--max-steps", "2", *FAST]
    assert "no such file" in cli_error([*train, "--data", str(tmp_path / "none.csv")])
    err = cli_error([*train, "--data", str(good), "--targets", "price"])
    assert "'price'" in err and "available columns: load, noise" in err
    err = cli_error([*train, "--data", str(good), "--time-column", "when"])
    assert "available columns: month, load, noise" in err
    word = series_csv(tmp_path / "word.csv", rows=80, text="n/a?")
    err = cli_error([*train, "--data", str(word)])
    assert "data row 6" in err and "'n/a?' is not a number" in err
    short = series_csv(tmp_path / "short.csv", rows=20)
    assert "fewer than lookback + horizon" in cli_error([*train, "--data", str(short)])
    (tmp_path / "latin.csv").write_bytes("t,caf\xe9\n1,2\n".encode("latin-1"))
    assert "--encoding" in cli_error([*train, "--data", str(tmp_path / "latin.csv")])
    (tmp_path / "empty.csv").write_text("\n")
    assert "empty" in cli_error([*train, "--data", str(tmp_path / "empty.csv")])


def test_foreign_or_newer_run_refused(tmp_path, cli_error):
    write_run_marker(tmp_path / "cls", "classify")
    assert "rnnkit classify" in cli_error(["forecast", "predict", "--run", str(tmp_path / "cls")])
    newer = tmp_path / "newer"
    write_run_marker(newer, "forecast", format=99)
    assert "newer rnnkit" in cli_error(["forecast", "evaluate", "--run", str(newer)])


@pytest.mark.slow
def test_resume(tmp_path):
    data, run = series_csv(tmp_path / "s.csv", rows=80), tmp_path / "run"
    base = ["forecast", "train", "--data", str(data), "--out", str(run), "--checkpoint-every", "3", *FAST]
    assert main([*base, "--max-steps", "6"]) == 0
    assert main([*base, "--max-steps", "12", "--resume"]) == 0
    assert json.loads((run / "results.json").read_text())["steps"] == 12


def test_time_helpers():
    hours = [dt.datetime(2020, 1, 1) + dt.timedelta(hours=h) for h in range(48)]
    assert guess_season(hours) == 24 and next_times(hours, 2)[0] == "2020-01-03 00:00:00"
    assert next_times([1.0, 2.0, 3.0], 2) == ["4", "5"] and next_times(None, 2) == ["t+1", "t+2"]
    weekdays = [d for d in (dt.datetime(2020, 1, 1) + dt.timedelta(days=i) for i in range(60)) if d.weekday() < 5]
    assert guess_season(weekdays) == 5


def test_month_end_dates_and_gaps_in_daily_data():
    import datetime as dt

    from rnnkit.apps.forecast import guess_season, next_times

    month_ends = [dt.datetime(2018 + (m + 1) // 12, (m + 1) % 12 + 1, 1) - dt.timedelta(days=1) for m in range(36)]
    assert month_ends[:2] == [dt.datetime(2018, 1, 31), dt.datetime(2018, 2, 28)]
    assert guess_season(month_ends) == 12
    assert next_times(month_ends, 2) == ["2021-01-31 00:00:00", "2021-02-28 00:00:00"]
    daily_with_a_gap = [dt.datetime(2020, 1, 1) + dt.timedelta(days=i) for i in range(60) if i != 10]
    assert guess_season(daily_with_a_gap) == 7
    weekdays = [t for t in (dt.datetime(2020, 1, 6) + dt.timedelta(days=i) for i in range(60)) if t.weekday() < 5]
    assert guess_season(weekdays) == 5


@pytest.mark.slow
def test_evaluate_accepts_a_short_new_file_with_whole_windows(tmp_path, capsys):
    from rnnkit.cli.main import main

    rows = ["t,y"] + [f"{i},{10 + (i % 7) + 0.1 * i}" for i in range(200)]
    (tmp_path / "s.csv").write_text("\n".join(rows))
    args = ["--lookback", "8", "--max-steps", "20", "--quiet", "--out", str(tmp_path / "run")]
    assert main(["forecast", "train", "--data", str(tmp_path / "s.csv"), *args]) == 0
    (tmp_path / "short.csv").write_text("\n".join(rows[:1] + rows[-12:]))  # 12 rows: 4 windows of 8 + 1
    assert main(["forecast", "evaluate", "--run", str(tmp_path / "run"), "--data", str(tmp_path / "short.csv")]) == 0
    assert "4 windows" in capsys.readouterr().out


def test_train_ends_with_the_run_directory_and_the_next_command(tmp_path, capsys):
    """classify, forecast, handwriting, speech and dna ended with the run directory alone."""
    assert main(["forecast", "train", "--max-steps", "2", *FAST, "--out", str(tmp_path / "run")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"run directory: {tmp_path / 'run'}; next: rnnkit forecast predict --run {tmp_path / 'run'}"
