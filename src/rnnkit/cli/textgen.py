"""``rnnkit textgen``: train a character- or word-level language model on text, then sample from it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from rnnkit.errors import InputError
from rnnkit.cli.common import add_command, add_run_verb, add_train_verb

EXAMPLES = """examples:
  rnnkit textgen train --dataset shakespeare --out runs/shakespeare --max-steps 3000
  rnnkit textgen train --data my_novel.txt --level word --out runs/novel
  rnnkit textgen train --dataset shakespeare_char --preset hour --out runs/hour   # the 60-minute recipe
  rnnkit textgen sample --run runs/shakespeare --prime "ROMEO:" --temperature 0.8 --length 500
  rnnkit textgen evaluate --run runs/shakespeare --data held_out.txt
  rnnkit textgen evaluate --run runs/hour --dynamic-lr 0.1 --chunk-length 16   # keeps learning as it reads
  rnnkit textgen evaluate --run runs/hour --cache-size 16384   # fixed weights, copying from what it just read
"""


def add_parser(subparsers) -> None:
    from rnnkit.apps.textgen import APP, CACHE_MIX, CACHE_SIZE, CACHE_THETA, SAMPLE_CACHE_MIX, TextgenSettings

    verbs = add_command(subparsers, "textgen", help="language models: learn a text, then generate more of it",
                        description=__doc__, epilog=EXAMPLES)

    train = add_train_verb(verbs, APP, help="train on text files or a built-in corpus", epilog=EXAMPLES,
                           skip=("data", "dataset"), overrides=lambda args: {"data": tuple(args.data or ()),
                                                                            "dataset": args.dataset},
                           show=_show_training)
    source = train.add_mutually_exclusive_group()
    source.add_argument("--data", nargs="+", metavar="FILE", help="one or more text files (each is a document)")
    source.add_argument("--dataset", default=None, help=dataclasses.fields(TextgenSettings)[1].metadata["help"])

    sample = add_run_verb(verbs, "sample", app="textgen", help="generate text from a trained run", epilog=EXAMPLES,
                          func=run_sample, device=False)
    sample.add_argument("--prime", default=None, help="text to start from (default: a new line)")
    sample.add_argument("--length", type=int, default=500, help="tokens to generate (default: 500)")
    sample.add_argument("--temperature", type=float, default=0.8, help="below 1: safer; above 1: wilder; 0: greedy")
    sample.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens only")
    sample.add_argument("--top-p", type=float, default=None, help="sample among the most likely tokens holding p")
    sample.add_argument("--seed", type=int, default=None, help="the same seed gives the same text")
    sample.add_argument("--allow-unknown", action="store_true",
                        help="let the model write <unk> (a token cut from the vocabulary); by default it never does")

    evaluate = add_run_verb(verbs, "evaluate", app="textgen", help="loss, bits per token and perplexity on text",
                            epilog=EXAMPLES, func=run_evaluate, device=False, json_help="print the metrics as JSON")
    evaluate.add_argument("--data", nargs="+", metavar="FILE", help="text files (default: the run's validation text)")
    evaluate.add_argument("--encoding", default=None, help="encoding of --data (default: the training files')")
    evaluate.add_argument("--batch-size", type=int, default=None,
                          help="contiguous lanes the text is cut into (default: as in training's validation)")
    evaluate.add_argument("--chunk-length", type=int, default=None, help="tokens per chunk (default: as in training)")
    evaluate.add_argument("--dynamic-lr", type=float, default=None,
                          help="dynamic evaluation: after scoring each chunk, one SGD step of this size on it, so "
                               "the model adapts to the text read so far (one lane; the saved model is unchanged)")
    evaluate.add_argument("--dynamic-decay", type=float, default=0.0,
                          help="with --dynamic-lr: pull the weights back towards the trained ones by this fraction "
                               "per chunk (default: 0)")
    for verb, mix in ((sample, SAMPLE_CACHE_MIX), (evaluate, CACHE_MIX)):
        verb.add_argument("--cache-size", type=int, default=None,
                          help=f"a continuous cache: the fixed model also copies what followed its most similar "
                               f"states among the last N tokens read (e.g. {CACHE_SIZE})")
        verb.add_argument("--cache-theta", type=float, default=None,
                          help=f"with --cache-size: how sharply the cache prefers the most similar states "
                               f"(default: {CACHE_THETA})")
        verb.add_argument("--cache-mix", type=float, default=None,
                          help=f"with --cache-size: the cache's share of each prediction (default: {mix})")


def _show_training(metrics: dict, args: argparse.Namespace) -> str:
    from rnnkit.apps.common import format_metrics

    metrics = dict(metrics)
    text = metrics.pop("sample", None)
    lines = [format_metrics(metrics)]
    if text:
        lines.append(f"--- sample ({args.sample_length} tokens, temperature 0.8) ---\n{text}")
    lines.append(f"sample more: rnnkit textgen sample --run {args.out}")
    return "\n".join(lines)


def run_sample(args: argparse.Namespace) -> int:
    from rnnkit.apps.textgen import sample

    if args.length < 1:
        raise InputError(f"--length must be >= 1, got {args.length}")
    pieces = sample(args.run, prime=args.prime, length=args.length, temperature=args.temperature, top_k=args.top_k,
                    top_p=args.top_p, seed=args.seed, allow_unknown=args.allow_unknown, cache_size=args.cache_size,
                    cache_theta=args.cache_theta, cache_mix=args.cache_mix)  # checks every option first
    if args.prime:
        sys.stdout.write(args.prime)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.textgen import evaluate

    from rnnkit.apps.common import describe_evaluation

    result = evaluate(args.run, args.data, batch_size=args.batch_size, chunk_length=args.chunk_length,
                      dynamic_lr=args.dynamic_lr, dynamic_decay=args.dynamic_decay, cache_size=args.cache_size,
                      cache_theta=args.cache_theta, cache_mix=args.cache_mix, encoding=args.encoding, progress=True)
    where = ", ".join(args.data) if args.data else "the run's validation text"
    print(json.dumps(result) if args.json else describe_evaluation(where, result))
    return 0
