"""``rnnkit datasets``: list the built-in data sets (source, size, licence, installed or how to install),
or show the start of one (the applications' data sets read only what is shown: no synthesis, no full
corpus parse)."""

from __future__ import annotations

import argparse
import json
import textwrap

from rnnkit.errors import InputError

EXAMPLES = """\
examples:
  rnnkit datasets                      # every data set: kind, size, licence, source, installed?
  rnnkit datasets --kind series        # only the time series
  rnnkit datasets --json               # the same as JSON, for scripts
  rnnkit datasets --kind speech        # the applications' data: images, speech, music, nucleotides
  rnnkit datasets show shakespeare -n 5  # the first 5 lines of the first work
  rnnkit datasets show emoji           # how many emoji, the first 10 with their captions
  rnnkit datasets show tidigits -n 3   # the first 3 utterances: frames and transcripts
  rnnkit datasets show bach_chorales -n 2  # the first 2 chorales parsed: notes, parts, length
"""


def _add_list_options(parser: argparse.ArgumentParser) -> None:
    from rnnkit.datasets import KINDS

    parser.add_argument("--kind", choices=KINDS, help="only data sets of this kind")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "datasets", help="list the built-in offline data sets", epilog=EXAMPLES,
        description="List the built-in data sets with source, size and licence, and whether each is "
                    "installed here (if not, how to install it). Nothing is downloaded at run time.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_list_options(parser)
    parser.set_defaults(func=run_list)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    listing = verbs.add_parser("list", help="list the data sets (the default)", epilog=EXAMPLES,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_list_options(listing)
    listing.set_defaults(func=run_list)
    show = verbs.add_parser("show", help="print the first lines or rows of one data set", epilog=EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("name", help="a data set name from `rnnkit datasets`")
    show.add_argument("-n", "--lines", type=int, default=10,
                      help="how many lines, rows, pairs, images, utterances, pieces or records (default: 10)")
    show.set_defaults(func=run_show)


def _rows(kind: str | None) -> list[dict]:
    from rnnkit.datasets import available, list_datasets

    rows = []
    for info in list_datasets(kind):
        ok, why = available(info.name)
        rows.append({"name": info.name, "kind": info.kind, "size": info.size, "licence": info.licence,
                     "source": info.source, "description": info.description, "requires": info.requires,
                     "available": ok, "install": "" if ok else why})
    return rows


def run_list(args: argparse.Namespace) -> int:
    rows = _rows(args.kind)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = ("name", "kind", "size", "licence", "source", "available")
    cells = [[str(row[c]) if c != "available" else ("yes" if row[c] else "no: " + row["requires"])
              for c in columns] for row in rows]
    widths = [min(max(len(c), *(len(r[i]) for r in cells)), 44) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        print("  ".join(textwrap.shorten(v, w, placeholder="…").ljust(w) for v, w in zip(row, widths)).rstrip())
    for message in dict.fromkeys(row["install"] for row in rows if not row["available"]):
        print(f"\n{message}")
    return 0


def _preview(kind: str, data, lines: int) -> list[str]:
    if kind == "text":
        first = data[0]
        return [f"{len(data)} documents, {sum(map(len, data)):,} characters; the first begins:",
                *first.splitlines()[:lines]]
    if kind == "classification":
        return [f"train {len(data.train):,}, test {len(data.test):,} (label, text):",
                *(f"{label}\t{textwrap.shorten(text, 100)}" for text, label in data.train[:lines])]
    if kind == "series":
        return [f"{len(data):,} rows x {data.shape[1]} columns:", *data.head(lines).to_string().splitlines()]
    return [f"{len(data):,} pairs (source => target):", *(f"{s} => {t}" for s, t in data[:lines])]


def _head_lines(head, width: int = 100) -> list[str]:
    """A :class:`~rnnkit.datasets.appdata.Head` as aligned columns; the last one (text, sequence) cut at
    ``width`` characters."""
    cells = [[str(v) for v in row] for row in head.rows]
    for row in cells:
        row[-1] = row[-1] if len(row[-1]) <= width else row[-1][:width - 1] + "…"
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(head.columns[:-1])]
    return [head.summary, *("  ".join([*(v.ljust(w) for v, w in zip(r, widths)), r[-1]])
                            for r in [list(head.columns), *cells])]


def run_show(args: argparse.Namespace) -> int:
    from rnnkit.datasets import info, load

    if args.lines < 0:
        raise InputError(f"--lines must be >= 0, got {args.lines}")
    dataset = info(args.name)
    if dataset.head is not None:  # reads only what is shown
        lines = _head_lines(dataset.head(args.lines))
    else:
        data = load(args.name)
        if dataset.name == "shakespeare_char":
            data = list(data)  # (train, test) shown as two documents
        lines = _preview(dataset.kind, data, args.lines)
    print(f"{dataset.name} ({dataset.kind}): {dataset.description}")
    print(f"source: {dataset.source}; licence: {dataset.licence}")
    print("\n".join(lines))
    return 0
