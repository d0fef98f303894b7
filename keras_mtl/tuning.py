"""Hyperparameter search for multi-task models with KerasTuner.

`MTLHyperModel` searches per-task loss weights, the shared block and the learning rate with
any KerasTuner tuner. Its default objective, `val_delta_m`, does not depend on the loss
weights: Keras' `val_loss` is the *weighted* sum of the task losses, so tuning loss weights
against it rewards small weights on hard tasks, not better models.

Δm (Maninis et al., CVPR 2019) measures each task against a reference and averages:

    delta_m = (1 / T) * sum_t (B_t - L_t) / B_t

where `L_t` is task t's own (unweighted) loss, as Keras logs it (`val_<task>_loss`), and `B_t`
the same loss of a reference predictor. Higher is better: 0.4 means the task losses are on
average 40 % below the reference. By default `B_t` is the loss of the best *constant*
prediction, fitted to the training labels (class frequencies with add-one smoothing for
classification, the label mean for regression) and scored on the validation labels: it is
fixed for a data set, so every trial, tuner and worker is measured against the same numbers;
each task counts relative to its own scale; and neither the loss weights nor a trial's random
initialisation can move it. Single-task baselines (the usual reference in the literature) can
be given instead with `reference={task: loss}`.
"""

import math
import numbers

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from keras_mtl import errors
from keras_mtl import sharing as sharing_module
from keras_mtl import weighting as weighting_module
from keras_mtl.model import build_mtl_model
from keras_mtl.tasks import Task, validate_tasks

DELTA_M = "delta_m"

# The default search space. Each entry: the knob's name and its range, in the forms
# `search_space` accepts. `loss_weight` stands for one knob per task, `loss_weight/<task>`.
DEFAULT_SEARCH_SPACE = {
    "loss_weight": {"min_value": 0.1, "max_value": 10.0, "sampling": "log"},
    "shared_layers": {"min_value": 1, "max_value": 3},
    "shared_units": [32, 64, 128, 256],
    "dropout": {"min_value": 0.0, "max_value": 0.5, "step": 0.1},
    "learning_rate": {"min_value": 1e-4, "max_value": 1e-2, "sampling": "log"},
}

# Knobs outside the default space that `search_space` can add.
_EXTRA_KNOBS = ("sharing", "weighting")
_BUILD_KNOBS = ("shared_layers", "shared_units", "dropout", "learning_rate") + _EXTRA_KNOBS
_LOSS_WEIGHT = "loss_weight"

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
    """The best constant prediction for `task` from `labels`, shape `(output_units,)`."""
    labels = _to_numpy_labels(labels)
    marker = task.resolved_missing_label
    kind = task.kind
    activation = task.output_activation
    units = task.output_units
    if kind in ("binary", "multilabel", "regression"):
        values = labels.astype("float64").reshape(len(labels), units)
        present = np.ones_like(values, dtype=bool)
        if marker is not None:
            if isinstance(marker, str) or (isinstance(marker, float) and math.isnan(marker)):
                present = ~np.isnan(values)
            else:
                present = values != marker
        counts = present.sum(axis=0)
        if np.any(counts == 0):
            raise errors.ConfigError(
                f"Task {task.name!r} has no labels in the data the reference is computed "
                "from; pass `reference={...}` to `MTLHyperModel`."
            )
        sums = np.where(present, values, 0.0).sum(axis=0)
        if kind == "regression":
            if activation != "linear":
                raise errors.ConfigError(
                    f"The default reference needs a linear output for regression task "
                    f"{task.name!r}. Received activation={activation!r}; pass "
                    "`reference={...}` instead."
                )
            return sums / counts
        p = (sums + 1.0) / (counts + 2.0)
        if activation == "sigmoid":
            return p
        if activation == "linear":
            return np.log(p / (1.0 - p))
    elif kind == "multiclass":
        ids = labels.reshape(len(labels), -1)[:, 0]
        if marker is not None:
            ids = ids[ids != marker]
        if len(ids) == 0:
            raise errors.ConfigError(
                f"Task {task.name!r} has no labels in the data the reference is computed "
                "from; pass `reference={...}` to `MTLHyperModel`."
            )
        counts = np.bincount(ids.astype("int64"), minlength=units)[:units]
        p = (counts + 1.0) / (counts.sum() + units)
        if activation == "softmax":
            return p
        if activation == "linear":
            return np.log(p)
    raise errors.ConfigError(
        f"The default reference (the loss of the best constant prediction) is not defined "
        f"for task {task.name!r} (kind={kind!r}, activation={activation!r}). Pass "
        "`reference={task_name: loss, ...}` to `MTLHyperModel`, e.g. single-task baselines."
    )


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
        prediction = np.tile(constant.astype("float32"), (len(target), 1))
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


