"""Static weighting: the tasks' fixed `loss_weight`s."""

import keras

from keras_mtl.weighting.base import WeightingMethod


@keras.saving.register_keras_serializable(package="keras_mtl")
class Static(WeightingMethod):
    """Static loss weights: the total loss is `sum_t loss_weight_t * L_t`.

    This is Keras' own `loss_weights`, taken from each task's `loss_weight`.

    Example:

    >>> keras_mtl.weighting.get("static")
    Static()
    """
