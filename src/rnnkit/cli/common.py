"""Shared command-line plumbing: options derived from config dataclasses, the common train options,
and the one-line error every bad input gets instead of a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import json
import typing
from collections.abc import Callable
from typing import Any

from rnnkit.errors import InputError
from rnnkit.options import flag, nested_class
from rnnkit.train.config import TrainConfig


def _type_of(field: dataclasses.Field, hints: dict) -> tuple[Any, bool]:
    """(argparse type, optional) for a dataclass field's annotation."""
    hint = hints[field.name]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint)
    return base, optional


def _option_fields(cls, prefix: tuple[str, ...] = ()):
    """``(path, field, owner class)`` for every command-line option of ``cls``, nested configs flattened.

    Derived fields (filled from the data) are left out; a nested config's options take their plain
    names (``--hidden-size``, not ``--model-hidden-size``), so every app spells a model option the same.
    """
    for field in dataclasses.fields(cls):
        inner = nested_class(field)
        if inner is not None:
            yield from _option_fields(inner, (*prefix, field.name))
        elif not field.metadata.get("derived"):
            yield (*prefix, field.name), field, cls


def _default_of(instance, path: tuple[str, ...]):
    for name in path:
        instance = getattr(instance, name)
    return instance


def add_dataclass_options(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = (),
                          defaults: dict | None = None, aliases: dict[str, list[str]] | None = None) -> None:
    """Add ``--field-name`` options for a config dataclass (nested configs included), with its help texts.

    Defaults come from ``defaults`` (by field name), else from ``cls()`` — so an app's settings, which
    nest a model config with the app's preferred defaults, show those.
    """
    defaults, aliases = defaults or {}, aliases or {}
    instance = _defaults_instance(cls)
    seen: set[str] = set()
    hints: dict[type, dict] = {}  # get_type_hints evaluates every annotation of a class: once per class
    for path, field, owner in _option_fields(cls):
        name = path[-1]
        if name in skip:
            continue
        if name in seen:
            raise TypeError(f"{cls.__name__} has two options named {name!r}; rename one")
        seen.add(name)
        if owner not in hints:
            hints[owner] = typing.get_type_hints(owner)
        base, optional = _type_of(field, hints[owner])
        default = defaults.get(name, _default_of(instance, path) if instance is not None else field.default)
        help_text = field.metadata.get("help", "")
        if base is bool:
            parser.add_argument(flag(name), *aliases.get(name, []), dest=name, default=default,
                                action=argparse.BooleanOptionalAction, help=help_text)
            continue
        convert = _finite if base is float else base
        # An optional setting whose help says what its default (None) means ("default: the first input column")
        # is not switched off by None, and "(default: None)" would contradict its help.
        says_default = optional and default is None and "default" in help_text
        if optional:
            def convert(text, base=_finite if base is float else base):
                return None if text.lower() in ("none", "off") else base(text)
            convert.__name__ = base.__name__  # argparse names the type in "invalid ... value" 
            help_text += "" if says_default else " ('none' turns it off)"
        choices = field.metadata.get("choices")
        choices = choices() if callable(choices) else choices
        parser.add_argument(flag(name), *aliases.get(name, []), dest=name, type=convert, default=default,
                            choices=choices, metavar=None if choices else field.metadata.get("metavar") or _metavar(name),
                            help=help_text if says_default else f"{help_text} (default: {default})")


def beam_width(text: str) -> int:
    """A ``--beam-size``: a whole number >= 0 (0 and 1 decode greedily)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (1 is greedy), got {value}")
    return value


def _finite(text: str) -> float:
    """A float option's value: ``nan`` and ``inf`` are never a setting (they train to NaN, or never stop)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _metavar(name: str) -> str:
    """What the value counts or names: ``max_steps`` -> STEPS, ``clips_per_voice`` -> CLIPS."""
    words = name.split("_")
    return (words[words.index("per") - 1] if "per" in words[1:] else words[-1]).upper()


def dataclass_from_args(cls, args: argparse.Namespace, **overrides):
    """Build ``cls`` (nested configs included) from the parsed options that belong to it."""
    values = vars(args)

    def build(owner, base, top: bool):
        given = {}
        for field in dataclasses.fields(owner):
            inner = nested_class(field)
            if inner is not None:
                given[field.name] = build(inner, getattr(base, field.name) if base is not None else None, False)
            elif top and field.name in overrides:
                given[field.name] = overrides[field.name]
            elif not field.metadata.get("derived") and field.name in values:
                given[field.name] = values[field.name]
        # Options a parser skipped keep the owner's preferred defaults (a nested config's own defaults may differ).
        return dataclasses.replace(base, **given) if base is not None else owner(**given)

    try:
        return build(cls, _defaults_instance(cls), True)
    except (TypeError, ValueError) as error:
        raise InputError(_as_flags(str(error), cls)) from None


def _as_flags(message: str, cls) -> str:
    """A settings error as the command line says it: the options' field names become their flags
    ("val_fraction + test_fraction must be below 1" -> "--val-fraction + --test-fraction ..."). A name without an
    underscore ("level", "data") is one only where it opens the message; elsewhere it may be a plain word."""
    names = {path[-1] for path, _, _ in _option_fields(cls)}
    first = message.split(" ", 1)[0]
    if first in names:
        message = flag(first) + message[len(first):]
    return re.sub(r"(?<![-\w])[a-z]+(?:_[a-z0-9]+)+\b",
                  lambda match: flag(match.group()) if match.group() in names else match.group(), message)


def _defaults_instance(cls):
    """``cls()`` when every field has a default that validates, else ``None``."""
    try:
        return cls()
    except (TypeError, ValueError):
        return None