def _check_range(knob, spec):
    """Checks one `search_space` entry; returns it."""
    if spec is None or spec is True:
        return spec
    if isinstance(spec, (list, tuple)) and not (
        isinstance(spec, tuple) and len(spec) == 2 and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in spec
        )
    ):
        if not spec:
            raise errors.ConfigError(
                f"`search_space[{knob!r}]` must not be an empty list of choices."
            )
        return list(spec)
    if isinstance(spec, tuple):
        # A bare range keeps the default's sampling (log for loss weights and learning rate).
        default = DEFAULT_SEARCH_SPACE.get(knob.split("/")[0])
        spec = {"min_value": spec[0], "max_value": spec[1]}
        if isinstance(default, dict) and "sampling" in default:
            spec["sampling"] = default["sampling"]
    if not isinstance(spec, dict) or "min_value" not in spec or "max_value" not in spec:
        raise errors.ConfigError(
            f"`search_space[{knob!r}]` must be a `(min, max)` tuple, a dict with `min_value`, "
            "`max_value` (and optionally `step`, `sampling`), a list of choices, True (the "
            f"default range) or None (not searched). Received: {spec!r}"
        )
    unknown = set(spec) - {"min_value", "max_value", "step", "sampling"}
    if unknown:
        raise errors.ConfigError(
            f"`search_space[{knob!r}]` has unknown keys {sorted(unknown)}; valid keys are "
            f"min_value, max_value, step, sampling. Received: {spec!r}"
        )
    low, high = spec["min_value"], spec["max_value"]
    if not low < high:
        raise errors.ConfigError(
            f"`search_space[{knob!r}]` must have min_value < max_value. Received: {spec!r}"
        )
    if (knob.startswith(_LOSS_WEIGHT) or knob == "learning_rate") and low <= 0:
        raise errors.ConfigError(
            f"`search_space[{knob!r}]` must be positive. Received: {spec!r}"
        )
    return dict(spec)


def _clone_backbone(backbone):
    """A copy of a backbone object, so trials never share weights or graph state."""
    if isinstance(backbone, keras.Model):
        clone = keras.models.clone_model(backbone)
        clone.set_weights(backbone.get_weights())
        return clone
    if isinstance(backbone, keras.layers.Layer):
        return backbone.__class__.from_config(backbone.get_config())
    if keras.backend.is_keras_tensor(backbone):
        return keras.Input(
            shape=backbone.shape[1:], dtype=backbone.dtype, name=backbone.name
        )
    if isinstance(backbone, dict):
        return {k: _clone_backbone(v) for k, v in backbone.items()}
    return backbone


def _clone_keras_object(obj):
    return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))


def _direction(metric):
    name = metric.lower()
    if name.startswith("val_"):
        name = name[len("val_"):]
    return "max" if any(name == m or name.endswith("_" + m) for m in _MAX_METRICS) else "min"


