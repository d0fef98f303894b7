"""Soft parameter sharing: one tower per task, pulled together by a distance penalty."""

import keras
from keras import ops

from keras_mtl import errors
from keras_mtl.sharing.base import (
    SharingStrategy,
    check_positive_int,
    flatten_leading,
    restore_leading,
    serialize_activation,
)

_DISTANCES = ("l2", "l1")


@keras.saving.register_keras_serializable(package="keras_mtl")
class Soft(SharingStrategy):
    """Soft parameter sharing: a Dense tower per task, with a penalty on their distance.

    Each task has its own stack of `shared_layers` Dense layers; no parameter is shared, but
    `penalty * tower_distance()` is added to the model's losses (through `add_loss`, so it is
    part of the training loss), which pulls corresponding kernels of the towers together.
    `tower_distance()` is the sum over layers and over pairs of tasks of the squared L2
    (`distance="l2"`) or the L1 (`distance="l1"`) norm of the difference of the two kernels.
    The towers are stored stacked (one kernel of shape `(tasks, in, units)` per layer) and
    computed by one einsum per layer. `penalty=0` gives independent towers.

    Args:
        shared_layers: depth of each task's tower (0 passes the features through).
        units: width of each tower layer.
        penalty: non-negative weight of the distance in the loss.
        distance: `"l2"` (squared Euclidean, default) or `"l1"`.
        dropout: dropout rate after each tower layer.
        activation: activation of the tower layers.
        task_names: the names of the tasks (set by `build_mtl_model`).

    Example:

    >>> layer = keras_mtl.sharing.Soft(shared_layers=2, units=8, task_names=["a", "b"])
    >>> outputs = layer(keras.ops.ones((2, 5)))
    >>> tuple(outputs["b"].shape), float(layer.tower_distance()) > 0
    ((2, 8), True)

    Reference:
        Duong et al., "Low Resource Dependency Parsing: Cross-lingual Parameter Sharing in a
        Neural Network Parser", ACL 2015; Ruder, "An Overview of Multi-Task Learning in Deep
        Neural Networks", 2017.
    """

    def __init__(
        self,
        shared_layers=1,
        units=128,
        penalty=1e-2,
        distance="l2",
        dropout=0.0,
        activation="relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("shared_layers", shared_layers, minimum=0)
        check_positive_int("units", units)
        if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or penalty < 0:
            raise errors.ConfigError(
                f"`penalty` must be a non-negative number. Received: penalty={penalty!r}"
            )
        if distance not in _DISTANCES:
            raise errors.ConfigError(
                f"`distance` must be one of {list(_DISTANCES)}. Received: distance={distance!r}"
            )
        self.shared_layers = shared_layers
        self.units = units
        self.penalty = penalty
        self.distance = distance
        self._set_layer_options(dropout, activation)

    def build(self, input_shape):
        self._build_tower_weights(input_shape)

    def tower_distance(self):
        """The distance between the task towers' kernels (before `penalty`), a scalar."""
        self._require_built("tower_distance")
        # Summed in float32 whatever the compute dtype: under mixed precision `call` sees the
        # kernels autocast to float16, and the penalty joins Keras' float32 losses.
        total = ops.zeros((), dtype="float32")
        num_tasks = len(self._require_task_names())
        for kernel in self.kernels:
            kernel = ops.cast(kernel, "float32")
            for i in range(num_tasks):
                for j in range(i + 1, num_tasks):
                    difference = kernel[i] - kernel[j]
                    if self.distance == "l2":
                        total = total + ops.sum(ops.square(difference))
                    else:
                        total = total + ops.sum(ops.abs(difference))
        return total

    def call(self, inputs, training=None):
        names = self._require_task_names()
        if not self.shared_layers:
            return {name: inputs for name in names}
        inputs, leading = flatten_leading(inputs)
        x = ops.einsum("bi,tiu->btu", inputs, self.kernels[0]) + self.biases[0]
        x = self._tower_activation(x, training)
        for kernel, bias in zip(self.kernels[1:], self.biases[1:]):
            x = self._tower_activation(ops.einsum("bti,tiu->btu", x, kernel) + bias, training)
        if self.penalty:
            self.add_loss(self.penalty * self.tower_distance())
        return restore_leading({name: x[:, t, :] for t, name in enumerate(names)}, leading)

    def _tower_activation(self, x, training):
        x = self._activation(x)
        if self.dropout_layer is not None:
            x = self.dropout_layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return self._output_shapes(input_shape, self.units if self.shared_layers else None)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "shared_layers": self.shared_layers,
                "units": self.units,
                "penalty": self.penalty,
                "distance": self.distance,
                "dropout": self.dropout,
                "activation": serialize_activation(self.activation),
            }
        )
        return config
