"""A true drop-in (#12): rnnkit's layers and cells against torch.nn, case by case.

Every error test runs the same mistake through torch.nn and through rnnkit and checks that rnnkit's
exception is an instance of the type torch.nn actually raised (so ``except RuntimeError`` written
for torch.nn keeps working) and of the type rnnkit documented before (``ValueError``/``TypeError``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, prune
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit as rk
from rnnkit.errors import ArgumentTypeError, DTypeError, InputError, ShapeError, StateError


def raised(call) -> BaseException:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as info:
            call()
    return info.value


def x(*shape, dtype=torch.float32):
    return torch.randn(*shape).to(dtype)


# (id, call given the namespace -- torch.nn or rnnkit, which share the class names --, rnnkit's documented type)
FORWARD_CASES = [
    ("rank-4", lambda m: m.LSTM(4, 5)(x(2, 3, 4, 1)), ValueError),
    ("rank-1", lambda m: m.LSTM(4, 5)(x(4)), ValueError),
    ("rank-0", lambda m: m.GRU(4, 5)(torch.tensor(1.0)), ValueError),
    ("features", lambda m: m.LSTM(4, 5)(x(7, 2, 6)), ValueError),
    ("features-batch-first", lambda m: m.GRU(4, 5, batch_first=True)(x(2, 7, 3)), ValueError),
    ("features-unbatched", lambda m: m.RNN(4, 5)(x(7, 3)), ValueError),
    ("input-long", lambda m: m.LSTM(4, 5)(torch.ones(3, 2, 4, dtype=torch.long)), TypeError),
    ("input-int32", lambda m: m.GRU(4, 5)(torch.ones(3, 2, 4, dtype=torch.int32)), TypeError),
    ("input-bool", lambda m: m.RNN(4, 5)(torch.ones(3, 2, 4, dtype=torch.bool)), TypeError),
    ("input-float64", lambda m: m.LSTM(4, 5)(x(3, 2, 4, dtype=torch.float64)), TypeError),
    ("input-float16", lambda m: m.GRU(4, 5)(x(3, 2, 4, dtype=torch.float16)), TypeError),
    ("empty-sequence", lambda m: m.LSTM(4, 5)(x(0, 2, 4)), ValueError),
    ("empty-sequence-batch-first", lambda m: m.GRU(4, 5, batch_first=True)(x(2, 0, 4)), ValueError),
    ("lstm-hx-tensor", lambda m: m.LSTM(4, 5)(x(3, 2, 4), torch.zeros(2, 2, 5)), TypeError),
    ("lstm-hx-3-tuple", lambda m: m.LSTM(4, 5)(x(3, 2, 4), (torch.zeros(1, 2, 5),) * 3), TypeError),
    ("h0-layers", lambda m: m.LSTM(4, 5, 2)(x(3, 2, 4), (torch.zeros(1, 2, 5), torch.zeros(2, 2, 5))), ValueError),
    ("c0-batch", lambda m: m.LSTM(4, 5, 2)(x(3, 2, 4), (torch.zeros(2, 2, 5), torch.zeros(2, 3, 5))), ValueError),
    ("h0-batch", lambda m: m.GRU(4, 5, batch_first=True)(x(8, 3, 4), torch.zeros(1, 2, 5)), ValueError),
    ("h0-2d-for-batched", lambda m: m.GRU(4, 5)(x(3, 2, 4), torch.zeros(2, 5)), ValueError),
    ("h0-3d-for-unbatched", lambda m: m.GRU(4, 5)(x(3, 4), torch.zeros(1, 1, 5)), ValueError),
    ("h0-projected", lambda m: m.LSTM(4, 5, proj_size=2)(x(3, 2, 4), (torch.zeros(1, 2, 5),) * 2), ValueError),
    ("h0-float64", lambda m: m.GRU(4, 5)(x(3, 2, 4), torch.zeros(1, 2, 5, dtype=torch.float64)), TypeError),
    ("lstm-h0-float64", lambda m: m.LSTM(4, 5)(x(3, 2, 4), (torch.zeros(1, 2, 5, dtype=torch.float64),
                                                            torch.zeros(1, 2, 5))), TypeError),
    ("lstm-c0-float64", lambda m: m.LSTM(4, 5)(x(3, 2, 4), (torch.zeros(1, 2, 5),
                                                            torch.zeros(1, 2, 5, dtype=torch.float64))), TypeError),
    ("h0-long", lambda m: m.RNN(4, 5)(x(3, 2, 4), torch.zeros(1, 2, 5, dtype=torch.long)), TypeError),
    ("h0-device", lambda m: m.GRU(4, 5)(x(3, 2, 4), torch.zeros(1, 2, 5, device="meta")), ValueError),
    ("packed-features", lambda m: m.LSTM(4, 5)(pack_padded_sequence(x(3, 2, 6), [3, 1])), ValueError),
    ("packed-long", lambda m: m.LSTM(4, 5)(pack_padded_sequence(torch.ones(3, 2, 4, dtype=torch.long), [3, 1])),
     TypeError),
    ("packed-h0-batch", lambda m: m.LSTM(4, 5)(pack_padded_sequence(x(3, 2, 4), [3, 1]),
                                               (torch.zeros(1, 3, 5),) * 2), ValueError),
    # cells
    ("cell-features", lambda m: m.LSTMCell(3, 4)(x(2, 5)), ValueError),
    ("gru-cell-features", lambda m: m.GRUCell(3, 4)(x(2, 5)), ValueError),
    ("rnn-cell-features-unbatched", lambda m: m.RNNCell(3, 4)(x(5)), ValueError),
    ("cell-rank-3", lambda m: m.LSTMCell(3, 4)(x(2, 2, 3)), ValueError),
    ("cell-rank-0", lambda m: m.GRUCell(3, 4)(torch.tensor(1.0)), ValueError),
    ("lstm-cell-hx-tensor", lambda m: m.LSTMCell(3, 4)(x(2, 3), torch.zeros(2, 4)), TypeError),
    ("lstm-cell-hx-3-tuple", lambda m: m.LSTMCell(3, 4)(x(2, 3), (torch.zeros(2, 4),) * 3), TypeError),
    ("lstm-cell-c-size", lambda m: m.LSTMCell(3, 4)(x(2, 3), (torch.zeros(2, 4), torch.zeros(2, 5))), ValueError),
    ("lstm-cell-h-batch", lambda m: m.LSTMCell(3, 4)(x(2, 3), (torch.zeros(3, 4),) * 2), ValueError),
    ("gru-cell-h-size", lambda m: m.GRUCell(3, 4)(x(2, 3), torch.zeros(2, 5)), ValueError),
    ("gru-cell-h-batch", lambda m: m.GRUCell(3, 4)(x(2, 3), torch.zeros(3, 4)), ValueError),
    ("gru-cell-unbatched-2d-h", lambda m: m.GRUCell(3, 4)(x(3), torch.zeros(1, 4)), ValueError),
    ("rnn-cell-h-size", lambda m: m.RNNCell(3, 4)(x(2, 3), torch.zeros(2, 5)), ValueError),
    ("cell-input-int32", lambda m: m.LSTMCell(3, 4)(torch.ones(2, 3, dtype=torch.int32)), TypeError),
    ("cell-input-float64", lambda m: m.GRUCell(3, 4)(x(2, 3, dtype=torch.float64)), TypeError),
    ("cell-h-float64", lambda m: m.GRUCell(3, 4)(x(2, 3), torch.zeros(2, 4, dtype=torch.float64)), TypeError),
    ("lstm-cell-h-float64", lambda m: m.LSTMCell(3, 4)(x(2, 3), (torch.zeros(2, 4, dtype=torch.float64),) * 2),
     TypeError),
]

CONSTRUCTOR_CASES = [
    ("hidden-0", lambda m: m.LSTM(3, 0), ValueError),
    ("input-0", lambda m: m.GRU(0, 3), ValueError),
    ("hidden-negative", lambda m: m.RNN(3, -1), ValueError),
    ("hidden-float", lambda m: m.LSTM(3, 3.5), ValueError),
    ("input-float", lambda m: m.GRU(3.0, 3), ValueError),
    ("hidden-str", lambda m: m.RNN(3, "4"), ValueError),
    ("num-layers-0", lambda m: m.LSTM(3, 4, num_layers=0), ValueError),
    ("num-layers-negative", lambda m: m.GRU(3, 4, num_layers=-1), ValueError),
    ("num-layers-float", lambda m: m.LSTM(3, 4, num_layers=2.0), ValueError),
    ("dropout-above-1", lambda m: m.LSTM(3, 4, 2, dropout=1.5), ValueError),
    ("dropout-negative", lambda m: m.GRU(3, 4, 2, dropout=-0.1), ValueError),
    ("dropout-str", lambda m: m.RNN(3, 4, 2, dropout="0.5"), ValueError),
    ("dropout-bool", lambda m: m.LSTM(3, 4, 2, dropout=True), ValueError),
    ("dropout-none", lambda m: m.GRU(3, 4, 2, dropout=None), ValueError),
    ("nonlinearity", lambda m: m.RNN(3, 4, nonlinearity="sigmoid"), ValueError),
    ("nonlinearity-none", lambda m: m.RNN(3, 4, nonlinearity=None), ValueError),
    ("proj-equal-hidden", lambda m: m.LSTM(3, 4, proj_size=4), ValueError),
    ("proj-above-hidden", lambda m: m.LSTM(3, 4, proj_size=5), ValueError),
    ("proj-negative", lambda m: m.LSTM(3, 4, proj_size=-1), ValueError),
    ("proj-float", lambda m: m.LSTM(3, 4, proj_size=2.0), ValueError),
    ("proj-bool", lambda m: m.LSTM(3, 4, proj_size=True), ValueError),
    ("proj-on-gru", lambda m: m.GRU(3, 4, proj_size=2), ValueError),
    ("proj-on-rnn", lambda m: m.RNN(3, 4, proj_size=2), ValueError),
    ("proj-zero-on-gru", lambda m: m.GRU(3, 4, proj_size=0), ValueError),
    ("cell-hidden-negative", lambda m: m.GRUCell(3, -1), ValueError),
    ("cell-hidden-float", lambda m: m.LSTMCell(3, 3.5), ValueError),
    ("cell-input-negative", lambda m: m.RNNCell(-2, 3), ValueError),
]
NON_BOOLS = ["False", 0, 1, None, 1.0, torch.tensor(True), np.bool_(True)]
FLAG_CASES = [
    (f"{flag}={value!r}-{cls}", lambda m, flag=flag, value=value, cls=cls: getattr(m, cls)(3, 4, **{flag: value}),
     TypeError)
    for flag in ("bias", "batch_first") for value in NON_BOOLS for cls in ("RNN", "LSTM", "GRU")
]


@pytest.mark.parametrize("case,call,documented", FORWARD_CASES + CONSTRUCTOR_CASES + FLAG_CASES,
                         ids=[c[0] for c in FORWARD_CASES + CONSTRUCTOR_CASES + FLAG_CASES])
def test_error_is_an_instance_of_torch_nn_type(case, call, documented):
    theirs = raised(lambda: call(nn))
    ours = raised(lambda: call(rk))
    assert isinstance(ours, type(theirs)), (
        f"torch.nn raises {type(theirs).__name__} ({theirs}); rnnkit {type(ours).__name__} ({ours})")
    assert isinstance(ours, documented), f"rnnkit's documented {documented.__name__}, got {type(ours).__name__}"


@pytest.mark.parametrize(
    "lengths,documented",
    [(torch.tensor([3, 0]), ValueError), (torch.tensor([3, -1]), ValueError), (torch.tensor([4, 2]), ValueError),
     (torch.tensor([3, 2, 1]), ValueError), ("3,2", TypeError)],
    ids=["zero", "negative", "too-long", "count", "string"],
)
def test_bad_lengths_match_pack_padded_sequence(lengths, documented):
    """torch.nn takes lengths through pack_padded_sequence; rnnkit's lengths= raises the same types."""
    data = x(3, 2, 4)
    theirs = raised(lambda: nn.LSTM(4, 5)(pack_padded_sequence(data, lengths, enforce_sorted=False)))
    ours = raised(lambda: rk.LSTM(4, 5)(data, lengths=lengths))
    assert isinstance(ours, type(theirs)) and isinstance(ours, documented), (type(theirs), type(ours))


