"""Uncertainty weighting: learned homoscedastic task variances (Kendall et al., 2018)."""

import numbers

import keras
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.weighting import gradients
from keras_mtl.weighting.base import LossWeighting, check_number


@keras.saving.register_keras_serializable(package="keras_mtl")
class Uncertainty(LossWeighting):
    """Uncertainty weighting: each task's loss is weighted by a learned inverse variance.

    The objective is `sum_t c_t * exp(-s_t) * L_t + 0.5 * s_t` with `s_t = log sigma_t^2`
    learned, `c_t = 0.5` for regression (and custom) tasks and `1` for classification tasks.
    At equilibrium `exp(-s_t) = 0.5 / (c_t * L_t)`: a regression task's learned variance is
    its mean squared error. The log-variances are variables of the model (saved with it),
    updated by their own Adam at `learning_rate`, not by the model's optimizer: at the usual
    1e-3 they move too slowly to reach equilibrium in a few thousand steps. A task without
    labels in a batch leaves its `s_t` unchanged. Logged weights are `c_t * exp(-s_t)`.

    Args:
        learning_rate: Adam's learning rate for the log-variances.
        initial_log_variance: the starting value of every `s_t`.

    Example:

    >>> method = keras_mtl.weighting.Uncertainty(learning_rate=0.01)
    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, weighting=method)

    Reference:
        Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for
        Scene Geometry and Semantics", CVPR 2018.
    """

    def __init__(self, learning_rate=0.01, initial_log_variance=0.0):
        check_number("learning_rate", learning_rate, positive=True)
        if isinstance(initial_log_variance, bool) or not isinstance(
            initial_log_variance, numbers.Real
        ):
            raise errors.ConfigError(
                "`initial_log_variance` must be a number. "
                f"Received: initial_log_variance={initial_log_variance!r}"
            )
        self.learning_rate = learning_rate
        self.initial_log_variance = initial_log_variance

    def build_state(self, state, tasks):
        num_tasks = len(tasks)
        state.add_state(
            "log_variance",
            (num_tasks,),
            keras.initializers.Constant(float(self.initial_log_variance)),
            trainable=True,
        )
        state.add_adam_slots("log_variance", (num_tasks,))
        state.scales = [1.0 if t.kind_object.classification else 0.5 for t in tasks]

    def task_weights(self, state, losses, present):
        scales = tf.constant(state.scales, "float32")
        return scales * tf.exp(-state.get("log_variance"))

    def update_state(self, state, losses, present, weights):
        # d/ds (c exp(-s) L + 0.5 s), with L the loss of the global batch.
        gradient = tf.where(present, 0.5 - weights * losses, tf.zeros_like(losses))
        gradients.adam_update(
            state, "log_variance", state.get("log_variance"), gradient,
            self.learning_rate, mask=present,
        )

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "initial_log_variance": self.initial_log_variance,
        }
