"""Settings as dataclasses: one field helper for every config in rnnkit, and nesting.

A field declared with :func:`option` carries its help text (and allowed choices), which is what the
command line and the docs are generated from. A field declared with :func:`nested` holds another
config dataclass — an application's settings nest its task model's config instead of copying its
fields. Fields marked ``derived`` are filled from the data (vocabulary sizes, class counts) and are
never options a user sets.

>>> import dataclasses
>>> @dataclasses.dataclass
... class Inner:
...     size: int = option(4, "units")
>>> @dataclasses.dataclass
... class Outer:
...     name: str = option("x", "a name")
...     inner: Inner = nested(Inner, size=8)
>>> from_dict(Outer, {"name": "y", "inner": {"size": 3}})
Outer(name='y', inner=Inner(size=3))
>>> Outer().inner.size
8
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import field
from typing import Any


def option(default: Any, help: str, *, choices: tuple | Callable[[], tuple] | None = None,
           derived: bool = False, metavar: str | None = None) -> Any:
    """A dataclass field with a default, a help text and optionally the allowed ``choices`` (a tuple, or a
    function giving them when a parser is built, for registries that grow) and the ``metavar`` that names
    the value in ``--help`` (by default taken from the field's name).

    ``derived=True`` marks a value the application fills from the data; it is not a command-line option.
    """
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple or a scalar default for config fields")
    metadata: dict[str, Any] = {"help": help, "derived": derived}
    if metavar is not None:
        metadata["metavar"] = metavar
    if choices is not None:
        metadata["choices"] = choices if callable(choices) else tuple(choices)
    return field(default=default, metadata=metadata)


def flag(name: str) -> str:
    """The command-line flag of a settings field: ``flag("max_steps") == "--max-steps"``."""
    return "--" + name.replace("_", "-")


def nested(cls: type, help: str = "", **defaults: Any) -> Any:
    """A field holding a ``cls`` config, by default ``cls(**defaults)`` (the defaults an owner prefers)."""
    return field(default_factory=lambda: cls(**defaults), metadata={"help": help, "nested": cls})


def nested_class(f: dataclasses.Field) -> type | None:
    """The config class a :func:`nested` field holds, or ``None``."""
    return f.metadata.get("nested")


def from_dict(cls: type, values: dict) -> Any:
    """Rebuild ``cls`` from :func:`dataclasses.asdict` output, nested configs included.

    Unknown names are refused (a run written by another version would otherwise be half-read).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
    built = {}
    for name, value in values.items():
        inner = nested_class(fields[name])
        built[name] = from_dict(inner, value) if inner is not None and isinstance(value, dict) else value
    return cls(**built)
