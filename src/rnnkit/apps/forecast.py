"""Time-series forecasting: train on a CSV of one or more value columns (or a built-in series), evaluate
against the naive and seasonal-naive forecasts, predict the next horizon.

The series is split in time order into train, validation and test parts; every value column is
standardised with the mean and standard deviation of the training part only. A window of ``lookback``
rows of every input column is the input; the ``horizon`` next values of every target column are the
output of a many-to-one recurrent regressor (:class:`~rnnkit.models.SequenceClassifier` with
``task='regression'`` and ``output_size = horizon * targets``). By default (``target_mode='delta'``)
the network predicts the change from the last observed value, so it learns a correction to the naive
forecast rather than the level, which matters for series whose test part leaves the training range
(prices, trending counts). A window belongs to the part that holds all its target rows; its inputs
may reach back into the earlier part, as a forecaster's history would.

Metrics are in the data's own units: MAE, RMSE and sMAPE (``200 |F - A| / (|A| + |F|)`` in percent,
0 when both are 0), over every target and horizon step, next to the naive forecast (the last observed
value, repeated) and the seasonal-naive forecast (the value one season earlier). The season is
``--season``, or guessed from the time column's spacing (hourly 24, daily 7, trading days 5, weekly 52,
monthly 12, quarterly 4; otherwise none, and the seasonal-naive row is left out).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from rnnkit.train.checkpoint import write_json_atomic
from rnnkit.apps.common import check_resume, finish_training, load_trained, read_app, read_table, require_columns, write_app
from rnnkit.errors import InputError
from rnnkit.models.common import option
from rnnkit.train import TrainConfig, Trainer

APP = "forecast"
DEFAULT_DATASET = "airline"
FILLS = ("none", "ffill", "interpolate", "drop")
INPUT_MODES = ("level", "relative", "both")
MISSING = {"", "na", "n/a", "nan", "null", "none", "-", "?", "#n/a"}
TIME_NAMES = ("time", "date", "datetime", "timestamp", "ds", "month", "year", "period")
#: Default targets of built-in multi-column series.
DATASET_TARGETS = {"stocks": "close", "weather": "temp_air"}


@dataclasses.dataclass
class ForecastSettings:
    """What to forecast from what, and with which model (everything but the optimisation)."""

    data: str | None = option(None, "a CSV/TSV/JSONL file with a time column and value columns")
    dataset: str | None = option(None, f"a built-in series when --data is not given "
                                       f"(airline, sunspots, co2, stocks, weather; default {DEFAULT_DATASET})")
    time_column: str | None = option(None, "the time column (default: one named time/date/timestamp/..., "
                                           "else none: rows are steps)")
    columns: str | None = option(None, "comma-separated input columns (default: every numeric column)")
    targets: str | None = option(None, "comma-separated columns to forecast (default: the first input column)")
    encoding: str = option("utf-8", "encoding of --data, e.g. latin-1")
    fill: str = option("none", "missing values: none (stop with an error), ffill (last known value; never looks "
                               "ahead), interpolate (linear between the known neighbours: it reads the next known "
                               "value, so a forecast made inside a gap sees a little of its future) or drop (the rows)")
    lookback: int = option(12, "rows of history the model reads")
    horizon: int = option(1, "rows ahead to forecast")
    season: int | None = option(None, "season length in rows for the seasonal-naive baseline "
                                      "(default: guessed from the time column)")
    val_fraction: float = option(0.15, "share of the rows for validation (after the training part)")
    test_fraction: float = option(0.2, "share of the rows for the test (the end of the series)")
    target_mode: str = option("delta", "'delta': predict the change from the last value; 'level': the value")
    input_mode: str = option("relative", "what the model reads per step: 'level' (standardised values), 'relative' "
                                     "(minus the window's last row) or 'both'")
    cell: str = option("lstm", "recurrent cell: lstm, gru, rnn")
    hidden_size: int = option(64, "features of the recurrent state")
    num_layers: int = option(1, "stacked recurrent layers")
    dropout: float = option(0.0, "dropout between layers and before the output layer")

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}; got {self.fill!r}")
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {', '.join(INPUT_MODES)}; got {self.input_mode!r}")
        if self.input_mode == "relative" and self.lookback == 1:
            raise ValueError("input_mode 'relative' with lookback 1 leaves the model nothing to read (every input is "
                             "0); use a longer --lookback or --input-mode level or both")
        if self.target_mode not in ("delta", "level"):
            raise ValueError(f"target_mode must be 'delta' or 'level', got {self.target_mode!r}")
        for name in ("lookback", "horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.season is not None and self.season < 1:
            raise ValueError(f"season must be >= 1, got {self.season}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")


@dataclasses.dataclass
class Series:
    """A table of values in time order: ``times`` (datetimes, numbers or ``None``), ``names``, ``values``."""

    times: list | None
    names: list[str]
    values: np.ndarray  # (rows, columns), float64, NaN where missing
    source: str


# ------------------------------------------------------------------------------------- reading
def _parse_time(text: str):
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = re.fullmatch(r"(\d{4})-(\d{1,2})", text)
    if match:
        return dt.datetime(int(match[1]), int(match[2]), 1)
    return dt.datetime.fromisoformat(text)


def _parse_times(raw: list[str]) -> list | None:
    """Numbers or datetimes, all of one kind; ``None`` when the column is neither."""
    try:
        times = [_parse_time(str(t)) for t in raw]
    except (ValueError, TypeError):
        return None
    kinds = {type(t) for t in times}
    if len(kinds) != 1:
        return None
    if kinds == {dt.datetime}:
        zones = {t.tzinfo is None for t in times}
        if len(zones) > 1:
            return None
    return times


def _number(text) -> float | None:
    """A float, ``nan`` for a missing marker, ``None`` for anything else."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if text is None:
        return math.nan
    text = str(text).strip()
    if text.lower() in MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def read_series(path: str, time_column: str | None, columns: list[str] | None, *, encoding: str = "utf-8") -> Series:
    """A :class:`Series` from a CSV/TSV/JSONL file; one-line errors name the row and column."""
    header, rows = read_table(path, encoding=encoding)
    if time_column is None:
        time_column = next((c for c in header if c.strip().lower() in TIME_NAMES), None)
    else:
        require_columns(path, header, {"--time-column": time_column})
    if columns is not None:
        require_columns(path, header, {"--columns": c for c in columns} if len(columns) == 1 else
                        {f"--columns ({c})": c for c in columns})
    candidates = columns or [c for c in header if c != time_column]
    parsed = {c: [_number(row.get(c)) for row in rows] for c in candidates}
    if columns is None:  # default: the numeric columns only
        skipped = [c for c in candidates if all(v is None or math.isnan(v) for v in parsed[c])]
        candidates = [c for c in candidates if c not in skipped]
        if skipped:
            print(f"note: leaving out non-numeric columns {', '.join(skipped)}", file=sys.stderr)
        if not candidates:
            raise InputError(f"{path} has no numeric value columns; columns: {', '.join(header)}")
    for c in candidates:
        bad = next((i for i, v in enumerate(parsed[c]) if v is None), None)
        if bad is not None:
            raise InputError(f"{path}, data row {bad + 1}, column {c!r}: {rows[bad].get(c)!r} is not a number; "
                           f"fix it, or blank it and pass --fill (ffill, interpolate or drop)")
    times = _parse_times([row.get(time_column) for row in rows]) if time_column else None
    values = np.array([parsed[c] for c in candidates], dtype=np.float64).T.reshape(len(rows), len(candidates))
    return Series(times, candidates, values, path)


