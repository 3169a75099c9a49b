"""``rnnkit textgen``: train a character- or word-level language model on text, then sample from it."""

from __future__ import annotations

import argparse
import json
import sys

from rnnkit.errors import InputError
from rnnkit.cli.common import add_dataclass_options, add_train_options, dataclass_from_args, train_config

TRAIN_DEFAULTS = {"max_steps": 2000, "batch_size": 32, "lr": 3e-3, "eval_every": 250, "checkpoint_every": 250,
                  "eval_batches": 50, "schedule": "cosine", "warmup_steps": 100, "min_lr": 3e-4}

EXAMPLES = """examples:
  rnnkit textgen train --dataset shakespeare --out runs/shakespeare --max-steps 3000
  rnnkit textgen train --data my_novel.txt --level word --out runs/novel
  rnnkit textgen sample --run runs/shakespeare --prime "ROMEO:" --temperature 0.8 --length 500
  rnnkit textgen evaluate --run runs/shakespeare --data held_out.txt
"""


def add_parser(subparsers) -> None:
    from rnnkit.apps.textgen import TextgenSettings

    command = subparsers.add_parser("textgen", help="language models: learn a text, then generate more of it",
                                    description=__doc__, epilog=EXAMPLES,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = command.add_subparsers(dest="verb", metavar="VERB", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    train = verbs.add_parser("train", help="train on text files or a built-in corpus", epilog=EXAMPLES,
                             formatter_class=raw)
    source = train.add_mutually_exclusive_group()
    source.add_argument("--data", nargs="+", metavar="FILE", help="one or more text files (each is a document)")
    source.add_argument("--dataset", default=None,
                        help="built-in corpus when no --data: python_stdlib (always present), shakespeare, "
                             "shakespeare_char (see `rnnkit datasets`; default: python_stdlib)")
    add_dataclass_options(train, TextgenSettings)
    add_train_options(train, defaults=TRAIN_DEFAULTS)
    train.add_argument("--sample-length", type=int, default=300, help="tokens to print when training ends (0: none)")
    train.set_defaults(func=run_train)

    sample = verbs.add_parser("sample", help="generate text from a trained run", epilog=EXAMPLES, formatter_class=raw)
    sample.add_argument("--run", required=True, metavar="DIR", help="the --out of a textgen train run")
    sample.add_argument("--prime", default=None, help="text to start from (default: a new line)")
    sample.add_argument("--length", type=int, default=500, help="tokens to generate (default: 500)")
    sample.add_argument("--temperature", type=float, default=0.8, help="below 1: safer; above 1: wilder; 0: greedy")
    sample.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens only")
    sample.add_argument("--top-p", type=float, default=None, help="sample among the most likely tokens holding p")
    sample.add_argument("--seed", type=int, default=None, help="the same seed gives the same text")
    sample.set_defaults(func=run_sample)

    evaluate = verbs.add_parser("evaluate", help="loss, bits per token and perplexity on text", epilog=EXAMPLES,
                                formatter_class=raw)
    evaluate.add_argument("--run", required=True, metavar="DIR", help="the --out of a textgen train run")
    evaluate.add_argument("--data", nargs="+", metavar="FILE", help="text files (default: the run's validation text)")
    evaluate.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from rnnkit.apps.common import check_resume, format_metrics
    from rnnkit.apps.textgen import TextgenSettings, train
    from pathlib import Path

    settings = dataclass_from_args(TextgenSettings, args)
    check_resume(Path(args.out), "textgen", args.resume)
    metrics = train(args.data, args.out, dataset=args.dataset, settings=settings, config=train_config(args),
                    resume=args.resume, progress=not args.quiet, sample_after=args.sample_length)
    text = metrics.pop("sample", None)
    print(format_metrics(metrics))
    if text:
        print(f"--- sample ({args.sample_length} tokens, temperature 0.8) ---\n{text}")
    print(f"run directory: {args.out}  (sample more: rnnkit textgen sample --run {args.out})")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from rnnkit.apps.textgen import sample

    if args.length < 1:
        raise InputError(f"--length must be >= 1, got {args.length}")
    if args.prime:
        sys.stdout.write(args.prime)
    for piece in sample(args.run, prime=args.prime, length=args.length, temperature=args.temperature,
                        top_k=args.top_k, top_p=args.top_p, seed=args.seed):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.textgen import evaluate

    print(json.dumps(evaluate(args.run, args.data), indent=1))
    return 0
