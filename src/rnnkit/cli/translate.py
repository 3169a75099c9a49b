"""``rnnkit translate``: sequence-to-sequence models on source/target pairs.

  train      learn from a TSV file (source<TAB>target per line) or a built-in data set
  evaluate   BLEU, chrF and exact match of a trained run (its test split, or another TSV file)
  translate  translate texts given as arguments, with --file, or on stdin, by beam search
"""

from __future__ import annotations

import argparse
import json
import sys

from rnnkit.errors import InputError
from rnnkit.cli.common import add_command, add_run_verb, add_train_verb

EXAMPLES = """examples:
  rnnkit translate train --out runs/add                      # Keras' 3-digit addition, "535+61" -> "596"
  rnnkit translate train --data pairs.tsv --source-level word --target-level word --out runs/en-fr
  rnnkit translate train --dataset number_words --language fr --out runs/nw --max-steps 5000
  rnnkit translate train --out runs/add --resume --max-steps 6000   # continue a run
  rnnkit translate evaluate --run runs/add                   # BLEU, chrF, exact match on the test split
  rnnkit translate translate --run runs/add "535+61" "12+7" --beam 5
  echo "999+1" | rnnkit translate translate --run runs/add
"""


def _decoding_options(parser, beam: int) -> None:
    parser.add_argument("--beam", type=int, default=beam, metavar="N", help=f"beam size; 1 is greedy (default: {beam})")
    parser.add_argument("--alpha", type=float, default=0.6,
                        help="GNMT length-normalisation strength for beam search; 0 = none (default: 0.6)")


def add_parser(subparsers) -> None:
    from rnnkit.apps.translate import APP

    verbs = add_command(subparsers, "translate", help="sequence to sequence: train on pairs, BLEU, beam search",
                        description=__doc__, epilog=EXAMPLES)
    add_train_verb(verbs, APP, help="train a seq2seq model with attention on source/target pairs", epilog=EXAMPLES,
                   show=_show_training)

    evaluate = add_run_verb(verbs, "evaluate", app="translate", help="BLEU, chrF and exact match of a trained run",
                            epilog=EXAMPLES, func=run_evaluate, json_help="print the metrics as JSON")
    _decoding_options(evaluate, beam=1)
    evaluate.add_argument("--data", metavar="FILE", help="TSV pairs to score (default: the run's test split)")
    evaluate.add_argument("--encoding", default="utf-8", help="encoding of --data (default: utf-8)")
    evaluate.add_argument("--header", choices=("auto", "yes", "no"), default="auto",
                          help="whether --data starts with a header line (default: auto)")
    evaluate.add_argument("--bleu", action=argparse.BooleanOptionalAction, default=True,
                          help="compute BLEU and chrF with sacrebleu (default: on)")
    evaluate.add_argument("--predictions", metavar="FILE", help="also write source<TAB>output per pair here")

    translate = add_run_verb(verbs, "translate", app="translate", help="translate texts with a trained run",
                             epilog=EXAMPLES, func=run_translate)
    _decoding_options(translate, beam=5)
    translate.add_argument("texts", nargs="*", metavar="TEXT", help="texts to translate (default: --file or stdin)")
    translate.add_argument("--file", metavar="FILE", help="translate every non-blank line of this file")
    translate.add_argument("--encoding", default="utf-8", help="encoding of --file and stdin (default: utf-8)")


def _show_training(results: dict, args: argparse.Namespace) -> str:
    from rnnkit.apps.common import format_metrics

    keys = ("exact_match", "bleu", "chrf", "examples", "steps", "train_seconds")
    lines = [f"test: {format_metrics({k: results[k] for k in keys if k in results})}"]
    for example in results.get("examples_shown", []):
        lines.append(f"  {example['source']!r} -> {example['output']!r} (reference {example['reference']!r})")
    lines.append(f"results.json, model/, attention.png, curves.png; next: rnnkit translate translate --run {args.out} TEXT")
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.common import describe_evaluation
    from rnnkit.apps.translate import evaluate

    result = evaluate(args.run, args.data, beam=args.beam, alpha=args.alpha, encoding=args.encoding,
                      header=args.header, device=args.device, bleu=args.bleu, predictions=args.predictions,
                      progress=True)
    print(json.dumps(result) if args.json else describe_evaluation(result["data"], result))
    return 0


def _read_stdin(encoding: str) -> str:
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise InputError(f"stdin is not valid {encoding} (byte 0x{data[error.start]:02x} at offset {error.start}); "
                       f"pass --encoding, e.g. --encoding latin-1") from None


def run_translate(args: argparse.Namespace) -> int:
    from rnnkit.data.tables import read_text
    from rnnkit.apps.translate import translate

    if args.texts and args.file:
        raise InputError("give texts as arguments or --file, not both")
    if args.texts:
        texts = args.texts
    else:
        text = read_text(args.file, args.encoding) if args.file else _read_stdin(args.encoding)
        texts = [line.strip() for line in text.splitlines() if line.strip()]
        if not texts:
            raise InputError(f"{args.file or 'stdin'} holds no text to translate")
    for output in translate(args.run, texts, beam=args.beam, alpha=args.alpha, device=args.device):
        print(output)
    return 0
