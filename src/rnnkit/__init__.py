"""rnnkit: recurrent neural networks on PyTorch.

>>> import rnnkit as rk
>>> lstm = rk.LSTM(input_size=8, hidden_size=16, num_layers=2, batch_first=True)
"""

from rnnkit import init
from rnnkit.cells import ElmanCell, GRUCell, LSTMCell, RecurrentCell, RNNCell
from rnnkit.nn import GRU, LSTM, RNN, RecurrentLayer

__version__ = "0.1.0"

__all__ = [
    "RNN",
    "LSTM",
    "GRU",
    "RecurrentLayer",
    "RNNCell",
    "ElmanCell",
    "LSTMCell",
    "GRUCell",
    "RecurrentCell",
    "init",
    "__version__",
]