def load_dataset(name: str) -> Series:
    """A built-in series data set as a :class:`Series`."""
    from rnnkit import datasets

    info = datasets.info(name)
    if info.kind != "series":
        known = ", ".join(d.name for d in datasets.list_datasets(kind="series"))
        raise InputError(f"data set {name!r} is a {info.kind} data set; forecast takes one of: {known}")
    frame = datasets.load(name)
    names = [c for c in frame.columns if c != "time"]
    times = [t.to_pydatetime() for t in frame["time"]]
    values = frame[names].to_numpy(dtype=np.float64)
    return Series(times, names, values, f"data set {name}")


def fill_missing(series: Series, how: str) -> Series:
    """Apply ``--fill`` to NaNs; with ``none`` the first missing value is an error naming its place."""
    missing = np.isnan(series.values)
    if not missing.any():
        return series
    row, col = map(int, np.argwhere(missing)[0])
    if how == "none":
        raise InputError(f"{series.source}, data row {row + 1}, column {series.names[col]!r}: missing value "
                       f"({int(missing.sum())} in all); pass --fill ffill, interpolate or drop")
    values = series.values.copy()
    if how == "drop":
        keep = ~missing.any(axis=1)
        times = [t for t, k in zip(series.times, keep) if k] if series.times is not None else None
        return Series(times, series.names, values[keep], series.source)
    index = np.arange(len(values))
    for c in range(values.shape[1]):
        known = ~missing[:, c]
        if not known.any():
            raise InputError(f"{series.source}: column {series.names[c]!r} has no values at all")
        if how == "interpolate":
            values[:, c] = np.interp(index, index[known], values[known, c])
        else:  # ffill; values before the first known one take the first known one
            last = np.where(known, index, 0)
            np.maximum.accumulate(last, out=last)
            first = int(np.argmax(known))
            last[:first] = first
            values[:, c] = values[last, c]
    return Series(series.times, series.names, values, series.source)