def test_error_classes_keep_the_old_types():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, RuntimeError)
    assert all(issubclass(DTypeError, t) for t in (TypeError, ValueError, RuntimeError))
    assert issubclass(StateError, TypeError) and issubclass(StateError, RuntimeError)
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)
    for error in (ShapeError, DTypeError, StateError, ArgumentTypeError):
        # never swallowed by hasattr/getattr/iteration; not the CLI's one-line InputError
        assert not issubclass(error, (AttributeError, IndexError, InputError))


def test_messages_stay_rnnkit_s():
    with pytest.raises(ShapeError, match=r"\(seq, batch, 4\) with input_size=4 features, got 6"):
        rk.LSTM(4, 5)(x(7, 2, 6))
    with pytest.raises(DTypeError, match="float64 but the parameters are torch.float32"):
        rk.LSTM(4, 5)(x(3, 2, 4, dtype=torch.float64))
    with pytest.raises(StateError, match=r"tuple \(h_0, c_0\) of 2 tensors, got Tensor"):
        rk.LSTM(4, 5)(x(3, 2, 4), torch.zeros(1, 2, 5))


@pytest.mark.parametrize("flag", ["bias", "batch_first"])
@pytest.mark.parametrize("value", ["False", 0, 1])
def test_string_and_int_flags_refused_with_type_error(flag, value):
    with pytest.raises(TypeError, match=f"{flag} must be True or False, got {value!r} of type"):
        rk.GRU(3, 4, **{flag: value})
    with pytest.raises(TypeError):
        nn.GRU(3, 4, **{flag: value})


