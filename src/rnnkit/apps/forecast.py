"""Time-series forecasting: train on a CSV of one or more value columns (or a built-in series), evaluate
against the naive and seasonal-naive forecasts, predict the next horizon.

Reading, filling, splitting, scaling and windowing the series is :mod:`rnnkit.data.timeseries`: the
series is split in time order into train, validation and test parts; every value column is
standardised with the mean and standard deviation of the training part only. A window of ``lookback``
rows of every input column is the input; the ``horizon`` next values of every target column are the
output of a many-to-one recurrent regressor (:class:`~rnnkit.models.SequenceClassifier` with
``task='regression'`` and ``output_size = horizon * targets``). By default (``target_mode='delta'``)
the network predicts the change from the last observed value, so it learns a correction to the naive
forecast rather than the level, which matters for series whose test part leaves the training range
(prices, trending counts).

Metrics are in the data's own units: MAE, RMSE and sMAPE (``200 |F - A| / (|A| + |F|)`` in percent,
0 when both are 0), over every target and horizon step, next to the naive forecast (the last observed
value, repeated) and the seasonal-naive forecast (the value one season earlier). The season is
``--season``, or guessed from the time column's spacing (hourly 24, daily 7, trading days 5, weekly 52,
monthly 12, quarterly 4; otherwise none, and the seasonal-naive row is left out). ``evaluate --baselines``
adds the classical models, SARIMA and Holt-Winters (:func:`classical_forecast`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from rnnkit.apps import lifecycle
from rnnkit.apps.common import check_output_file
from rnnkit.data.timeseries import (
    FILLS, INPUT_MODES, TARGET_MODES, Scaling, Series, WindowedSeries, fill_missing, guess_season, in_time_order,
    next_times, read_series, split_bounds, time_step, window_ends,
)
from rnnkit.errors import InputError
from rnnkit.models.classifier import (
    ClassifierEnsemble, SequenceClassifier, SequenceClassifierConfig, classifier_or_ensemble,
)
from rnnkit.options import nested, option
from rnnkit.train import TrainConfig
DEFAULT_DATASET = "airline"
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
    ensemble: int = option(1, metavar="K", help="train this many forecasters one after the other, each from its own initial weights, "
                              "with its own data order and dropout and its own early stopping (--max-steps applies "
                              "to each), and forecast their mean; 1 = one model")
    model: SequenceClassifierConfig = nested(SequenceClassifierConfig, "the many-to-one regressor", cell="lstm",
                                             hidden_size=64, summary="last")

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}; got {self.fill!r}")
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {', '.join(INPUT_MODES)}; got {self.input_mode!r}")
        if self.input_mode == "relative" and self.lookback == 1:
            raise ValueError("input_mode 'relative' with lookback 1 leaves the model nothing to read (every input is "
                             "0); use a longer --lookback or --input-mode level or both")
        if self.target_mode not in TARGET_MODES:
            raise ValueError(f"target_mode must be 'delta' or 'level', got {self.target_mode!r}")
        for name in ("lookback", "horizon", "ensemble"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.season is not None and self.season < 1:
            raise ValueError(f"season must be >= 1, got {self.season}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")


# ------------------------------------------------------------------------------------- data
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


def _columns(text: str | None) -> list[str] | None:
    names = [c.strip() for c in text.split(",") if c.strip()] if text else None
    repeated = sorted({c for c in names or () if names.count(c) > 1})
    if repeated:  # 'load,load' would forecast the same column twice, as two targets
        raise InputError(f"column {repeated[0]!r} is named twice in {text!r}; name each column once")
    return names


def load_series(settings: ForecastSettings) -> Series:
    """The settings' data (file or built-in set), missing values handled, in time order."""
    if settings.data is not None:
        wanted = _columns(settings.columns)
        if wanted is not None:
            wanted += [t for t in _columns(settings.targets) or [] if t not in wanted]
        series = read_series(settings.data, settings.time_column, wanted, encoding=settings.encoding)
    else:
        series = load_dataset(settings.dataset or DEFAULT_DATASET)
    if settings.fill == "none":  # a missing value is refused naming its row of the file
        return in_time_order(fill_missing(series, "none"))
    return fill_missing(in_time_order(series), settings.fill)  # ffill carries values forward in time, not file order


