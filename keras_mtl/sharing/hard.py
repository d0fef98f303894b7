"""Hard parameter sharing: one shared stack of layers, then a head per task."""

import keras

from keras_mtl.sharing.base import (
    SharingStrategy,
    check_positive_int,
    check_rate,
    serialize_activation,
)


@keras.saving.register_keras_serializable(package="keras_mtl")
class Hard(SharingStrategy):
    """Hard parameter sharing: every task reads the output of one shared Dense stack.

    With `shared_layers=0` the backbone's features go to the task heads unchanged.

    Args:
        shared_layers: number of shared Dense layers (the depth of the shared block).
        units: width of each shared layer.
        dropout: dropout rate after each shared layer.
        activation: activation of the shared layers.
        task_names: the names of the tasks (set by `build_mtl_model`).

    Example:

    >>> layer = keras_mtl.sharing.Hard(shared_layers=2, units=32, task_names=["a", "b"])
    >>> outputs = layer(keras.ops.ones((4, 8)))
    >>> sorted(outputs), tuple(outputs["a"].shape)
    (['a', 'b'], (4, 32))

    Reference:
        Caruana, "Multitask Learning", Machine Learning 28, 1997.
    """

    def __init__(self, shared_layers=1, units=128, dropout=0.0, activation="relu", **kwargs):
        super().__init__(**kwargs)
        check_positive_int("shared_layers", shared_layers, minimum=0)
        check_positive_int("units", units)
        check_rate("dropout", dropout)
        self.shared_layers = shared_layers
        self.units = units
        self.dropout = dropout
        self.activation = activation
        self.dense_layers = [
            keras.layers.Dense(units, activation=activation, name=f"shared_dense_{i}")
            for i in range(shared_layers)
        ]
        self.dropout_layers = [
            keras.layers.Dropout(dropout, name=f"shared_dropout_{i}") if dropout else None
            for i in range(shared_layers)
        ]

    def build(self, input_shape):
        self._require_task_names()
        shape = input_shape
        for dense in self.dense_layers:
            dense.build(shape)
            shape = dense.compute_output_shape(shape)

    def call(self, inputs, training=None):
        x = inputs
        for dense, dropout in zip(self.dense_layers, self.dropout_layers):
            x = dense(x)
            if dropout is not None:
                x = dropout(x, training=training)
        return {name: x for name in self._require_task_names()}

    def compute_output_shape(self, input_shape):
        return self._output_shapes(input_shape, self.units if self.shared_layers else None)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "shared_layers": self.shared_layers,
                "units": self.units,
                "dropout": self.dropout,
                "activation": serialize_activation(self.activation),
            }
        )
        return config
