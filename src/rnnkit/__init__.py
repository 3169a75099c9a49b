"""rnnkit: recurrent neural networks on PyTorch.

>>> import rnnkit as rk
>>> lstm = rk.LSTM(input_size=8, hidden_size=16, num_layers=2, batch_first=True)
"""

from rnnkit import init
from rnnkit.cells import ElmanCell, GRUCell, LSTMCell, RecurrentCell, RNNCell
from rnnkit.nn import GRU, LSTM, RNN, RecurrentLayer
from rnnkit.convert import from_torch, to_torch
from rnnkit.variants.minimal import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell
from rnnkit.variants.peephole import PeepholeLSTM, PeepholeLSTMCell
from rnnkit.variants.layernorm import LayerNormGRU, LayerNormGRUCell, LayerNormLSTM, LayerNormLSTMCell
from rnnkit import registry  # noqa: E402  (the cell kinds, built on the layers)
from rnnkit.registry import register_cell  # noqa: E402

from rnnkit import data, diagnostics, models, train  # noqa: E402  (they build on the layers above)
from rnnkit.train import TrainConfig, Trainer  # noqa: E402

__version__ = "0.1.0"  # the one place the version is set: pyproject.toml reads it from here

__all__ = [
    "RNN",
    "LSTM",
    "GRU",
    "RecurrentLayer",
    "to_torch",
    "from_torch",
    "RNNCell",
    "ElmanCell",
    "LSTMCell",
    "GRUCell",
    "RecurrentCell",
    "MinGRU",
    "MinLSTM",
    "MinGRUCell",
    "MinLSTMCell",
    "PeepholeLSTM",
    "PeepholeLSTMCell",
    "LayerNormLSTM",
    "LayerNormGRU",
    "LayerNormLSTMCell",
    "LayerNormGRUCell",
    "registry",
    "register_cell",
    "Trainer",
    "TrainConfig",
    "init",
    "models",
    "train",
    "data",
    "diagnostics",
    "__version__",
]