def _in_order(series: Series) -> Series:
    times = series.times
    if times is None or all(a <= b for a, b in zip(times, times[1:])):
        return series
    order = sorted(range(len(times)), key=times.__getitem__)
    print(f"note: {series.source} is not in time order; sorted by time", file=sys.stderr)
    return Series([times[i] for i in order], series.names, series.values[order], series.source)


# ------------------------------------------------------------------------------------ the time axis
def _is_month_end(t: dt.datetime) -> bool:
    return (t + dt.timedelta(days=1)).month != t.month


def _month_step(times: list[dt.datetime]) -> int | None:
    """Months between rows when every row falls on the same day of the month, or on the month's last day."""
    months = [t.year * 12 + t.month for t in times]
    steps = {b - a for a, b in zip(months, months[1:])}
    same_day = len({(t.day, t.time()) for t in times}) == 1
    month_ends = len({t.time() for t in times}) == 1 and all(_is_month_end(t) for t in times)
    return steps.pop() if len(steps) == 1 and (same_day or month_ends) and 0 not in steps else None


def time_step(times: list | None) -> dict | None:
    """The regular spacing of the last rows: ``{"months": k}``, ``{"seconds": s}``, ``{"number": d}`` or None."""
    if not times or len(times) < 3:
        return None
    tail = times[-50:]
    if isinstance(tail[0], float):
        steps = {round(b - a, 9) for a, b in zip(tail, tail[1:])}
        return {"number": steps.pop()} if len(steps) == 1 and next(iter(steps), 0) > 0 else None
    months = _month_step(tail)
    if months:
        return {"months": months}
    steps = {(b - a).total_seconds() for a, b in zip(tail, tail[1:])}
    return {"seconds": steps.pop()} if len(steps) == 1 and next(iter(steps), 0) > 0 else None


