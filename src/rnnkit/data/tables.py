"""Reading the user's text and table files, with one-line errors that name the problem and the fix.

:func:`read_text` is the one place a user's file is decoded: every application reads through it, so
a missing, empty or wrongly encoded file, and a byte-order mark, are handled alike everywhere.
:func:`read_table` reads CSV, TSV and JSON lines into dicts and refuses a table whose rows do not
line up with its header (the usual sign of an unquoted comma), instead of training on shifted columns.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rnnkit.errors import InputError

#: The byte-order mark as decoded text. Excel's "CSV UTF-8" and Windows Notepad start a file with it.
BYTE_ORDER_MARK = "\ufeff"
#: The largest field size limit the csv module accepts everywhere (a C long is 32 bits on Windows).
_CSV_LIMIT_CEILING = 2 ** 31 - 1


#: The first bytes of binary files people pass by mistake where a text file belongs.
_SIGNATURES = ((b"RIFF", "a WAV (RIFF) file"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
               (b"GIF8", "a GIF image"), (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a zip archive"),
               (b"\x1f\x8b", "a gzip archive"), (b"MThd", "a MIDI file"), (b"fLaC", "a FLAC file"),
               (b"OggS", "an Ogg file"), (b"ID3", "an MP3 file"))


def binary_kind(data: bytes) -> str | None:
    """What a file that is not text looks like (``"a WAV (RIFF) file"``, ..., ``"a binary file"`` for NUL bytes
    near its start), or ``None`` for what may be text."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    return "a binary file" if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")) else None


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """A text file's contents, with one-line errors for missing, empty and wrongly encoded files.

    A leading byte-order mark is dropped: it marks the encoding, it is not text (left in, it glues
    itself to the first column's name, or a text generator learns it as a character).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path} is a directory; pass a text file")
    data = path.read_bytes()
    kind = binary_kind(data)
    if kind is not None and not encoding.lower().replace("-", "").startswith("utf16"):
        raise InputError(f"{path} is {kind}, not text; pass a text file (CSV, TSV, JSONL or plain text) here")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not valid {encoding} (byte 0x{data[error.start]:02x} at offset {error.start}); "
                         f"pass --encoding with the file's encoding, e.g. --encoding latin-1") from None
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}; use e.g. utf-8 or latin-1") from None
    text = text.removeprefix(BYTE_ORDER_MARK)
    if not text.strip():
        raise InputError(f"{path} is empty")
    return text


def read_table(path: str | Path, *, encoding: str = "utf-8", delimiter: str | None = None) -> tuple[list[str], list[dict]]:
    """Rows of a CSV, TSV or JSONL file as dicts (``(columns, rows)``), format from the extension.

    ``.jsonl``/``.ndjson`` are JSON lines; ``.tsv``/``.tab`` are tab-separated; anything else is CSV
    unless ``delimiter`` says otherwise. A CSV row must have as many fields as the header, and the
    header must name each column once.
    """
    path = Path(path)
    text = read_text(path, encoding)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _read_json_lines(path, text)
    return _read_delimited(path, text, delimiter or ("\t" if suffix in (".tsv", ".tab") else ","))


def _read_json_lines(path: Path, text: str) -> tuple[list[str], list[dict]]:
    rows = []
    # Lines end at "\n" only: str.splitlines would also split at characters a JSON string may hold (U+2028, ...).
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}, line {number}: expected a JSON object per line")
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return columns, rows


def _read_delimited(path: Path, text: str, delimiter: str) -> tuple[list[str], list[dict]]:
    # The whole file is in memory already, so no field can outgrow it; the csv module's default limit
    # (128 KiB per field) would only turn a long text into a traceback. Raised, never lowered, so a
    # read in another thread keeps its room.
    csv.field_size_limit(max(csv.field_size_limit(), min(len(text), _CSV_LIMIT_CEILING)))
    # newline="": line breaks inside quoted fields stay part of the field, as the csv module requires.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, [])
        if not header:
            raise InputError(f"{path} has no header row")
        _check_header(path, header)
        rows = []
        for fields in reader:
            if not _is_blank(fields, header):
                _check_width(path, header, fields, reader.line_num, delimiter)
                rows.append(dict(zip(header, fields)))
    except csv.Error as error:
        raise InputError(f"{path}, line {reader.line_num}: cannot read this CSV ({error})") from None
    if not rows:
        raise InputError(f"{path} has a header but no data rows")
    return header, rows


def _check_header(path: Path, header: list[str]) -> None:
    """Each column named once: with a repeated name, every row would keep only the last such column."""
    first: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in first:
            raise InputError(f"{path}: the header names column {name!r} twice (columns {first[name]} and "
                             f"{position}); rename one of them")
        first[name] = position


def _is_blank(fields: list[str], header: list[str]) -> bool:
    """An empty line, or a short one with nothing but spaces in it: a gap between rows, not a row."""
    return len(fields) < len(header) and not any(field.strip() for field in fields)


def _check_width(path: Path, header: list[str], fields: list[str], line: int, delimiter: str) -> None:
    """One field per column; otherwise an error that says how to repair the row."""
    if len(fields) > len(header):
        example = ', e.g. "slow, but good"' if delimiter == "," else ""
        shown = "a tab" if delimiter == "\t" else repr(delimiter)
        raise InputError(f"{path}, line {line}: {len(fields)} fields but the header has {len(header)} columns; "
                         f"a field that holds {shown} must be in double quotes{example}")
    if len(fields) < len(header):
        raise InputError(f"{path}, line {line}: {len(fields)} fields but the header has {len(header)} columns; "
                         f"give every row all {len(header)}, leaving a missing value empty (e.g. 1,,3)")


def require_columns(path: str | Path, columns: list[str], wanted: dict[str, str]) -> None:
    """``wanted`` maps option names (``--text-column``) to column names that must exist."""
    for option, column in wanted.items():
        if column not in columns:
            raise InputError(f"{path} has no column {column!r} ({option}); available columns: {', '.join(columns)}")
