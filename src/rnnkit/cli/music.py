"""``rnnkit music``: polyphonic piano rolls or melodies, learned from MIDI/MusicXML/ABC or a built-in corpus,
measured against simple baselines, and sampled as MIDI with a piano-roll picture."""

from __future__ import annotations

import argparse
import dataclasses
import json

from rnnkit.cli.common import add_command, add_run_verb, add_train_verb

EXAMPLES = """examples:
  rnnkit music train --out runs/bach                       # polyphonic: the 371 Bach chorales, 88 keys
  rnnkit music train --dataset essen --out runs/folk       # melodic: Essen folk tunes as pitch:duration tokens
  rnnkit music train --data my_midi_folder/ --step 0.5 --out runs/mine   # your MIDI/MusicXML/ABC files
  rnnkit music train --data tunes.abc --mode melodic --hidden-size 256 --max-minutes 10 --out runs/abc
  rnnkit music evaluate --run runs/bach                    # NLL per step and the baselines on the test split
  rnnkit music evaluate --run runs/bach --data other_chorales/
  rnnkit music sample --run runs/bach --prime bach/bwv66.6 --prime-length 8 --length 64 --out chorale.mid
  rnnkit music sample --run runs/folk --prime essenFolksong/han1.abc#3 --temperature 0.9 --top-p 0.95 \\
                      --seed 1 --out tune.mid              # writes tune.mid and tune.png
"""


def add_parser(subparsers) -> None:
    from rnnkit.apps.music import APP, MusicSettings

    verbs = add_command(subparsers, "music", help="polyphonic music and melodies: train, evaluate, sample MIDI",
                        description=__doc__, epilog=EXAMPLES)

    train = add_train_verb(verbs, APP, help="train on music files or a built-in corpus; writes a run directory",
                           epilog=EXAMPLES, skip=("data", "dataset"), show=_show,
                           overrides=lambda args: {"data": tuple(args.data or ()), "dataset": args.dataset})
    train.description = ("Train a polyphonic model (88 Bernoulli outputs per step) or a melodic language model; "
                         "report the test NLL per step (or nats per token) beside the baselines.")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--data", nargs="+", metavar="PATH", help="music files or folders (.mid, .musicxml, .mxl, "
                                                                    ".xml, .abc, .krn)")
    help_text = next(f for f in dataclasses.fields(MusicSettings) if f.name == "dataset").metadata["help"]
    source.add_argument("--dataset", default=None, choices=("bach_chorales", "essen"), help=help_text)

    evaluate = add_run_verb(verbs, "evaluate", app="music", help="NLL per step / nats per token and the baselines",
                            epilog=EXAMPLES, func=run_evaluate, json_help="print the metrics as JSON")
    evaluate.add_argument("--data", nargs="+", metavar="PATH", help="music files or folders (default: the run's "
                                                                    "test split)")

    sample = add_run_verb(verbs, "sample", app="music", help="generate a MIDI file (and a piano-roll PNG beside it)",
                          epilog=EXAMPLES, func=run_sample, device=False)
    sample.add_argument("--out", required=True, metavar="FILE.mid", help="the MIDI file to write (the PNG takes "
                                                                         "the same name)")
    sample.add_argument("--prime", metavar="PIECE", help="start from the opening of this piece: a file (FILE#N: its "
                                                          "N-th tune) or a music21 corpus work such as bach/bwv66.6")
    sample.add_argument("--prime-length", type=int, default=8, help="frames (polyphonic) or notes (melodic) of the "
                                                                    "prime to use (default: 8)")
    sample.add_argument("--length", type=int, default=64, help="new frames or tokens to generate (default: 64)")
    sample.add_argument("--temperature", type=float, default=1.0, help="below 1: safer; above 1: wilder; 0: the "
                                                                       "likeliest choice (default: 1.0)")
    sample.add_argument("--top-k", type=int, default=None, help="melodic: sample among the k likeliest tokens")
    sample.add_argument("--top-p", type=float, default=None, help="melodic: sample among the likeliest tokens "
                                                                  "holding probability p")
    sample.add_argument("--seed", type=int, default=None, help="the same seed gives the same music")
    sample.add_argument("--tempo", type=float, default=100.0, help="beats (quarter notes) per minute (default: 100)")


def describe(result: dict) -> str:
    """The test metrics on one line."""
    from rnnkit.apps.common import format_metrics

    keys = ("nll_per_step", "frequency_baseline_nll", "repeat_baseline_nll", "frames") if "nll_per_step" in result \
        else ("nats_per_token", "bits_per_token", "unigram_baseline_nats", "tokens")
    return format_metrics({k: result[k] for k in (*keys, "pieces", "beats_baselines")})


def _show(result: dict, args: argparse.Namespace) -> str:
    if "test" not in result:
        return json.dumps(result)
    return f"test ({result['mode']}): {describe(result['test'])}\nsample: rnnkit music sample --run {args.out} --out sample.mid"


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.music import evaluate

    result = evaluate(args.run, args.data, device=args.device)
    print(json.dumps(result) if args.json else f"{result['evaluated_on']}: {describe(result)}")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from rnnkit.apps.music import sample

    result = sample(args.run, args.out, prime=args.prime, prime_length=args.prime_length, length=args.length,
                    temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed, tempo=args.tempo)
    primed = f", primed with {result['primed_with']}" if result["primed_with"] else ""
    print(f"wrote {result['midi']} ({result['notes']} notes, {result['seconds']} s{primed}) and {result['png']}")
    return 0
