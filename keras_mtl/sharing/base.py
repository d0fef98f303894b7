"""The base class of sharing strategies: how tasks share parameters."""

import keras

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


def check_positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise errors.ConfigError(f"`{name}` must be {kind}. Received: {name}={value!r}")


def check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise errors.ConfigError(f"`{name}` must be in [0, 1). Received: {name}={value!r}")
