"""Δm, the loss-weight-free multi-task score, and its default reference.

Δm (Maninis et al., CVPR 2019) measures each task against a reference and averages:

    delta_m = (1 / T) * sum_t (B_t - L_t) / B_t

See the `keras_mtl.tuning` package docstring for the choice of reference.
"""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.tasks import validate_tasks

DELTA_M = "delta_m"

# Metric names whose larger values are better, for per-task objectives.
_MAX_METRICS = (
    "accuracy", "auc", "precision", "recall", "f1", "f1_score", "r2", "r2_score", "iou",
    "delta_m",
)


def delta_m(losses, reference):
    """Δm of per-task losses against reference losses: `mean_t (B_t - L_t) / B_t`.

    Args:
        losses: dict task name -> the task's loss.
        reference: dict task name -> the reference loss `B_t` (positive), same keys.

    Returns:
        A float; higher is better, 0 is as good as the reference.

    Example:

    >>> keras_mtl.tuning.delta_m({"a": 0.5, "b": 3.0}, {"a": 1.0, "b": 4.0})
    0.375
    """
    if sorted(losses) != sorted(reference):
        raise errors.ConfigError(
            "`losses` and `reference` must name the same tasks. Received: losses for "
            f"{sorted(losses)}, reference for {sorted(reference)}"
        )
    terms = [(reference[t] - losses[t]) / reference[t] for t in reference]
    return float(sum(terms) / len(terms))


def _to_numpy_labels(value):
    if isinstance(value, tf.Tensor):
        value = value.numpy()
    return np.asarray(value)


def _constant_prediction(task, labels):
    """The best constant prediction for `task` from `labels`, shaped as one example's output."""
    try:
        constant = task.kind_object.constant_prediction(task, _to_numpy_labels(labels))
    except errors.LabelError as e:
        raise errors.ConfigError(
            f"{e} The reference is computed from these labels; pass `reference={{...}}` to "
            "`MTLHyperModel`."
        ) from None
    if constant is None:
        raise errors.ConfigError(
            f"The default reference (the loss of the best constant prediction) is not defined "
            f"for task {task.name!r} (kind={task.kind!r}, "
            f"activation={task.output_activation!r}). Pass `reference={{task_name: loss, ...}}` "
            "to `MTLHyperModel`, e.g. single-task baselines."
        )
    return constant


def prior_reference(tasks, y_train, y_eval=None):
    """The default Δm reference: each task's loss when predicting a constant.

    The constant is fitted to `y_train` (class frequencies with add-one smoothing for
    binary, multi-label and multi-class tasks; the mean for regression) and its loss,
    computed with the task's own loss function (missing labels ignored), is measured on
    `y_eval` (default `y_train`).

    Args:
        tasks: the `keras_mtl.Task`s.
        y_train: dict task name -> training labels.
        y_eval: dict task name -> labels to score the constant on, e.g. validation labels.

    Returns:
        dict task name -> positive float.

    Example:

    >>> tasks = [keras_mtl.Task("odd", "binary")]
    >>> ref = keras_mtl.tuning.prior_reference(tasks, {"odd": np.array([0, 1, 1, 1])})
    >>> round(ref["odd"], 4)  # cross-entropy of p = (3 + 1) / (4 + 2)
    0.5788
    """
    tasks = validate_tasks(tasks)
    y_eval = y_train if y_eval is None else y_eval
    reference = {}
    for task in tasks:
        for split, labels in (("y_train", y_train), ("y_eval", y_eval)):
            if task.name not in labels:
                raise errors.LabelError(
                    f"`{split}` lacks labels for task {task.name!r}. Received keys "
                    f"{sorted(labels)}"
                )
        constant = _constant_prediction(task, y_train[task.name])
        target = _to_numpy_labels(y_eval[task.name])
        constant = constant.astype("float32")
        prediction = np.broadcast_to(constant, (len(target),) + constant.shape)
        if task.elementwise_labels:
            target = target.astype("float32").reshape(prediction.shape)
        value = float(keras.ops.convert_to_numpy(task.build_loss()(target, prediction)))
        if not math.isfinite(value) or value <= 0:
            raise errors.ConfigError(
                f"The reference loss of task {task.name!r} is {value}: a constant predicts "
                "it perfectly, so no model can be measured against it. Pass "
                "`reference={...}` to `MTLHyperModel`."
            )
        reference[task.name] = value
    return reference


class DeltaM(keras.callbacks.Callback):
    """Adds Δm, a loss-weight-free multi-task score, to the training logs at each epoch end.

    `delta_m = mean_t (B_t - L_t) / B_t` over the tasks, where `L_t` is the task's own
    unweighted loss as Keras logs it (`<task>_loss`, and `val_<task>_loss` for validation)
    and `B_t` a fixed reference loss. The callback writes `delta_m` and `val_delta_m` into
    the logs dict in place, so callbacks after it in the list (KerasTuner's, `History`,
    `TensorBoard`, `EarlyStopping`) see them. `MTLHyperModel.fit` puts it first.

    Args:
        reference: dict task name -> reference loss `B_t` (positive floats), e.g. from
            `keras_mtl.tuning.prior_reference` or single-task baselines.
        loss_weights: dict task name -> loss weight; only used for a single-task model,
            whose logs have no per-task loss (its `loss` is divided by the weight).
        name: the name of the logged value (`val_` is prefixed for validation).

    Example:

    ```python
    reference = keras_mtl.tuning.prior_reference(model.tasks, y_train, y_val)
    model.fit(x, y, validation_data=(x_val, y_val),
              callbacks=[keras_mtl.tuning.DeltaM(reference)])
    ```

    Reference:
        Maninis, Radosavovic, Kokkinos, "Attentive Single-Tasking of Multiple Tasks",
        CVPR 2019.
    """

    def __init__(self, reference, loss_weights=None, name=DELTA_M):
        super().__init__()
        if not isinstance(reference, dict) or not reference:
            raise errors.ConfigError(
                "`reference` must be a non-empty dict task name -> reference loss. "
                f"Received: reference={reference!r}"
            )
        for task_name, value in reference.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise errors.ConfigError(
                    "`reference` values must be positive finite numbers. Received: "
                    f"reference[{task_name!r}]={value!r}"
                )
        self.reference = {k: float(v) for k, v in reference.items()}
        self.loss_weights = dict(loss_weights) if loss_weights else None
        self.name = name

    def _task_losses(self, logs, prefix):
        keys = {t: f"{prefix}{t}_loss" for t in self.reference}
        if all(k in logs for k in keys.values()):
            return {t: float(logs[k]) for t, k in keys.items()}
        if len(self.reference) == 1 and f"{prefix}loss" in logs:
            (task_name,) = self.reference
            weight = (self.loss_weights or {}).get(task_name, 1.0)
            return {task_name: float(logs[f"{prefix}loss"]) / weight}
        return None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for prefix in ("", "val_"):
            losses = self._task_losses(logs, prefix)
            if losses is not None:
                logs[f"{prefix}{self.name}"] = delta_m(losses, self.reference)


def _direction(metric):
    name = metric.lower()
    if name.startswith("val_"):
        name = name[len("val_"):]
    return "max" if any(name == m or name.endswith("_" + m) for m in _MAX_METRICS) else "min"
