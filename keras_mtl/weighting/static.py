"""Static weighting: the tasks' fixed `loss_weight`s."""

import keras
import tensorflow as tf

from keras_mtl.weighting import gradients
from keras_mtl.weighting.base import WeightingMethod


@keras.saving.register_keras_serializable(package="keras_mtl")
class Static(WeightingMethod):
    """Static loss weights: the total loss is `sum_t loss_weight_t * L_t`.

    This is Keras' own `loss_weights`, taken from each task's `loss_weight` (or from the
    `loss_weights` given to `compile`), trained by Keras' own `train_step`. The weights are
    logged as `weight_<task>`.

    Example:

    >>> keras_mtl.weighting.get("static")
    Static()
    """

    def attach(self, model):
        """Static weighting keeps no state."""

    def train_step(self, model, data, default_train_step):
        logs = dict(default_train_step(data))
        for name, weight in zip(model.task_names, gradients.static_weights(model)):
            logs[f"weight_{name}"] = tf.constant(weight, "float32")
        return logs
