"""Small models and a training script shared by the trainer tests (and run as a subprocess by them)."""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

import rnnkit as rk
from rnnkit.data import StreamBatches
from rnnkit.models import IGNORE_INDEX, ModelOutput
from rnnkit.train import TrainConfig, Trainer

class TinyLM(nn.Module):
    """Embedding -> recurrent layer -> linear; a stateful next-token model for truncated BPTT tests."""

    def __init__(self, vocab: int = 11, hidden: int = 16, cell: str = "lstm", dropout: float = 0.0,
                 layers: int = 1) -> None:
        super().__init__()
        layer = {"lstm": rk.LSTM, "gru": rk.GRU, "rnn": rk.RNN}[cell]
        self.embed = nn.Embedding(vocab, 8)
        self.rnn = layer(8, hidden, num_layers=layers, batch_first=True, dropout=dropout)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, inputs, targets=None, *, lengths=None, state=None):
        output, state = self.rnn(self.embed(inputs), state, lengths=lengths)
        logits = self.head(output)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        return ModelOutput(logits, loss, state)

def token_stream(length: int, vocab: int = 11, seed: int = 0) -> torch.Tensor:
    """A learnable stream: mostly counting modulo ``vocab``, with random jumps."""
    generator = torch.Generator().manual_seed(seed)
    jumps = torch.randint(0, vocab, (length,), generator=generator)
    keep = torch.rand(length, generator=generator) < 0.8
    tokens = torch.zeros(length, dtype=torch.int64)
    for t in range(1, length):
        tokens[t] = (tokens[t - 1] + 1) % vocab if keep[t] else jumps[t]
    return tokens

def stream_run(out: str, *, max_steps: int, checkpoint_every: int, sleep: float = 0.0, resume: bool = False,
               cell: str = "lstm") -> Trainer:
    """Train TinyLM (with dropout, so the random state matters) on streamed text, checkpointing often."""
    torch.manual_seed(0)
    model = TinyLM(cell=cell, dropout=0.3, layers=2)
    data = StreamBatches([token_stream(1500), token_stream(700, seed=1)], batch_size=4, chunk_length=12)
    config = TrainConfig(max_steps=max_steps, checkpoint_every=checkpoint_every, eval_every=10_000, lr=1e-2,
                         schedule="cosine", warmup_steps=3, seed=3)

    if sleep:
        # Stretch each step so a test can kill the process between (or during) checkpoints.
        original = model.forward

        def slow_forward(*args, **kwargs):
            time.sleep(sleep)
            return original(*args, **kwargs)

        model.forward = slow_forward
    trainer = Trainer(model, data, config=config, run_dir=out, progress=False,
                      model_config={"cell": cell, "hidden": 16})
    trainer.fit(resume=resume)
    return trainer

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--cell", default="lstm")
    args = parser.parse_args()
    stream_run(args.out, max_steps=args.max_steps, checkpoint_every=args.checkpoint_every, sleep=args.sleep,
               resume=args.resume, cell=args.cell)
    sys.exit(0)
