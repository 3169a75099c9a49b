"""Recurrent cells: one time step each, with torch.nn's parameter names and layouts."""

from rnnkit.cells.base import RecurrentCell
from rnnkit.cells.elman import ElmanCell, RNNCell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell

__all__ = ["RecurrentCell", "ElmanCell", "RNNCell", "LSTMCell", "GRUCell"]
