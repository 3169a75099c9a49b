"""Contiguous token streams for truncated backpropagation through time (char-rnn's batching).

A long text cannot be one training sequence, and cutting it into independent windows throws away
everything the model could carry from one window to the next. Instead the token stream is split into
``batch_size`` contiguous lanes; batch ``i`` holds the ``i``-th chunk of every lane, so chunk ``i + 1``
of a lane continues exactly where chunk ``i`` stopped and the trainer can carry the recurrent state
across batches (detaching it at each chunk boundary: truncated BPTT with k1 = k2 = ``chunk_length``).

Documents are never glued together: a chunk never crosses a document boundary. The last chunk of a
document is shorter (``lengths`` says by how much; its missing targets are ``IGNORE_INDEX``) and the
next chunk of that lane has ``reset`` set, telling the trainer to start from a zero state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from rnnkit.types import IGNORE_INDEX


def _as_documents(tokens: Tensor | Sequence[Tensor]) -> list[Tensor]:
    documents = [tokens] if isinstance(tokens, Tensor) else list(tokens)
    for index, document in enumerate(documents):
        if not isinstance(document, Tensor) or document.dim() != 1 or document.is_floating_point():
            raise TypeError(
                f"documents[{index}] must be a 1-D integer tensor of token ids, got "
                f"{type(document).__name__}{tuple(document.shape) if isinstance(document, Tensor) else ''}"
            )
    return documents


class StreamBatches:
    """Batches of consecutive chunks from ``batch_size`` contiguous lanes of one or more documents.

    The documents are laid end to end and cut into ``batch_size`` lanes of equal token count; inside a
    lane, each document piece yields next-token pairs ``(tokens[t], tokens[t + 1])`` in chunks of
    ``chunk_length``. An epoch ends when the shortest lane runs out (at most a few chunks of the longer
    lanes are left over, as in char-rnn).

    Each batch is a dict:
        ``inputs`` ``(batch, chunk_length)`` int64 token ids (0 past a chunk's length);
        ``targets`` the next tokens, ``IGNORE_INDEX`` past a chunk's length;
        ``reset`` ``(batch,)`` bool, true where the lane starts a new document (zero the state);
        ``lengths`` ``(batch,)`` int64, only present when some chunk in the batch is shorter.

    Args:
        documents: one 1-D int tensor of token ids, or a sequence of them (one per document).
        batch_size: number of lanes (the global batch; under ``shard`` each process takes a share).
        chunk_length: time steps per chunk, the truncated-BPTT length.

    >>> batches = StreamBatches(torch.arange(9), batch_size=2, chunk_length=2)
    >>> [b["inputs"].tolist() for b in batches]
    [[[0, 1], [4, 5]], [[2, 3], [6, 7]]]
    >>> next(iter(batches))["targets"].tolist()
    [[1, 2], [5, 6]]
    """

    def __init__(self, documents: Tensor | Sequence[Tensor], batch_size: int, chunk_length: int) -> None:
        if batch_size < 1 or chunk_length < 1:
            raise ValueError(f"batch_size and chunk_length must be >= 1, got {batch_size} and {chunk_length}")
        documents = _as_documents(documents)
        # Work in next-token pairs: a document of n tokens gives n - 1 (input, target) pairs.
        pairs = [(d[:-1], d[1:]) for d in documents if len(d) > 1]
        total = sum(len(x) for x, _ in pairs)
        per_lane = total // batch_size
        if per_lane < 1:
            raise ValueError(
                f"{total} next-token pairs cannot fill {batch_size} lanes; "
                f"use a smaller batch_size (at most {max(total, 1)}) or more text"
            )
        self.batch_size, self.chunk_length = batch_size, chunk_length
        self._chunks = [self._chunk_lane(lane) for lane in self._cut_lanes(pairs, batch_size, per_lane)]
        self._steps = min(len(chunks) for chunks in self._chunks)
        self._rows = list(range(batch_size))

    @staticmethod
    def _cut_lanes(pairs: list[tuple[Tensor, Tensor]], lanes: int, per_lane: int) -> list[list[tuple]]:
        """Split the documents' pairs into ``lanes`` runs of ``per_lane`` pairs, keeping boundaries."""
        result: list[list[tuple]] = [[] for _ in range(lanes)]
        lane, room = 0, per_lane
        for inputs, targets in pairs:
            start = 0
            while start < len(inputs) and lane < lanes:
                stop = start + min(room, len(inputs) - start)
                result[lane].append((inputs[start:stop], targets[start:stop]))
                room -= stop - start
                start = stop
                if room == 0:
                    lane, room = lane + 1, per_lane
        return result

    def _chunk_lane(self, pieces: list[tuple[Tensor, Tensor]]) -> list[tuple[Tensor, Tensor, bool]]:
        """A lane's chunks; the first chunk of each piece (a new document, or the lane's start) resets."""
        chunks = []
        for inputs, targets in pieces:
            for start in range(0, len(inputs), self.chunk_length):
                stop = start + self.chunk_length
                chunks.append((inputs[start:stop], targets[start:stop], start == 0))
        return chunks

    def shard(self, rank: int, world_size: int) -> StreamBatches:
        """This process's lanes (``rank``, ``rank + world_size``, ...) for distributed data parallel."""
        if self.batch_size % world_size:
            raise ValueError(
                f"batch_size {self.batch_size} is not divisible by the {world_size} processes; "
                f"choose a multiple of {world_size}"
            )
        shard = object.__new__(StreamBatches)
        shard.__dict__.update(self.__dict__)
        shard._rows = self._rows[rank::world_size]
        shard.batch_size = len(shard._rows)
        return shard

    def __len__(self) -> int:
        return self._steps

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        for step in range(self._steps):
            yield self._batch([self._chunks[row][step] for row in self._rows])

    def _batch(self, chunks: list[tuple[Tensor, Tensor, bool]]) -> dict[str, Tensor]:
        size = (len(chunks), self.chunk_length)
        inputs = torch.zeros(size, dtype=torch.int64)
        targets = torch.full(size, IGNORE_INDEX, dtype=torch.int64)
        lengths = torch.tensor([len(x) for x, _, _ in chunks], dtype=torch.int64)
        for row, (x, y, _) in enumerate(chunks):
            inputs[row, :len(x)] = x
            targets[row, :len(y)] = y
        batch = {
            "inputs": inputs,
            "targets": targets,
            "reset": torch.tensor([first for _, _, first in chunks]),
        }
        if bool((lengths < self.chunk_length).any()):
            batch["lengths"] = lengths
        return batch
