"""bfloat16 autocast on CPU: speed and accuracy effect on a character language model.

Trains the same byte-level LM (embedding -> GRU or LSTM -> linear) from the same seed twice, in
float32 and under ``TrainConfig(bf16=True)``, on Python standard-library source (always present),
and prints time per step, the ratio, and validation loss in nats per character.

    python benchmarks/bench_bf16.py [--steps 150] [--hidden 256] [--cells gru lstm]
"""

from __future__ import annotations

import argparse
import sysconfig
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import rnnkit as rk
from rnnkit.data import StreamBatches
from rnnkit.models import IGNORE_INDEX, ModelOutput
from rnnkit.train import TrainConfig, Trainer


class ByteLM(nn.Module):
    def __init__(self, cell: str, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, 64)
        self.rnn = {"gru": rk.GRU, "lstm": rk.LSTM}[cell](64, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 256)

    def forward(self, inputs, targets=None, *, lengths=None, state=None):
        output, state = self.rnn(self.embed(inputs), state, lengths=lengths)
        logits = self.head(output)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                                            ignore_index=IGNORE_INDEX)
        return ModelOutput(logits, loss, state)


def corpus(limit: int = 1_200_000) -> torch.Tensor:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = b"".join(p.read_bytes() for p in sorted(stdlib.glob("*.py")))[:limit]
    return torch.tensor(list(text), dtype=torch.int64)


def run(cell: str, hidden: int, steps: int, bf16: bool, tokens: torch.Tensor) -> tuple[float, float]:
    split = int(len(tokens) * 0.9)
    train = StreamBatches(tokens[:split], batch_size=32, chunk_length=64)
    val = StreamBatches(tokens[split:], batch_size=16, chunk_length=64)
    torch.manual_seed(0)
    model = ByteLM(cell, hidden)
    config = TrainConfig(max_steps=steps, lr=3e-3, bf16=bf16, eval_every=10**9, seed=0)
    trainer = Trainer(model, train, config=config, val_data=val, progress=False)
    trainer.fit()
    seconds = sorted(r["seconds"] for r in trainer.history if "seconds" in r)
    per_step = sum(seconds[: len(seconds) // 2]) / (len(seconds) // 2)  # faster half: less noise
    config32 = TrainConfig(max_steps=1, bf16=False)
    val_loss = Trainer(model, train, config=config32, val_data=val, progress=False).evaluate()["val_loss"]
    return per_step, val_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--cells", nargs="+", default=["gru", "lstm"])
    args = parser.parse_args()
    tokens = corpus()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps, batch 32 x 64 bytes, "
          f"hidden {args.hidden}")
    print("| cell | float32 ms/step | bf16 ms/step | speed-up | float32 val nats/char | bf16 val nats/char |")
    print("|---|---|---|---|---|---|")
    for cell in args.cells:
        t32, l32 = run(cell, args.hidden, args.steps, False, tokens)
        t16, l16 = run(cell, args.hidden, args.steps, True, tokens)
        print(f"| {cell} | {t32 * 1e3:.1f} | {t16 * 1e3:.1f} | {t32 / t16:.2f}x | {l32:.3f} | {l16:.3f} |", flush=True)


if __name__ == "__main__":
    main()
