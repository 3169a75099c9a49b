"""Time series for forecasting: read and check a table of values in time order, fill its gaps, read
its time axis, and cut it into standardised windows.

A :class:`Series` is a table of value columns with an optional time column. :func:`read_series`
reads one from a CSV/TSV/JSONL file and refuses what would quietly spoil a forecast: a word or an
infinity where a number belongs, a time that appears twice. Missing values are NaN until
:func:`fill_missing` applies ``--fill``; :func:`in_time_order` sorts the rows.

The time axis: :func:`time_step` is the regular spacing of the rows (months, seconds or a number),
:func:`next_times` labels the rows after the end, :func:`guess_season` the rows per season
(hourly 24, daily 7, trading days 5, weekly 52, monthly 12, quarterly 4).

A :class:`WindowedSeries` is a series split in time order into train, validation and test rows, with
a :class:`Scaling` fitted on the training rows only, cut into windows of ``lookback`` rows of every
input column followed by the ``horizon`` next values of every target column. A window belongs to the
part that holds all its target rows; its inputs may reach back into the earlier part, as a
forecaster's history would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import sys

import numpy as np
import torch

from rnnkit.data.tables import read_table, require_columns
from rnnkit.errors import InputError

#: ``--fill``: what to do with missing values.
FILLS = ("none", "ffill", "interpolate", "drop")
#: What a model reads per step of a window: standardised values, values minus the window's last row, or both.
INPUT_MODES = ("level", "relative", "both")
#: What a model predicts: the change from the last observed value, or the value itself (standardised).
TARGET_MODES = ("delta", "level")
#: Cell texts that mean "no value" (compared lowercased and stripped).
MISSING = {"", "na", "n/a", "nan", "null", "none", "-", "?", "#n/a"}
#: Column names taken for the time column when none is named (compared lowercased and stripped).
TIME_NAMES = ("time", "date", "datetime", "timestamp", "ds", "month", "year", "period")


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
    """A :class:`Series` from a CSV/TSV/JSONL file; one-line errors name the row and column.

    ``time_column`` defaults to a column named like a time (:data:`TIME_NAMES`); ``columns`` to every
    numeric column. A value that is not a number, or not a finite one, is an error; so is a time that
    appears twice.
    """
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
        if time_column is None:  # a column of dates under another name ("day", "week") is the time axis
            time_column = next((c for c in skipped if _parse_times([row.get(c) for row in rows]) is not None), None)
            if time_column is not None:
                skipped.remove(time_column)
                print(f"note: using {time_column!r} as the time column (its values are times); --time-column names "
                      "another", file=sys.stderr)
        if skipped:
            print(f"note: leaving out non-numeric columns {', '.join(skipped)}", file=sys.stderr)
        if not candidates:
            raise InputError(f"{path} has no numeric value columns; columns: {', '.join(header)}")
    for c in candidates:
        _check_numbers(path, c, parsed[c], [row.get(c) for row in rows])
    times = _parse_times([row.get(time_column) for row in rows]) if time_column else None
    if time_column and times is None:  # left as file order without a word, the series was silently unsorted
        raise InputError(_time_error(path, time_column, [row.get(time_column) for row in rows]))
    if times is not None:
        _check_unique_times(path, time_column, times, [row.get(time_column) for row in rows])
    values = np.array([parsed[c] for c in candidates], dtype=np.float64).T.reshape(len(rows), len(candidates))
    return Series(times, candidates, values, path)


def _time_error(path: str, column: str, raw: list) -> str:
    """Why the time column does not read as times: its first value that is not one, or a mix of kinds."""
    hint = "use ISO dates (YYYY-MM-DD, YYYY-MM-DD HH:MM:SS), YYYY-MM or numbers"
    for row, text in enumerate(raw, start=1):
        try:
            _parse_time(str(text))
        except (ValueError, TypeError):
            return f"{path}, data row {row}, time column {column!r}: {text!r} is not a time; {hint}"
    return f"{path}, time column {column!r} mixes numbers and dates, or dates with and without a time zone; {hint}"


def _check_numbers(path: str, column: str, numbers: list[float | None], raw: list) -> None:
    """Every value a number (or missing). An infinity is refused, not taken as missing: it is
    usually an overflow or a division by zero upstream, and the standardisation cannot take it."""
    for row, (number, text) in enumerate(zip(numbers, raw), start=1):
        if number is None:
            raise InputError(f"{path}, data row {row}, column {column!r}: {text!r} is not a number; "
                             f"fix it, or blank it and pass --fill (ffill, interpolate or drop)")
        if math.isinf(number):
            raise InputError(f"{path}, data row {row}, column {column!r}: {text!r} is not a finite number; "
                             f"fix it, or blank it and pass --fill (ffill, interpolate or drop)")


def _check_unique_times(path: str, column: str, times: list, raw: list) -> None:
    """One row per time: a repeated time would feed the model two rows for one step."""
    rows_of: dict = {}
    for row, time in enumerate(times, start=1):
        rows_of.setdefault(time, []).append(row)
    repeated = [rows for rows in rows_of.values() if len(rows) > 1]
    if repeated:
        rows = repeated[0]
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        more = f" ({len(repeated)} repeated times in all)" if len(repeated) > 1 else ""
        raise InputError(f"{path}, column {column!r}: time {str(raw[rows[0] - 1]).strip()!r} appears in data rows "
                         f"{shown}{more}; keep one row per time (merge or remove the repeats)")


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


def in_time_order(series: Series) -> Series:
    """The rows sorted by time (a note on stderr when they were not)."""
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
def split_bounds(rows: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """``(a, b)``: rows ``[0, a)`` train, ``[a, b)`` validation, ``[b, rows)`` test, in time order."""
    test_rows, val_rows = round(rows * test_fraction), round(rows * val_fraction)
    return rows - test_rows - val_rows, rows - test_rows


@dataclasses.dataclass
class Scaling:
    """The standardisation of the input columns (``mean``, ``std``) and of the targets' changes
    (``delta_scale``: the root-mean-square step of each target), fitted on the training rows."""

    mean: np.ndarray
    std: np.ndarray
    delta_scale: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, target_columns: list[int]) -> Scaling:
        """From the training rows ``values`` (rows, inputs); a constant column keeps the scale 1."""
        mean, std = values.mean(0), values.std(0)
        std = np.where(std > 0, std, 1.0)
        diffs = np.abs(np.diff(values[:, target_columns], axis=0))
        delta_scale = np.sqrt((diffs ** 2).mean(0)) if len(diffs) else np.ones(len(target_columns))
        delta_scale = np.where(delta_scale > 0, delta_scale, std[target_columns])
        return cls(mean, std, delta_scale)

    @classmethod
    def from_dict(cls, saved: dict) -> Scaling:
        return cls(*(np.asarray(saved[k], dtype=np.float64) for k in ("mean", "std", "delta_scale")))

    def to_dict(self) -> dict:
        """Lists, for a run's ``app.json``."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "delta_scale": self.delta_scale.tolist()}


