"""Cross-stitch networks: per-task towers mixed after every layer by learned units."""

import keras
import numpy as np
from keras import ops

from keras_mtl import errors
from keras_mtl.sharing.base import (
    SharingStrategy,
    check_positive_int,
    flatten_leading,
    restore_leading,
    serialize_activation,
)


@keras.saving.register_keras_serializable(package="keras_mtl")
class CrossStitch(SharingStrategy):
    """Cross-stitch units: a Dense tower per task, linearly mixed after every layer.

    After layer `l`, task `s` reads `x_s' = sum_t A_l[s, t] x_t`, with `A_l` a learned
    `(tasks, tasks)` matrix initialised close to identity: `self_weight` on the diagonal and
    `(1 - self_weight) / (tasks - 1)` elsewhere, so each row sums to one (0.9 / 0.1 for two
    tasks, as in the paper). `cross_stitch_matrices()` returns the current `A_l`. The towers
    are stored stacked and computed by one einsum per layer.

    Args:
        shared_layers: depth of each task's tower, and number of cross-stitch units (0 passes
            the features through).
        units: width of each tower layer.
        self_weight: initial diagonal of the cross-stitch matrices, in (0, 1].
        dropout: dropout rate after each tower layer.
        activation: activation of the tower layers.
        task_names: the names of the tasks (set by `build_mtl_model`).

    Example:

    >>> layer = keras_mtl.sharing.CrossStitch(shared_layers=2, units=8, task_names=["a", "b"])
    >>> outputs = layer(keras.ops.ones((2, 5)))
    >>> tuple(outputs["a"].shape)
    (2, 8)
    >>> layer.cross_stitch_matrices()[0].astype(float).round(2).tolist()
    [[0.9, 0.1], [0.1, 0.9]]

    Reference:
        Misra, Shrivastava, Gupta, Hebert, "Cross-stitch Networks for Multi-task Learning",
        CVPR 2016.
    """

    def __init__(
        self,
        shared_layers=1,
        units=128,
        self_weight=0.9,
        dropout=0.0,
        activation="relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("shared_layers", shared_layers, minimum=0)
        check_positive_int("units", units)
        if (
            isinstance(self_weight, bool)
            or not isinstance(self_weight, (int, float))
            or not 0 < self_weight <= 1
        ):
            raise errors.ConfigError(
                f"`self_weight` must be in (0, 1]. Received: self_weight={self_weight!r}"
            )
        self.shared_layers = shared_layers
        self.units = units
        self.self_weight = self_weight
        self._set_layer_options(dropout, activation)

    def _initial_matrix(self, num_tasks):
        if num_tasks == 1:
            return np.ones((1, 1))
        off_diagonal = (1.0 - self.self_weight) / (num_tasks - 1)
        matrix = np.full((num_tasks, num_tasks), off_diagonal)
        np.fill_diagonal(matrix, self.self_weight)
        return matrix

    def build(self, input_shape):
        self._build_tower_weights(input_shape)
        num_tasks = len(self.task_names)
        initial = self._initial_matrix(num_tasks)
        self.stitches = [
            self.add_weight(
                shape=(num_tasks, num_tasks),
                initializer=keras.initializers.Constant(initial),
                name=f"cross_stitch_{i}",
            )
            for i in range(self.shared_layers)
        ]

    def cross_stitch_matrices(self):
        """The current cross-stitch matrices, one NumPy `(tasks, tasks)` array per layer."""
        self._require_built("cross_stitch_matrices")
        return [np.asarray(ops.convert_to_numpy(stitch)) for stitch in self.stitches]

    def call(self, inputs, training=None):
        names = self._require_task_names()
        if not self.shared_layers:
            return {name: inputs for name in names}
        inputs, leading = flatten_leading(inputs)
        x = None
        for i, (kernel, bias, stitch) in enumerate(zip(self.kernels, self.biases, self.stitches)):
            if i == 0:
                x = ops.einsum("bi,tiu->btu", inputs, kernel) + bias
            else:
                x = ops.einsum("bti,tiu->btu", x, kernel) + bias
            x = self._activation(x)
            if self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training)
            x = ops.einsum("st,btu->bsu", ops.cast(stitch, x.dtype), x)
        return restore_leading({name: x[:, t, :] for t, name in enumerate(names)}, leading)

    def compute_output_shape(self, input_shape):
        return self._output_shapes(input_shape, self.units if self.shared_layers else None)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "shared_layers": self.shared_layers,
                "units": self.units,
                "self_weight": self.self_weight,
                "dropout": self.dropout,
                "activation": serialize_activation(self.activation),
            }
        )
        return config
