"""``rnnkit serve``: a local web page and JSON API for a trained run (textgen, classify, forecast, translate, dna,
handwriting, caption, speech, music)."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  rnnkit serve --run runs/shakespeare                 # http://127.0.0.1:8000: type a prime, watch the text stream
  rnnkit serve --run runs/drugs --port 8080           # class probabilities of a text
  rnnkit serve --run runs/airline                     # a forecast plotted after the recent history
  rnnkit serve --run runs/fr-en --host 0.0.0.0        # a translation with its attention; reachable from other hosts
  rnnkit serve --run runs/mirna-lm                    # dna: class probabilities, or sampled bases streamed (--task lm)
  rnnkit serve --run runs/mnist                       # handwriting: upload an image, get its class (or a line's text)
  rnnkit serve --run runs/emoji                       # caption: upload an image, get its caption and attention
  rnnkit serve --run runs/digits-ctc --max-upload-bytes 5000000   # speech: upload a WAV clip, get its words
  rnnkit serve --run runs/chorales                    # music: sample a piece, download its MIDI, see its piano roll
  curl -s localhost:8000/api/predict -H 'Content-Type: application/json' -d '{"text": "great film"}'
  curl -sN localhost:8000/api/stream -H 'Content-Type: application/json' -d '{"prime": "ROMEO:", "length": 200}'
  curl -s localhost:8000/api/predict -H 'Content-Type: application/json' -d '{"image": "'$(base64 -w0 seven.png)'"}'

It binds to 127.0.0.1 (this machine only) unless --host says otherwise. Requests over the limits get a 4xx
with one JSON line naming the limit. Files (images, WAV clips) travel base64-encoded in the JSON body.
"""


def add_parser(subparsers) -> None:
    from rnnkit.serve.handlers import Limits

    defaults = Limits()
    parser = subparsers.add_parser("serve", help="a local web page and JSON API for a trained run",
                                   description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, metavar="DIR", help="the --out of a training run")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--max-text-chars", type=int, default=defaults.max_text_chars,
                        help=f"longest text or prime accepted (default: {defaults.max_text_chars})")
    parser.add_argument("--max-generate", type=int, default=defaults.max_generate_tokens,
                        help=f"most tokens one generation may ask for (default: {defaults.max_generate_tokens})")
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes,
                        help=f"largest request body (default: {defaults.max_body_bytes})")
    parser.add_argument("--max-upload-bytes", type=int, default=defaults.max_upload_bytes,
                        help=f"largest uploaded image or WAV file (default: {defaults.max_upload_bytes})")
    parser.add_argument("--max-concurrent", type=int, default=defaults.max_concurrent,
                        help=f"requests computed at once; others wait (default: {defaults.max_concurrent})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.errors import InputError
    from rnnkit.options import flag

    for name in ("max_text_chars", "max_generate", "max_body_bytes", "max_upload_bytes", "max_concurrent"):
        if getattr(args, name) < 1:
            raise InputError(f"{flag(name)} must be >= 1, got {getattr(args, name)}")
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be in 1..65535, got {args.port}")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise InputError(f"rnnkit serve needs {error.name}: pip install 'rnnkit[serve]'") from None
    from rnnkit.serve import Limits, load_handler, serve

    limits = Limits(max_body_bytes=args.max_body_bytes, max_text_chars=args.max_text_chars,
                    max_generate_tokens=args.max_generate, max_concurrent=args.max_concurrent,
                    max_upload_bytes=args.max_upload_bytes)
    handler = load_handler(args.run, limits)  # a bad run fails here, in one line, before the server starts
    print(f"serving {args.run} on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    serve(args.run, host=args.host, port=args.port, limits=limits, handler=handler)
    return 0
