"""Masked losses and metrics: missing labels add nothing to a task's loss or metrics."""

import math

import keras
import tensorflow as tf
from keras import ops

from keras_mtl import errors


def is_nan_marker(missing_label):
    """Whether `missing_label` means "NaN marks a missing label"."""
    if isinstance(missing_label, str):
        return missing_label.lower() == "nan"
    return isinstance(missing_label, float) and math.isnan(missing_label)


def label_mask(y_true, missing_label):
    """A boolean tensor, True where `y_true` holds a real label."""
    if missing_label is None:
        return ops.ones_like(y_true, dtype="bool")
    if is_nan_marker(missing_label):
        if not keras.backend.is_float_dtype(y_true.dtype):
            return ops.ones_like(y_true, dtype="bool")
        return ops.logical_not(ops.isnan(y_true))
    return ops.not_equal(y_true, ops.cast(missing_label, y_true.dtype))


def _prepare(y_true, y_pred, missing_label, elementwise):
    """Returns `(y_true, mask)` with missing labels replaced by zero.

    Element-wise labels (one per output unit, `elementwise=True`) are reshaped to `y_pred`'s
    shape and masked per entry; vector labels (`elementwise="vector"`: one label is the
    whole last axis, e.g. a surface normal) are masked per vector, missing when any entry
    is; sparse labels (one class id per sample, pixel or token) take `y_pred`'s shape
    without its class axis.
    """
    y_true = ops.convert_to_tensor(y_true)
    if elementwise:
        y_true = ops.reshape(y_true, ops.shape(y_pred))
    else:
        y_true = ops.reshape(y_true, ops.shape(y_pred)[:-1])
    mask = _mask(y_true, missing_label, elementwise)
    fill = mask[..., None] if elementwise == "vector" else mask
    y_true = ops.where(fill, y_true, ops.zeros_like(y_true))
    return y_true, mask


def _mask(y_true, missing_label, elementwise):
    mask = label_mask(y_true, missing_label)
    return ops.all(mask, axis=-1) if elementwise == "vector" else mask


def _broadcast_weight(sample_weight, rank):
    """Per-example (or per-position) sample weights with trailing axes up to `rank`."""
    sample_weight = ops.cast(sample_weight, "float32")
    while len(sample_weight.shape) < rank:
        sample_weight = ops.expand_dims(sample_weight, -1)
    return sample_weight


def _label_count(mask):
    """The number of labels present, as the denominator of a replica's mean.

    On one device it is the batch's own count. Under a `tf.distribute` strategy with several
    replicas, each replica's loss is later divided by the number of replicas and the
    gradients summed; dividing by the global count over the replicas instead of the local one
    makes that sum the mean over all labels of the global batch, even when replicas hold
    different numbers of labels.
    """
    count = ops.sum(mask)
    replica = tf.distribute.get_replica_context()
    if tf.distribute.has_strategy() and replica is not None and replica.num_replicas_in_sync > 1:
        total = ops.maximum(replica.all_reduce("sum", count), 1.0)
        return total / replica.num_replicas_in_sync
    return ops.maximum(count, 1.0)


