"""The drop-in layers against torch.nn given the same weights: outputs, final states and all gradients."""

import itertools

import pytest
import torch
from harness import PAIRS, assert_all_close, make_pair, random_state, run, tolerance
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnkit as rk

BATCH, STEPS, INPUT, HIDDEN = 3, 6, 4, 5
LENGTHS = torch.tensor([4, 6, 1])  # unsorted, one full, one of length 1


# Every kind, backend and input mode in two layouts (one time-major layer; two batch-first bidirectional
# layers); every other mix of depth, direction and layout only with RNNKIT_SLOW=1.
QUICK_LAYOUTS = {(1, False, False), (2, True, True)}
LAYOUTS = [
    pytest.param(*layout, marks=() if layout in QUICK_LAYOUTS else pytest.mark.slow, id="-".join(map(str, layout)))
    for layout in itertools.product([1, 2, 3], [False, True], [False, True])
]


@pytest.mark.parametrize("backend", ["reference", "builtin", "engine", "auto"])
@pytest.mark.parametrize("variable", ["none", "lengths", "packed"])
@pytest.mark.parametrize("num_layers,bidirectional,batch_first", LAYOUTS)
@pytest.mark.parametrize("kind", list(PAIRS))
def test_matches_torch_nn(kind, num_layers, bidirectional, batch_first, variable, backend):
    for dtype, with_hx in itertools.product((torch.float32, torch.float64), (False, True)):
        ours, oracle = make_pair(kind, INPUT, HIDDEN, dtype, backend, num_layers=num_layers,
                                 bidirectional=bidirectional, batch_first=batch_first)
        shape = (BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT)
        x = torch.randn(shape, dtype=dtype)
        hx = random_state(oracle, BATCH, dtype) if with_hx else None
        lengths = None if variable == "none" else LENGTHS
        expected = run(oracle, x, hx, lengths=lengths, mode="packed" if lengths is not None else "padded",
                       batch_first=batch_first)
        got = run(ours, x, hx, lengths=lengths, mode=variable if variable == "packed" else "padded",
                  batch_first=batch_first)
        assert_all_close(got[0], expected[0], tolerance(dtype))
        assert_all_close(got[1], expected[1], tolerance(dtype))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", list(PAIRS))
def test_state_dict_round_trips_both_ways(kind, bias):
    ours_cls, torch_cls, extra = PAIRS[kind]
    kwargs = dict(num_layers=2, bidirectional=True, bias=bias, **extra)
    theirs = torch_cls(3, 4, **kwargs)
    ours = ours_cls(3, 4, **kwargs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    back = torch_cls(3, 4, **kwargs)
    back.load_state_dict(ours.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [[w.shape for w in group] for group in ours.all_weights] == [[w.shape for w in group] for group in theirs.all_weights]
    for name, value in theirs.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name


@pytest.mark.parametrize("backend", ["reference", "builtin"])
@pytest.mark.parametrize("kind", list(PAIRS))
def test_unbatched_input_matches_torch(kind, backend):
    ours, oracle = make_pair(kind, INPUT, HIDDEN, torch.float64, backend, num_layers=2, bidirectional=True)
    x = torch.randn(STEPS, INPUT, dtype=torch.float64)
    hx = tuple(h[:, 0] for h in random_state(oracle, 1, torch.float64))
    expected, got = oracle(x, hx if len(hx) == 2 else hx[0]), ours(x, hx if len(hx) == 2 else hx[0])
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])


@pytest.mark.parametrize("backend", ["reference", "engine", "builtin", "auto"])
@pytest.mark.parametrize("kind", list(PAIRS))
def test_packed_output_keeps_the_packing_order_of_its_input(kind, backend):
    """Lengths 2, 3, 2: torch.sort puts batch 0 before batch 2, but a packing that breaks the tie the other
    way is just as valid, and torch.nn answers in the order it was given (so ``out.data`` lines up with
    targets packed like the input)."""
    ours, oracle = make_pair(kind, INPUT, HIDDEN, torch.float64, backend)
    sequences = [torch.randn(n, INPUT, dtype=torch.float64) for n in (2, 3, 2)]
    order = torch.tensor([1, 2, 0])
    data = torch.cat([torch.stack([sequences[i][t] for i in order.tolist() if len(sequences[i]) > t])
                      for t in range(3)])
    batch_sizes = torch.nn.utils.rnn.pack_sequence(sequences, enforce_sorted=False).batch_sizes
    packed = torch.nn.utils.rnn.PackedSequence(data, batch_sizes, order, torch.argsort(order))
    (expected, expected_state), (got, got_state) = oracle(packed), ours(packed)
    assert got.sorted_indices.tolist() == [1, 2, 0]
    torch.testing.assert_close(got.data, expected.data)
    torch.testing.assert_close(got_state, expected_state)


def _merged_oracle(kind, merge, num_layers, x, lengths, ours):
    """A stack of single-layer bidirectional torch.nn layers, each output merged by hand."""
    combine = {"sum": torch.add, "mul": torch.mul, "mean": lambda a, b: (a + b) / 2}[merge]
    _, torch_cls, extra = PAIRS[kind]
    finals, inp = [], x
    for layer in range(num_layers):
        oracle = torch_cls(inp.shape[-1], HIDDEN, bidirectional=True, **extra).double()
        oracle.load_state_dict({k.replace(f"_l{layer}", "_l0"): v for k, v in ours.state_dict().items()
                                if f"_l{layer}" in k})
        packed = torch.nn.utils.rnn.pack_padded_sequence(inp, lengths, enforce_sorted=False)
        out, state = oracle(packed)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])
        forward, backward = out.chunk(2, dim=-1)
        inp = combine(forward, backward)
        finals.append(state)
    return inp, finals


