"""``rnnkit export``: a trained run's model as ONNX, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import argparse
import json

EXAMPLES = """examples:
  rnnkit export --run runs/shakespeare                  # -> runs/shakespeare/export/model.onnx (+ .json, vocab)
  rnnkit export --run runs/drugs --out drugs.onnx       # a classifier: (inputs, lengths) -> logits
  rnnkit export --run runs/fr-en --out fr_en.onnx       # translator: fr_en.encoder.onnx + fr_en.decoder_step.onnx
  rnnkit export --run runs/airline --tolerance 1e-5 --json

Every file is run with onnxruntime on several batch sizes and lengths against PyTorch at export time and
the largest difference is printed; docs/shipping.md shows how to run the files without rnnkit.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a trained run's model to ONNX (verified with onnxruntime)",
                                   description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, metavar="DIR", help="the --out of a training run (any app)")
    parser.add_argument("--format", default="onnx", choices=("onnx",), help="output format (default: onnx)")
    parser.add_argument("--out", metavar="FILE", help="the .onnx file (default: DIR/export/model.onnx); a model of "
                                                      "several parts writes FILE-stem.<part>.onnx")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest difference from PyTorch accepted (default: 1e-4)")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="skip the onnxruntime comparison (needs no onnxruntime)")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.errors import InputError

    if not args.tolerance > 0:
        raise InputError(f"--tolerance must be > 0, got {args.tolerance}")
    try:
        import onnx  # noqa: F401
        if args.check:
            import onnxruntime  # noqa: F401
    except ImportError as error:
        raise InputError(f"ONNX export needs {error.name}: pip install 'rnnkit[export]'") from None
    from rnnkit.export import export_run

    manifest = export_run(args.run, args.out, check=args.check, tolerance=args.tolerance)
    if args.json:
        print(json.dumps(manifest, indent=1))
        return 0
    for part, file in manifest["files"].items():
        difference = manifest["max_difference"].get(part)
        checked = f"max |onnxruntime - PyTorch| = {difference:.2e}" if difference is not None else "not checked"
        print(f"{part}: {file} ({checked})")
    for name, file in manifest["vocab"].items():
        print(f"{name}: {file}")
    return 0
