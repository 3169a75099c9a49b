"""``rnnkit classify``: text classification (sentiment, topics) on your own labelled file or a built-in set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rnnkit.errors import InputError
from rnnkit.cli.common import add_command, add_run_verb, add_train_verb

EXAMPLES = """examples:
  rnnkit classify train --out runs/drugs                        # built-in tweets sentiment (needs `make data`)
  rnnkit classify train --data reviews.csv --text-column review --label-column sentiment --out runs/mine
  rnnkit classify train --data tweets.jsonl --level char --cell lstm --max-steps 3000 --out runs/chars
  rnnkit classify evaluate --run runs/mine                      # the run's own test split again
  rnnkit classify evaluate --run runs/mine --data new.csv       # every row of another labelled file
  rnnkit classify predict --run runs/mine "works great, no side effects" "made me dizzy"
  rnnkit classify predict --run runs/mine --file texts.txt      # one text per line (or a CSV/TSV/JSONL)
  cat texts.txt | rnnkit classify predict --run runs/mine --json
"""


def add_parser(subparsers) -> None:
    from rnnkit.apps.classify import APP, describe

    verbs = add_command(subparsers, "classify", help="text classification: train, evaluate, predict",
                        description=__doc__, epilog=EXAMPLES)

    train = add_train_verb(verbs, APP, help="train a classifier; writes a run directory", epilog=EXAMPLES,
                           show=lambda result, args: f"test: {describe(result)}" if "accuracy" in result else
                           json.dumps({k: result[k] for k in ("labels", "train", "val", "test", "steps")}),
                           next_step="rnnkit classify predict --run {out} TEXT")
    train.description = ("Train on --data FILE (CSV, TSV or JSONL with a text and a label column) or a built-in "
                         "--dataset; report test accuracy, macro-F1 and the confusion matrix (printed and "
                         "confusion_matrix.png).")

    evaluate = add_run_verb(verbs, "evaluate", app="classify",
                            help="accuracy, macro-F1 and confusion matrix of a trained run", epilog=EXAMPLES,
                            func=run_evaluate, json_help="print the metrics as JSON")
    evaluate.add_argument("--data", metavar="FILE", help="labelled file to evaluate on (default: the run's test split)")
    evaluate.add_argument("--text-column", help="text column of --data (default: the run's)")
    evaluate.add_argument("--label-column", help="label column of --data (default: the run's)")
    evaluate.add_argument("--encoding", default="utf-8", help="encoding of --data (default: utf-8)")
    evaluate.add_argument("--skip-empty", action="store_true", help="drop rows with an empty text or label")

    predict = add_run_verb(verbs, "predict", app="classify", help="label new texts: arguments, --file or stdin",
                           epilog=EXAMPLES, func=run_predict,
                           json_help="one JSON object per text, with every probability")
    predict.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    predict.add_argument("--file", metavar="FILE", help="texts, one per line, or a CSV/TSV/JSONL (see --text-column)")
    predict.add_argument("--text-column", help="text column when --file is a table (default: the run's)")
    predict.add_argument("--encoding", default="utf-8", help="encoding of --file (default: utf-8)")


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.classify import describe, evaluate

    result = evaluate(args.run, data=args.data, text_column=args.text_column, label_column=args.label_column,
                      encoding=args.encoding, skip_empty=args.skip_empty, device=args.device)
    print(json.dumps(result) if args.json else f"{result['evaluated_on']}: {describe(result)}")
    return 0


def _read_texts(args: argparse.Namespace, text_column: str) -> list[str]:
    from rnnkit.data.tables import read_table, read_text, require_columns

    if args.file and args.texts:
        raise InputError("pass texts as arguments or with --file, not both")
    if args.file:
        if Path(args.file).suffix.lower() in (".csv", ".tsv", ".tab", ".jsonl", ".ndjson"):
            columns, rows = read_table(args.file, encoding=args.encoding)
            require_columns(args.file, columns, {"--text-column": text_column})
            return [str(row.get(text_column) or "") for row in rows]
        return [line for line in read_text(args.file, args.encoding).splitlines() if line.strip()]
    if args.texts:
        return args.texts
    if sys.stdin.isatty():
        raise InputError("no texts to classify; pass them as arguments, with --file, or on stdin")
    return [line for line in sys.stdin.read().splitlines() if line.strip()]


def run_predict(args: argparse.Namespace) -> int:
    from rnnkit.apps.classify import APP, predict
    from rnnkit.apps.lifecycle import read_run

    text_column = args.text_column or read_run(args.run, APP).settings.text_column
    for item in predict(args.run, _read_texts(args, text_column), device=args.device):
        if args.json:
            print(json.dumps(item, ensure_ascii=False))
        else:
            print(f"{item['label']}\t{item['probability']:.3f}\t{item['text']}")
    return 0
