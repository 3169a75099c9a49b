"""rnnkit's default forecaster against SARIMA and Holt-Winters (statsmodels), on the airline and weather series.

Same chronological split and the same protocol for every model: one step ahead (``horizon`` 1, rnnkit's
default), every test window forecast from the true history before it; errors in the data's units.

- ``airline``: 144 monthly passenger totals, bench_airline.py's split (96 training months, no validation,
  the last 48 months for the test), season 12.
- ``weather``: the built-in hourly pvlib TMY3 series (8,760 hours), target ``temp_air`` (deg C), rnnkit's
  default split (65 % train, 15 % validation, the last 20 % = 1,752 hours for the test), season 24; rnnkit
  reads every column (its default), the classical models the target alone.

rnnkit: ``rnnkit forecast train`` defaults (LSTM(64), lookback 12, window-relative inputs, delta targets,
1,500 steps of batch 32, Adam 3e-3, best validation loss kept), several seeds. SARIMA(0,1,1)(0,1,1)_s and
Holt-Winters (additive trend and season) come from ``rnnkit.apps.forecast.classical_forecast``: fitted once
on every row before the test part (the training and validation parts), on logs when the series is
positive (airline: so the season is multiplicative; weather has temperatures below 0 and is modelled as
it is). Writes ``benchmarks/results/classical.json`` and prints the table::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_classical.py --seeds 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from rnnkit.apps.forecast import (
    CLASSICAL, ForecastSettings, classical_forecasts, errors, load_series, prepare, train,
)
from rnnkit.train import TrainConfig

SERIES = {
    "airline": ForecastSettings(dataset="airline", val_fraction=0.0, test_fraction=1 - 96 / 144, season=12),
    "weather": ForecastSettings(dataset="weather", season=24),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", choices=tuple(SERIES), help="one series only")
    parser.add_argument("--out", default="benchmarks/results/classical.json")
    args = parser.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, settings in SERIES.items():
            if args.only and args.only != name:
                continue
            prep = prepare(load_series(settings), settings)
            ends = prep.ends["test"]
            actual = prep.actual(ends)
            row = {"test_windows": int(len(ends))}
            for kind, forecast in classical_forecasts(prep, ends, settings.season).items():
                row[kind] = errors(forecast, actual)
                title = CLASSICAL[kind].replace(")s", f"){settings.season}")
                print(f"{name}: {title} test RMSE {row[kind]['rmse']:.4g}", flush=True)
            runs = []
            for seed in range(args.seeds):
                started = time.perf_counter()
                result = train(settings, TrainConfig(seed=seed), Path(tmp) / f"{name}-{seed}", progress=False)
                runs.append({"seed": seed, **result["model"], "seconds": time.perf_counter() - started})
                print(f"{name}: rnnkit seed {seed} test RMSE {runs[-1]['rmse']:.4g} ({runs[-1]['seconds']:.0f} s)",
                      flush=True)
            row.update(rnnkit=runs, naive=result["naive"], seasonal_naive=result["seasonal_naive"])
            for metric in ("rmse", "mae", "smape"):
                values = [r[metric] for r in runs]
                row[f"rnnkit_{metric}"] = {"mean": float(np.mean(values)), "min": min(values), "max": max(values)}
            report[name] = row
    print("\n| series (test windows) | model | RMSE | MAE | sMAPE % |")
    print("|---|---|---|---|---|")
    for name, row in report.items():
        label = f"{name} ({row['test_windows']})"
        spread = row["rnnkit_rmse"]
        print(f"| {label} | rnnkit defaults, mean (min-max) of {args.seeds} seeds | {spread['mean']:.4g} "
              f"({spread['min']:.4g}-{spread['max']:.4g}) | {row['rnnkit_mae']['mean']:.4g} | "
              f"{row['rnnkit_smape']['mean']:.2f} |")
        season = SERIES[name].season
        for kind, title in (("sarima", f"SARIMA(0,1,1)(0,1,1){season}"), ("holt_winters", "Holt-Winters"),
                            ("seasonal_naive", f"seasonal naive ({season})"), ("naive", "naive")):
            e = row[kind]
            print(f"| {label} | {title} | {e['rmse']:.4g} | {e['mae']:.4g} | {e['smape']:.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
