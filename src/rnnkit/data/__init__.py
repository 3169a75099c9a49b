"""Data plumbing: batching for truncated BPTT, vocabularies, windows and pairs."""

from rnnkit.data.streams import StreamBatches

__all__ = ["StreamBatches"]