class MTLHyperModel(keras_tuner.HyperModel):
    """A KerasTuner hypermodel over loss weights, the shared block and the learning rate.

    `build(hp)` calls `keras_mtl.build_mtl_model(backbone, tasks, **build_kwargs)` with the
    values the tuner chose. The default search space (`keras_mtl.tuning.DEFAULT_SEARCH_SPACE`)
    has these knobs:

    - `loss_weight/<task>`: one per task (when there are two or more), log-uniform in
      [0.1, 10]. The model's loss weights are these values divided by their mean, so they
      average 1: only their ratios matter, and the learning rate's meaning does not change
      with their scale. The tuner's recorded values are the raw draws; `results_table`
      also shows the normalised ones.
    - `shared_layers`: int in [1, 3]; `shared_units`: one of 32, 64, 128, 256;
      `dropout`: 0.0 to 0.5 in steps of 0.1; `learning_rate`: log-uniform in [1e-4, 1e-2].

    `search_space={"sharing": True, "weighting": True}` adds the sharing strategy and the
    weighting method, chosen among the names registered when the model is built
    (`keras_mtl.sharing.names()`, `keras_mtl.weighting.names()`), or among a given list.

    The objective, `hypermodel.objective`, is `keras_tuner.Objective("val_delta_m", "max")`:
    Δm of the validation task losses against a fixed reference (see `keras_mtl.tuning`'s
    module docstring and `DeltaM`). `fit` computes the reference from the data it is given
    and adds `delta_m` / `val_delta_m` to the training logs before any other callback runs.

    Args:
        backbone: as for `build_mtl_model`. A `keras.Model` backbone is cloned, weights
            included, for every trial so that trials never share weights; a
            `keras.layers.Layer` is re-created from its config (fresh weights).
        tasks: the `keras_mtl.Task`s.
        search_space: dict knob -> range, overriding or extending the defaults. A range is a
            `(min, max)` tuple (ints give an integer knob), a dict of `keras_tuner`
            `Int`/`Float` arguments (`min_value`, `max_value`, `step`, `sampling`), a list
            of choices, `True` (the default range; for `sharing` / `weighting` all
            registered names) or `None` (do not search: the `build_mtl_model` default, or
            for loss weights each task's own `loss_weight`). `"loss_weight"` sets the range
            of every task's weight, `"loss_weight/<task>"` of one.
        fixed: dict knob -> value, to hold knobs constant (they are recorded as
            `keras_tuner` `Fixed` hyperparameters, so they appear in the results). Fixing
            `loss_weight/<task>` for one task makes the others' weights ratios to it.
        reference: `"prior"` (default: the loss of the best constant prediction; see
            `prior_reference`) or a dict task name -> reference loss, e.g. single-task
            baselines.
        name: the hypermodel's name.
        tunable: as for `keras_tuner.HyperModel`.
        **build_kwargs: further arguments of `build_mtl_model`. Giving a searchable knob
            here (e.g. `shared_layers=2`) fixes it.

    Example:

    ```python
    data = keras_mtl.datasets.multi_digits()
    (x, y), (x_val, y_val), _ = data
    hypermodel = keras_mtl.MTLHyperModel(
        keras.Input(x.shape[1:]), data.tasks, search_space={"shared_layers": (1, 2)}
    )
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=10, directory="tuning"
    )
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=5)
    print(keras_mtl.tuning.results_table(tuner))
    ```

    Reference:
        Maninis, Radosavovic, Kokkinos, "Attentive Single-Tasking of Multiple Tasks",
        CVPR 2019 (Δm).
    """

    def __init__(
        self,
        backbone,
        tasks,
        *,
        search_space=None,
        fixed=None,
        reference="prior",
        name=None,
        tunable=True,
        **build_kwargs,
    ):
        super().__init__(name=name, tunable=tunable)
        self.backbone = backbone
        self.tasks = validate_tasks(tasks)
        self.search_space = dict(search_space) if search_space else {}
        self.fixed = dict(fixed) if fixed else {}
        self.reference = reference
        self.build_kwargs = build_kwargs
        self._reference_cache = {}

        for key in ("compile", "loss_weights"):
            if key in build_kwargs:
                raise errors.ConfigError(
                    f"`MTLHyperModel` does not accept `{key}`: its models are compiled with "
                    "the searched loss weights. Use `fixed={'loss_weight/<task>': ...}` or "
                    f"`search_space={{'loss_weight': None}}`. Received: {key}="
                    f"{build_kwargs[key]!r}"
                )
        if not (reference == "prior" or isinstance(reference, dict)):
            raise errors.ConfigError(
                "`reference` must be 'prior' or a dict task name -> reference loss. "
                f"Received: reference={reference!r}"
            )
        if isinstance(reference, dict):
            if sorted(reference) != sorted(self.task_names):
                raise errors.ConfigError(
                    f"`reference` must have one entry per task {self.task_names}. Received "
                    f"keys {sorted(reference)}"
                )
            DeltaM(reference)  # checks the values
        self._space = self._resolve_space()

    @property
    def task_names(self):
        return [t.name for t in self.tasks]

    @property
    def objective(self):
        """The default objective, `keras_tuner.Objective("val_delta_m", "max")`."""
        return keras_tuner.Objective(f"val_{DELTA_M}", "max")

    def task_objectives(self, metric="loss", direction=None):
        """One `keras_tuner.Objective` per task, on its validation `metric`.

        Give the list to a tuner for a multi-objective search (KerasTuner ranks trials by
        the sum of the objectives, which mixes task scales: use `pareto_front` to compare
        trials), or to `pareto_front` / `results_table` directly.

        Args:
            metric: the metric's name as logged (`"loss"`, `"accuracy"`, `"mae"`, ...), or
                a dict task name -> metric name.
            direction: `"min"` or `"max"`; inferred from the name when None (accuracy,
                AUC, precision, recall: max; losses and errors: min).
        """
        metrics = metric if isinstance(metric, dict) else {t: metric for t in self.task_names}
        unknown = sorted(set(metrics) - set(self.task_names))
        if unknown:
            raise errors.ConfigError(
                f"`metric` names unknown tasks {unknown}; the tasks are {self.task_names}."
            )
        if direction not in (None, "min", "max"):
            raise errors.ConfigError(
                f"`direction` must be 'min', 'max' or None. Received: direction={direction!r}"
            )
        objectives = []
        for task_name in self.task_names:
            if task_name in metrics:
                name = f"val_{task_name}_{metrics[task_name]}"
                objectives.append(
                    keras_tuner.Objective(name, direction or _direction(metrics[task_name]))
                )
        return objectives

    # === Search space ===

    def _knob_names(self):
        names = list(_BUILD_KNOBS) + [_LOSS_WEIGHT]
        return names + [f"{_LOSS_WEIGHT}/{t}" for t in self.task_names]

    def _resolve_space(self):
        valid = self._knob_names()
        for source, mapping in (("search_space", self.search_space), ("fixed", self.fixed)):
            unknown = [k for k in mapping if k not in valid]
            if unknown:
                raise errors.ConfigError(
                    f"`{source}` names unknown knobs {unknown}. Valid knobs: {valid}"
                )
        both = sorted(set(self.search_space) & set(self.fixed))
        if both:
            raise errors.ConfigError(
                f"Knobs {both} are both searched (`search_space`) and fixed (`fixed`)."
            )
        if "loss_weight" in self.fixed:
            raise errors.ConfigError(
                "Fix loss weights per task, `fixed={'loss_weight/<task>': value}`, or keep "
                "each task's own `loss_weight` with `search_space={'loss_weight': None}`."
            )
        fixed = dict(self.fixed)
        for knob in _BUILD_KNOBS:
            if knob in self.build_kwargs:
                if knob in self.search_space:
                    raise errors.ConfigError(
                        f"`{knob}` is both given as a build argument and searched "
                        "(`search_space`)."
                    )
                fixed[knob] = self.build_kwargs[knob]

        space = {}
        for knob in _BUILD_KNOBS:
            if knob in fixed:
                space[knob] = ("fixed", fixed[knob])
                continue
            spec = self.search_space.get(knob, DEFAULT_SEARCH_SPACE.get(knob))
            spec = _check_range(knob, spec)
            if spec is True:
                spec = DEFAULT_SEARCH_SPACE.get(knob, True)
            if spec is not None:
                space[knob] = ("search", spec)

        weight_default = _check_range(
            _LOSS_WEIGHT,
            self.search_space.get(_LOSS_WEIGHT, DEFAULT_SEARCH_SPACE[_LOSS_WEIGHT]),
        )
        if weight_default is True:
            weight_default = DEFAULT_SEARCH_SPACE[_LOSS_WEIGHT]
        for task in self.tasks:
            knob = f"{_LOSS_WEIGHT}/{task.name}"
            if knob in fixed:
                value = fixed[knob]
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0:
                    raise errors.ConfigError(
                        f"`fixed[{knob!r}]` must be a positive number. Received: {value!r}"
                    )
                space[knob] = ("fixed", float(value))
                continue
            spec = _check_range(knob, self.search_space.get(knob, weight_default))
            if spec is True:
                spec = DEFAULT_SEARCH_SPACE[_LOSS_WEIGHT]
            if spec is not None and len(self.tasks) > 1:
                space[knob] = ("search", spec)
        return space

    def _declare(self, hp, knob, mode, spec):
        if mode == "fixed":
            if isinstance(spec, (bool, numbers.Real, str)):
                return hp.Fixed(knob, spec)
            return spec
        if spec is True:
            registry = sharing_module if knob == "sharing" else weighting_module
            spec = registry.names()
        if isinstance(spec, list):
            return hp.Choice(knob, spec)
        low, high = spec["min_value"], spec["max_value"]
        kwargs = {k: v for k, v in spec.items() if k in ("step", "sampling")}
        integral = all(
            isinstance(v, numbers.Integral) for v in (low, high, spec.get("step", 1))
        )
        if integral and not knob.startswith(_LOSS_WEIGHT) and knob not in (
            "dropout", "learning_rate"
        ):
            return hp.Int(knob, low, high, **kwargs)
        return hp.Float(knob, float(low), float(high), **kwargs)

    def loss_weights(self, hp):
        """The normalised loss weights of the trial `hp`: dict task -> weight, mean 1.

        Tasks whose weight is not searched or fixed keep their own `loss_weight`, and then
        no normalisation is applied.
        """
        raw = {}
        for task in self.tasks:
            knob = f"{_LOSS_WEIGHT}/{task.name}"
            if knob in hp.values:
                raw[task.name] = float(hp.values[knob])
        if len(raw) < len(self.tasks):
            return {
                t.name: raw.get(t.name, float(t.loss_weight)) for t in self.tasks
            }
        mean = sum(raw.values()) / len(raw)
        return {name: value / mean for name, value in raw.items()}

    def declare_hyperparameters(self, hp):
        values = {}
        for knob, (mode, spec) in self._space.items():
            values[knob] = self._declare(hp, knob, mode, spec)
        return values

    def build(self, hp):
        values = self.declare_hyperparameters(hp)
        weights = self.loss_weights(hp)
        tasks = [
            Task.from_config({**t.get_config(), "loss_weight": weights[t.name]})
            for t in self.tasks
        ]
        kwargs = dict(self.build_kwargs)
        for knob in _BUILD_KNOBS:
            if knob in values:
                kwargs[knob] = values[knob]
        for knob in ("sharing", "weighting"):
            if knob in kwargs and not isinstance(kwargs[knob], (str, dict)):
                kwargs[knob] = _clone_keras_object(kwargs[knob])
        optimizer = kwargs.get("optimizer", "adam")
        if not isinstance(optimizer, str):
            optimizer = _clone_keras_object(optimizer)
            if kwargs.get("learning_rate") is not None:
                optimizer.learning_rate = kwargs.pop("learning_rate")
            kwargs["optimizer"] = optimizer
        return build_mtl_model(_clone_backbone(self.backbone), tasks, **kwargs)

    # === Training ===

    def reference_losses(self, *fit_args, **fit_kwargs):
        """The Δm reference for the data of a `fit` call: dict task name -> loss.

        With `reference="prior"`, the constant prediction is fitted to the training labels
        and scored on the validation labels (`validation_data`, or the `validation_split`
        tail, as Keras takes it), or on the training labels when there is no validation
        data. Labels of a `tf.data.Dataset` are read once and cached per dataset object.
        """
        if isinstance(self.reference, dict):
            return {k: float(v) for k, v in self.reference.items()}
        x = fit_args[0] if fit_args else fit_kwargs.get("x")
        y = fit_args[1] if len(fit_args) > 1 else fit_kwargs.get("y")
        y_train = self._labels(x, y, "x")
        y_eval = None
        validation_data = fit_kwargs.get("validation_data")
        split = fit_kwargs.get("validation_split") or 0.0
        if validation_data is not None:
            if isinstance(validation_data, (tuple, list)):
                y_eval = self._labels(validation_data[0], validation_data[1], "validation_data")
            else:
                y_eval = self._labels(validation_data, None, "validation_data")
        elif split:
            n = len(next(iter(y_train.values())))
            cut = int(math.floor(n * (1.0 - split)))
            y_eval = {k: v[cut:] for k, v in y_train.items()}
            y_train = {k: v[:cut] for k, v in y_train.items()}
        return prior_reference(self.tasks, y_train, y_eval)

    def _labels(self, x, y, argument):
        if y is not None:
            if not isinstance(y, dict):
                if len(self.tasks) != 1:
                    raise errors.LabelError(
                        f"Labels must be a dict keyed by task name {self.task_names}. "
                        f"Received labels of type {type(y).__name__}"
                    )
                y = {self.task_names[0]: y}
            return {k: _to_numpy_labels(v) for k, v in y.items()}
        if isinstance(x, tf.data.Dataset):
            if x.cardinality() == tf.data.INFINITE_CARDINALITY:
                raise errors.ConfigError(
                    f"`{argument}` is an infinite dataset (e.g. `.repeat()`), so its labels "
                    "cannot be read to compute the Δm reference. Pass a finite dataset, or "
                    "give `reference={task_name: loss, ...}`."
                )
            key = id(x)
            if key not in self._reference_cache:
                parts = {name: [] for name in self.task_names}
                for element in x:
                    labels = element[1]
                    if not isinstance(labels, dict):
                        labels = {self.task_names[0]: labels}
                    for name in self.task_names:
                        parts[name].append(_to_numpy_labels(labels[name]))
                self._reference_cache[key] = (
                    x,
                    {k: np.concatenate(v, axis=0) for k, v in parts.items()},
                )
            return self._reference_cache[key][1]
        raise errors.ConfigError(
            f"`MTLHyperModel` cannot read the labels of `{argument}` (of type "
            f"{type(x).__name__}) to compute the Δm reference. Pass arrays or a "
            "`tf.data.Dataset`, or give `reference={task_name: loss, ...}`."
        )

    def fit(self, hp, model, *args, **kwargs):
        """Trains `model` as `model.fit` does, with `DeltaM` first among the callbacks."""
        callbacks = list(kwargs.pop("callbacks", None) or [])
        reference = self.reference_losses(*args, **kwargs)
        callbacks.insert(0, DeltaM(reference, loss_weights=self.loss_weights(hp)))
        return model.fit(*args, callbacks=callbacks, **kwargs)