def _unreduced(loss, y_true, y_pred):
    if isinstance(loss, keras.losses.Loss):
        return loss.call(y_true, y_pred)
    return loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedLoss(keras.losses.Loss):
    """A Keras loss that ignores missing labels.

    The loss of a batch is the mean of `loss` over the labels that are present; a batch in which
    no label is present gives exactly zero (and zero gradients), never NaN.

    Args:
        loss: a Keras loss: name, config, `keras.losses.Loss` instance or function.
        missing_label: the value that marks a missing label (`"nan"` or `float("nan")` for
            NaN, a number such as -1, or None for no masking).
        elementwise: True when labels have one entry per output unit (binary, multilabel,
            regression, dense regression); False for one sparse class id per sample, pixel
            or token (multiclass, segmentation, token classification); `"vector"` when one
            label is the output's whole last axis (unit vectors), missing if any entry is.

    Example:

    >>> import numpy as np
    >>> loss = keras_mtl.losses.MaskedLoss("mse", missing_label="nan")
    >>> float(loss(np.array([[1.0], [np.nan]]), np.array([[0.0], [5.0]])))
    1.0
    """

    def __init__(
        self,
        loss,
        missing_label="nan",
        elementwise=True,
        name=None,
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        self.loss = keras.losses.get(loss)
        self.missing_label = missing_label
        self.elementwise = elementwise
        if name is None:
            name = f"masked_{getattr(self.loss, 'name', getattr(self.loss, '__name__', 'loss'))}"
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            # Per-example weights of per-pixel or per-token losses weigh every position.
            sample_weight = _broadcast_weight(sample_weight, len(y_pred.shape) - 1)
        # Labels keep their own dtype (NaN and -1 markers must survive until they are masked).
        return super().__call__(ops.convert_to_tensor(y_true), y_pred, sample_weight)

    def call(self, y_true, y_pred):
        y_true, mask = _prepare(y_true, y_pred, self.missing_label, self.elementwise)
        if self.elementwise is True:
            values = _unreduced(self.loss, y_true[..., None], y_pred[..., None])
        else:
            values = _unreduced(self.loss, y_true, y_pred)
        mask = ops.cast(mask, values.dtype)
        values = ops.where(mask > 0, values, ops.zeros_like(values))
        if self.elementwise is True:
            values = ops.sum(values, axis=-1)
        # The base class divides by the number of values (examples, pixels or tokens);
        # scale so that the result is the mean over the labels that are present.
        size = ops.cast(ops.prod(ops.shape(values)), values.dtype)
        return values * size / _label_count(mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "loss": keras.saving.serialize_keras_object(self.loss),
                "missing_label": self.missing_label,
                "elementwise": self.elementwise,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedMetric(keras.metrics.Metric):
    """A Keras metric that ignores missing labels.

    Missing labels get a sample weight of zero. Element-wise labels are flattened first, so a
    mean metric (MAE, accuracy) averages over the present entries and AUC counts each present
    entry once.

    Args:
        metric: a Keras metric: name, config or instance.
        missing_label: the value that marks a missing label, as in `MaskedLoss`.
        elementwise: as in `MaskedLoss`.
        name: the name shown in the logs; defaults to the wrapped metric's name.

    Example:

    >>> import numpy as np
    >>> m = keras_mtl.losses.MaskedMetric(keras.metrics.MeanAbsoluteError(), missing_label="nan")
    >>> m.update_state(np.array([[1.0], [np.nan]]), np.array([[0.0], [5.0]]))
    >>> float(m.result())
    1.0
    """

    def __init__(self, metric, missing_label="nan", elementwise=True, name=None, dtype=None):
        metric = keras.metrics.get(metric)
        super().__init__(name=name or metric.name, dtype=dtype)
        self.metric = metric
        self.missing_label = missing_label
        self.elementwise = elementwise

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, mask = _prepare(y_true, y_pred, self.missing_label, self.elementwise)
        weight = ops.cast(mask, "float32")
        if sample_weight is not None:
            weight = weight * _broadcast_weight(sample_weight, len(weight.shape))
        # One row per label: an entry, a vector, or a class id with its row of scores.
        if self.elementwise is True:
            y_true = ops.reshape(y_true, (-1, 1))
            y_pred = ops.reshape(y_pred, (-1, 1))
        else:
            y_true = ops.reshape(y_true, (-1,) + ((y_true.shape[-1],) if self.elementwise else ()))
            y_pred = ops.reshape(y_pred, (-1, y_pred.shape[-1]))
        weight = ops.reshape(ops.broadcast_to(weight, ops.shape(mask)), (-1,))
        self.metric.update_state(y_true, y_pred, sample_weight=weight)

    def result(self):
        return self.metric.result()

    def reset_state(self):
        self.metric.reset_state()

    def get_config(self):
        return {
            "metric": keras.saving.serialize_keras_object(self.metric),
            "missing_label": self.missing_label,
            "elementwise": self.elementwise,
            "name": self.name,
            "dtype": self.dtype,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["metric"] = keras.saving.deserialize_keras_object(config["metric"])
        return cls(**config)


# === Losses and metrics of dense tasks ===


@keras.saving.register_keras_serializable(package="keras_mtl")
def cosine_distance(y_true, y_pred):
    """`1 - cos(y_true, y_pred)` along the last axis: 0 for the same direction, 2 opposite.

    Example:

    >>> import numpy as np
    >>> keras_mtl.losses.cosine_distance(np.array([[0.0, 1.0]]), np.array([[0.0, 3.0]])).numpy()
    array([0.], dtype=float32)
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    return 1.0 - ops.sum(_unit(y_true) * _unit(y_pred), axis=-1)


@keras.saving.register_keras_serializable(package="keras_mtl")
def angular_error(y_true, y_pred):
    """The angle between `y_true` and `y_pred` along the last axis, in degrees.

    Example:

    >>> import numpy as np
    >>> keras_mtl.losses.angular_error(np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]])).numpy()
    array([90.], dtype=float32)
    """
    cosine = 1.0 - cosine_distance(y_true, y_pred)
    return ops.arccos(ops.clip(cosine, -1.0, 1.0)) * (180.0 / math.pi)


@keras.saving.register_keras_serializable(package="keras_mtl")
def relative_error(y_true, y_pred):
    """`|y_true - y_pred| / |y_true|` per entry, averaged over the last axis.

    Labels must be non-zero (depths are); a zero label counts as a tiny positive one.

    Example:

    >>> import numpy as np
    >>> keras_mtl.losses.relative_error(np.array([[2.0]]), np.array([[1.5]])).numpy()
    array([0.25], dtype=float32)
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    return ops.mean(
        ops.abs(y_true - y_pred) / ops.maximum(ops.abs(y_true), keras.config.epsilon()), axis=-1
    )


