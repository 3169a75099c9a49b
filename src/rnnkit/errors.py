"""The one error type for problems with what a user gave rnnkit: a file, a setting, a run directory.

Library code raises :class:`InputError` with one line that names the problem and the fix; the
command line prints that line and exits with status 2, Python callers catch it (it is a
``ValueError``). Nothing in the library needs to know about the command line to raise it.
"""

from __future__ import annotations


class InputError(ValueError):
    """A problem with the user's input: one line saying what is wrong and how to fix it."""