# === Results ===


def _trials(tuner):
    oracle = tuner.oracle if hasattr(tuner, "oracle") else tuner
    trials = getattr(oracle, "trials", None)
    if isinstance(trials, dict):
        return list(trials.values())
    # A worker's `OracleClient` only proxies requests: ask the chief.
    return oracle.get_best_trials(10**6)


def _completed(trials):
    return [t for t in trials if str(t.status).upper().endswith("COMPLETED")]


def _metric(trial, name):
    if not trial.metrics.exists(name):
        return None
    # KerasTuner records each metric once, at the trial's best epoch.
    value = trial.metrics.get_last_value(name)
    return None if value is None else float(value)


def _objectives(tuner, objectives):
    if objectives is not None:
        items = objectives if isinstance(objectives, (list, tuple)) else [objectives]
    else:
        oracle_objective = getattr(tuner.oracle, "objective", None)
        # KerasTuner's `MultiObjective` (not public) keeps its parts in `objectives`.
        if getattr(oracle_objective, "objectives", None):
            items = list(oracle_objective.objectives)
        elif isinstance(getattr(tuner, "hypermodel", None), MTLHyperModel):
            items = tuner.hypermodel.task_objectives("loss")
        else:
            raise errors.ConfigError(
                "`objectives` is needed: the tuner has a single objective and its hypermodel "
                "is not an `MTLHyperModel` whose tasks could name per-task objectives."
            )
    result = []
    for item in items:
        if isinstance(item, str):
            item = keras_tuner.Objective(item, _direction(item))
        result.append(item)
    return result


