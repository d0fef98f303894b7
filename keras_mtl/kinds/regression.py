"""Regression: `units` linear outputs, real-valued labels."""

import keras
import numpy as np

from keras_mtl.kinds.base import TaskKind


class Regression(TaskKind):
    """Real values: `units` linear outputs (default 1), mean squared error, NaN: missing.

    Each entry is masked on its own. Labels must be finite (NaN only as the missing marker).

    Example:

    >>> keras_mtl.kinds.get("regression").output_units(keras_mtl.Task("xy", "regression", units=2))
    2
    """

    name = "regression"
    arguments = ("units",)
    activation = "linear"
    loss = "mean_squared_error"
    metrics = ("mae",)
    metric_aliases = {
        "mae": lambda task: keras.metrics.MeanAbsoluteError(name="mae"),
        "mse": lambda task: keras.metrics.MeanSquaredError(name="mse"),
        "rmse": lambda task: keras.metrics.RootMeanSquaredError(name="rmse"),
    }
    missing_label = "nan"

    def validate(self, task):
        self._check_units(task)

    def output_units(self, task):
        return task.units or 1

    def constant_prediction(self, task, labels):
        if self.activation_name(task) != "linear":
            return None
        values, present = self._present_columns(task, labels)
        return np.where(present, values, 0.0).sum(axis=0) / present.sum(axis=0)
