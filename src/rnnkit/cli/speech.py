"""``rnnkit speech``: speech recognition from audio: word recognition (one word per clip) and
transcription (a clip of words -> its text, CTC), on your WAV files or built-in synthesised speech."""

from __future__ import annotations

import argparse
import json

from rnnkit.cli.common import (
    add_command, add_reading_options, add_run_verb, add_train_verb, beam_width, reading_options,
)

EXAMPLES = """examples:
  rnnkit speech train --out runs/digits                  # spoken digits, synthetic voices (espeak-ng + flite)
  rnnkit speech train --words commands --out runs/commands
  rnnkit speech train --task ctc --features mfcc --out runs/ctc     # digit strings -> text; also the TIDIGITS check
  rnnkit speech train --task ctc --unit char --data clips.csv --speaker-column speaker --out runs/mine
  rnnkit speech train --dataset japanese_vowels --hidden-size 64 --out runs/vowels   # speaker recognition
  torchrun --nproc-per-node 2 -m rnnkit speech train --out runs/ddp
  rnnkit speech evaluate --run runs/ctc                  # the run's own test split (unseen voices) again
  rnnkit speech evaluate --run runs/ctc --tidigits       # 31 real TIDIGITS utterances (pocketsphinx-testdata)
  rnnkit speech evaluate --run runs/mine --data more.tsv
  rnnkit speech transcribe --run runs/ctc a.wav b.wav --beam-size 8 --plot alignment.png
  rnnkit speech transcribe --run runs/digits clip.wav --json       # the word with its probabilities

A transcript file (CSV, TSV or JSONL) has a column with the WAV path (relative to the file's folder) and
one with the text: `file,text` / `clips/001.wav,three one four`. Any sample rate; audio is resampled.
"""


def add_parser(subparsers) -> None:
    from rnnkit.apps.speech import APP, READING, describe, describe_anchors

    verbs = add_command(subparsers, "speech", help="speech recognition: train, evaluate, transcribe",
                        description=__doc__, epilog=EXAMPLES)

    train = add_train_verb(verbs, APP, help="train a word recogniser or a CTC transcriber; writes a run directory",
                           epilog=EXAMPLES, show=lambda result, args: f"test: {describe(result)}\n"
                           f"{describe_anchors(result)}", next_step="rnnkit speech transcribe --run {out} FILE.wav")
    train.description = ("Train on --data FILE (WAV paths and transcripts) or built-in speech; report test "
                         "accuracy and confusion_matrix.png (--task words) or greedy/beam CER and WER and "
                         "ctc_alignment.png (--task ctc), with published anchors beside them.")

    evaluate = add_run_verb(verbs, "evaluate", app="speech",
                            help="metrics of a trained run on its test split, a file or TIDIGITS", epilog=EXAMPLES,
                            func=run_evaluate, json_help="print the metrics as JSON")
    evaluate.add_argument("--data", metavar="FILE", help="transcript file to evaluate on (default: the run's test split)")
    evaluate.add_argument("--tidigits", action="store_true",
                          help="the 31 real TIDIGITS utterances of pocketsphinx-testdata (ctc runs on 13 MFCCs)")
    evaluate.add_argument("--beam-size", type=beam_width, help="prefix beam width (default: the run's)")
    add_reading_options(evaluate, APP.settings_class, READING)

    transcribe = add_run_verb(verbs, "transcribe", app="speech",
                              help="the text of WAV files (or their word with probabilities)", epilog=EXAMPLES,
                              func=run_transcribe, json_help="one JSON object per file")
    transcribe.add_argument("files", nargs="*", metavar="WAV", help="audio files, or folders of them")
    transcribe.add_argument("--beam-size", type=beam_width, default=1, help="ctc: prefix beam width (default 1: greedy)")
    transcribe.add_argument("--top", type=int, default=3, help="words task: show this many words (default 3)")
    transcribe.add_argument("--plot", metavar="PNG", help="ctc: spectrogram and CTC alignment of the first file")


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.speech import READING, describe, evaluate

    result = evaluate(args.run, data=args.data, tidigits=args.tidigits, beam_size=args.beam_size, device=args.device,
                      reading=reading_options(args, READING))
    print(json.dumps(result) if args.json else f"{result['evaluated_on']}: {describe(result)}")
    return 0


def run_transcribe(args: argparse.Namespace) -> int:
    from rnnkit.apps.speech import transcribe

    for item in transcribe(args.run, args.files, beam_size=args.beam_size, top=args.top, plot=args.plot,
                           device=args.device):
        if args.json:
            print(json.dumps(item))
        elif "probability" in item:
            others = "  ".join(f"{w} {p:.3f}" for w, p in item["top"][1:])
            print(f"{item['file']}\t{item['text']}\t{item['probability']:.3f}\t{others}")
        else:
            print(f"{item['file']}\t{item['text']}")
    return 0
