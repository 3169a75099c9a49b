"""``rnnkit forecast``: time-series forecasting on your own CSV or a built-in series, against naive baselines."""

from __future__ import annotations

import argparse
import json

from rnnkit.cli.common import add_command, add_run_verb, add_train_verb

EXAMPLES = """examples:
  rnnkit forecast train --out runs/airline                        # built-in airline passengers (rnnkit[data])
  rnnkit forecast train --data sensors.csv --time-column timestamp --columns temp,humidity,load \\
      --targets load --lookback 48 --horizon 12 --out runs/load
  rnnkit forecast train --data prices.csv --targets close --fill ffill --season 5 --out runs/prices
  rnnkit forecast evaluate --run runs/load                        # the run's test part again
  rnnkit forecast evaluate --run runs/airline --baselines         # ... next to SARIMA and Holt-Winters
  rnnkit forecast evaluate --run runs/load --data newer.csv       # every window of another file
  rnnkit forecast predict --run runs/load                         # the next horizon after the training file
  rnnkit forecast predict --run runs/load --data latest.csv --json
"""


def add_parser(subparsers) -> None:
    from rnnkit.apps.forecast import APP, FILLS

    verbs = add_command(subparsers, "forecast", help="time-series forecasting: train, evaluate, predict",
                        description=__doc__, epilog=EXAMPLES)

    train = add_train_verb(verbs, APP, help="train a forecaster; writes a run directory", epilog=EXAMPLES,
                           show=_show_training, next_step="rnnkit forecast predict --run {out}")
    train.description = ("Train on --data FILE (a time column and value columns) or a built-in --dataset, split in "
                         "time order; report MAE, RMSE and sMAPE on the test part next to the naive and "
                         "seasonal-naive forecasts, and plot forecast.png.")

    def data_options(parser: argparse.ArgumentParser, what: str) -> None:
        parser.add_argument("--data", metavar="FILE", help=f"{what} (default: the run's own data)")
        parser.add_argument("--encoding", help="encoding of --data (default: the run's)")
        parser.add_argument("--fill", choices=FILLS, help="missing values in --data (default: the run's)")

    evaluate = add_run_verb(verbs, "evaluate", app="forecast", help="errors of a trained run against the naive "
                            "baselines", epilog=EXAMPLES, func=run_evaluate, json_help="print JSON")
    data_options(evaluate, "a file with the run's columns to evaluate on, every window")
    evaluate.add_argument("--part", choices=("train", "val", "test", "all"),
                          help="which rows' windows (default: test for the run's data, all for --data)")
    evaluate.add_argument("--plot", metavar="PNG", help="also plot forecast against actual into this file")
    evaluate.add_argument("--baselines", action="store_true",
                          help="also fit SARIMA(0,1,1)(0,1,1)s and Holt-Winters (statsmodels, rnnkit[data]) on the "
                               "rows before the part and score them the same way")

    predict = add_run_verb(verbs, "predict", app="forecast", help="forecast the horizon after the end of the data",
                           epilog=EXAMPLES, func=run_predict, json_help="print JSON")
    data_options(predict, "a file with the run's columns whose end to forecast from")


def _show_training(result: dict, args: argparse.Namespace) -> str:
    from rnnkit.apps.forecast import describe

    if "model" not in result:
        return json.dumps({k: result[k] for k in ("steps", "train", "val", "test") if k in result})
    return f"test ({result['windows']} windows, targets {', '.join(result['targets'])}):\n{describe(result)}"


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.forecast import describe, evaluate

    result = evaluate(args.run, data=args.data, part=args.part, encoding=args.encoding, fill=args.fill,
                      device=args.device, plot=args.plot, baselines=args.baselines)
    print(json.dumps(result) if args.json else f"{result['evaluated_on']}, {result['windows']} windows:\n"
          f"{describe(result)}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from rnnkit.apps.forecast import predict

    result = predict(args.run, data=args.data, encoding=args.encoding, fill=args.fill, device=args.device)
    if args.json:
        print(json.dumps(result))
        return 0
    print("\t".join(["time", *result["targets"]]))
    for time, row in zip(result["times"], result["values"]):
        print("\t".join([time, *(f"{v:.6g}" for v in row)]))
    return 0
