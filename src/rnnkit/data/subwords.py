"""Character n-grams of words, hashed into buckets: fastText's subword information (Bojanowski et al. 2017).

A word is wrapped in boundary marks, ``<where>``, and cut into its character n-grams of 3 to 6 characters
(``<wh``, ``whe``, ..., ``ere>``, ``<whe``, ...); each n-gram is hashed (CRC-32 of its UTF-8 bytes, the same
on every machine and every run) into one of ``buckets`` ids. A model adds the mean of those ids' vectors to
the word's own embedding, so a word it never saw in training, or saw twice, still carries its spelling:
``ineffective`` shares ``effect``'s n-grams, a misspelt drug name most of its correct one's.

Id 0 is padding (no n-gram), so bucket ids run from 1 to ``buckets``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
from torch import Tensor

SMALLEST, LARGEST = 3, 6
#: n-grams kept per word, the shortest first: enough for a 20-character word, a bound for pathological tokens.
MOST_PER_WORD = 64


def char_ngrams(word: str, smallest: int = SMALLEST, largest: int = LARGEST) -> list[str]:
    """The distinct character n-grams of ``<word>``, shorter before longer, each size left to right.

    >>> char_ngrams("where", 3, 3)
    ['<wh', 'whe', 'her', 'ere', 're>']
    """
    if not isinstance(word, str) or not word:
        raise ValueError(f"word must be a non-empty str, got {word!r}")
    marked = f"<{word}>"
    grams: dict[str, None] = {}
    for size in range(smallest, largest + 1):
        for start in range(len(marked) - size + 1):
            grams[marked[start:start + size]] = None
    return list(grams)[:MOST_PER_WORD]


def subword_ids(word: str, buckets: int) -> list[int]:
    """The bucket ids (1..``buckets``) of ``word``'s character n-grams; a word too short for any n-gram
    (a single character has ``<a>``, three characters) still has at least one."""
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise ValueError(f"buckets must be a positive integer, got {buckets!r}")
    return [1 + zlib.crc32(gram.encode("utf-8")) % buckets for gram in char_ngrams(word)]


class SubwordEncoder:
    """``words -> bucket ids`` with a cache: a corpus repeats its words, hashing each once is enough."""

    def __init__(self, buckets: int) -> None:
        subword_ids("a", buckets)  # validates buckets
        self.buckets = buckets
        self._cache: dict[str, list[int]] = {}

    def __call__(self, words: Sequence[str]) -> list[list[int]]:
        out = []
        for word in words:
            ids = self._cache.get(word)
            if ids is None:
                ids = self._cache[word] = subword_ids(word, self.buckets)
            out.append(ids)
        return out


def pad_subwords(texts: Sequence[Sequence[Sequence[int]]], steps: int | None = None) -> Tensor:
    """Bucket ids of a batch of texts (a list of n-gram id lists per word) as a ``(batch, steps, grams)``
    LongTensor, 0 where a text or a word is shorter; ``steps`` defaults to the longest text.

    >>> pad_subwords([[[5, 6], [7]], [[8]]]).tolist()
    [[[5, 6], [7, 0]], [[8, 0], [0, 0]]]
    """
    if not texts:
        raise ValueError("pad_subwords needs at least one text, got none")
    steps = max(1, max(len(words) for words in texts)) if steps is None else steps
    grams = max(1, max((len(ids) for words in texts for ids in words), default=1))
    out = torch.zeros(len(texts), steps, grams, dtype=torch.int64)
    for row, words in enumerate(texts):
        for step, ids in enumerate(words[:steps]):
            out[row, step, : len(ids)] = torch.as_tensor(ids, dtype=torch.int64)
    return out