def _inputs_and_targets(series: Series, settings: ForecastSettings) -> tuple[list[str], list[str]]:
    """``--columns`` (default: every column) with the ``--targets`` added, and ``--targets`` (default: the
    first input, or a built-in series' own target)."""
    inputs = _columns(settings.columns) or list(series.names)
    targets = _columns(settings.targets) or [
        DATASET_TARGETS.get(settings.dataset or "", inputs[0]) if settings.data is None else inputs[0]]
    for option_name, names in (("--columns", inputs), ("--targets", targets)):
        for name in names:
            if name not in series.names:
                raise InputError(f"{series.source} has no column {name!r} ({option_name}); available columns: "
                                 f"{', '.join(series.names)}")
    return inputs + [t for t in targets if t not in inputs], targets


def prepare(series: Series, settings: ForecastSettings, scaling: dict | None = None) -> WindowedSeries:
    """Choose columns, split in time order, fit the scaling on the training part (or reuse ``scaling``)."""
    where = series.source
    inputs, targets = _inputs_and_targets(series, settings)
    n, lookback, horizon = len(series.values), settings.lookback, settings.horizon
    if n < lookback + horizon:
        fix = "lower --lookback or --horizon" if scaling is None else "give a longer series (the run's lookback and " \
            "horizon are fixed)"
        raise InputError(f"{where} has {n} rows, fewer than lookback + horizon = {lookback + horizon}; {fix}")
    a, b = split_bounds(n, settings.val_fraction, settings.test_fraction)
    if scaling is None and a < lookback + horizon:  # with a run's scaling (evaluate, predict) no training part is needed
        raise InputError(f"{where}: the training part has {a} of {n} rows, fewer than lookback + horizon = "
                         f"{lookback + horizon}; lower --lookback/--horizon or --val-fraction/--test-fraction")
    values = series.values[:, [series.names.index(c) for c in inputs]]
    if scaling is None:
        fitted = Scaling.fit(values[:a], [inputs.index(t) for t in targets])
    else:
        fitted = Scaling.from_dict(scaling)
    return _windowed(Series(series.times, inputs, values, where), targets, fitted, settings, (a, b),
                     window_ends(n, lookback, horizon, (a, b)))


def _windowed(series: Series, targets: list[str], scaling: Scaling, settings: ForecastSettings,
              bounds: tuple[int, int], ends: dict[str, np.ndarray]) -> WindowedSeries:
    return WindowedSeries(series, targets, scaling, settings.lookback, settings.horizon, settings.input_mode,
                          settings.target_mode, bounds, ends)


# ------------------------------------------------------------------------------------ metrics
def errors(forecast: np.ndarray, actual: np.ndarray) -> dict:
    """MAE, RMSE and sMAPE (percent) over every element; all NaN when any value is not finite."""
    difference = forecast - actual
    denominator = np.abs(actual) + np.abs(forecast)
    # sMAPE counts 0 where forecast and actual are both 0; a NaN denominator must stay NaN, not count as 0
    # (a 0.0 sMAPE next to NaN errors would read as a perfect forecast).
    ratio = np.divide(2 * np.abs(difference), denominator, out=np.zeros_like(denominator), where=denominator != 0)
    return {"mae": float(np.abs(difference).mean()), "rmse": float(np.sqrt((difference ** 2).mean())),
            "smape": float(100 * ratio.mean())}


def seasonal_naive(prep: WindowedSeries, ends: np.ndarray, season: int) -> np.ndarray | None:
    """The value one season (or as many as needed to reach observed rows) before each forecast row."""
    steps = np.arange(1, prep.horizon + 1)
    source = ends[:, None] + steps[None, :] - season * np.ceil(steps / season).astype(int)[None, :]
    if (source < 0).any():
        return None
    return prep.series.values[source][:, :, prep.target_columns]


# ------------------------------------------------------------------------- classical baselines
#: The classical models ``evaluate --baselines`` and ``benchmarks/bench_classical.py`` put beside the network.
CLASSICAL = {"sarima": "SARIMA(0,1,1)(0,1,1)s", "holt_winters": "Holt-Winters"}