def window_ends(rows: int, lookback: int, horizon: int, bounds: tuple[int, int]) -> dict[str, np.ndarray]:
    """The last input row of every whole window, per part (``train``, ``val``, ``test``, and ``all``)."""
    ends = np.arange(lookback - 1, rows - horizon)  # window = rows [e - lookback + 1, e], targets e + 1 .. e + horizon
    first, last = ends + 1, ends + horizon
    a, b = bounds
    return {"train": ends[last < a], "val": ends[(first >= a) & (last < b)], "test": ends[first >= b], "all": ends}


def model_inputs(z: np.ndarray, mode: str) -> np.ndarray:
    """Standardised windows ``(N, lookback, F)`` as the model reads them (``(N, lookback, 2F)`` for 'both')."""
    relative = z - z[:, -1:, :]
    if mode == "level":
        return z
    return relative if mode == "relative" else np.concatenate([z, relative], -1)


@dataclasses.dataclass
class WindowedSeries:
    """A series (its input columns, targets among them) cut into forecasting windows, with its split and scaling."""

    series: Series  # the input columns only, in input order
    targets: list[str]
    scaling: Scaling
    lookback: int
    horizon: int
    input_mode: str  # one of INPUT_MODES
    target_mode: str  # one of TARGET_MODES
    bounds: tuple[int, int]  # rows [0, a) train, [a, b) validation, [b, n) test
    ends: dict[str, np.ndarray]  # part -> the last input row of each window

    @property
    def inputs(self) -> list[str]:
        return self.series.names

    @property
    def target_columns(self) -> list[int]:
        return [self.inputs.index(t) for t in self.targets]

    @property
    def input_features(self) -> int:
        """Features per step the model reads."""
        return len(self.inputs) * (2 if self.input_mode == "both" else 1)

    def input_windows(self, ends: np.ndarray) -> torch.Tensor:
        """The model's inputs for the windows ending at ``ends``: ``(N, lookback, input_features)``."""
        z = (self.series.values - self.scaling.mean) / self.scaling.std
        rows = ends[:, None] + np.arange(-self.lookback + 1, 1)[None, :]
        return torch.tensor(model_inputs(z[rows], self.input_mode), dtype=torch.float32)

    def actual(self, ends: np.ndarray) -> np.ndarray:
        """The targets' values after each window, in the data's units: ``(N, horizon, targets)``."""
        future = ends[:, None] + np.arange(1, self.horizon + 1)[None, :]
        return self.series.values[future][:, :, self.target_columns]

    def last_values(self, ends: np.ndarray) -> np.ndarray:
        """The targets' last observed values of each window: ``(N, targets)``."""
        return self.series.values[ends][:, self.target_columns]

    def to_scaled(self, actual: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Targets in the data's units -> what the model predicts (per :attr:`target_mode`)."""
        if self.target_mode == "delta":
            return (actual - self.last_values(ends)[:, None, :]) / self.scaling.delta_scale
        columns = self.target_columns
        return (actual - self.scaling.mean[columns]) / self.scaling.std[columns]

    def from_scaled(self, scaled: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """What the model predicts -> targets in the data's units."""
        if self.target_mode == "delta":
            return self.last_values(ends)[:, None, :] + scaled * self.scaling.delta_scale
        columns = self.target_columns
        return scaled * self.scaling.std[columns] + self.scaling.mean[columns]

    def windows(self, ends: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """``(inputs (N, lookback, F), scaled targets (N, horizon * T), actual targets (N, horizon, T))``."""
        actual = self.actual(ends)
        scaled = self.to_scaled(actual, ends)
        return (self.input_windows(ends), torch.tensor(scaled.reshape(len(ends), -1), dtype=torch.float32), actual)