@pytest.mark.parametrize("backend", ["reference", "builtin"])
@pytest.mark.parametrize("merge", ["sum", "mean", "mul"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_merge_modes_match_a_hand_merged_torch_stack(kind, merge, backend):
    ours_cls, _, extra = PAIRS[kind]
    ours = ours_cls(INPUT, HIDDEN, num_layers=2, bidirectional=True, merge=merge, backend=backend, **extra).double()
    assert ours.weight_ih_l1.shape[1] == HIDDEN  # the next layer reads the merged, not the concatenated, size
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    output, state = ours(x, lengths=LENGTHS)
    expected, finals = _merged_oracle(kind, merge, 2, x, LENGTHS, ours)
    assert output.shape == (STEPS, BATCH, HIDDEN)
    torch.testing.assert_close(output, expected)
    h_n = state[0] if isinstance(state, tuple) else state
    expected_h = torch.cat([f[0] if isinstance(f, tuple) else f for f in finals])
    torch.testing.assert_close(h_n, expected_h)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_padded_positions_are_zero_and_states_come_from_the_last_valid_step(kind):
    ours_cls, _, extra = PAIRS[kind]
    layer = ours_cls(INPUT, HIDDEN, bidirectional=True, backend="reference", **extra).double()
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    output, state = layer(x, lengths=LENGTHS)
    h_n = state[0] if isinstance(state, tuple) else state
    for b, length in enumerate(LENGTHS.tolist()):
        assert torch.all(output[length:, b] == 0)
        alone, alone_state = layer(x[:length, b : b + 1])  # the same sequence without padding
        torch.testing.assert_close(output[:length, b : b + 1], alone)
        alone_h = alone_state[0] if isinstance(alone_state, tuple) else alone_state
        torch.testing.assert_close(h_n[:, b], alone_h[:, 0])


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
def test_reference_dropout_draws_the_same_masks_as_torch(kind):
    ours, oracle = make_pair(kind, INPUT, HIDDEN, torch.float64, "reference", num_layers=3, dropout=0.5)
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    torch.manual_seed(7)
    expected = oracle(x)[0]
    torch.manual_seed(7)
    got = ours(x)[0]
    torch.testing.assert_close(got, expected)
    ours.eval()
    assert torch.equal(ours(x)[0], ours(x)[0])  # no dropout in eval mode


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(list(PAIRS)),
    batch=st.integers(1, 4),
    steps=st.integers(1, 7),
    input_size=st.integers(1, 4),
    hidden=st.integers(1, 4),
    num_layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    data=st.data(),
)
def test_random_shapes_and_lengths_match_torch(kind, batch, steps, input_size, hidden, num_layers, bidirectional, data):
    lengths = torch.tensor(data.draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch)))
    for backend in ("reference", "builtin"):
        ours, oracle = make_pair(kind, input_size, hidden, torch.float64, backend,
                                 num_layers=num_layers, bidirectional=bidirectional)
        x = torch.randn(steps, batch, input_size, dtype=torch.float64)
        expected = run(oracle, x, lengths=lengths, mode="packed")
        got = run(ours, x, lengths=lengths)
        assert_all_close(got[0], expected[0], 1e-10)
        assert_all_close(got[1], expected[1], 1e-10)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_reference_layer_passes_gradcheck(kind):
    ours_cls, _, extra = PAIRS[kind]
    layer = ours_cls(2, 3, num_layers=2, bidirectional=True, backend="reference", **extra).double()
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])

    def outputs(inp, *params):
        replaced = dict(zip([n for n, _ in layer.named_parameters()], params))
        out, state = torch.func.functional_call(layer, replaced, (inp,), {"lengths": lengths})
        return (out, *(state if isinstance(state, tuple) else (state,)))

    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    assert torch.autograd.gradcheck(outputs, (x, *params), fast_mode=True)


def test_auto_backend_picks_engine_then_torch_kernels_then_reference():
    from rnnkit import backends

    assert backends.select(rk.GRU(2, 3)).name == "engine"
    assert backends.select(rk.RNN(2, 3, nonlinearity="relu")).name == "engine"
    assert backends.select(rk.GRU(2, 3).to(torch.bfloat16)).name == "builtin"  # the engine has no bf16 kernel
    assert backends.select(rk.LSTM(2, 3)).name == "builtin"  # oneDNN's LSTM is as fast; the engine runs it on request
    assert backends.select(rk.LSTM(2, 3, backend="engine")).name == "engine"
    assert backends.select(rk.GRU(2, 3, backend="reference")).name == "reference"

    class ScaledElman(rk.ElmanCell):
        @staticmethod
        def recurrence(x_proj, state, params, nonlinearity="tanh"):
            (h,) = rk.ElmanCell.recurrence(x_proj, state, params, nonlinearity)
            return (0.5 * h,)

    class HalfRNN(rk.RNN):
        cell_type = ScaledElman

    layer = HalfRNN(2, 3)
    assert backends.select(layer).name == "reference"
    for name in ("builtin", "engine"):
        with pytest.raises(ValueError, match=f"backend '{name}' does not support this HalfRNN"):
            HalfRNN(2, 3, backend=name)(torch.randn(4, 1, 2))
    output, _ = layer(torch.randn(4, 1, 2))
    assert output.abs().max() <= 0.5  # the custom step really ran
