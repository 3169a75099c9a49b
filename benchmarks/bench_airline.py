"""Airline passengers, one step ahead, against the well-known LSTM tutorial (test RMSE 47.53).

The tutorial (Brownlee, "Time Series Prediction with LSTM Recurrent Neural Networks in Python with
Keras"): 144 monthly totals (thousands), first 67 % for training and the rest for the test, values
min-max scaled, look_back=1, LSTM(4) -> Dense(1), Adam, MSE, 100 epochs of batch 1; train RMSE 22.93,
test RMSE 47.53. Its test windows lie wholly in the test part, so it scores 46 of the 48 test months.

Here, with ``rnnkit.apps.forecast`` on the built-in ``airline`` series (needs ``rnnkit[data]``), the same
chronological 67/33 split (96 / 48 months), no validation part (the final weights are scored, as in the
tutorial), standardisation fitted on the 96 training months only (the tutorial fits its scaler on all
144, a small leak). Every test month is scored; its inputs may come from the training part. Configurations:

- ``tutorial``: lookback 1, LSTM(4), level targets and inputs, batch 1, 100 epochs (9,500 steps);
- ``lookback 1, delta targets``: the same, predicting the change from the last month;
- ``lookback 12``: rnnkit's defaults (LSTM(64), delta targets, window-relative inputs), lookback 12;
- ``lookback 12, LSTM(4)``: the same with the tutorial's 4 units.

Each runs with several seeds; the table gives the mean and the range, next to the naive (last month)
and seasonal-naive (same month last year) forecasts. Writes ``benchmarks/results/airline.json``.

    OMP_NUM_THREADS=1 python benchmarks/bench_airline.py --seeds 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rnnkit.apps.forecast import ForecastSettings, train
from rnnkit.train import TrainConfig

ANCHOR_RMSE = 47.53
COMMON = {"dataset": "airline", "horizon": 1, "val_fraction": 0.0, "test_fraction": 1 - 96 / 144, "season": 12}
CONFIGS = {
    "tutorial: lookback 1, LSTM(4), levels, batch 1, 100 epochs": (
        {"lookback": 1, "hidden_size": 4, "target_mode": "level", "input_mode": "level"},
        {"batch_size": 1, "max_steps": 9500, "lr": 1e-3}),
    "lookback 1, LSTM(4), delta targets": (
        {"lookback": 1, "hidden_size": 4, "input_mode": "level"}, {"batch_size": 1, "max_steps": 9500, "lr": 1e-3}),
    "lookback 12, LSTM(64) (rnnkit defaults)": ({"lookback": 12}, {"batch_size": 32, "max_steps": 1500, "lr": 3e-3}),
    "lookback 12, LSTM(4)": ({"lookback": 12, "hidden_size": 4}, {"batch_size": 32, "max_steps": 1500, "lr": 3e-3}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", help="run only the configurations whose name contains this")
    parser.add_argument("--out", default="benchmarks/results/airline.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (settings, train_options) in CONFIGS.items():
            if args.only and args.only not in name:
                continue
            runs = []
            for seed in range(args.seeds):
                started = time.perf_counter()
                config = TrainConfig(seed=seed, eval_every=10**6, checkpoint_every=10**6, log_every=10**6,
                                     **train_options)
                result = train(ForecastSettings(**COMMON, **settings), config,
                               Path(tmp) / f"{len(rows)}-{seed}", progress=False)
                runs.append({"seed": seed, "rmse": result["model"]["rmse"], "mae": result["model"]["mae"],
                             "smape": result["model"]["smape"], "seconds": time.perf_counter() - started})
                print(f"{name} seed {seed}: test RMSE {runs[-1]['rmse']:.2f} ({runs[-1]['seconds']:.0f} s)",
                      flush=True)
            rmses = [r["rmse"] for r in runs]
            rows.append({"config": name, "runs": runs, "rmse_mean": sum(rmses) / len(rmses), "rmse_min": min(rmses),
                         "rmse_max": max(rmses), "seconds_mean": sum(r["seconds"] for r in runs) / len(runs),
                         "naive_rmse": result["naive"]["rmse"], "seasonal_naive_rmse": result["seasonal_naive"]["rmse"],
                         "test_windows": result["windows"]})
    print(f"\n| configuration | test RMSE, mean (min-max) over {args.seeds} seeds | s/run |")
    print("|---|---|---|")
    print(f"| tutorial, published (Keras LSTM(4), look_back 1) | {ANCHOR_RMSE} | |")
    for row in rows:
        print(f"| {row['config']} | {row['rmse_mean']:.2f} ({row['rmse_min']:.2f}-{row['rmse_max']:.2f}) | "
              f"{row['seconds_mean']:.0f} |")
    print(f"| naive (last month) | {rows[0]['naive_rmse']:.2f} | |")
    print(f"| seasonal naive (same month last year) | {rows[0]['seasonal_naive_rmse']:.2f} | |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"anchor_rmse": ANCHOR_RMSE, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
