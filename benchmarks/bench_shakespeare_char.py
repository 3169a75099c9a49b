"""Character-level Shakespeare on nanoGPT's split, on a time budget: validation loss in nats per char.

Anchors (../shared/ANCHORS.md): nanoGPT's CPU baseline reaches 1.88 validation loss in about 3 minutes
(a 4-layer transformer, block size 64, on a laptop); minGRU reports about 1.55. This script trains
rnnkit recurrent language models for the same wall-clock budget on this machine and prints their
validation loss, measured over the whole validation split by streaming it with the state carried.

The text is ``rnnkit.datasets.text.shakespeare_char()``: nanoGPT's exact split sizes (1,003,854 /
111,540 characters) built from the Project Gutenberg plays tiny-shakespeare is drawn from, because the
tiny-shakespeare file itself is not available offline (see that function's docstring).

    python benchmarks/bench_shakespeare_char.py [--minutes 3] [--models gru:512 lstm:512] [--ema-decay 0.99]
"""

from __future__ import annotations

import argparse
import time

import torch

from rnnkit.data import StreamBatches
from rnnkit.data.vocab import Vocabulary
from rnnkit.datasets.text import shakespeare_char
from rnnkit.models import SequenceTagger
from rnnkit.train import TrainConfig, Trainer


def run(cell: str, hidden: int, layers: int, minutes: float, batch: int, chunk: int, lr: float,
        train_ids: torch.Tensor, val_ids: torch.Tensor, vocab_size: int, ema_decay: float | None = None) -> dict:
    torch.manual_seed(0)
    model = SequenceTagger(vocab_size=vocab_size, output_size=0, cell=cell, hidden_size=hidden, num_layers=layers,
                           embedding_dim=64)
    train = StreamBatches(train_ids, batch, chunk)
    val = StreamBatches(val_ids, 16, chunk)
    config = TrainConfig(max_steps=100_000, max_minutes=minutes, lr=lr, schedule="constant", clip_norm=1.0,
                         eval_every=10**9, checkpoint_every=10**9, log_every=200, ema_decay=ema_decay)
    trainer = Trainer(model, train, config=config, progress=True)
    started = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - started
    val_loss = Trainer(trainer.evaluation_model, [], config=TrainConfig(), progress=False).evaluate(val)["val_loss"]
    averaged = f", weights averaged ({ema_decay:g})" if ema_decay else ""
    return {"model": f"{cell.upper()}({hidden}) x {layers}{averaged}", "params": sum(p.numel() for p in model.parameters()),
            "steps": trainer.step, "seconds": seconds, "val": val_loss,
            "chars": trainer.step * batch * chunk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="training time per model")
    parser.add_argument("--models", nargs="+", default=["gru:512"], help="cell:hidden[:layers] entries")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="evaluate a moving average of the weights (TrainConfig.ema_decay)")
    args = parser.parse_args()
    split = shakespeare_char()
    vocab = Vocabulary.build([split.train], level="char")
    train_ids = torch.tensor(vocab.encode(split.train))
    val_ids = torch.tensor(vocab.encode(split.test))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(split.train):,} train / "
          f"{len(split.test):,} validation chars, vocabulary {len(vocab)}; {args.minutes:g} min per model, "
          f"batch {args.batch} x {args.chunk} chars, Adam lr {args.lr:g}")
    rows = []
    for entry in args.models:
        cell, hidden, *rest = entry.split(":")
        rows.append(run(cell, int(hidden), int(rest[0]) if rest else 1, args.minutes, args.batch, args.chunk, args.lr,
                        train_ids, val_ids, len(vocab), args.ema_decay))
    print("\n| model | parameters | steps | chars seen | minutes | val nats/char | vs nanoGPT CPU 1.88 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {r['steps']:,} | {r['chars'] / 1e6:.1f} M | {r['seconds'] / 60:.1f} | "
              f"{r['val']:.3f} | {'better' if r['val'] < 1.88 else 'worse'} ({r['val'] - 1.88:+.3f}) |")


if __name__ == "__main__":
    main()
