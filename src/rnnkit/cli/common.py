"""Shared command-line plumbing: options derived from config dataclasses, the common train options,
and the one-line error every bad input gets instead of a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from rnnkit.train.config import TrainConfig


class CLIError(Exception):
    """A problem with the user's input; printed as one line, exit status 2."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _type_of(field: dataclasses.Field, hints: dict) -> tuple[Any, bool]:
    """(argparse type, optional) for a dataclass field's annotation."""
    hint = hints[field.name]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint)
    return base, optional


def add_dataclass_options(parser: argparse.ArgumentParser, cls, *, only: list[str] | None = None,
                          skip: tuple[str, ...] = (), defaults: dict | None = None,
                          aliases: dict[str, list[str]] | None = None) -> None:
    """Add ``--field-name`` options for a config dataclass, with its help texts and defaults."""
    hints = typing.get_type_hints(cls)
    defaults, aliases = defaults or {}, aliases or {}
    for field in dataclasses.fields(cls):
        if field.name in skip or (only is not None and field.name not in only):
            continue
        base, optional = _type_of(field, hints)
        default = defaults.get(field.name, field.default)
        help_text = field.metadata.get("help", "")
        if base is bool:
            parser.add_argument(_flag(field.name), *aliases.get(field.name, []), dest=field.name, default=default,
                                action=argparse.BooleanOptionalAction, help=help_text)
            continue
        convert = base
        if optional:
            def convert(text, base=base):
                return None if text.lower() in ("none", "off") else base(text)
            help_text += " ('none' turns it off)"
        parser.add_argument(_flag(field.name), *aliases.get(field.name, []), dest=field.name, type=convert,
                            default=default,
                            choices=field.metadata.get("choices"), metavar=None if "choices" in field.metadata
                            else field.name.split("_")[-1].upper(), help=f"{help_text} (default: {default})")


def dataclass_from_args(cls, args: argparse.Namespace, **overrides):
    """Build ``cls`` from the parsed options that belong to it."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise CLIError(str(error)) from None


def add_train_options(parser: argparse.ArgumentParser, *, defaults: dict | None = None) -> None:
    """The options every ``train`` verb shares: --out, --max-steps, --seed, --resume, --device, and the
    optimisation settings of :class:`rnnkit.train.TrainConfig`."""
    parser.add_argument("--out", required=True, metavar="DIR", help="the run directory to create (or resume)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    add_dataclass_options(parser, TrainConfig, defaults=defaults, aliases={"clip_norm": ["--clip"]})


def train_config(args: argparse.Namespace) -> TrainConfig:
    return dataclass_from_args(TrainConfig, args)
