"""Files that are either the old version or the new one: every write goes to a temporary name beside its
target, is flushed to disk, and is renamed into place (atomic on one file system), so a kill at any moment
never leaves half a file where a checkpoint, a model or an export belongs."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The permissions a plainly created file gets. Some writers (safetensors) create theirs 0600, which left a shared
# model unreadable to the colleague it was trained for; read once, as os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file, or a directory's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def plain_permissions(path: Path) -> None:
    """Give ``path`` the permissions a plainly created file would have (the umask's)."""
    os.chmod(path, _FILE_MODE)


def replace_atomically(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """``write(temporary)``, then flush it and rename it to ``path`` with the permissions of a plainly created
    file; the temporary is removed on failure."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        write(temporary)
        plain_permissions(temporary)
        fsync_path(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_path(path.parent)
    return path


def finite_or_null(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``: JSON has no NaN or Infinity, which Python writes
    anyway and strict readers (jq, JavaScript's ``JSON.parse``) refuse. For files people and their tools read."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value


def null_as_nan(value: Any) -> Any:
    """The inverse of :func:`finite_or_null` for numbers read back: every ``None`` in ``value`` becomes NaN (so apply
    it only to what holds numbers)."""
    if isinstance(value, dict):
        return {key: null_as_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [null_as_nan(item) for item in value]
    return math.nan if value is None else value


def write_json_atomic(path: str | Path, value: Any, *, indent: int = 1, strict: bool = False) -> Path:
    """``value`` as JSON (and a final newline) at ``path``, atomically; ``strict``: non-finite numbers as
    ``null`` (:func:`finite_or_null`)."""
    text = json.dumps(finite_or_null(value) if strict else value, indent=indent, allow_nan=not strict) + "\n"
    return replace_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def read_json_object(path: str | Path) -> dict:
    """The JSON object in ``path`` (a run's ``app.json``, say); an ``InputError`` calling the file damaged
    when it is not valid JSON or not an object."""
    from rnnkit.errors import InputError

    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path} is damaged (not valid JSON)") from None
    if not isinstance(value, dict):
        raise InputError(f"{path} is damaged (not a JSON object)")
    return value