def classical_forecast(kind: str, values: np.ndarray, fit_rows: int, ends: np.ndarray, horizon: int, season: int,
                       log: bool | None = None) -> np.ndarray:
    """Forecasts ``(len(ends), horizon)`` of one series by a classical model fitted on ``values[:fit_rows]``.

    ``kind``: ``"sarima"``, the "airline model" SARIMA(0,1,1)(0,1,1)_season (Box & Jenkins;
    ``statsmodels.tsa.statespace.sarimax.SARIMAX``), or ``"holt_winters"``, exponential smoothing with an
    additive trend and an additive season (``statsmodels.tsa.holtwinters.ExponentialSmoothing``). With
    ``log`` (default: when every value is positive) both model ``log(values)``, so Holt-Winters' season is
    multiplicative on the original scale, and forecasts are ``exp`` of the log forecasts. The parameters are
    estimated once, on the fit rows; the forecast from the window ending at row ``e`` then reads the observed
    ``values[:e + 1]`` with those parameters (rnnkit's protocol: every test window sees the true history).
    """
    y = np.asarray(values, dtype=np.float64)
    log = bool((y > 0).all()) if log is None else log
    if log and not (y > 0).all():
        raise InputError("the classical baselines on logs need positive values; this series has values <= 0")
    y = np.log(y) if log else y
    if kind == "sarima":
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        fitted = SARIMAX(y[:fit_rows], order=(0, 1, 1), seasonal_order=(0, 1, 1, season)).fit(disp=False)
        full = fitted.apply(y)  # the same parameters, filtered over the whole series
        if horizon == 1:
            out = full.get_prediction(start=0).predicted_mean[ends + 1, None]
        else:
            out = np.stack([full.get_prediction(start=e + 1, end=e + horizon, dynamic=True).predicted_mean
                            for e in ends])
    elif kind == "holt_winters":
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        spec = {"trend": "add", "seasonal": "add", "seasonal_periods": season}
        params = ExponentialSmoothing(y[:fit_rows], **spec).fit().params

        def fixed(rows: np.ndarray):  # the fitted smoothing weights and initial states on other rows
            model = ExponentialSmoothing(rows, **spec, initialization_method="known",
                                         initial_level=params["initial_level"],
                                         initial_trend=params["initial_trend"],
                                         initial_seasonal=params["initial_seasons"])
            return model.fit(smoothing_level=params["smoothing_level"], smoothing_trend=params["smoothing_trend"],
                             smoothing_seasonal=params["smoothing_seasonal"], optimized=False)

        if horizon == 1:  # fittedvalues[t]: the one-step forecast of row t from the rows before it
            out = np.asarray(fixed(y).fittedvalues)[ends + 1, None]
        else:
            out = np.stack([np.asarray(fixed(y[:e + 1]).forecast(horizon)) for e in ends])
    else:
        raise ValueError(f"kind must be one of {', '.join(CLASSICAL)}; got {kind!r}")
    return np.exp(out) if log else out


def classical_forecasts(prep: WindowedSeries, ends: np.ndarray, season: int | None) -> dict[str, np.ndarray]:
    """Every classical model's forecasts ``(N, horizon, targets)`` after the windows ending at ``ends``, each
    fitted on all the rows before the first forecast row (train and validation parts for the test part)."""
    fit_rows = int(ends[0]) + 1
    if not season or season < 2:
        raise InputError("the classical baselines need a season of 2 rows or more; pass --season")
    if fit_rows < 3 * season + 2:
        raise InputError(f"the classical baselines need at least 3 seasons ({3 * season + 2} rows) before the "
                         f"evaluated windows, {prep.series.source} has {fit_rows}; evaluate a later --part")
    columns = [prep.series.values[:, c] for c in prep.target_columns]
    return {kind: np.stack([classical_forecast(kind, v, fit_rows, ends, prep.horizon, season) for v in columns], -1)
            for kind in CLASSICAL}


@torch.no_grad()
def model_forecast(model: torch.nn.Module, prep: WindowedSeries, ends: np.ndarray) -> np.ndarray:
    """The model's forecasts after the windows ending at ``ends``, in the data's units: ``(N, horizon, targets)``.

    Forecasts that are not finite numbers (a model trained into overflow) are an error, not a row of NaNs.
    """
    model.eval()
    x = prep.input_windows(ends)
    device = next(model.parameters()).device
    out = torch.cat([model(x[i:i + 1024].to(device)).output.float().cpu() for i in range(0, len(x), 1024)])
    if not torch.isfinite(out).all():
        raise InputError(f"the model's forecasts on {prep.series.source} are not finite numbers; look for extreme "
                         f"values in the data, or train again with a lower --lr")
    scaled = out.numpy().astype(np.float64).reshape(len(ends), prep.horizon, len(prep.targets))
    return prep.from_scaled(scaled, ends)