def _unit(x):
    return x / ops.maximum(ops.sqrt(ops.sum(x * x, axis=-1, keepdims=True)), 1e-12)


@keras.saving.register_keras_serializable(package="keras_mtl")
class MacroF1(keras.metrics.Metric):
    """Macro-averaged F1 of class ids against the argmax of scores.

    Accumulates each class's true positives, false positives and false negatives (weighted
    by `sample_weight`, 0 for a missing label) and averages `2 TP / (2 TP + FP + FN)` over
    the classes that occur, as labels or predictions, in the data seen so far (as
    scikit-learn's `f1_score(average="macro")` does).

    Args:
        num_classes: the number of classes.
        name: the name in the logs.

    Example:

    >>> import numpy as np
    >>> f1 = keras_mtl.losses.MacroF1(3)
    >>> f1.update_state(np.array([0, 1, 1]), np.eye(3)[[0, 1, 0]])
    >>> round(float(f1.result()), 4)  # class 0: 2/3, class 1: 2/3
    0.6667
    """

    def __init__(self, num_classes, name="macro_f1", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        shape = (num_classes,)
        self.true_positives = self.add_variable(shape=shape, initializer="zeros", name="tp")
        self.false_positives = self.add_variable(shape=shape, initializer="zeros", name="fp")
        self.false_negatives = self.add_variable(shape=shape, initializer="zeros", name="fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        y_pred = ops.reshape(y_pred, (-1, self.num_classes))
        true = ops.one_hot(y_true, self.num_classes, dtype="float32")
        predicted = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes, dtype="float32")
        weight = ops.ones_like(true[:, :1])
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
        self.true_positives.assign_add(ops.sum(true * predicted * weight, axis=0))
        self.false_positives.assign_add(ops.sum((1.0 - true) * predicted * weight, axis=0))
        self.false_negatives.assign_add(ops.sum(true * (1.0 - predicted) * weight, axis=0))

    def result(self):
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        occurs = ops.cast(tp + fp + fn > 0, "float32")
        f1 = ops.divide_no_nan(2.0 * tp, 2.0 * tp + fp + fn)
        return ops.divide_no_nan(ops.sum(f1 * occurs), ops.sum(occurs))

    def reset_state(self):
        for variable in (self.true_positives, self.false_positives, self.false_negatives):
            variable.assign(ops.zeros_like(variable))

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}