@pytest.mark.parametrize("value", ["False", 0, 1, None, 1.0, np.bool_(True)], ids=repr)
def test_bidirectional_takes_any_truthy_value_as_torch_nn(value):
    ours, theirs = rk.LSTM(3, 4, bidirectional=value), nn.LSTM(3, 4, bidirectional=value)
    assert ours.bidirectional is bool(value) and ours.bidirectional == bool(theirs.bidirectional)
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("value", ["False", 0, None])
def test_cells_take_any_bias_as_torch_nn(value):
    ours, theirs = rk.LSTMCell(3, 4, bias=value), nn.LSTMCell(3, 4, bias=value)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_lstm_positional_arguments_as_torch_nn():
    """torch.nn.LSTM's positional order goes on after bidirectional: proj_size, device, dtype."""
    args = (3, 4, 2, True, True, 0.0, True, 2, "cpu", torch.float64)
    ours, theirs = rk.LSTM(*args), nn.LSTM(*args)
    assert (ours.proj_size, ours.batch_first, ours.bidirectional) == (theirs.proj_size, True, True) == (2, True, True)
    assert {k: (v.shape, v.dtype) for k, v in ours.state_dict().items()} == \
        {k: (v.shape, v.dtype) for k, v in theirs.state_dict().items()}
    with pytest.raises(TypeError, match="each given once"):
        rk.LSTM(*args[:8], proj_size=2)


