"""Multi-label classification: `num_classes` independent sigmoids, labels 0 or 1 per class."""

import tensorflow as tf

from keras_mtl.kinds.base import TaskKind
from keras_mtl.kinds.binary import SIGMOID_METRIC_ALIASES, bernoulli_constant


class Multilabel(TaskKind):
    """Any subset of `num_classes` classes: one sigmoid per class, labels multi-hot (-1: missing).

    Each entry is masked on its own, so an example may have some classes labelled and
    others not. An export gives a multi-hot vector at the task's `threshold`.

    Example:

    >>> kind = keras_mtl.kinds.get("multilabel")
    >>> kind.output_units(keras_mtl.Task("tags", "multilabel", num_classes=5))
    5
    """

    name = "multilabel"
    arguments = ("num_classes", "class_names")
    activation = "sigmoid"
    loss = "binary_crossentropy"
    metrics = ("auc",)
    metric_aliases = SIGMOID_METRIC_ALIASES
    missing_label = -1
    classification = True
    probability_activation = "sigmoid"

    def validate(self, task):
        self._check_num_classes(task, 1)
        self._check_class_names(task, task.num_classes, "one per class")

    def output_units(self, task):
        return task.num_classes

    def valid_labels(self, task, labels, ops):
        return (labels == 0) | (labels == 1)

    def expected_labels(self, task):
        return f"0 or 1 for each of the {task.num_classes} classes"

    def label_shape_hint(self, task, received_shape):
        if tuple(received_shape) in ((), (1,)) and task.num_classes > 1:
            return (
                " Give one 0/1 entry per class (multi-hot), e.g. from class ids with "
                "`keras.utils.to_categorical`."
            )
        return ""

    def describe_export_outputs(self, task):
        described = [(
            f"{task.name}_multi_hot",
            f"1 where the probability exceeds threshold={task.threshold}",
        )]
        if task.class_names is not None:
            described.append((f"{task.name}_labels", "class name where predicted, '' elsewhere"))
        return described

    def export_outputs(self, task, output):
        probabilities = self.probability_transform(task)(output)
        active = probabilities > task.threshold
        outputs = {f"{task.name}_multi_hot": tf.cast(active, tf.int32)}
        if task.class_names is not None:
            names = tf.broadcast_to(
                tf.constant(task.class_names, tf.string), tf.shape(probabilities)
            )
            outputs[f"{task.name}_labels"] = tf.where(active, names, "")
        return outputs

    def constant_prediction(self, task, labels):
        return bernoulli_constant(self, task, labels)