# === The logged losses ===


def as_loss(identifier, task_name):
    """A `keras.losses.Loss` from what `compile` accepts for one output (name, config,
    instance or function)."""
    loss = keras.losses.get(identifier)
    if isinstance(loss, keras.losses.Loss):
        return loss
    if not callable(loss):
        raise errors.ConfigError(
            f"The loss of task {task_name!r} must be a Keras loss (name, config, "
            f"keras.losses.Loss or function). Received: {identifier!r}"
        )
    name = identifier if isinstance(identifier, str) else getattr(loss, "__name__", None)
    return _FunctionLoss(loss, name=name)


class _FunctionLoss(keras.losses.Loss):
    """A loss function with Keras' reduction (what `compile` makes of a function)."""

    def __init__(self, fn, name=None):
        super().__init__(name=name)
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def label_count(loss, y_true, y_pred):
    """How many labels `loss` averaged over for this batch (float32 scalar): the labels
    present for a `MaskedLoss` (entries, for element-wise labels), else the batch size."""
    if isinstance(loss, MaskedLoss):
        y_true = ops.convert_to_tensor(y_true)
        if loss.elementwise == "vector":
            y_true = ops.reshape(y_true, ops.shape(y_pred))
        mask = _mask(y_true, loss.missing_label, loss.elementwise)
        return ops.sum(ops.cast(mask, "float32"))
    return ops.cast(ops.shape(y_pred)[0], "float32")


class TaskLossMeans(keras.metrics.Metric):
    """Each task's loss averaged over every label seen, logged as `<task>_loss`.

    A batch's loss is a mean over its labels; weighing it by their number makes the result
    the mean over all the labels of the data, however it was batched (Keras' own tracker
    weighs batches by their size, which differs when labels are partial).

    Args:
        task_names: the names of the tasks, in the order of `update_state`'s vectors.
    """

    def __init__(self, task_names, name="task_losses", **kwargs):
        super().__init__(name=name, **kwargs)
        self.task_names = list(task_names)
        shape = (len(self.task_names),)
        self.totals = self.add_variable(shape=shape, initializer="zeros", name="totals")
        self.counts = self.add_variable(shape=shape, initializer="zeros", name="counts")

    def update_state(self, losses, counts):
        """Adds a batch: each task's mean loss and the number of labels it averaged over
        (vectors, one entry per task)."""
        counts = ops.cast(counts, "float32")
        self.totals.assign_add(_unscaled(losses) * counts)
        self.counts.assign_add(counts)

    def means(self):
        return ops.divide_no_nan(self.totals, self.counts)

    def result(self):
        means = self.means()
        return {f"{name}_loss": means[t] for t, name in enumerate(self.task_names)}


class TotalLoss(keras.metrics.Metric):
    """The logged `loss`: the task losses of `task_losses` with their static weights, plus
    the model's additional losses averaged per example.

    Args:
        task_losses: the model's `TaskLossMeans`.
    """

    def __init__(self, task_losses, name="loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self._task_losses = task_losses
        self.loss_weights = (1.0,) * len(task_losses.task_names)
        self.extra_total = self.add_variable(shape=(), initializer="zeros", name="extra_total")
        self.examples = self.add_variable(shape=(), initializer="zeros", name="examples")

    def update_state(self, extra, batch_size):
        """Adds a batch's additional loss."""
        batch_size = ops.cast(batch_size, "float32")
        self.extra_total.assign_add(_unscaled(ops.cast(extra, "float32")) * batch_size)
        self.examples.assign_add(batch_size)

    def result(self):
        weighted = ops.sum(self._task_losses.means() * ops.convert_to_tensor(self.loss_weights))
        return weighted + ops.divide_no_nan(self.extra_total, self.examples)


def _unscaled(value):
    """A loss as one replica computed it, times the number of replicas (as Keras logs it)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value * replicas if replicas > 1 else value