def _dominates(a, b, directions):
    better = False
    for x, y, direction in zip(a, b, directions):
        if direction == "max":
            x, y = -x, -y
        if x > y:
            return False
        if x < y:
            better = True
    return better


def pareto_front(tuner, objectives=None):
    """The completed trials that no other trial beats on every objective.

    A trial dominates another when it is at least as good on every objective and strictly
    better on one; the front is the trials nobody dominates. Metric values are those of
    each trial's best epoch, as KerasTuner records them.

    Args:
        tuner: a KerasTuner tuner (or its oracle) after `search`.
        objectives: a list of `keras_tuner.Objective` (or metric names, direction
            inferred). Default: the tuner's objectives when it has several, else each
            task's validation loss (`val_<task>_loss`, min) of its `MTLHyperModel`.

    Returns:
        A list of `keras_tuner` trials, ordered by trial id. Trials lacking a value for
        one of the objectives are left out.

    Example:

    ```python
    for trial in keras_mtl.tuning.pareto_front(tuner):
        print(trial.trial_id, trial.hyperparameters.values)
    ```
    """
    objectives = _objectives(tuner, objectives)
    directions = [o.direction for o in objectives]
    points = []
    for trial in _completed(_trials(tuner)):
        values = [_metric(trial, o.name) for o in objectives]
        if all(v is not None and math.isfinite(v) for v in values):
            points.append((trial, values))
    front = [
        trial
        for trial, values in points
        if not any(_dominates(other, values, directions) for _, other in points)
    ]
    return sorted(front, key=lambda t: t.trial_id)


