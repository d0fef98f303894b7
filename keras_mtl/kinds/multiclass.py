"""Multi-class classification: a softmax over `num_classes`, labels integer class ids."""

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.kinds.base import TaskKind, present_labels


class Multiclass(TaskKind):
    """One class out of `num_classes`: softmax, sparse cross-entropy, integer ids (-1: missing).

    Example:

    >>> kind = keras_mtl.kinds.get("multiclass")
    >>> kind.output_units(keras_mtl.Task("digit", "multiclass", num_classes=10))
    10
    """

    name = "multiclass"
    arguments = ("num_classes", "class_names")
    activation = "softmax"
    loss = "sparse_categorical_crossentropy"
    metrics = ("accuracy",)
    metric_aliases = {
        "accuracy": lambda task: keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        "top_5_accuracy": lambda task: keras.metrics.SparseTopKCategoricalAccuracy(
            k=5, name="top_5_accuracy"
        ),
    }
    missing_label = -1
    sparse_labels = True
    classification = True
    probability_activation = "softmax"

    def validate(self, task):
        self._check_num_classes(task, 2)
        self._check_class_names(task, task.num_classes, "one per class")

    def output_units(self, task):
        return task.num_classes

    def valid_labels(self, task, labels, ops):
        return ops.is_integer(labels) & (labels >= 0) & (labels < task.num_classes)

    def expected_labels(self, task):
        return f"integer class ids in [0, {task.num_classes})"

    def label_shape_hint(self, task, received_shape):
        if tuple(received_shape) == (task.num_classes,):
            return (
                " These look like one-hot labels; give class ids instead, e.g. "
                "`np.argmax(y, axis=-1)`."
            )
        return ""

    def describe_export_outputs(self, task):
        return self._describe_class_outputs(task)

    def export_outputs(self, task, output):
        probabilities = self.probability_transform(task)(output)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return self._class_outputs(task, class_id, tf.reduce_max(probabilities, axis=-1))

    def constant_prediction(self, task, labels):
        return self._constant_from_ids(task, labels.reshape(len(labels), -1)[:, 0], ())

    def _constant_from_ids(self, task, ids, shape):
        """Smoothed class frequencies of the present ids in `ids`, repeated over `shape`
        (the pixels or tokens of one example), as the task's outputs."""
        ids = ids[present_labels(ids, task.resolved_missing_label)]
        if len(ids) == 0:
            raise errors.LabelError(f"Task {task.name!r} has no labels in the data.")
        units = task.num_classes
        counts = np.bincount(ids.astype("int64"), minlength=units)[:units]
        p = np.broadcast_to((counts + 1.0) / (counts.sum() + units), tuple(shape) + (units,))
        activation = self.activation_name(task)
        if activation == "softmax":
            return p.copy()
        if activation == "linear":
            return np.log(p)
        return None