def next_times(times: list | None, count: int) -> list[str]:
    """Labels of the ``count`` rows after the end: timestamps when the spacing is regular, else ``t+k``."""
    step = time_step(times)
    if step is None:
        return [f"t+{k}" for k in range(1, count + 1)]
    last = times[-1]
    if "number" in step:
        return [f"{last + k * step['number']:g}" for k in range(1, count + 1)]
    if "months" in step:
        out = []
        month_end = _is_month_end(last)
        for k in range(1, count + 1):
            month = last.month - 1 + k * step["months"]
            year, month = last.year + month // 12, month % 12 + 1
            if month_end:  # 31 Jan, 28 Feb, 31 Mar, ...
                following = dt.datetime(year + month // 12, month % 12 + 1, 1, last.hour, last.minute, last.second)
                out.append((following - dt.timedelta(days=1)).isoformat(sep=" "))
            else:
                out.append(last.replace(year=year, month=month).isoformat(sep=" "))
        return out
    return [(last + dt.timedelta(seconds=k * step["seconds"])).isoformat(sep=" ") for k in range(1, count + 1)]


def guess_season(times: list | None) -> int | None:
    """Rows per season from the time column's spacing (see the module docstring), else ``None``."""
    if not times or len(times) < 3 or not isinstance(times[0], dt.datetime):
        return None
    months = _month_step(times[-50:])
    if months:
        return {1: 12, 3: 4}.get(months)
    gaps = sorted((b - a).total_seconds() for a, b in zip(times, times[1:]))
    median = gaps[len(gaps) // 2]
    day = 86400.0
    if median == day and gaps[-1] > day and all(t.weekday() < 5 for t in times):
        return 5  # trading days: weekends missing (a gap alone, with weekend rows present, is just a gap)
    table = {3600.0: 24, 1800.0: 48, 900.0: 96, 300.0: 288, 60.0: 1440, day: 7, 7 * day: 52}
    return table.get(median)


# ------------------------------------------------------------------------------------ windows
@dataclasses.dataclass
class Prepared:
    """The series, its split, the scaling and the window index of every part."""

    series: Series
    inputs: list[str]
    targets: list[str]
    mean: np.ndarray
    std: np.ndarray
    delta_scale: np.ndarray
    bounds: tuple[int, int]  # rows [0, a) train, [a, b) validation, [b, n) test
    ends: dict[str, np.ndarray]  # part -> the last input row of each window


def _columns(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def load_series(settings: ForecastSettings | dict) -> Series:
    """The settings' data (file or built-in set), missing values handled, in time order."""
    s = settings if isinstance(settings, dict) else dataclasses.asdict(settings)
    if s["data"] is not None:
        wanted = _columns(s["columns"])
        if wanted is not None:
            wanted += [t for t in _columns(s["targets"]) or [] if t not in wanted]
        series = read_series(s["data"], s["time_column"], wanted, encoding=s["encoding"])
    else:
        series = load_dataset(s["dataset"] or DEFAULT_DATASET)
    return _in_order(fill_missing(series, s["fill"]))


def prepare(series: Series, settings: dict, scaling: dict | None = None) -> Prepared:
    """Choose columns, split in time order, fit the scaling on the training part (or reuse ``scaling``)."""
    where = series.source
    inputs = _columns(settings["columns"]) or list(series.names)
    targets = _columns(settings["targets"]) or [
        DATASET_TARGETS.get(settings["dataset"] or "", inputs[0]) if settings["data"] is None else inputs[0]]
    for option_name, names in (("--columns", inputs), ("--targets", targets)):
        for name in names:
            if name not in series.names:
                raise InputError(f"{where} has no column {name!r} ({option_name}); available columns: "
                               f"{', '.join(series.names)}")
    inputs += [t for t in targets if t not in inputs]
    n, lookback, horizon = len(series.values), settings["lookback"], settings["horizon"]
    if n < lookback + horizon:
        raise InputError(f"{where} has {n} rows, fewer than lookback + horizon = {lookback + horizon}; "
                       f"lower --lookback or --horizon")
    test_rows, val_rows = round(n * settings["test_fraction"]), round(n * settings["val_fraction"])
    a, b = n - test_rows - val_rows, n - test_rows
    if scaling is None and a < lookback + horizon:  # with a run's scaling (evaluate, predict) no training part is needed
        raise InputError(f"{where}: the training part has {a} of {n} rows, fewer than lookback + horizon = "
                       f"{lookback + horizon}; lower --lookback/--horizon or --val-fraction/--test-fraction")
    columns = [series.names.index(c) for c in inputs]
    values = series.values[:, columns]
    if scaling is None:
        mean, std = values[:a].mean(0), values[:a].std(0)
        std = np.where(std > 0, std, 1.0)
        target_cols = [inputs.index(t) for t in targets]
        diffs = np.abs(np.diff(values[:a, target_cols], axis=0))
        delta_scale = np.sqrt((diffs ** 2).mean(0)) if len(diffs) else np.ones(len(targets))
        delta_scale = np.where(delta_scale > 0, delta_scale, std[target_cols])
    else:
        mean, std, delta_scale = (np.asarray(scaling[k], dtype=np.float64) for k in ("mean", "std", "delta_scale"))
    ends = np.arange(lookback - 1, n - horizon)  # window = rows [e - lookback + 1, e], targets e + 1 .. e + horizon
    first, last = ends + 1, ends + horizon
    parts = {"train": ends[last < a], "val": ends[(first >= a) & (last < b)], "test": ends[first >= b],
             "all": ends}
    return Prepared(Series(series.times, inputs, values, where), inputs, targets, mean, std, delta_scale,
                    (a, b), parts)


def windows(prep: Prepared, ends: np.ndarray, settings: dict) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``(inputs (N, lookback, F), scaled targets (N, horizon * T), actual targets (N, horizon, T))``."""
    lookback, horizon = settings["lookback"], settings["horizon"]
    z = (prep.series.values - prep.mean) / prep.std
    target_cols = [prep.inputs.index(t) for t in prep.targets]
    rows = ends[:, None] + np.arange(-lookback + 1, 1)[None, :]
    x = model_inputs(z[rows], settings["input_mode"])
    future = ends[:, None] + np.arange(1, horizon + 1)[None, :]
    actual = prep.series.values[future][:, :, target_cols]
    y = _to_scaled(actual, prep, ends, settings)
    return (torch.tensor(x, dtype=torch.float32), torch.tensor(y.reshape(len(ends), -1), dtype=torch.float32),
            actual)


def model_inputs(z: np.ndarray, mode: str) -> np.ndarray:
    """Standardised windows ``(N, lookback, F)`` as the model reads them (``(N, lookback, 2F)`` for 'both')."""
    relative = z - z[:, -1:, :]
    return {"level": z, "relative": relative, "both": np.concatenate([z, relative], -1) if mode == "both" else None}[mode]


def _last_values(prep: Prepared, ends: np.ndarray) -> np.ndarray:
    return prep.series.values[ends][:, [prep.inputs.index(t) for t in prep.targets]]  # (N, T)


def _to_scaled(actual: np.ndarray, prep: Prepared, ends: np.ndarray, settings: dict) -> np.ndarray:
    target_cols = [prep.inputs.index(t) for t in prep.targets]
    if settings["target_mode"] == "delta":
        return (actual - _last_values(prep, ends)[:, None, :]) / prep.delta_scale
    return (actual - prep.mean[target_cols]) / prep.std[target_cols]


def _from_scaled(scaled: np.ndarray, prep: Prepared, ends: np.ndarray, settings: dict) -> np.ndarray:
    target_cols = [prep.inputs.index(t) for t in prep.targets]
    if settings["target_mode"] == "delta":
        return _last_values(prep, ends)[:, None, :] + scaled * prep.delta_scale
    return scaled * prep.std[target_cols] + prep.mean[target_cols]


# ------------------------------------------------------------------------------------ metrics
def errors(forecast: np.ndarray, actual: np.ndarray) -> dict:
    """MAE, RMSE and sMAPE (percent) over every element."""
    difference = forecast - actual
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(2 * np.abs(difference), denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return {"mae": float(np.abs(difference).mean()), "rmse": float(np.sqrt((difference ** 2).mean())),
            "smape": float(100 * ratio.mean())}


def seasonal_naive(prep: Prepared, ends: np.ndarray, horizon: int, season: int) -> np.ndarray | None:
    """The value one season (or as many as needed to reach observed rows) before each forecast row."""
    target_cols = [prep.inputs.index(t) for t in prep.targets]
    steps = np.arange(1, horizon + 1)
    source = ends[:, None] + steps[None, :] - season * np.ceil(steps / season).astype(int)[None, :]
    if (source < 0).any():
        return None
    return prep.series.values[source][:, :, target_cols]


@torch.no_grad()
def model_forecast(model: torch.nn.Module, x: torch.Tensor, prep: Prepared, ends: np.ndarray,
                   settings: dict) -> np.ndarray:
    """The model's forecasts in the data's units: ``(N, horizon, targets)``."""
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(x[i:i + 1024].to(device)).output.float().cpu() for i in range(0, len(x), 1024)])
    scaled = out.numpy().astype(np.float64).reshape(len(ends), settings["horizon"], len(prep.targets))
    return _from_scaled(scaled, prep, ends, settings)


def measure(model: torch.nn.Module, prep: Prepared, settings: dict, part: str) -> tuple[dict, dict]:
    """``(metrics, curves)`` on one part: the model, naive and seasonal-naive errors in the data's units."""
    ends = prep.ends[part]
    if len(ends) == 0:
        raise InputError(f"{prep.series.source}: the {part} part has no complete window "
                       f"(lookback {settings['lookback']}, horizon {settings['horizon']}); use a longer series")
    x, _, actual = windows(prep, ends, settings)
    predicted = model_forecast(model, x, prep, ends, settings)
    naive = np.repeat(_last_values(prep, ends)[:, None, :], settings["horizon"], axis=1)
    season = settings.get("season_used")
    seasonal = seasonal_naive(prep, ends, settings["horizon"], season) if season else None
    result = {"part": part, "windows": int(len(ends)), "targets": prep.targets, "season": season,
              "model": errors(predicted, actual), "naive": errors(naive, actual),
              "seasonal_naive": errors(seasonal, actual) if seasonal is not None else None}
    if len(prep.targets) > 1:
        result["per_target"] = {t: {"model": errors(predicted[..., i], actual[..., i]),
                                    "naive": errors(naive[..., i], actual[..., i])}
                                for i, t in enumerate(prep.targets)}
    return result, {"ends": ends, "actual": actual, "model": predicted, "naive": naive}


def describe(result: dict) -> str:
    """A small table: MAE, RMSE, sMAPE of the model and the baselines."""
    rows = [(name if name != "seasonal_naive" else f"seasonal naive ({result['season']})", result[name])
            for name in ("model", "naive", "seasonal_naive") if result.get(name)]
    width = max([len("forecast"), *(len(label) for label, _ in rows)]) + 2
    lines = [f"{'forecast':<{width}}{'MAE':>12}{'RMSE':>12}{'sMAPE %':>10}"]
    for label, e in rows:
        lines.append(f"{label:<{width}}{e['mae']:>12.4g}{e['rmse']:>12.4g}{e['smape']:>10.2f}")
    return "\n".join(lines)


def plot_forecast(prep: Prepared, curves: dict, settings: dict, path: Path, title: str) -> None:
    """Actual values against the model's 1-step (and last-step) forecasts and the naive forecast, per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ends, horizon = curves["ends"], settings["horizon"]
    times = prep.series.times
    shown = prep.targets[:4]
    figure, axes = plt.subplots(len(shown), 1, figsize=(10, 3.2 * len(shown)), squeeze=False)
    history = max(int(ends[0]) - 2 * len(ends), 0)
    for i, (target, ax) in enumerate(zip(shown, axes[:, 0])):
        column = prep.inputs.index(target)
        span = range(history, int(ends[-1]) + horizon + 1)
        x_of = (lambda rows: [times[r] for r in rows]) if times is not None else (lambda rows: list(rows))
        ax.plot(x_of(span), prep.series.values[list(span), column], color="black", lw=1.2, label="actual")
        ax.plot(x_of(ends + 1), curves["model"][:, 0, i], color="tab:blue", lw=1.2, label="model, 1 step ahead")
        if horizon > 1:
            ax.plot(x_of(ends + horizon), curves["model"][:, -1, i], color="tab:orange", lw=1,
                    label=f"model, {horizon} steps ahead")
        ax.plot(x_of(ends + 1), curves["naive"][:, 0, i], color="gray", lw=0.8, ls="--", label="naive")
        ax.axvline(x_of([int(ends[0]) + 1])[0], color="gray", lw=0.5)
        ax.set_ylabel(target)
        ax.legend(loc="upper left", fontsize=8)
    axes[0, 0].set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ------------------------------------------------------------------------------------ verbs
def _scaling(prep: Prepared) -> dict:
    return {"mean": prep.mean.tolist(), "std": prep.std.tolist(), "delta_scale": prep.delta_scale.tolist()}


def train(settings: ForecastSettings, config: TrainConfig, out: str | Path, *, resume: bool = False,
          progress: bool = True) -> dict:
    """Train a forecaster into the run directory ``out``; returns the test metrics (see :func:`measure`)."""
    from rnnkit.models import SequenceClassifier

    out = Path(out)
    check_resume(out, APP, resume)
    if resume:
        saved = read_app(out, APP)
        settings = ForecastSettings(**{f.name: saved[f.name] for f in dataclasses.fields(ForecastSettings)})
    series = load_series(settings)
    if settings.data is not None:
        settings = dataclasses.replace(settings, data=str(Path(settings.data).resolve()))
    info = dataclasses.asdict(settings)
    prep = prepare(series, info)
    season = settings.season or guess_season(series.times)
    info.update(inputs=prep.inputs, target_columns=prep.targets, scaling=_scaling(prep), season_used=season,
                time_step=time_step(series.times), source=series.source,
                sizes={part: int(len(e)) for part, e in prep.ends.items() if part != "all"})
    if resume and (saved["scaling"] != info["scaling"] or saved["sizes"] != info["sizes"]):
        raise InputError(f"--resume: {series.source} no longer gives the split and scaling the run started with")
    torch.manual_seed(config.seed)  # the initial weights follow --seed
    features = len(prep.inputs) * (2 if settings.input_mode == "both" else 1)
    model = SequenceClassifier(input_size=features, output_size=settings.horizon * len(prep.targets),
                               task="regression", cell=settings.cell, hidden_size=settings.hidden_size,
                               num_layers=settings.num_layers, dropout=settings.dropout, summary="last")
    if not resume:  # rank 0 writes under torchrun
        write_app(out, APP, info)
    x, y, _ = windows(prep, prep.ends["train"], info)
    val = None
    if len(prep.ends["val"]):
        vx, vy, _ = windows(prep, prep.ends["val"], info)
        val = TensorDataset(vx, vy)
    trainer = Trainer(model, TensorDataset(x, y), config=config, val_data=val, run_dir=out, progress=progress,
                      model_config={"regressor": dataclasses.asdict(model.config), "targets": prep.targets})
    fitted = trainer.fit(resume=resume)
    finish_training(trainer, model, out, None)
    result = {"steps": fitted["step"], **info["sizes"]}
    if len(prep.ends["test"]):
        metrics, curves = measure(model, prep, info, "test")
        result.update(metrics)
        if trainer.process.is_main:
            plot_forecast(prep, curves, info, out / "forecast.png",
                          f"test: RMSE {metrics['model']['rmse']:.4g} (naive {metrics['naive']['rmse']:.4g})")
    if trainer.process.is_main:
        write_json_atomic(out / "results.json", result)
    return result


def load_run(run: str | Path, device: str = "cpu"):
    """``(model, settings)`` of a forecast run directory."""
    model, _, settings = load_trained(run, APP, device)
    return model, settings


def _run_data(settings: dict, data: str | None, encoding: str | None, fill: str | None) -> Series:
    if data is None:
        return load_series(settings)
    return load_series({**settings, "data": data, "encoding": encoding or settings["encoding"],
                        "fill": fill or settings["fill"], "columns": ",".join(settings["inputs"]), "targets": None})


def evaluate(run: str | Path, *, data: str | None = None, part: str | None = None, encoding: str | None = None,
             fill: str | None = None, device: str = "cpu", plot: str | Path | None = None) -> dict:
    """Errors of a trained run against the baselines: on the run's own ``part`` (default ``test``), or on
    every window of ``data`` (``part`` default ``all``), with the run's scaling."""
    model, settings = load_run(run, device)
    series = _run_data(settings, data, encoding, fill)
    part = part or ("all" if data is not None else "test")
    prep = prepare(series, {**settings, "columns": ",".join(settings["inputs"]),
                            "targets": ",".join(settings["target_columns"])}, settings["scaling"])
    metrics, curves = measure(model, prep, settings, part)
    metrics["evaluated_on"] = f"{series.source} ({part})"
    if plot is not None:
        plot_forecast(prep, curves, settings, Path(plot), f"{part}: RMSE {metrics['model']['rmse']:.4g}")
    return metrics


def predict(run: str | Path, *, data: str | None = None, encoding: str | None = None, fill: str | None = None,
            device: str = "cpu") -> dict:
    """The next ``horizon`` values of every target after the end of the data (default: the run's data).

    Returns ``{"times": [...], "targets": [...], "values": [[per target] per step]}``; times are
    timestamps when the time column is regular, else ``t+1, t+2, ...``.
    """
    model, settings = load_run(run, device)
    series = _run_data(settings, data, encoding, fill)
    lookback = settings["lookback"]
    missing = [c for c in settings["inputs"] if c not in series.names]
    if missing:
        raise InputError(f"{series.source} lacks the run's columns {missing}; available: {', '.join(series.names)}")
    if len(series.values) < lookback:
        raise InputError(f"{series.source} has {len(series.values)} rows; the model needs the last {lookback} (lookback)")
    columns = [series.names.index(c) for c in settings["inputs"]]
    prep = Prepared(Series(series.times, settings["inputs"], series.values[:, columns], series.source),
                    settings["inputs"], settings["target_columns"],
                    *(np.asarray(settings["scaling"][k]) for k in ("mean", "std", "delta_scale")),
                    (0, 0), {})
    end = np.array([len(series.values) - 1])
    z = (prep.series.values[-lookback:] - prep.mean) / prep.std
    x = torch.tensor(model_inputs(z[None], settings["input_mode"]), dtype=torch.float32)
    values = model_forecast(model, x, prep, end, settings)[0]
    return {"times": next_times(series.times, settings["horizon"]), "targets": prep.targets,
            "values": values.tolist()}