def results_table(tuner, objectives=None, metrics="validation"):
    """A pandas DataFrame with one row per trial: hyperparameters and per-task metrics.

    Columns: `trial_id`, `status`, `score` (the tuner's objective), every hyperparameter
    (e.g. `loss_weight/<task>`, `shared_layers`), `weight/<task>` (the normalised loss
    weights the model was trained with, when the hypermodel is an `MTLHyperModel`), the
    metrics of the trial's best epoch, and `pareto` (whether the trial is on the Pareto
    front of `objectives`, see `pareto_front`). Rows are sorted best score first.

    Args:
        tuner: a KerasTuner tuner (or its oracle) after `search`.
        objectives: for the `pareto` column, as in `pareto_front`.
        metrics: `"validation"` (the `val_` metrics only) or `"all"`.

    Example:

    ```python
    table = keras_mtl.tuning.results_table(tuner)
    print(table.to_string(index=False))
    ```
    """
    import pandas as pd

    if metrics not in ("validation", "all"):
        raise errors.ConfigError(
            f"`metrics` must be 'validation' or 'all'. Received: metrics={metrics!r}"
        )
    trials = sorted(_trials(tuner), key=lambda t: t.trial_id)
    hypermodel = getattr(tuner, "hypermodel", None)
    try:
        front = {t.trial_id for t in pareto_front(tuner, objectives)}
    except errors.ConfigError:
        front = None
    rows = []
    for trial in trials:
        row = {
            "trial_id": trial.trial_id,
            "status": str(trial.status),
            "score": trial.score,
        }
        row.update(trial.hyperparameters.values)
        if isinstance(hypermodel, MTLHyperModel):
            for name, value in hypermodel.loss_weights(trial.hyperparameters).items():
                row[f"weight/{name}"] = value
        for name in sorted(trial.metrics.metrics):
            if metrics == "all" or name.startswith("val_"):
                row[name] = _metric(trial, name)
        if front is not None:
            row["pareto"] = trial.trial_id in front
        rows.append(row)
    table = pd.DataFrame(rows)
    if rows:
        oracle_objective = getattr(getattr(tuner, "oracle", tuner), "objective", None)
        ascending = getattr(oracle_objective, "direction", "min") != "max"
        table = table.sort_values("score", ascending=ascending, na_position="last")
        table = table.reset_index(drop=True)
    return table