def add_train_options(parser: argparse.ArgumentParser, *, defaults: dict | None = None) -> None:
    """The options every ``train`` verb shares: --out, --max-steps, --seed, --resume, --device, and the
    optimisation settings of :class:`rnnkit.train.TrainConfig`."""
    parser.add_argument("--out", required=True, metavar="DIR", help="the run directory to create (or resume)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    add_dataclass_options(parser, TrainConfig, defaults=defaults, aliases={"clip_norm": ["--clip"]})


def add_reading_options(parser: argparse.ArgumentParser, settings_class, names: tuple[str, ...]) -> None:
    """Options of ``settings_class`` that say how to read a file (its columns, its encoding) for a verb that
    reads another file with a trained run: each defaults to the run's own value."""
    fields = {f.name: f for f in dataclasses.fields(settings_class)}
    for name in names:
        parser.add_argument(flag(name), dest=name, default=None, metavar=_metavar(name),
                            help=f"{fields[name].metadata['help']} (default: the run's)")


def reading_options(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """The :func:`add_reading_options` the command line gave, by name."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def given_options(parser: argparse.ArgumentParser, command_line: list[str]) -> set[str]:
    """The ``dest`` of every option of ``parser`` written out in ``command_line`` (abbreviations too).

    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--hidden-size"); _ = parser.add_argument("--lr"); _ = parser.add_argument("--lr-decay")
    >>> sorted(given_options(parser, ["--hidden", "64", "--lr=0.1", "x"]))
    ['hidden_size', 'lr']
    """
    actions = parser._option_string_actions  # argparse's map from option string to action
    given = set()
    for token in command_line:
        name = token.split("=", 1)[0]
        if not name.startswith("--"):
            continue
        if name in actions:
            given.add(actions[name].dest)
            continue
        matches = {action.dest for option, action in actions.items() if option.startswith(name)}
        if len(matches) == 1:  # argparse accepts a unique abbreviation
            given |= matches
    return given


def apply_preset(parser: argparse.ArgumentParser, args: argparse.Namespace, values: dict) -> None:
    """Set the preset's ``values`` on ``args``, except for the options the command line gives."""
    unknown = sorted(set(values) - {action.dest for action in parser._actions})
    if unknown:
        raise TypeError(f"preset names options this command does not have: {', '.join(unknown)}")
    given = given_options(parser, getattr(args, "command_line", None) or [])
    for dest, value in values.items():
        if dest not in given:
            setattr(args, dest, value)


def train_config(args: argparse.Namespace) -> TrainConfig:
    return dataclass_from_args(TrainConfig, args)


RAW = argparse.RawDescriptionHelpFormatter


def add_command(subparsers, name: str, *, help: str, description: str, epilog: str):
    """An application's command (``rnnkit NAME``); returns the subparsers its verbs go into."""
    command = subparsers.add_parser(name, help=help, description=description, epilog=epilog, formatter_class=RAW)
    return command.add_subparsers(dest="verb", metavar="VERB", required=True)


def add_run_verb(verbs, name: str, *, app: str, help: str, epilog: str, func: Callable, run_help: str | None = None,
                 device: bool = True, json_help: str | None = None) -> argparse.ArgumentParser:
    """A verb that uses a trained run: ``--run DIR``, ``--device`` (unless ``device=False``) and, given its
    help, ``--json``; the caller adds the verb's own options."""
    parser = verbs.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=RAW)
    parser.add_argument("--run", required=True, metavar="DIR", help=run_help or f"the --out of a `{app} train` run")
    if device:
        parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    if json_help:
        parser.add_argument("--json", action="store_true", help=json_help)
    parser.set_defaults(func=func)
    return parser


def add_train_verb(verbs, app, *, help: str, epilog: str, skip: tuple[str, ...] = (),
                   overrides: Callable[[argparse.Namespace], dict] | None = None,
                   show: Callable[[dict, argparse.Namespace], str] | None = None,
                   next_step: str | None = None) -> argparse.ArgumentParser:
    """The ``train`` verb of an application, generated from its settings and :class:`TrainConfig`.

    Every settings field (the nested model config's included) becomes an option with the same name and
    help in every app; ``skip`` leaves out the ones the caller adds by hand (their values then come
    from ``overrides(args)``). ``show(result, args)`` turns the app's report into what is printed;
    ``next_step`` (with ``{out}`` for the run directory) is the command to run next, printed last.
    """
    parser = verbs.add_parser("train", help=help, epilog=epilog, formatter_class=RAW)
    add_dataclass_options(parser, app.settings_class, skip=skip)
    add_train_options(parser, defaults=app.train_defaults)
    if app.presets:
        described = "; ".join(f"{name}: {preset['help']}" for name, preset in app.presets.items())
        parser.add_argument("--preset", choices=sorted(app.presets), default=None,
                            help=f"start from a named recipe; options you give still win ({described})")

    def run(args: argparse.Namespace) -> int:
        from rnnkit.apps import lifecycle

        if getattr(args, "preset", None):
            apply_preset(parser, args, app.presets[args.preset]["values"])
        settings = dataclass_from_args(app.settings_class, args, **(overrides(args) if overrides else {}))
        given = given_options(parser, getattr(args, "command_line", None) or [])
        if {"data", "dataset"} <= given:
            raise InputError("pass --data or --dataset, not both: both name the training data")
        result = lifecycle.train(app, settings, train_config(args), args.out, resume=args.resume,
                                 progress=not args.quiet, given=given)
        from rnnkit.train.distributed import launched_rank

        if launched_rank() != 0:
            return 0  # under torchrun, rank 0 alone has the app's report (the others hold the trainer's)
        print(show(result, args) if show else json.dumps(result, indent=1))
        print(f"run directory: {args.out}" + (f"; next: {next_step.format(out=args.out)}" if next_step else ""))
        return 0

    parser.set_defaults(func=run)
    return parser
