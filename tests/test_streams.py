"""StreamBatches: contiguous lanes for truncated BPTT."""

import pytest
import torch

from rnnkit.data import StreamBatches
from rnnkit.models import IGNORE_INDEX


def pairs_of(batches):
    """Every (lane, input, target) pair the batches hold, in lane order."""
    lanes = {}
    for batch in batches:
        for row in range(batch["inputs"].shape[0]):
            valid = batch["targets"][row] != IGNORE_INDEX
            lanes.setdefault(row, []).extend(
                zip(batch["inputs"][row][valid].tolist(), batch["targets"][row][valid].tolist()))
    return lanes


def test_lanes_are_contiguous_and_cover_the_text():
    text = torch.arange(1, 102)  # 100 next-token pairs
    batches = StreamBatches(text, batch_size=4, chunk_length=6)
    lanes = pairs_of(batches)
    assert len(batches) == 5  # 25 pairs per lane: 4 full chunks of 6 and one of 1
    for row, pairs in lanes.items():
        assert pairs == [(t, t + 1) for t in range(1 + 25 * row, 26 + 25 * row)]
    last = list(batches)[-1]
    assert last["lengths"].tolist() == [1, 1, 1, 1]
    assert not last["reset"].any() and list(batches)[0]["reset"].all()


def test_documents_are_never_crossed_and_reset_the_lane():
    first, second = torch.arange(0, 10), torch.arange(100, 110)
    batches = list(StreamBatches([first, second], batch_size=1, chunk_length=4))
    pairs = pairs_of(batches)[0]
    assert (9, 100) not in pairs and len(pairs) == 18
    assert [bool(b["reset"][0]) for b in batches] == [True, False, False, True, False, False]
    assert batches[2]["lengths"].tolist() == [1]
    assert batches[2]["targets"][0].tolist() == [9, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]


def test_shards_partition_the_lanes():
    batches = StreamBatches(torch.arange(200), batch_size=4, chunk_length=5)
    shards = [batches.shard(rank, 2) for rank in range(2)]
    for full, zero, one in zip(batches, *shards):
        assert torch.equal(full["inputs"][0::2], zero["inputs"]) and torch.equal(full["inputs"][1::2], one["inputs"])
    with pytest.raises(ValueError, match="not divisible"):
        batches.shard(0, 3)


def test_bad_input_is_named():
    with pytest.raises(TypeError, match=r"documents\[0\] must be a 1-D integer tensor"):
        StreamBatches(torch.randn(10), 2, 3)
    with pytest.raises(ValueError, match="smaller batch_size"):
        StreamBatches(torch.arange(3), 8, 3)