@pytest.mark.parametrize("kind,args", [("LSTMCell", (3, 4, True, "cpu", torch.float64)),
                                       ("GRUCell", (3, 4, False, "cpu", torch.float64)),
                                       ("RNNCell", (3, 4, True, "relu", "cpu", torch.float64))])
def test_cells_take_device_and_dtype_by_position_as_torch_nn(kind, args):
    ours, theirs = getattr(rk, kind)(*args), getattr(nn, kind)(*args)
    assert {k: (v.shape, v.dtype) for k, v in ours.state_dict().items()} == \
        {k: (v.shape, v.dtype) for k, v in theirs.state_dict().items()}


def test_numpy_integers_where_torch_nn_takes_them():
    """torch.nn takes a numpy integer for num_layers and proj_size (not for the sizes, nor does rnnkit)."""
    np = pytest.importorskip("numpy")
    for module in (nn, rk):
        layer = module.LSTM(3, 4, np.int64(2), proj_size=np.int64(2))
        assert (layer.num_layers, layer.proj_size) == (2, 2)
        assert layer(torch.randn(5, 2, 3))[0].shape == (5, 2, 2)
    assert type(rk.GRU(3, 4, np.int32(3)).num_layers) is int


def test_dropout_one_accepted_as_torch_nn():
    assert rk.GRU(3, 4, 2, dropout=1).dropout == nn.GRU(3, 4, 2, dropout=1).dropout == 1


