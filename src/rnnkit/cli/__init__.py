"""The ``rnnkit`` command line; see ``rnnkit --help``."""
