"""Custom tasks: the user's head layers and loss."""

import keras

from keras_mtl.kinds.base import TaskKind, clone


class Custom(TaskKind):
    """A task of the user's making: `head_layers` and/or `units` outputs, the user's `loss`.

    Nothing is masked by default (`missing_label=None`); labels must be finite numbers
    unless a `missing_label` is given. Exports add no post-processed outputs, and Δm has no
    default reference for such a task.

    Example:

    >>> task = keras_mtl.Task("emb", "custom", units=4, loss="cosine_similarity")
    >>> keras_mtl.kinds.get("custom").output_units(task)
    4
    """

    name = "custom"
    arguments = ("units", "head_layers")

    def validate(self, task):
        self._check_units(task)
        if task.loss is None:
            self._fail(task, "a 'custom' task needs a `loss`. Received: loss=None")
        if task.units is None and not task.head_layers:
            self._fail(
                task,
                "a 'custom' task needs `units` or `head_layers`. "
                f"Received: units=None, head_layers={task.head_layers!r}",
            )

    def output_units(self, task):
        return task.units

    def build_head(self, task, features):
        x = self._hidden_layers(task, features)
        for layer in task.head_layers or ():
            x = clone(layer)(x)
        if task.units is None:
            return keras.layers.Identity(name=task.name, dtype="float32")(x)
        return keras.layers.Dense(
            task.units, activation=self.output_activation(task), name=task.name, dtype="float32"
        )(x)