def measure(model: torch.nn.Module, prep: WindowedSeries, season: int | None, part: str, *,
            classical: bool = False) -> tuple[dict, dict]:
    """``(metrics, curves)`` on one part: the model, naive and seasonal-naive errors in the data's units (and
    with ``classical`` the SARIMA and Holt-Winters errors, see :func:`classical_forecasts`)."""
    ends = prep.ends[part]
    if len(ends) == 0:
        raise InputError(f"{prep.series.source}: the {part} part has no complete window "
                         f"(lookback {prep.lookback}, horizon {prep.horizon}); use a longer series")
    actual = prep.actual(ends)
    predicted = model_forecast(model, prep, ends)
    naive = np.repeat(prep.last_values(ends)[:, None, :], prep.horizon, axis=1)
    seasonal = seasonal_naive(prep, ends, season) if season else None
    result = {"part": part, "windows": int(len(ends)), "targets": prep.targets, "season": season,
              "model": errors(predicted, actual), "naive": errors(naive, actual),
              "seasonal_naive": errors(seasonal, actual) if seasonal is not None else None}
    if classical:
        result.update({kind: errors(f, actual) for kind, f in classical_forecasts(prep, ends, season).items()})
    if len(prep.targets) > 1:
        result["per_target"] = {t: {"model": errors(predicted[..., i], actual[..., i]),
                                    "naive": errors(naive[..., i], actual[..., i])}
                                for i, t in enumerate(prep.targets)}
    return result, {"ends": ends, "actual": actual, "model": predicted, "naive": naive}


def describe(result: dict) -> str:
    """A small table: MAE, RMSE, sMAPE of the model and the baselines."""
    labels = {"seasonal_naive": f"seasonal naive ({result['season']})",
              "sarima": f"SARIMA(0,1,1)(0,1,1){result['season']}", "holt_winters": "Holt-Winters"}
    rows = [(labels.get(name, name), result[name])
            for name in ("model", "naive", "seasonal_naive", *CLASSICAL) if result.get(name)]
    width = max([len("forecast"), *(len(label) for label, _ in rows)]) + 2
    lines = [f"{'forecast':<{width}}{'MAE':>12}{'RMSE':>12}{'sMAPE %':>10}"]
    for label, e in rows:
        lines.append(f"{label:<{width}}{e['mae']:>12.4g}{e['rmse']:>12.4g}{e['smape']:>10.2f}")
    return "\n".join(lines)


def plot_forecast(prep: WindowedSeries, curves: dict, path: Path, title: str) -> None:
    """Actual values against the model's 1-step (and last-step) forecasts and the naive forecast, per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ends, horizon = curves["ends"], prep.horizon
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
class Forecast(lifecycle.App):
    name = "forecast"
    settings_class = ForecastSettings
    train_defaults = {"max_steps": 1500, "batch_size": 32, "lr": 3e-3, "eval_every": 100, "checkpoint_every": 100,
                      "log_every": 100}

    def normalize(self, settings: ForecastSettings) -> ForecastSettings:
        if settings.data is None:
            return dataclasses.replace(settings, dataset=settings.dataset or DEFAULT_DATASET)
        return dataclasses.replace(settings, data=str(Path(settings.data).resolve()))

    def prepare(self, settings: ForecastSettings, config: TrainConfig, run: Path) -> lifecycle.Prepared:
        series = load_series(settings)
        prep = prepare(series, settings)
        facts = {"inputs": prep.inputs, "target_columns": prep.targets, "scaling": prep.scaling.to_dict(),
                 "season_used": settings.season or guess_season(series.times), "time_step": time_step(series.times),
                 "source": series.source, "input_features": prep.input_features,
                 "sizes": {part: int(len(e)) for part, e in prep.ends.items() if part != "all"}}
        x, y, _ = prep.windows(prep.ends["train"])
        val = TensorDataset(*prep.windows(prep.ends["val"])[:2]) if len(prep.ends["val"]) else None
        return lifecycle.Prepared(TensorDataset(x, y), val, test=prep, facts=facts)

    def build_model(self, settings: ForecastSettings,
                    data: lifecycle.Prepared) -> SequenceClassifier | ClassifierEnsemble:
        return classifier_or_ensemble(dataclasses.replace(
            settings.model, input_size=data.facts["input_features"], task="regression",
            output_size=settings.horizon * len(data.facts["target_columns"])), settings.ensemble)

    def report(self, model, settings: ForecastSettings, data: lifecycle.Prepared, run: Path, fitted: dict) -> dict:
        prep = data.test
        result = {"steps": fitted["step"], **data.facts["sizes"]}
        if len(prep.ends["test"]):
            metrics, curves = measure(model, prep, data.facts["season_used"], "test")
            result.update(metrics)
            plot_forecast(prep, curves, run / "forecast.png",
                          f"test: RMSE {metrics['model']['rmse']:.4g} (naive {metrics['naive']['rmse']:.4g})")
        return result


APP = Forecast()


def train(settings: ForecastSettings | None = None, config: TrainConfig | None = None,
          out: str | Path = "runs/forecast", *, resume: bool = False, progress: bool = True) -> dict:
    """Train a forecaster into the run directory ``out``; returns the test metrics (see :func:`measure`)."""
    return lifecycle.train(APP, settings, config, out, resume=resume, progress=progress)


def load_run(run: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, lifecycle.Run]:
    """``(model, run)`` of a forecast run directory."""
    model, _, info = lifecycle.load_run(run, APP, device)
    return model, info


def _run_settings(info: lifecycle.Run, data: str | None, encoding: str | None, fill: str | None) -> ForecastSettings:
    """The run's settings, reading ``data`` (the run's own columns) instead of the run's data if given."""
    settings = dataclasses.replace(info.settings, columns=",".join(info.facts["inputs"]),
                                   targets=",".join(info.facts["target_columns"]))
    if data is None:
        return settings
    return dataclasses.replace(settings, data=data, encoding=encoding or settings.encoding, fill=fill or settings.fill)


