"""One registry of cell kinds: every name that ``cell=`` (task models) and ``--cell`` (the apps, the lab)
accept, and the layer each name builds.

The classic kinds are registered here; a new cell is one file (the cell and its layer, see
``docs/cells.md``) plus one :func:`register_cell` call, after which every task model, app and the lab
accept it by name:

>>> cell_names()[:4]
('rnn', 'rnn_relu', 'lstm', 'gru')
>>> make_layer("rnn_relu", 3, 8).nonlinearity
'relu'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from rnnkit.nn import GRU, LSTM, RNN
from rnnkit.variants.minimal import MinGRU, MinLSTM
from rnnkit.variants.peephole import PeepholeLSTM
from rnnkit.variants.layernorm import LayerNormGRU, LayerNormLSTM


@dataclass(frozen=True)
class CellKind:
    """A registered cell kind: the layer class it builds, with these constructor options."""

    name: str
    layer: type[nn.Module]
    help: str
    options: dict = field(default_factory=dict)

    @property
    def cell(self) -> type:
        """The cell class of the layer (its step, parameters and kernels)."""
        return self.layer.cell_type


_KINDS: dict[str, CellKind] = {}


def register_cell(name: str, layer: type[nn.Module], *, help: str, replace: bool = False, **options) -> CellKind:
    """Make ``name`` build ``layer(..., **options)`` everywhere a cell is named.

    ``layer`` is an rnnkit layer class (a ``RecurrentLayer`` subclass with the torch.nn-style
    constructor). Registering a taken name is an error unless ``replace=True``.
    """
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"cell names are lower-case identifiers (they are CLI choices), got {name!r}")
    if name in _KINDS and not replace:
        raise ValueError(f"cell {name!r} is already registered (as {_KINDS[name].layer.__name__}); pass replace=True")
    if not hasattr(layer, "cell_type"):
        raise TypeError(f"{layer.__name__} is not an rnnkit recurrent layer (it has no cell_type)")
    kind = CellKind(name, layer, help, dict(options))
    _KINDS[name] = kind
    return kind


def unregister_cell(name: str) -> None:
    """Remove a registered kind (tests and experiments that registered their own)."""
    _KINDS.pop(name, None)


def cell_names() -> tuple[str, ...]:
    """Every registered cell name, in registration order."""
    return tuple(_KINDS)


def cell_kind(name: str) -> CellKind:
    """The kind registered as ``name``; an unknown name lists the registered ones."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cell {name!r}; registered cells: {', '.join(_KINDS)}") from None


def make_layer(name: str, input_size: int, hidden_size: int, **kwargs) -> nn.Module:
    """The layer of the kind ``name`` (``kwargs`` as for ``rk.LSTM``: num_layers, batch_first, ...)."""
    kind = cell_kind(name)
    return kind.layer(input_size, hidden_size, **kind.options, **kwargs)


def describe_cells() -> str:
    """``name: help`` of every registered kind, for help texts."""
    return "; ".join(f"{kind.name}: {kind.help}" for kind in _KINDS.values())


register_cell("rnn", RNN, help="Elman RNN with tanh", nonlinearity="tanh")
register_cell("rnn_relu", RNN, help="Elman RNN with relu (IRNN with init='identity')", nonlinearity="relu")
register_cell("lstm", LSTM, help="long short-term memory")
register_cell("gru", GRU, help="gated recurrent unit")
register_cell("min_gru", MinGRU, help="minGRU: input-only gates, one parallel scan per sequence (Feng et al. 2024)")
register_cell("min_lstm", MinLSTM, help="minLSTM: input-only gates, one parallel scan per sequence (Feng et al. 2024)")
register_cell("peephole_lstm", PeepholeLSTM, help="LSTM whose gates see the cell state (Gers & Schmidhuber 2000)")
register_cell("ln_lstm", LayerNormLSTM, help="layer-normalised LSTM (Ba et al. 2016)")
register_cell("ln_gru", LayerNormGRU, help="layer-normalised GRU (Ba et al. 2016)")
