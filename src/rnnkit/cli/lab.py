"""``rnnkit lab``: the classic vanishing/exploding-gradient experiments, one configuration or a sweep."""

from __future__ import annotations

import argparse
import json

from rnnkit.errors import InputError
from rnnkit.cli.common import add_dataclass_options, add_train_options, dataclass_from_args, train_config

EXAMPLES = """examples:
  rnnkit lab adding --cell lstm --T 100 --out runs/lab/lstm-100          # LSTM on the adding problem
  rnnkit lab adding --cell rnn --T 100 --clip none --recurrent-scale 4 --out runs/lab/explode
  rnnkit lab copy --cell gru --T 100 --max-steps 3000 --out runs/lab/copy
  rnnkit lab sweep --out runs/sweep --max-steps 3000                    # the whole grid, resumable
  rnnkit lab sweep --cells lstm ln_lstm min_gru lstm_zoneout --lengths 50 --out runs/variants
"""


def add_parser(subparsers) -> None:
    from rnnkit.apps.lab import APP, SWEEP_CELLS, TASKS, LabConfig, lab_cell_names

    lab = subparsers.add_parser("lab", help="reproduce the classic results on vanishing and exploding gradients",
                                description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = lab.add_subparsers(dest="task", metavar="TASK", required=True)
    for task in TASKS:
        parser = verbs.add_parser(task, help=f"train one configuration on the {task} task", epilog=EXAMPLES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        add_dataclass_options(parser, LabConfig, skip=("task",))
        add_train_options(parser, defaults=APP.train_defaults)
        parser.set_defaults(func=run_one)
    sweep = verbs.add_parser("sweep", help="run the grid: cells x T x clipping, plus copy, order and explosion",
                             epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200],
                       help="adding-problem lengths T (default: 50 100 200)")
    sweep.add_argument("--hidden-size", type=int, default=128, help="units in every model (default: 128)")
    sweep.add_argument("--cells", nargs="+", choices=lab_cell_names(), default=list(SWEEP_CELLS), metavar="CELL",
                       help=f"the cells to compare, any of {', '.join(lab_cell_names())} "
                            f"(default: {' '.join(SWEEP_CELLS)})")
    add_train_options(sweep, defaults=APP.train_defaults)
    sweep.set_defaults(func=run_sweep)


def run_one(args: argparse.Namespace) -> int:
    from rnnkit.apps.lab import LabConfig, describe, run_lab
    from rnnkit.train.distributed import launched_rank

    config = dataclass_from_args(LabConfig, args, task=args.task)
    result = run_lab(config, train_config(args), args.out, resume=args.resume, progress=not args.quiet)
    if launched_rank() != 0:
        return 0  # under torchrun, rank 0 alone has the report (the others hold the trainer's)
    print(describe(result))
    print(f"result: {args.out}/result.json; plots: {args.out}/curves.png, {args.out}/gradient_flow.png")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    import dataclasses

    from rnnkit.apps.lab import default_grid
    from rnnkit.apps.lab import run_sweep as sweep

    if any(T < 10 for T in args.lengths):
        raise InputError(f"--lengths must all be >= 10, got {args.lengths}")
    if args.hidden_size < 1:
        raise InputError(f"--hidden-size must be >= 1, got {args.hidden_size}")
    grid = [(dataclasses.replace(config, hidden_size=args.hidden_size), clip)
            for config, clip in default_grid(tuple(args.lengths), tuple(dict.fromkeys(args.cells)))]
    results = sweep(grid, train_config(args), args.out, resume=args.resume, progress=not args.quiet)
    print(f"{len(results)} runs; table: {args.out}/results.md and results.csv; plots: {args.out}/*.png")
    print(json.dumps({"runs": len(results)}))
    return 0
