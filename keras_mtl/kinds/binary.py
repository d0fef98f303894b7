"""Binary classification: one sigmoid output, labels 0 or 1."""

import keras
import numpy as np
import tensorflow as tf

from keras_mtl.kinds.base import TaskKind

# The metric aliases of kinds with one sigmoid probability per output unit.
SIGMOID_METRIC_ALIASES = {
    "accuracy": lambda task: keras.metrics.BinaryAccuracy(name="accuracy"),
    "auc": lambda task: keras.metrics.AUC(name="auc"),
}


class Binary(TaskKind):
    """A yes/no task: one sigmoid unit, binary cross-entropy, labels 0 or 1 (-1: missing).

    `class_names` are `[negative, positive]`; an export predicts the positive class when the
    probability exceeds the task's `threshold`.

    Example:

    >>> keras_mtl.kinds.get("binary").output_units(keras_mtl.Task("odd", "binary"))
    1
    """

    name = "binary"
    arguments = ("class_names",)
    activation = "sigmoid"
    loss = "binary_crossentropy"
    metrics = ("accuracy", "auc")
    metric_aliases = SIGMOID_METRIC_ALIASES
    missing_label = -1
    classification = True
    probability_activation = "sigmoid"

    def validate(self, task):
        self._check_class_names(task, 2, "[negative, positive]")

    def output_units(self, task):
        return 1

    def valid_labels(self, task, labels, ops):
        return (labels == 0) | (labels == 1)

    def expected_labels(self, task):
        return "0 or 1"

    def label_shape_hint(self, task, received_shape):
        if tuple(received_shape) == (2,):
            return (
                " For one-hot labels of two classes, give the positive column (`y[:, 1]`), or "
                "make the task 'multiclass' with num_classes=2."
            )
        return ""

    def describe_export_outputs(self, task):
        return self._describe_class_outputs(task)

    def export_outputs(self, task, output):
        positive = self.probability_transform(task)(output)[:, 0]
        class_id = tf.cast(positive > task.threshold, tf.int64)
        return self._class_outputs(
            task, class_id, tf.where(class_id == 1, positive, 1.0 - positive)
        )

    def constant_prediction(self, task, labels):
        return bernoulli_constant(self, task, labels)


def bernoulli_constant(kind, task, labels):
    """Per output unit, the frequency of 1s with add-one smoothing, as the output gives it."""
    values, present = kind._present_columns(task, labels)
    sums = np.where(present, values, 0.0).sum(axis=0)
    p = (sums + 1.0) / (present.sum(axis=0) + 2.0)
    activation = kind.activation_name(task)
    if activation == "sigmoid":
        return p
    if activation == "linear":
        return np.log(p / (1.0 - p))
    return None
