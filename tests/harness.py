"""One shared harness: run an rnnkit layer and a torch.nn oracle on the same weights and compare everything."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit as rk

PAIRS = {
    "rnn_tanh": (rk.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rk.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rk.LSTM, torch.nn.LSTM, {}),
    "gru": (rk.GRU, torch.nn.GRU, {}),
}


def make_pair(kind: str, input_size: int, hidden_size: int, dtype=torch.float32, backend="auto", **kwargs):
    """An rnnkit layer and a torch.nn layer with identical weights (loaded with strict=True)."""
    ours_cls, torch_cls, extra = PAIRS[kind]
    oracle = torch_cls(input_size, hidden_size, **extra, **kwargs).to(dtype)
    ours = ours_cls(input_size, hidden_size, **extra, **kwargs, backend=backend).to(dtype)
    ours.load_state_dict(oracle.state_dict(), strict=True)
    return ours, oracle


def random_state(module, batch: int, dtype):
    layers = module.num_layers * (2 if module.bidirectional else 1)
    if not isinstance(module, (torch.nn.LSTM, rk.LSTM)):
        return (torch.randn(layers, batch, module.hidden_size, dtype=dtype),)
    h_size = getattr(module, "proj_size", 0) or module.hidden_size  # a projected LSTM's h has proj_size features
    return torch.randn(layers, batch, h_size, dtype=dtype), torch.randn(layers, batch, module.hidden_size, dtype=dtype)


def run(module, x, hx=None, *, lengths=None, mode="padded", batch_first=False, seed=1):
    """Forward ``module``, backprop a fixed random projection of all results.

    ``mode``: ``'padded'`` passes ``lengths=`` (rnnkit only), ``'packed'`` packs the input first.
    Outputs are returned padded to x's length so both modes compare the same way.
    Returns ``(results, grads)``: results = [output, h_n(, c_n)], grads over x, hx and the parameters
    sorted by name.
    """
    x = x.detach().clone().requires_grad_()
    hx_leaves = tuple(h.detach().clone().requires_grad_() for h in hx) if hx is not None else ()
    hx_arg = None if hx is None else (hx_leaves if len(hx_leaves) == 2 else hx_leaves[0])
    if mode == "packed":
        output, state = module(pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False), hx_arg)
        assert isinstance(output, PackedSequence)
        output, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0])
    elif lengths is not None:
        output, state = module(x, hx_arg, lengths=lengths)
    else:
        output, state = module(x, hx_arg)
    results = [output, *(state if isinstance(state, tuple) else (state,))]
    generator = torch.Generator().manual_seed(seed)
    loss = sum((r * torch.randn(r.shape, generator=generator, dtype=r.dtype).to(r.device)).sum() for r in results)
    params = [p for _, p in sorted(module.named_parameters())]
    grads = torch.autograd.grad(loss, [x, *hx_leaves, *params])
    return [r.detach() for r in results], list(grads)


def assert_all_close(ours, theirs, atol: float, rtol: float | None = None) -> None:
    assert len(ours) == len(theirs)
    for index, (a, b) in enumerate(zip(ours, theirs)):
        torch.testing.assert_close(a, b, atol=atol, rtol=atol if rtol is None else rtol,
                                   msg=lambda m, i=index: f"tensor #{i}: {m}")


def tolerance(dtype) -> float:
    return 1e-5 if dtype == torch.float32 else 1e-10
