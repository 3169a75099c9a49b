"""``rnnkit caption``: image captioning with attention (Show, Attend and Tell).

  train     learn from a folder of images with captions, or built-in emoji / digit strips
  evaluate  BLEU-4 and exact match of a trained run (its test split, or another folder)
  caption   print the caption of image files (or of every image in a folder)
"""

from __future__ import annotations

import argparse
import json

from rnnkit.cli.common import add_command, add_reading_options, add_run_verb, add_train_verb, reading_options

EXAMPLES = """examples:
  rnnkit caption train --out runs/emoji                      # 3,963 emoji -> their names ("thumbs up")
  rnnkit caption train --dataset digits --out runs/digits    # strips of 1-5 MNIST digits -> "three seven one"
  rnnkit caption train --data photos/ --out runs/mine        # photos/labels.csv: file,caption (rows may repeat a file)
  rnnkit caption train --data photos/ --labels caps.jsonl --caption-column text --resize --out runs/mine
  rnnkit caption train --out runs/emoji --resume --max-steps 6000    # continue a run
  rnnkit caption evaluate --run runs/digits                  # BLEU-4 and exact match on the test split
  rnnkit caption caption --run runs/digits runs/digits/splits/test/00000.png --beam 5
  rnnkit caption caption --run runs/mine more_photos/ --resize
"""


def _decoding_options(parser) -> None:
    parser.add_argument("--beam", type=int, default=3, metavar="N", help="beam size; 1 is greedy (default: 3)")
    parser.add_argument("--alpha", type=float, default=0.6,
                        help="GNMT length-normalisation strength for beam search; 0 = none (default: 0.6)")
    parser.add_argument("--resize", action="store_true",
                        help="resize images of another size to the size the model was trained on (default: refuse)")


def add_parser(subparsers) -> None:
    from rnnkit.apps.caption import APP, READING

    verbs = add_command(subparsers, "caption", help="image captioning: CNN encoder, attentive recurrent decoder",
                        description=__doc__, epilog=EXAMPLES)
    add_train_verb(verbs, APP, help="train a captioner on images with captions", epilog=EXAMPLES,
                   show=_show_training)

    evaluate = add_run_verb(verbs, "evaluate", app="caption", help="BLEU-4 and exact match of a trained run",
                            epilog=EXAMPLES, func=run_evaluate, json_help="print the metrics as JSON")
    _decoding_options(evaluate)
    evaluate.add_argument("--data", metavar="FOLDER", help="images with a label file (default: the run's test split)")
    evaluate.add_argument("--labels", metavar="FILE",
                          help="label file of --data (default: labels.csv, labels.tsv or labels.jsonl in it)")
    add_reading_options(evaluate, APP.settings_class, READING)

    caption = add_run_verb(verbs, "caption", app="caption", help="print the caption of image files", epilog=EXAMPLES,
                           func=run_caption)
    _decoding_options(caption)
    caption.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")


def _show_training(results: dict, args: argparse.Namespace) -> str:
    from rnnkit.apps.common import format_metrics

    if "nearest_neighbour" not in results:  # under torchrun, the processes other than rank 0
        return f"steps {results.get('step')}; rank 0 prints the test report"
    keys = ("bleu", "exact_match", "examples", "steps", "train_seconds")
    baseline = results["nearest_neighbour"]
    lines = [f"test (beam {results['beam']}): {format_metrics({k: results[k] for k in keys if k in results})}",
             f"nearest-neighbour baseline: {format_metrics(baseline)}"
             + ("" if results["beats_baseline"] else "  (not beaten)")]
    for example in results.get("examples_shown", []):
        lines.append(f"  {example['image']}: {example['output']!r} (reference {example['references'][0]!r})")
    lines.append(f"results.json, attention.png, curves.png, splits/test/; "
                 f"next: rnnkit caption caption --run {args.out} IMAGE")
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    from rnnkit.apps.caption import READING, evaluate

    from rnnkit.apps.common import describe_evaluation

    result = evaluate(args.run, args.data, args.labels, beam=args.beam, alpha=args.alpha, resize=args.resize,
                      device=args.device, reading=reading_options(args, READING))
    print(json.dumps(result) if args.json else describe_evaluation(result["data"], result))
    return 0


def run_caption(args: argparse.Namespace) -> int:
    from rnnkit.apps.caption import caption

    captions = caption(args.run, args.images, beam=args.beam, alpha=args.alpha, resize=args.resize,
                       device=args.device)
    for path, text in captions:
        print(text if len(captions) == 1 else f"{path}\t{text}")
    return 0
