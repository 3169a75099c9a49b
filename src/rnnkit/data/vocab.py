"""Vocabularies for character- and word-level models: token <-> id with fixed special tokens.

Ids ``0..3`` are always the special tokens ``PAD`` (padding, ignored by losses), ``UNK`` (anything
not in the vocabulary), ``BOS`` (beginning of sequence, the first decoder input) and ``EOS`` (end of
sequence, where generation stops). Regular tokens follow, most frequent first (ties in code-point
order, so the same texts always give the same ids whatever their order).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIALS = (PAD, UNK, BOS, EOS)
LEVELS = ("char", "word")
_FORMAT = "rnnkit-vocabulary"


class Vocabulary:
    """A token <-> id mapping with ``PAD=0, UNK=1, BOS=2, EOS=3`` and character or word tokenisation.

    ``level="char"`` makes every character a token (``decode`` joins them with nothing);
    ``level="word"`` splits on whitespace (``decode`` joins with single spaces, so
    ``decode(encode(text)) == " ".join(text.split())`` when every word is known).

    Args:
        tokens: the regular tokens, in id order (ids start at 4). Must be unique and not special.
        level: ``'char'`` or ``'word'``. Keyword only.

    >>> vocab = Vocabulary.build(["hello", "help"], level="char")
    >>> vocab.tokens[4:]  # 'l' is the most frequent; ties in code-point order
    ['l', 'e', 'h', 'o', 'p']
    >>> vocab.encode("hop!", add_bos=True, add_eos=True)
    [2, 6, 7, 8, 1, 3]
    >>> vocab.decode([2, 6, 7, 1, 3, 4])
    'ho<unk>'
    """

    def __init__(self, tokens: Iterable[str] = (), *, level: str = "char") -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; expected one of 'char', 'word'")
        self.level = level
        self._tokens: list[str] = list(SPECIALS)
        self._ids: dict[str, int] = {token: index for index, token in enumerate(SPECIALS)}
        for token in tokens:
            if not isinstance(token, str) or not token:
                raise ValueError(f"tokens must be non-empty strings, got {token!r}")
            if token in self._ids:
                what = "a special token" if token in SPECIALS else "a duplicate"
                raise ValueError(f"token {token!r} is {what}; regular tokens must be unique and not special")
            if level == "char" and len(token) != 1:
                raise ValueError(f"a level='char' vocabulary holds single characters, got {token!r}; use level='word'")
            self._ids[token] = len(self._tokens)
            self._tokens.append(token)

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        *,
        level: str = "char",
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Count the tokens of ``texts`` and keep the frequent ones.

        Args:
            texts: the training texts.
            level: ``'char'`` or ``'word'``.
            min_freq: keep tokens seen at least this often. Default: 1.
            max_size: keep at most this many regular tokens (the 4 special tokens are not counted),
                the most frequent first. Default: no limit.

        >>> Vocabulary.build(["a b a c a b"], level="word", min_freq=2).tokens
        ['<pad>', '<unk>', '<bos>', '<eos>', 'a', 'b']
        """
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; expected one of 'char', 'word'")
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an integer >= 1, got {min_freq!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0):
            raise ValueError(f"max_size must be None or an integer >= 0, got {max_size!r}")
        if isinstance(texts, str):
            raise TypeError("texts must be an iterable of strings, got a single str; wrap it in a list: [text]")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokenize(text, level))
        kept = sorted((t for t, n in counts.items() if n >= min_freq and t not in SPECIALS), key=lambda t: (-counts[t], t))
        return cls(kept if max_size is None else kept[:max_size], level=level)

    @property
    def tokens(self) -> list[str]:
        """Every token, in id order (a copy)."""
        return list(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and (self.level, self._tokens) == (other.level, other._tokens)

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, level={self.level!r})"

    def token_to_id(self, token: str) -> int:
        """The id of ``token``, ``UNK_ID`` when unknown."""
        return self._ids.get(token, UNK_ID)

    def id_to_token(self, index: int) -> str:
        """The token with id ``index``."""
        if not 0 <= int(index) < len(self._tokens):
            raise IndexError(f"token id {int(index)} is out of range for a vocabulary of {len(self)} tokens")
        return self._tokens[int(index)]

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into this vocabulary's tokens (characters, or whitespace-separated words)."""
        return tokenize(text, self.level)

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids of ``text``; unknown tokens map to ``UNK_ID``."""
        ids = [self.token_to_id(token) for token in self.tokenize(text)]
        return [BOS_ID] * add_bos + ids + [EOS_ID] * add_eos

    def decode(self, ids: Iterable[int], *, skip_special: bool = True, stop_at_eos: bool = True) -> str:
        """Text of ``ids`` (a list or 1-D tensor).

        Args:
            ids: token ids.
            skip_special: drop ``PAD``, ``BOS`` and ``EOS`` (``UNK`` is kept, shown as ``<unk>``).
            stop_at_eos: ignore everything after the first ``EOS``.
        """
        pieces = []
        for index in (ids.tolist() if hasattr(ids, "tolist") else ids):
            if stop_at_eos and index == EOS_ID:
                break
            if skip_special and index in (PAD_ID, BOS_ID, EOS_ID):
                continue
            pieces.append(self.id_to_token(index))
        return ("" if self.level == "char" else " ").join(pieces)

    def to_json(self) -> str:
        """The vocabulary as a JSON string (format tag, level and the tokens in id order)."""
        return json.dumps({"format": _FORMAT, "level": self.level, "tokens": self._tokens}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        """Rebuild a vocabulary from :meth:`to_json`'s output; rejects anything else with a clear error."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"vocabulary JSON is not valid JSON: {error}") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not an rnnkit vocabulary: expected a JSON object with \"format\": \"{_FORMAT}\"")
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocabulary tokens must be a list starting with the special tokens {list(SPECIALS)}")
        return cls(tokens[len(SPECIALS):], level=data.get("level"))

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path`` (UTF-8)."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`; errors name the file."""
        path = Path(path)
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"vocabulary file {str(path)!r} does not exist") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"cannot read vocabulary {str(path)!r}: {error}") from None


def tokenize(text: str, level: str) -> list[str]:
    """Characters of ``text`` (``level='char'``) or its whitespace-separated words (``'word'``)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return list(text) if level == "char" else text.split()


def pad_batch(sequences: Sequence[Sequence[int]], pad_value: int = PAD_ID):
    """Pad lists of ids into a ``(batch, max_len)`` LongTensor and return it with the lengths.

    >>> ids, lengths = pad_batch([[5, 6, 7], [8]])
    >>> ids.tolist(), lengths.tolist()
    ([[5, 6, 7], [8, 0, 0]], [3, 1])
    """
    import torch

    if not sequences:
        raise ValueError("pad_batch needs at least one sequence, got none")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    out = torch.full((len(sequences), max(1, int(lengths.max()))), pad_value, dtype=torch.int64)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.int64)
    return out, lengths