def test_deliberate_differences():
    """Where rnnkit is stricter than torch.nn, or names the mistake with a safer type (docs/compatibility.md)."""
    # sizes given as bools: torch.nn.LSTM(3, True) builds a layer of hidden size 1; rnnkit refuses
    nn.LSTM(3, True)
    with pytest.raises(TypeError, match="hidden_size must be a positive integer, got True"):
        rk.LSTM(3, True)
    # not a tensor / malformed hx: torch.nn fails with AttributeError or IndexError by accident;
    # rnnkit raises a TypeError, which hasattr(), properties and iteration do not swallow
    for call, accidental in [
        (lambda m: m.LSTM(4, 5)([[1.0] * 4]), AttributeError),
        (lambda m: m.GRU(4, 5)(x(3, 2, 4), (torch.zeros(1, 2, 5),)), AttributeError),
        (lambda m: m.LSTM(4, 5)(x(3, 2, 4), (torch.zeros(1, 2, 5),)), IndexError),
        (lambda m: m.LSTM(4, 5)(x(3, 2, 4), torch.zeros(1, 2, 5)), IndexError),  # a (2, ...) tensor: RuntimeError
        (lambda m: m.GRUCell(3, 4)(x(2, 3), (torch.zeros(2, 4),)), AttributeError),
        (lambda m: m.LSTMCell(3, 4)([[1.0] * 3]), AttributeError),
    ]:
        assert isinstance(raised(lambda: call(nn)), accidental)
        ours = raised(lambda: call(rk))
        assert isinstance(ours, TypeError) and not isinstance(ours, (AttributeError, IndexError))
    # an unknown cell nonlinearity: torch.nn accepts the cell and fails at its first step (RuntimeError)
    nn.RNNCell(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="unknown nonlinearity 'gelu'"):
        rk.RNNCell(3, 4, nonlinearity="gelu")
    # float lengths: pack_padded_sequence truncates them; rnnkit asks for integers
    nn.LSTM(4, 5)(pack_padded_sequence(x(3, 2, 4), torch.tensor([3.0, 2.0])))
    with pytest.raises(TypeError, match="integer dtype"):
        rk.LSTM(4, 5)(x(3, 2, 4), lengths=torch.tensor([3.0, 2.0]))


# ---------------------------------------------------------------- sizes of zero


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("sizes", [(3, 0), (0, 3), (0, 0)], ids=["hidden-0", "input-0", "both-0"])
def test_cells_accept_sizes_of_zero_as_torch_nn(kind, sizes):
    theirs = getattr(nn, kind)(*sizes)
    ours = getattr(rk, kind)(*sizes)
    ours.load_state_dict(theirs.state_dict())
    data = x(2, sizes[0])
    expected, got = theirs(data), ours(data)
    expected, got = (expected if isinstance(expected, tuple) else (expected,)), (got if isinstance(got, tuple) else (got,))
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_layers_refuse_sizes_of_zero_as_torch_nn(kind):
    for sizes in ((3, 0), (0, 3)):
        with pytest.raises(ValueError):
            getattr(nn, kind)(*sizes)
        with pytest.raises(ValueError, match="must be a positive integer, got 0"):
            getattr(rk, kind)(*sizes)


# ---------------------------------------------------------------- autocast

BF16 = 2e-2


def _autocast_pair(kind, model_dtype, backend):
    theirs = getattr(nn, kind)(4, 8, num_layers=2).to(model_dtype)
    ours = getattr(rk, kind)(4, 8, num_layers=2, backend=backend).to(model_dtype)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _first(result):
    return result[0].float()


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16], ids=["f32-input", "bf16-input"])
@pytest.mark.parametrize("model_dtype", [torch.float32, torch.bfloat16], ids=["f32-model", "bf16-model"])
@pytest.mark.parametrize("kind,backend", [("RNN", "builtin"), ("RNN", "reference"), ("GRU", "builtin"),
                                          ("GRU", "reference")])