def evaluate(run: str | Path, *, data: str | None = None, part: str | None = None, encoding: str | None = None,
             fill: str | None = None, device: str = "cpu", plot: str | Path | None = None,
             baselines: bool = False) -> dict:
    """Errors of a trained run against the baselines: on the run's own ``part`` (default ``test``), or on
    every window of ``data`` (``part`` default ``all``), with the run's scaling. ``baselines`` adds the
    classical models (:func:`classical_forecasts`), fitted on the rows before the part."""
    if plot is not None:
        check_output_file("--plot", plot)
    model, info = load_run(run, device)
    settings = _run_settings(info, data, encoding, fill)
    series = load_series(settings)
    part = part or ("all" if data is not None else "test")
    prep = prepare(series, settings, info.facts["scaling"])
    metrics, curves = measure(model, prep, info.facts["season_used"], part, classical=baselines)
    metrics["evaluated_on"] = f"{series.source} ({part})"
    if plot is not None:
        plot_forecast(prep, curves, Path(plot), f"{part}: RMSE {metrics['model']['rmse']:.4g}")
    return metrics


def predict(run: str | Path, *, data: str | None = None, encoding: str | None = None, fill: str | None = None,
            device: str = "cpu") -> dict:
    """The next ``horizon`` values of every target after the end of the data (default: the run's data).

    Returns ``{"times": [...], "targets": [...], "values": [[per target] per step]}``; times are
    timestamps when the time column is regular, else ``t+1, t+2, ...``.
    """
    model, info = load_run(run, device)
    settings = _run_settings(info, data, encoding, fill)
    series = load_series(dataclasses.replace(settings, targets=None) if data is not None else settings)
    inputs_wanted = info.facts["inputs"]
    missing = [c for c in inputs_wanted if c not in series.names]
    if missing:
        raise InputError(f"{series.source} lacks the run's columns {missing}; available: {', '.join(series.names)}")
    if len(series.values) < settings.lookback:
        raise InputError(f"{series.source} has {len(series.values)} rows; the model needs the last "
                         f"{settings.lookback} (lookback)")
    columns = [series.names.index(c) for c in inputs_wanted]
    inputs = Series(series.times, inputs_wanted, series.values[:, columns], series.source)
    prep = _windowed(inputs, info.facts["target_columns"], Scaling.from_dict(info.facts["scaling"]), settings,
                     (0, 0), {})  # no split: only the window at the end is forecast
    values = model_forecast(model, prep, np.array([len(series.values) - 1]))[0]
    return {"times": next_times(series.times, settings.horizon), "targets": prep.targets,
            "values": values.tolist()}
