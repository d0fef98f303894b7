"""The base class of sharing strategies: how tasks share parameters."""

import keras
from keras import ops

from keras_mtl import errors


class SharingStrategy(keras.layers.Layer):
    """A Keras layer mapping backbone features to one feature tensor per task.

    `call(features)` returns a dict keyed by task name. The builder sets `task_names` when a
    strategy is used in `keras_mtl.build_mtl_model`; a strategy used alone needs them given.

    Subclasses implement `build`, `call`, `compute_output_shape` and `get_config`, and may
    override `from_builder_args` to map the builder's uniform arguments (`shared_layers`,
    `shared_units`, `dropout`, `activation`) onto their own.

    Args:
        task_names: the names of the tasks, in order.
    """

    def __init__(self, task_names=None, **kwargs):
        super().__init__(**kwargs)
        if task_names is not None:
            task_names = list(task_names)
            if not task_names or not all(isinstance(n, str) for n in task_names):
                raise errors.ConfigError(
                    "`task_names` must be a non-empty list of strings. "
                    f"Received: task_names={task_names!r}"
                )
        self.task_names = task_names

    @classmethod
    def from_builder_args(cls, *, shared_layers, shared_units, dropout, activation):
        """The strategy built from `build_mtl_model`'s arguments; `shared_layers` is its depth."""
        return cls(
            shared_layers=shared_layers, units=shared_units, dropout=dropout, activation=activation
        )

    def set_task_names(self, task_names):
        """Sets the task names before the layer is built; checks them if already set."""
        task_names = list(task_names)
        if self.task_names is not None and self.task_names != task_names:
            raise errors.ConfigError(
                f"The sharing strategy {self.name!r} was made for tasks {self.task_names}, not "
                f"for the model's tasks {task_names}."
            )
        self.task_names = task_names

    def _set_layer_options(self, dropout, activation):
        """Checks and stores the `dropout` and `activation` every strategy's layers share."""
        check_rate("dropout", dropout)
        self.dropout = dropout
        self.activation = activation
        self._activation = keras.activations.get(activation)
        self.dropout_layer = keras.layers.Dropout(dropout) if dropout else None

    def _output_shapes(self, input_shape, units):
        """`input_shape` with its last axis set to `units` (None keeps it), once per task."""
        shape = tuple(input_shape)
        if units is not None:
            shape = shape[:-1] + (units,)
        return {name: shape for name in self._require_task_names()}

    def _build_tower_weights(self, input_shape):
        """One Dense kernel and bias per task and layer, stacked: `self.kernels[i]` is
        `(tasks, fan_in, units)`, `self.biases[i]` is `(tasks, units)`."""
        num_tasks = len(self._require_task_names())
        self.kernels = []
        self.biases = []
        for i in range(self.shared_layers):
            fan_in = input_shape[-1] if i == 0 else self.units
            self.kernels.append(self.add_weight(
                shape=(num_tasks, fan_in, self.units),
                initializer=glorot_uniform(fan_in, self.units),
                name=f"tower_kernel_{i}",
            ))
            self.biases.append(self.add_weight(
                shape=(num_tasks, self.units), initializer="zeros", name=f"tower_bias_{i}"
            ))

    def _require_built(self, what):
        if not self.built:
            raise errors.ConfigError(
                f"`{what}` reads the weights of {self.name!r}, which is not built yet: call "
                "the layer (or fit the model) first."
            )

    def _require_task_names(self):
        if self.task_names is None:
            raise errors.ConfigError(
                f"The sharing strategy {self.name!r} needs `task_names` before it is built; "
                "pass them to its constructor or use it in `keras_mtl.build_mtl_model`."
            )
        return self.task_names

    def get_config(self):
        config = super().get_config()
        config["task_names"] = self.task_names
        return config


class ExpertStrategy(SharingStrategy):
    """A strategy made of experts: the builder's depth and width are the experts'."""

    @classmethod
    def from_builder_args(cls, *, shared_layers, shared_units, dropout, activation):
        if shared_layers < 1:
            raise errors.ConfigError(
                f"`shared_layers` is the depth of the experts of {cls.__name__} and must be "
                f">= 1. Received: shared_layers={shared_layers}"
            )
        return cls(
            expert_layers=shared_layers,
            expert_units=shared_units,
            dropout=dropout,
            activation=activation,
        )


def check_positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise errors.ConfigError(f"`{name}` must be {kind}. Received: {name}={value!r}")


def check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise errors.ConfigError(f"`{name}` must be in [0, 1). Received: {name}={value!r}")


def serialize_activation(activation):
    """`activation` as given when it is a name, else in the form Keras' configs use."""
    if activation is None or isinstance(activation, str):
        return activation
    return keras.activations.serialize(activation)


def glorot_uniform(fan_in, fan_out):
    """Glorot-uniform for one `fan_in -> fan_out` Dense kernel of a stack of them.

    Keras' own initializer would count the stacking axes in the fans of a 3-D kernel and
    start every expert (or tower) smaller than a `Dense` layer of the same size.
    """
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return keras.initializers.RandomUniform(-limit, limit)


def flatten_leading(inputs):
    """`inputs` as `(n, features)` and the leading shape to restore, or None if already 2-D.

    The strategies compute on 2-D features because TensorFlow's einsum is several times
    slower with an ellipsis than with explicit axes.
    """
    if len(inputs.shape) == 2:
        return inputs, None
    leading = tuple(ops.shape(inputs)[:-1])
    return ops.reshape(inputs, (-1, inputs.shape[-1])), leading


def restore_leading(outputs, leading):
    """Undoes `flatten_leading` on each `(n, units)` tensor of the dict `outputs`."""
    if leading is None:
        return outputs
    return {
        name: ops.reshape(value, leading + (value.shape[-1],)) for name, value in outputs.items()
    }