def plot_trials(tuner, path=None, objectives=None):
    """Plots each task's metric against its loss-weight ratio, Pareto front marked.

    One panel per objective (default: each task's validation loss): the metric of every
    completed trial against the task's normalised loss weight (its ratio to the mean
    weight, log scale; the trial number when loss weights were not searched). With two
    or more objectives, a last panel plots the first two against each other, with a line
    through the trials that no other beats on those two. Trials on the Pareto front of all
    the objectives are drawn as red stars in every panel.

    Args:
        tuner: a KerasTuner tuner after `search`, whose hypermodel is an `MTLHyperModel`
            (for the loss weights).
        path: where to save the figure as PNG; None only returns it.
        objectives: as in `pareto_front`.

    Returns:
        The `matplotlib.figure.Figure`.

    Example:

    ```python
    keras_mtl.tuning.plot_trials(tuner, "trials.png")
    ```
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    objectives = _objectives(tuner, objectives)
    hypermodel = getattr(tuner, "hypermodel", None)
    trials = [
        t
        for t in _completed(_trials(tuner))
        if all(_metric(t, o.name) is not None for o in objectives)
    ]
    trials.sort(key=lambda t: t.trial_id)
    front = {t.trial_id for t in pareto_front(tuner, objectives)}
    panels = len(objectives) + (1 if len(objectives) >= 2 else 0)
    figure = Figure(figsize=(4.2 * panels, 3.8))
    axes = figure.subplots(1, panels, squeeze=False)[0]

    weights = {}
    if isinstance(hypermodel, MTLHyperModel):
        weights = {t.trial_id: hypermodel.loss_weights(t.hyperparameters) for t in trials}
    searched = isinstance(hypermodel, MTLHyperModel) and any(
        k.startswith(f"{_LOSS_WEIGHT}/") for k in hypermodel._space
        if hypermodel._space[k][0] == "search"
    )

    def task_of(objective_name):
        for name in getattr(hypermodel, "task_names", []):
            if objective_name.startswith(f"val_{name}_"):
                return name
        return None

    for ax, objective in zip(axes, objectives):
        task_name = task_of(objective.name)
        if searched and task_name is not None:
            xs = [weights[t.trial_id][task_name] for t in trials]
            ax.set_xscale("log")
            ax.set_xlabel(f"loss weight of {task_name} / mean weight")
        else:
            xs = list(range(len(trials)))
            ax.set_xlabel("trial")
        ys = [_metric(t, objective.name) for t in trials]
        on = [i for i, t in enumerate(trials) if t.trial_id in front]
        off = [i for i in range(len(trials)) if i not in on]
        ax.scatter([xs[i] for i in off], [ys[i] for i in off], color="tab:blue",
                   label="trial")
        ax.scatter([xs[i] for i in on], [ys[i] for i in on], color="tab:red", marker="*",
                   s=140, label="Pareto front")
        ax.set_ylabel(f"{objective.name} ({objective.direction})")
        ax.grid(alpha=0.3)
        if ax.get_xscale() == "log":
            # Ratios rarely span a decade: label 0.1, 0.2, 0.5, 1, 2, 5 ... plainly.
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
    if len(objectives) >= 2:
        ax = axes[-1]
        first, second = objectives[0], objectives[1]
        xs = [_metric(t, first.name) for t in trials]
        ys = [_metric(t, second.name) for t in trials]
        on = [i for i, t in enumerate(trials) if t.trial_id in front]
        off = [i for i in range(len(trials)) if i not in on]
        # The line joins the trials no other beats on these two objectives alone.
        pair = [(xs[i], ys[i]) for i in range(len(trials))]
        pair_front = sorted(
            p for p in pair
            if not any(_dominates(q, p, [first.direction, second.direction]) for q in pair)
        )
        ax.plot([p[0] for p in pair_front], [p[1] for p in pair_front], color="tab:red",
                alpha=0.5, label="front of these two")
        ax.scatter([xs[i] for i in off], [ys[i] for i in off], color="tab:blue")
        ax.scatter([xs[i] for i in on], [ys[i] for i in on], color="tab:red", marker="*",
                   s=140)
        ax.legend(loc="best")
        ax.set_xlabel(f"{first.name} ({first.direction})")
        ax.set_ylabel(f"{second.name} ({second.direction})")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best")
    figure.suptitle(f"{len(trials)} trials, {len(front)} on the Pareto front")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, format="png", dpi=110)
    return figure


__all__ = [
    "DEFAULT_SEARCH_SPACE",
    "DeltaM",
    "MTLHyperModel",
    "delta_m",
    "pareto_front",
    "plot_trials",
    "prior_reference",
    "results_table",
]
