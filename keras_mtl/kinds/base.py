"""`TaskKind`, the base class of task kinds: everything that differs between a binary, a
multi-class, a regression (or any other) task lives in one subclass per kind."""

import numbers

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.losses import is_nan_marker, label_mask


class TaskKind:
    """One kind of task: its head, loss, metrics, labels, export outputs and Δm constant.

    A `keras_mtl.Task` stores its `kind` as a name; `keras_mtl.kinds.get(name)` gives the
    `TaskKind` that builds and checks everything kind-dependent for it. Kinds hold no state:
    every method takes the `Task` it works for, whose arguments (`num_classes`, `units`,
    `class_names`, `threshold`, ...) it reads.

    A new kind is one subclass, registered with `keras_mtl.kinds.register`. It sets the class
    attributes below and overrides the methods whose default does not fit:

    - `name`: the registered name, a lower-case identifier (`Task(..., kind=name)`).
    - `arguments`: the size arguments of `Task` the kind takes, among `"num_classes"`,
      `"units"`, `"class_names"` and `"head_layers"`; a `Task` given another one fails.
    - `options`: keyword arguments of `Task` that only this kind takes, as a dict name ->
      default (e.g. `{"output_size": None}` for a kind whose head upsamples). `Task` stores
      them as attributes under the same names and in its config.
    - `activation`, `loss`, `metrics`: the defaults of the output activation, the loss and
      the metric names (`default_loss` / `default_metrics` may choose them from options).
    - `metric_aliases`: metric names that mean a kind-specific metric (`"accuracy"` is
      binary accuracy for a binary task, sparse categorical accuracy for a multi-class one),
      as a dict name -> function of the task returning a fresh Keras metric.
    - `missing_label`: the default marker of a missing label: a number, `"nan"` or None.
    - `sparse_labels`: False when labels have one entry per output unit (each entry masked
      on its own); True when a label is one integer class id for the whole output vector.
    - `head_input`: what the head reads: `"vector"` (the pooled features), or, for dense
      kinds, a feature map `(batch, height, width, channels)` (`"feature_map"`) or a
      sequence `(batch, length, channels)` (`"sequence"`), whose spatial or sequence axes
      the head keeps. A dense kind's `build_head` takes `input_size`, the `(height, width)`
      of the model's input (None when unknown), to resize its output to.
    - `classification`: whether the loss is a cross-entropy over classes (Uncertainty
      weighting scales such losses by 1, squared errors by 1/2).
    - `probability_activation`: the activation whose outputs are probabilities (`"sigmoid"`,
      `"softmax"`); exports post-process only kinds that have one.

    Labels: per example, a task's labels have the shape `label_shape(task, output_shape)`
    (the output's shape, without the class axis for sparse labels); `(n,)` and `(n, 1)`
    are interchangeable. Each present entry must satisfy `valid_labels`, checked with
    NumPy on arrays before training and with TensorFlow ops on every batch of a
    `tf.data.Dataset`; entries equal to the task's missing-label marker are not checked.

    Example:

    A count task (Poisson regression), as a new kind:

    >>> @keras_mtl.kinds.register
    ... class Count(keras_mtl.kinds.TaskKind):
    ...     name = "count"
    ...     arguments = ("units",)
    ...     activation = "exponential"
    ...     loss = "poisson"
    ...     metrics = ("mae",)
    ...     missing_label = "nan"
    ...
    ...     def output_units(self, task):
    ...         return task.units or 1
    ...
    ...     def valid_labels(self, task, labels, ops):
    ...         return ops.is_integer(labels) & (labels >= 0)
    ...
    ...     def expected_labels(self, task):
    ...         return "integer counts >= 0"
    >>> task = keras_mtl.Task("visits", "count")
    >>> task.output_units, task.output_activation, task.resolved_missing_label
    (1, 'exponential', 'nan')
    """

    name = None
    arguments = ()
    options = {}
    activation = "linear"
    loss = None
    metrics = ()
    metric_aliases = {}
    missing_label = None
    sparse_labels = False
    head_input = "vector"
    classification = False
    probability_activation = None

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"

    # === The task specification ===

    def validate(self, task):
        """Checks the kind's own arguments of `task`; raises `keras_mtl.errors.TaskSpecError`."""

    def _fail(self, task, message, error=errors.TaskSpecError):
        raise error(f"Task {task.name!r}: {message}")

    def _check_num_classes(self, task, minimum):
        if task.num_classes is None:
            self._fail(
                task, f"a {self.name!r} task needs `num_classes`. Received: num_classes=None"
            )
        if not _is_int(task.num_classes) or task.num_classes < minimum:
            self._fail(
                task,
                f"`num_classes` must be an integer >= {minimum} for a {self.name!r} task. "
                f"Received: num_classes={task.num_classes!r}",
            )

    def _check_units(self, task):
        if task.units is not None and (not _is_int(task.units) or task.units < 1):
            self._fail(task, f"`units` must be an integer >= 1. Received: units={task.units!r}")

    def _check_class_names(self, task, expected, described):
        if task.class_names is not None and len(task.class_names) != expected:
            self._fail(
                task,
                f"`class_names` must have {expected} entries ({described}). Received "
                f"{len(task.class_names)}: class_names={task.class_names!r}",
            )

    # === What the task builds ===

    def output_units(self, task):
        """The size of the task's output layer."""
        raise NotImplementedError

    def output_activation(self, task):
        return task.activation or self.activation

    def default_loss(self, task):
        """The loss of a task that gives none."""
        return self.loss

    def default_metrics(self, task):
        """The metric names of a task that gives none."""
        return list(self.metrics)

    def elementwise(self, task):
        """How labels are masked: True per entry, False per sparse class id, `"vector"` per
        vector along the last axis (see `keras_mtl.losses.MaskedLoss`)."""
        return not self.sparse_labels

    def build_metric_alias(self, task, name):
        """A fresh kind-specific metric for the name `name`, or None if it is not an alias."""
        factory = self.metric_aliases.get(name.lower())
        return None if factory is None else factory(task)

    def build_head(self, task, features):
        """Applies fresh head layers to `features`; the output layer is named `task.name`."""
        x = self._hidden_layers(task, features)
        # The output layer computes in float32 under mixed precision, as Keras advises.
        return keras.layers.Dense(
            self.output_units(task), activation=self.output_activation(task), name=task.name,
            dtype="float32",
        )(x)

    def _hidden_layers(self, task, features):
        x = features
        for i, width in enumerate(task.head_units):
            x = keras.layers.Dense(width, activation="relu", name=f"{task.name}_head_{i}")(x)
            if task.head_dropout:
                x = keras.layers.Dropout(task.head_dropout, name=f"{task.name}_head_dropout_{i}")(
                    x
                )
        return x

    # === Labels ===

    def label_shape(self, task, output_shape):
        """The shape of one example's labels, given its output's (None: not checked).

        `None` entries match any size. A task with a loss of its own and no missing-label
        marker reads its labels as its loss does, so their shape is not checked.
        """
        if task.loss is not None and task.resolved_missing_label is None:
            return None
        output_shape = tuple(output_shape)
        return output_shape[:-1] if self.sparse_labels else output_shape

    def valid_labels(self, task, labels, ops):
        """A boolean array: True where a label entry is a value the task can learn from.

        `labels` is a NumPy array or a TensorFlow tensor (integer or float, never bool) and
        `ops` gives `is_finite(x)` and `is_integer(x)` (integral values) for it; comparison
        and `&`, `|` operators work on both. Entries equal to the missing-label marker are
        not checked, whatever this returns for them.
        """
        return ops.is_finite(labels)

    def expected_labels(self, task):
        """What `valid_labels` accepts, in words, for error messages."""
        return "finite numbers"

    def label_shape_hint(self, task, received_shape):
        """A hint appended to the error for labels of the per-example shape `received_shape`."""
        return ""

    def label_mask(self, task, labels):
        """A boolean tensor, True where `labels` holds a real (not missing) label."""
        return label_mask(labels, task.resolved_missing_label)

    # === Export ===

    def activation_name(self, task):
        activation = self.output_activation(task)
        if activation is None or isinstance(activation, str):
            return activation
        return keras.activations.serialize(activation)

    def probability_transform(self, task):
        """None for a task without post-processing, else a function from outputs to probabilities.

        Outputs are probabilities when the task's activation is `probability_activation`,
        logits when it is linear; other activations raise `keras_mtl.errors.ExportError`.
        """
        if self.probability_activation is None:
            return None
        activation = self.activation_name(task)
        if activation == self.probability_activation:
            return lambda x: x
        if activation in ("linear", None):
            return tf.nn.softmax if self.probability_activation == "softmax" else tf.sigmoid
        raise errors.ExportError(
            f"Task {task.name!r}: cannot post-process a {self.name!r} output with activation "
            f"{activation!r}; expected {self.probability_activation!r} (probabilities) or "
            "'linear' (logits). Pass postprocess=False to export the raw outputs only."
        )

    def describe_export_outputs(self, task):
        """The post-processed outputs an export adds for the task: `[(name, meaning), ...]`."""
        return []

    def export_outputs(self, task, output):
        """The post-processed outputs of `describe_export_outputs`, from the raw `output`."""
        return {}

    def _describe_class_outputs(self, task):
        described = [
            (f"{task.name}_class_id", "predicted class index"),
            (f"{task.name}_probability", "probability of the predicted class"),
        ]
        if task.class_names is not None:
            described.append((f"{task.name}_label", "class name of the predicted class"))
        return described

    def _class_outputs(self, task, class_id, probability):
        outputs = {
            f"{task.name}_class_id": class_id,
            f"{task.name}_probability": probability,
        }
        if task.class_names is not None:
            outputs[f"{task.name}_label"] = tf.gather(
                tf.constant(task.class_names, tf.string), class_id
            )
        return outputs

    # === The Δm reference ===

    def constant_prediction(self, task, labels):
        """The output of the best constant prediction for `labels` (a NumPy array).

        Returns an array shaped as one example's output, or None when the kind has no such
        constant for the task's activation and loss. Raises `keras_mtl.errors.LabelError` when
        `labels` hold no label to fit it to.
        """
        return None

    def _present_columns(self, task, labels):
        """Labels as an `(n, units)` float array and the mask of present entries.

        Raises `LabelError` when an output unit has no label at all.
        """
        units = self.output_units(task)
        values = labels.astype("float64").reshape(len(labels), units)
        present = present_labels(values, task.resolved_missing_label)
        if np.any(present.sum(axis=0) == 0):
            raise errors.LabelError(f"Task {task.name!r} has no labels in the data.")
        return values, present


def present_labels(values, missing_label):
    """A boolean NumPy array, True where `values` holds a real label (not the marker)."""
    if missing_label is None:
        return np.ones(values.shape, dtype=bool)
    if is_nan_marker(missing_label):
        if values.dtype.kind != "f":
            return np.ones(values.shape, dtype=bool)
        return ~np.isnan(values)
    return values != missing_label


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def clone(obj):
    """A fresh copy of a Keras object, so a Task can build several models without sharing."""
    if isinstance(obj, (str, numbers.Number)) or obj is None:
        return obj
    if isinstance(obj, keras.layers.Layer):
        return keras.layers.deserialize(keras.layers.serialize(obj))
    if isinstance(obj, (keras.metrics.Metric, keras.losses.Loss)):
        return obj.__class__.from_config(obj.get_config())
    return obj
