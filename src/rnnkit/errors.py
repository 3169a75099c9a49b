"""Error types: :class:`InputError` for what a user gave rnnkit (a file, a setting, a run directory),
and the torch.nn-compatible errors of the layers and cells (below).

Library code raises :class:`InputError` with one line that names the problem and the fix; the
command line prints that line and exits with status 2, Python callers catch it (it is a
``ValueError``). Nothing in the library needs to know about the command line to raise it.
"""

from __future__ import annotations


class InputError(ValueError):
    """A problem with the user's input: one line saying what is wrong and how to fix it."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a training run after writing its checkpoint; the message says how to continue it."""


# Errors of the drop-in layers and cells (rnnkit.nn, rnnkit.cells): each is an instance of the type
# torch.nn raises for the same mistake, and of the type rnnkit documented before, so code written
# against either keeps catching it. torch.nn's AttributeError/IndexError for a malformed ``hx`` or a
# non-tensor input are accidents of its implementation (``'tuple' object has no attribute 'dim'``),
# not checks, and are deliberately not copied: hasattr(), getattr() with a default, properties and
# old-style iteration swallow those two types, which would hide the mistake.


class ShapeError(ValueError, RuntimeError):
    """A tensor of the wrong shape, size, length or device, or a size that cannot be.

    torch.nn raises ``RuntimeError`` for these (``input.size(-1) must be equal to input_size``,
    ``Expected hidden size ...``); rnnkit documented ``ValueError``. Both catch it.
    """


class DTypeError(TypeError, ValueError, RuntimeError):
    """A tensor of the wrong dtype: a non-floating input, or input, state and parameters that disagree.

    rnnkit documented ``TypeError``; torch.nn's layers raise ``ValueError`` (``RNN input dtype ... does
    not match weight dtype``) and its cells and kernels ``RuntimeError`` (``mat1 and mat2 must have the
    same dtype``). All three catch it.
    """


class StateError(TypeError, RuntimeError):
    """``hx`` of the wrong kind or count (a tensor where ``(h_0, c_0)`` belongs, a 3-tuple, ...).

    rnnkit documented ``TypeError``; torch.nn raises ``RuntimeError`` (``lstm expects two hidden
    states``) or ``TypeError`` (the LSTM cell given a tensor).
    """


class ArgumentTypeError(TypeError, ValueError):
    """A constructor argument of the wrong type (``hidden_size=3.5``, ``bias=0``, ``batch_first="False"``).

    torch.nn raises ``TypeError`` (``bias should be of type bool, got: int``); rnnkit documented
    ``ValueError`` for sizes and probabilities. Both catch it.
    """