def test_autocast_runs_as_torch_nn(kind, backend, model_dtype, input_dtype):
    ours, theirs = _autocast_pair(kind, model_dtype, backend)
    data = x(6, 3, 4, dtype=input_dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = theirs(data)
        got = ours(data)
    assert got[0].dtype == expected[0].dtype
    torch.testing.assert_close(_first(got), _first(expected), atol=BF16, rtol=BF16)


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16], ids=["f32-input", "bf16-input"])
@pytest.mark.parametrize("kind", ["RNN", "GRU"])
def test_autocast_engine_values(kind, input_dtype):
    """The fused engine (backend='auto' picks it for CPU RNN/GRU layers with float32 weights) runs under
    autocast within bfloat16 tolerance of torch.nn."""
    ours, theirs = _autocast_pair(kind, torch.float32, "engine")
    data = x(6, 3, 4, dtype=input_dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = theirs(data), ours(data)
    torch.testing.assert_close(_first(got), _first(expected), atol=BF16, rtol=BF16)


@pytest.mark.parametrize("kind", ["RNN", "GRU"])
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16], ids=["f32-input", "bf16-input"])
def test_autocast_engine_output_dtype(kind, input_dtype):
    """Under autocast the engine hands the layer to torch's kernels, which follow autocast's per-op
    policy (torch.nn.RNN returns bfloat16 for float32 input, torch.nn.GRU float32)."""
    ours, theirs = _autocast_pair(kind, torch.float32, "engine")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ours(x(6, 3, 4, dtype=input_dtype))[0].dtype == theirs(x(6, 3, 4, dtype=input_dtype))[0].dtype


