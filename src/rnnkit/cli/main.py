"""The ``rnnkit`` command: ``rnnkit <command> [<verb>] [options]``; ``rnnkit <command> --help`` for each.

Each command lives in its own module with ``add_parser(subparsers)``, which registers its options and
sets ``func``; this module only dispatches and turns bad input into one line and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from rnnkit.errors import InputError

#: Command modules under rnnkit.cli, in the order ``--help`` lists them.
COMMANDS = ["textgen", "classify", "forecast", "translate", "caption", "handwriting", "speech", "music", "dna",
            "lab", "export", "serve", "datasets"]


def build_parser() -> argparse.ArgumentParser:
    from rnnkit import __version__

    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Train and use recurrent neural networks (RNN, LSTM, GRU) on your own data.",
        epilog="Example: rnnkit textgen train --out runs/shakespeare --max-steps 2000")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"rnnkit.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"rnnkit.cli.{name}":
                continue  # a command not built yet
            raise
        module.add_parser(subparsers)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from rnnkit.train.checkpoint import CheckpointError

    return (InputError, CheckpointError, FileNotFoundError, IsADirectoryError, PermissionError, ValueError,
            UnicodeDecodeError)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = argv  # what was written out: a preset never overrides a given option
    from rnnkit.train.distributed import launched_rank

    if launched_rank() != 0:
        # Under torchrun every process runs the command; rank 0 alone reports (errors still show).
        sys.stdout = open(os.devnull, "w")
    try:
        if isinstance(getattr(args, "device", None), str):  # every verb with --device: one line, before any work
            from rnnkit.apps.lifecycle import check_device

            check_device(args.device)
        result = args.func(args)
    except _user_errors() as error:
        if os.environ.get("RNNKIT_DEBUG") == "1":
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"rnnkit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader stopped early (`rnnkit ... | head`): nothing is wrong, and nothing more can be written.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a command ended by SIGPIPE
    except OSError as error:
        if error.errno != errno.ENOSPC or os.environ.get("RNNKIT_DEBUG") == "1":
            raise
        print(f"rnnkit {args.command}: error: no space left on the device writing {error.filename or 'a file'}; "
              "free some space and run the command again (a training run continues with --resume)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:  # RunInterrupted says how to continue the run
        print(f"rnnkit {args.command}: {error or 'interrupted'}", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
