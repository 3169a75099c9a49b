"""Built-in offline data sets: generated on the fly, nothing is downloaded."""

from rnnkit.datasets.synthetic import ADDING_BASELINE_MSE, adding_problem

__all__ = ["adding_problem", "ADDING_BASELINE_MSE"]