@pytest.mark.parametrize("state_dtype", [torch.float32, torch.bfloat16], ids=["f32-state", "bf16-state"])
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16], ids=["f32-input", "bf16-input"])
@pytest.mark.parametrize("backend", ["auto", "builtin", "reference", "engine"])
@pytest.mark.parametrize("kind", ["RNN", "GRU"])
def test_autocast_state_dtype_decides_as_in_torch_nn(kind, backend, input_dtype, state_dtype):
    """A state carried from an earlier autocast step may be bfloat16: torch.nn.GRU then answers in the
    state's precision (bfloat16 for float32 input), so the state must reach the kernel unconverted."""
    ours, theirs = _autocast_pair(kind, torch.float32, backend)
    data, h0 = x(6, 3, 4, dtype=input_dtype), torch.randn(2, 3, 8).to(state_dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = theirs(data, h0), ours(data, h0)
    assert (got[0].dtype, got[1].dtype) == (expected[0].dtype, expected[1].dtype)
    torch.testing.assert_close(_first(got), _first(expected), atol=BF16, rtol=BF16)


@pytest.mark.parametrize("model_dtype", [torch.float32, torch.bfloat16], ids=["f32-model", "bf16-model"])
def test_autocast_lstm(model_dtype):
    """torch.nn.LSTM under CPU bfloat16 autocast needs oneDNN's bf16 LSTM, which not every CPU has: where
    torch.nn fails, the builtin backend (the same kernel) fails the same way and the reference loop still
    runs, within bfloat16 tolerance of the float32 result."""
    data = x(6, 3, 4)
    builtin, theirs = _autocast_pair("LSTM", model_dtype, "builtin")
    reference = rk.from_torch(theirs, backend="reference")
    exact = nn.LSTM(4, 8, num_layers=2)  # float32 math on the same weights, outside autocast
    exact.load_state_dict({k: v.float() for k, v in theirs.state_dict().items()})
    expected = _first(exact(data))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        try:
            expected = _first(theirs(data))
        except RuntimeError:  # no bf16 LSTM in oneDNN on this CPU
            with pytest.raises(RuntimeError):
                builtin(data)
        else:
            torch.testing.assert_close(_first(builtin(data)), expected, atol=BF16, rtol=BF16)
        got = _first(reference(data))
    torch.testing.assert_close(got, expected, atol=2 * BF16, rtol=2 * BF16)


@pytest.mark.parametrize("kind,model_dtype,input_dtype", [
    (kind, model, given) for kind in ("RNNCell", "LSTMCell") for model, given in
    ((torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16), (torch.float32, torch.float32))
] + [
    ("GRUCell", torch.bfloat16, torch.float32),
    ("GRUCell", torch.float32, torch.float32),
    ("GRUCell", torch.float32, torch.bfloat16),
], ids=lambda v: str(v).replace("torch.", ""))
def test_autocast_cells_as_torch_nn(kind, model_dtype, input_dtype):
    theirs = getattr(nn, kind)(4, 8).to(model_dtype)
    ours = getattr(rk, kind)(4, 8).to(model_dtype)
    ours.load_state_dict(theirs.state_dict())
    data = x(3, 4, dtype=input_dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = theirs(data), ours(data)
    expected, got = (expected if isinstance(expected, tuple) else (expected,)), (got if isinstance(got, tuple) else (got,))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a.float(), b.float(), atol=BF16, rtol=BF16)


def test_autocast_still_refuses_what_torch_nn_cannot_run():
    """float64 is not an autocast dtype: torch.nn fails in the kernel (RuntimeError); rnnkit says why."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        theirs = raised(lambda: nn.GRU(4, 5)(x(3, 2, 4, dtype=torch.float64)))
        with pytest.raises(DTypeError, match="autocast converts only between") as ours:
            rk.GRU(4, 5)(x(3, 2, 4, dtype=torch.float64))
        with pytest.raises(DTypeError, match="floating-point"):
            rk.GRU(4, 5)(torch.ones(3, 2, 4, dtype=torch.long))
    assert isinstance(ours.value, type(theirs))


def test_mismatched_dtypes_refused_outside_autocast():
    with pytest.raises(DTypeError):
        rk.GRU(4, 5).bfloat16()(x(3, 2, 4))


# ---------------------------------------------------------------- _flat_weights, weight_norm, prune


@pytest.mark.parametrize("options", [{}, {"bias": False}, {"bidirectional": True, "num_layers": 2},
                                     {"proj_size": 2, "num_layers": 2, "bidirectional": True}],
                         ids=["plain", "no-bias", "bidirectional", "projected"])
def test_flat_weights_as_torch_nn(options):
    ours, theirs = rk.LSTM(3, 4, **options), nn.LSTM(3, 4, **options)
    assert ours._flat_weights_names == theirs._flat_weights_names
    assert ours._all_weights == theirs._all_weights
    assert all(w is getattr(ours, n) for w, n in zip(ours._flat_weights, ours._flat_weights_names))
    ours.load_state_dict(theirs.state_dict())  # follows load_state_dict ...
    assert all(torch.equal(a, b) for a, b in zip(ours._flat_weights, theirs._flat_weights))
    ours.double()  # ... and .to()
    assert all(w.dtype == torch.float64 and w is getattr(ours, n)
               for w, n in zip(ours._flat_weights, ours._flat_weights_names))


@pytest.mark.parametrize("backend", ["builtin", "reference"])
def test_weight_norm_parametrization_is_used_by_the_forward(backend):
    ours = rk.LSTM(4, 5, num_layers=2, bidirectional=True, backend=backend)
    theirs = nn.LSTM(4, 5, num_layers=2, bidirectional=True)
    theirs.load_state_dict(ours.state_dict())
    data = x(6, 3, 4)
    before = ours(data)[0]
    for module in (ours, theirs):
        parametrizations.weight_norm(module, "weight_hh_l0")
        with torch.no_grad():
            module.parametrizations.weight_hh_l0.original0.mul_(0.5)  # halve the norm of every row
    index = ours._flat_weights_names.index("weight_hh_l0")
    # the parametrized value now (torch.nn's own list refreshes only at its next forward)
    torch.testing.assert_close(ours._flat_weights[index], theirs.weight_hh_l0)
    assert not torch.allclose(ours._flat_weights[index], theirs.parametrizations.weight_hh_l0.original1)
    after = ours(data)[0]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, theirs(data)[0], atol=1e-6, rtol=1e-5)
    after.sum().backward()  # the gradient reaches the parametrization's parameters
    assert ours.parametrizations.weight_hh_l0.original1.grad is not None


@pytest.mark.parametrize("backend", ["builtin", "reference"])
def test_pruning_is_used_by_the_forward(backend):
    ours = rk.LSTM(4, 5, num_layers=2, backend=backend)
    theirs = nn.LSTM(4, 5, num_layers=2)
    theirs.load_state_dict(ours.state_dict())
    data = x(6, 3, 4)
    before = ours(data)[0]
    for module in (ours, theirs):
        prune.l1_unstructured(module, "weight_ih_l1", amount=0.5)
    assert float((ours.weight_ih_l1 == 0).float().mean()) == 0.5
    after = ours(data)[0]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, theirs(data)[0], atol=1e-6, rtol=1e-5)
    prune.remove(ours, "weight_ih_l1")  # made permanent: a plain parameter again
    assert "weight_ih_l1" in dict(ours.named_parameters())
    torch.testing.assert_close(ours(data)[0], after)


# ---------------------------------------------------------------- to_torch / from_torch

CONVERTIBLE = [
    ("RNN", {"nonlinearity": "relu", "num_layers": 2}),
    ("RNN", {"bias": False, "batch_first": True}),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    ("LSTM", {"proj_size": 3, "num_layers": 2, "bidirectional": True}),
    ("GRU", {"num_layers": 3, "dropout": 0.25, "bidirectional": True}),
]


def _equal_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("kind,options", CONVERTIBLE, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CONVERTIBLE)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_to_torch_and_back_round_trip(kind, options, dtype):
    ours = getattr(rk, kind)(5, 6, **options, init="orthogonal").to(dtype).eval()
    theirs = rk.to_torch(ours)
    assert type(theirs) is getattr(nn, kind) and isinstance(theirs, nn.RNNBase)
    assert not theirs.training
    _equal_state(ours, theirs)
    back = rk.from_torch(theirs)
    assert type(back) is getattr(rk, kind)
    _equal_state(ours, back)
    for name in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
                 "proj_size"):
        assert getattr(back, name) == getattr(ours, name) == getattr(theirs, name), name
    data = x(2, 4, 5, dtype=dtype) if ours.batch_first else x(4, 2, 5, dtype=dtype)
    expected = ours(data)
    for module in (theirs, back):
        got = module(data)
        torch.testing.assert_close(got[0], expected[0], atol=1e-6, rtol=1e-5)


def test_from_torch_takes_options_and_copies_the_forward_weights():
    theirs = nn.GRU(3, 4, bidirectional=True, batch_first=True)
    parametrizations.weight_norm(theirs, "weight_hh_l0")
    ours = rk.from_torch(theirs, backend="reference")
    assert ours.backend == "reference" and type(ours) is rk.GRU
    data = x(2, 5, 3)
    torch.testing.assert_close(ours(data)[0], theirs(data)[0], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("build,pattern", [
    (lambda: rk.GRU(3, 4, bidirectional=True, merge="sum"), "merge='sum'.*only concatenates"),
    (lambda: rk.LSTM(3, 4, zoneout=0.1), "zoneout=0.1"),
    (lambda: rk.GRU(3, 4, recurrent_dropout=0.2), "recurrent_dropout=0.2"),
    (lambda: rk.LayerNormLSTM(3, 4), "LayerNormLSTM .* no torch.nn equivalent"),
    (lambda: rk.PeepholeLSTM(3, 4), "PeepholeLSTM .* no torch.nn equivalent"),
    (lambda: rk.MinGRU(3, 4), "MinGRU .* no torch.nn equivalent"),
])
def test_to_torch_refuses_what_torch_nn_lacks(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        rk.to_torch(build())


def test_conversion_refuses_other_modules():
    with pytest.raises(TypeError, match="rnnkit layer"):
        rk.to_torch(nn.LSTM(3, 4))
    with pytest.raises(TypeError, match="torch.nn.RNN, LSTM or GRU"):
        rk.from_torch(rk.LSTM(3, 4))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_dynamic_quantization_through_to_torch(kind):
    """quantize_dynamic swaps the children of the module it is given, never the module itself: quantize
    the converted layer inside a container (or a model holding it), as docs/compatibility.md shows."""
    torch.manual_seed(0)
    ours = getattr(rk, kind)(8, 16, num_layers=2, bidirectional=True).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        quantized = torch.ao.quantization.quantize_dynamic(nn.Sequential(rk.to_torch(ours)), {getattr(nn, kind)},
                                                           dtype=torch.qint8)[0]
    assert type(quantized) is getattr(torch.ao.nn.quantized.dynamic, kind)
    data = x(7, 3, 8)
    expected, got = ours(data)[0], quantized(data)[0]
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=2e-2, rtol=0)
    assert not torch.equal(got, expected)  # it did quantize
