"""``rnnkit dna``: nucleotide sequences (FASTA/FASTQ, DNA or RNA): classify them, or learn a language
model of bases, measure it in bits per base against Markov baselines and sample new sequences."""

from __future__ import annotations

import argparse
import json
import sys

from rnnkit.cli.common import add_command, add_run_verb, add_train_verb
from rnnkit.errors import InputError

EXAMPLES = """examples:
  # built-in miRBase hairpins (apt install seqkit-examples): organism group of a hairpin, split by miRNA family
  rnnkit dna train --out runs/hairpin-groups --bidirectional --max-minutes 5
  # the same reading overlapping 3-mers as tokens (an embedding per 3-mer) instead of single bases
  rnnkit dna train --out runs/hairpin-3mers --kmer 3 --embedding-dim 32 --bidirectional --max-minutes 5
  # real hairpins against their own dinucleotide shuffles: order that composition cannot explain (the stem)
  rnnkit dna train --shuffled-controls --out runs/hairpin-controls --bidirectional --max-minutes 5
  # a nucleotide language model on the same hairpins, against order-1..6 Markov models
  rnnkit dna train --task lm --out runs/hairpin-lm --max-minutes 5
  # your own sequences: labels from the ids (here the text before the first '|'), or from a TSV
  rnnkit dna train --data reads.fastq.gz --label-pattern '^([^|]+)\\|' --out runs/mine
  rnnkit dna train --data genes.fa --labels labels.tsv --group-pattern '^(\\w+)_' --out runs/genes
  rnnkit dna evaluate --run runs/hairpin-groups                 # the run's own test split again
  rnnkit dna evaluate --run runs/hairpin-lm --data other.fa     # bits per base on other sequences
  rnnkit dna predict --run runs/hairpin-groups UGAGGUAGUAGGUUGUAUAGUU --data more.fa
  rnnkit dna sample --run runs/hairpin-lm --count 5 --prime UGAGGUAG --temperature 0.9 --out new.fa
"""


def add_parser(subparsers) -> None:
    from rnnkit.apps.dna import APP, DnaSettings

    verbs = add_command(subparsers, "dna", help="nucleotide sequences: classify, language model, sample",
                        description=__doc__, epilog=EXAMPLES)

    train = add_train_verb(verbs, APP, help="train a classifier or a language model; writes a run directory",
                           epilog=EXAMPLES, skip=("data",), overrides=lambda args: {"data": tuple(args.data or ())},
                           show=_show_training, next_step="rnnkit dna evaluate --run {out}")
    train.description = ("Train on FASTA/FASTQ files (--data) or the built-in miRBase hairpins. --task classify "
                         "reports test accuracy and macro-F1 next to a k-mer logistic regression and the majority "
                         "class (confusion_matrix.png); --task lm reports bits per base next to Markov models of "
                         "order 1-6 (bits_per_base.png) and samples.")
    train.add_argument("--data", nargs="+", metavar="FILE", help=_help(DnaSettings, "data"))

    evaluate = add_run_verb(verbs, "evaluate", app="dna", help="a trained run on its test split or on other files",
                            epilog=EXAMPLES, func=run_evaluate, json_help="print the metrics as JSON")
    evaluate.add_argument("--data", nargs="+", metavar="FILE", help="FASTA/FASTQ files (default: the run's test split)")
    evaluate.add_argument("--labels", metavar="TSV", help="classify: labels of --data (default: the run's way)")
    evaluate.add_argument("--label-pattern", metavar="REGEX", help="classify: labels of --data from the ids")

    predict = add_run_verb(verbs, "predict", app="dna", help="label sequences with a classify run", epilog=EXAMPLES,
                           func=run_predict, run_help="the --out of a `dna train --task classify` run",
                           json_help="one JSON object per sequence, with every probability")
    predict.add_argument("sequences", nargs="*", metavar="SEQUENCE", help="sequences to classify (A C G T/U, IUPAC)")
    predict.add_argument("--data", nargs="+", metavar="FILE", help="FASTA/FASTQ files of sequences to classify")
    predict.add_argument("--skip-empty", action="store_true", help="drop records without a sequence")

    sample = add_run_verb(verbs, "sample", app="dna", help="new sequences from a language-model run (FASTA)",
                          epilog=EXAMPLES, func=run_sample, run_help="the --out of a `dna train --task lm` run",
                          device=False)
    sample.add_argument("--count", type=int, default=1, help="sequences to sample (default: 1)")
    sample.add_argument("--prime", default="", help="start every sequence with these bases")
    sample.add_argument("--length", type=int, default=500, help="most bases to add; a sequence usually ends "
                                                                "earlier, where the model ends it (default: 500)")
    sample.add_argument("--temperature", type=float, default=1.0, help="below 1: safer; above 1: wilder; 0: greedy")
    sample.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens only")
    sample.add_argument("--top-p", type=float, default=None, help="sample among the most likely tokens holding p")
    sample.add_argument("--seed", type=int, default=None, help="the same seed gives the same sequences")
    sample.add_argument("--out", metavar="FILE", help="write the FASTA here instead of printing it")


def _help(cls, name: str) -> str:
    import dataclasses

    return next(f.metadata["help"] for f in dataclasses.fields(cls) if f.name == name)


def _show_training(result: dict, args: argparse.Namespace) -> str:
    from rnnkit.apps.dna import describe

    lines = [f"test: {describe(result)}"]
    for i, sequence in enumerate(result.get("samples", []), start=1):
        lines.append(f">sample-{i} length={len(sequence)}\n{sequence}")
    if result.get("task") == "lm":
        lines.append(f"sample more: rnnkit dna sample --run {args.out} --count 5")
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.dna import describe, evaluate

    result = evaluate(args.run, args.data, labels=args.labels, label_pattern=args.label_pattern, device=args.device)
    print(json.dumps(result) if args.json else f"{result['evaluated_on']}: {describe(result)}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from rnnkit.apps.dna import predict
    from rnnkit.data.nucleotides import read_records

    items = [(f"argument-{i}", s) for i, s in enumerate(args.sequences, start=1)]
    for path in args.data or ():
        items += [(r.id, r.sequence) for r in read_records(path, skip_empty=args.skip_empty)]
    if not items and not sys.stdin.isatty():
        items = [(f"line-{i}", line.strip()) for i, line in enumerate(sys.stdin.read().splitlines(), start=1)
                 if line.strip()]
    for item in predict(args.run, items, device=args.device):
        print(json.dumps(item) if args.json else f"{item['id']}\t{item['label']}\t{item['probability']:.3f}")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from rnnkit.apps.dna import sample

    sequences = sample(args.run, count=args.count, prime=args.prime, length=args.length,
                       temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    text = "".join(f">sample-{i} length={len(s)}\n{s}\n" for i, s in enumerate(sequences, start=1))
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as file:
                file.write(text)
        except OSError as error:
            raise InputError(f"--out {args.out}: cannot write it ({error.strerror})") from None
        print(f"wrote {len(sequences)} sequences to {args.out}")
    else:
        sys.stdout.write(text)
    return 0
