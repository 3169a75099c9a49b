"""Token-by-token generation speed: rnnkit's sampling loop against the bare per-token work (the floor).

The floor is what one generated token cannot avoid: the embedding row, torch's fused cell kernel for
one step per layer (``torch.lstm_cell`` / ``gru_cell`` / ``rnn_tanh_cell``), the output layer and the
draw (softmax, multinomial), in a loop with no checks. rnnkit's numbers are ``rnnkit.sampling.stream``
over a ``SequenceTagger`` language model, with the single-step path (``fast=True``, the default) and
through the model's general ``step`` (``fast=False``), for one stream and for a batch of streams.

    OMP_NUM_THREADS=1 python benchmarks/bench_step.py                 # LSTM(512), textgen's default
    python benchmarks/bench_step.py --cell gru --batch 8 --tokens 500
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from rnnkit.models import SequenceTagger
from rnnkit.sampling import stream

KERNELS = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}


def floor(model: SequenceTagger, batch: int, tokens: int, seed: int) -> float:
    """Tokens per second (per stream) of the bare loop: embedding, the cell kernels, head, draw."""
    config, layer = model.config, model.encoder.rnn
    kernel = KERNELS[config.cell]
    weights = [[getattr(layer, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
               for k in range(config.num_layers)]
    embedding, head_w, head_b = model.encoder.embedding.weight, model.head.weight, model.head.bias
    generator = torch.Generator().manual_seed(seed)
    hidden = config.hidden_size
    state = [[torch.zeros(batch, hidden) for _ in range(2 if config.cell == "lstm" else 1)]
             for _ in range(config.num_layers)]
    token = torch.zeros(batch, dtype=torch.int64)
    with torch.no_grad():
        started = time.perf_counter()
        for _ in range(tokens):
            x = embedding[token]
            for k, w in enumerate(weights):
                if config.cell == "lstm":
                    state[k] = list(kernel(x, tuple(state[k]), *w))
                else:
                    state[k] = [kernel(x, state[k][0], *w)]
                x = state[k][0]
            probs = F.softmax(F.linear(x, head_w, head_b) / 0.8, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return tokens / (time.perf_counter() - started)


def ours(model: SequenceTagger, batch: int, tokens: int, seed: int, fast: bool) -> float:
    prefix = torch.zeros(batch, 1, dtype=torch.int64)
    tokens_stream = stream(model, prefix, max_new_tokens=tokens + 1, temperature=0.8, seed=seed, fast=fast)
    next(tokens_stream)  # the prime
    started = time.perf_counter()
    for _ in tokens_stream:
        pass
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", default="lstm", choices=sorted(KERNELS))
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--vocab", type=int, default=84, help="vocabulary size (84: Shakespeare's characters)")
    parser.add_argument("--embedding", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="streams sampled together")
    parser.add_argument("--repeats", type=int, default=10, help="best of this many interleaved runs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SequenceTagger(vocab_size=args.vocab, output_size=0, hidden_size=args.hidden, num_layers=args.layers,
                           embedding_dim=args.embedding, cell=args.cell).eval()
    print(f"{args.cell.upper()}({args.hidden}) x {args.layers}, vocabulary {args.vocab}, {args.tokens} tokens, "
          f"{args.threads} thread(s), best of {args.repeats}; tokens/s per stream")
    print(f"{'batch':>5} {'floor':>9} {'rnnkit fast':>12} {'ratio':>6} {'rnnkit step':>12} {'ratio':>6}")
    methods = (floor, lambda *a: ours(*a, fast=True), lambda *a: ours(*a, fast=False))
    for batch in args.batch:
        # Interleaved (floor, fast, step, floor, ...) so that a busy spell on a shared CPU hits all three alike;
        # the best of each is the least disturbed.
        best = [0.0] * len(methods)
        for seed in range(args.repeats):
            for k, method in enumerate(methods):
                best[k] = max(best[k], method(model, batch, args.tokens, seed))
        print(f"{batch:>5} {best[0]:>9,.0f} {best[1]:>12,.0f} {best[1] / best[0]:>6.2f} {best[2]:>12,.0f} "
              f"{best[2] / best[0]:>6.2f}")


if __name__ == "__main__":
    main()
