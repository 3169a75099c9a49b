"""Data plumbing: batching for truncated BPTT, vocabularies, windows and pairs."""

from rnnkit.data.streams import StreamBatches
from rnnkit.data.vocab import BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, UNK, UNK_ID, Vocabulary, pad_batch

__all__ = ["StreamBatches", "Vocabulary", "pad_batch", "PAD", "UNK", "BOS", "EOS", "PAD_ID", "UNK_ID", "BOS_ID", "EOS_ID"]
