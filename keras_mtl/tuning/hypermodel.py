"""`MTLHyperModel`: a KerasTuner hypermodel over loss weights, the shared block and more."""

import math
import numbers

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from keras_mtl import data as data_module
from keras_mtl import errors
from keras_mtl import sharing as sharing_module
from keras_mtl import weighting as weighting_module
from keras_mtl.model import build_mtl_model
from keras_mtl.tasks import Task, validate_tasks
from keras_mtl.tuning.objective import (
    DELTA_M,
    DeltaM,
    _direction,
    _to_numpy_labels,
    prior_reference,
)

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
# Knobs of the training data, outside the default space, with their range for `True`.
_DATA_KNOBS = {"sampling_temperature": {"min_value": 1.0, "max_value": 5.0}}
_LOSS_WEIGHT = "loss_weight"


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
        mix_options: keyword arguments of `keras_mtl.data.mix` (`batch_size`, `batching`,
            `sampling`, `seed`, ...) for training data given to `fit` (the tuner's
            `search`) as separate data sets: a dict task name -> data set, as for `mix`.
            Such data is mixed for each trial; with the knob `sampling_temperature`
            searched (`search_space={"sampling_temperature": (1.0, 5.0)}`, or `True` for
            that range) it is mixed with `sampling="temperature"` at the trial's
            temperature. Validation data given so is read once per trial, every example
            of every task. See the README section "Tasks from separate data sets".
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
        mix_options=None,
        name=None,
        tunable=True,
        **build_kwargs,
    ):
        super().__init__(name=name, tunable=tunable)
        self.mix_options = _check_mix_options(mix_options, search_space, fixed)
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
        names = list(_BUILD_KNOBS) + list(_DATA_KNOBS) + [_LOSS_WEIGHT]
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
        for knob in _BUILD_KNOBS + tuple(_DATA_KNOBS):
            if knob in fixed:
                space[knob] = ("fixed", fixed[knob])
                continue
            spec = self.search_space.get(knob, DEFAULT_SEARCH_SPACE.get(knob))
            spec = _check_range(knob, spec)
            if spec is True:
                spec = _DATA_KNOBS.get(knob) or DEFAULT_SEARCH_SPACE.get(knob, True)
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
            "dropout", "learning_rate", *_DATA_KNOBS
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
        """Trains `model` as `model.fit` does, with `DeltaM` first among the callbacks.

        Callbacks `keras_mtl.data.PerTaskEvaluation` come before `DeltaM`, which reads the
        validation losses they log. Training (and validation) data given as separate data
        sets, a dict task name -> data set, is mixed with `keras_mtl.data.mix` (see
        `mix_options`).
        """
        args, kwargs, reference_x = self._mixed_data(hp, args, kwargs)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if reference_x is None:
            reference = self.reference_losses(*args, **kwargs)
        else:
            reference = self.reference_losses(
                reference_x, **{k: v for k, v in kwargs.items() if k != "x"}
            )
        per_task = data_module.PerTaskEvaluation
        first = sum(isinstance(c, per_task) for c in callbacks)
        callbacks = sorted(callbacks, key=lambda c: not isinstance(c, per_task))
        callbacks.insert(first, DeltaM(reference, loss_weights=self.loss_weights(hp)))
        return model.fit(*args, callbacks=callbacks, **kwargs)

    def _mixed_data(self, hp, args, kwargs):
        """`fit`'s arguments with separate data sets (dicts of sources) mixed for `hp`.

        Returns `(args, kwargs, reference_x)`, `reference_x` being a one-pass stream of
        the training data for the Δm reference (None for data that is not mixed here).
        """
        args, kwargs = list(args), dict(kwargs)
        x = args[0] if args else kwargs.get("x")
        tuned = "sampling_temperature" in hp.values
        if not self._is_sources(x):
            if tuned:
                raise errors.ConfigError(
                    "Searching `sampling_temperature` needs the training data as separate "
                    "data sets: a dict task name -> `tf.data.Dataset` or `(x, y)`, as for "
                    f"`keras_mtl.data.mix`. Received x of type {type(x).__name__}"
                )
            return args, kwargs, None
        options = dict(self.mix_options)
        if tuned:
            options.update(sampling="temperature", temperature=hp.values["sampling_temperature"])
        one_pass = {
            k: v for k, v in options.items() if k in ("batch_size", "allow_missing_tasks")
        }
        reference_x = self._one_pass(x, one_pass)
        stream = data_module.mix(x, self.tasks, **options)
        if args:
            args[0] = stream
        else:
            kwargs["x"] = stream
        validation = kwargs.get("validation_data")
        if self._is_sources(validation):
            kwargs["validation_data"] = self._one_pass(validation, one_pass)
        return args, kwargs, reference_x

    def _one_pass(self, sources, options):
        """Every example of `sources` once, the same dataset object for the same sources
        (so that their labels, read for the Δm reference, are read once)."""
        key = ("sources", id(sources))
        if key not in self._reference_cache:
            stream = data_module.mix(
                sources, self.tasks, repeat=False, shuffle=False, seed=0, **options
            )
            self._reference_cache[key] = (sources, stream)
        return self._reference_cache[key][1]

    def _is_sources(self, value):
        names = set(self.task_names)
        return isinstance(value, dict) and bool(value) and all(
            (key in names or (isinstance(key, tuple) and set(key) <= names))
            and isinstance(item, (tf.data.Dataset, tuple, list))
            for key, item in value.items()
        )


def _check_mix_options(mix_options, search_space, fixed):
    """Checks `MTLHyperModel`'s `mix_options`; returns them as a dict."""
    import inspect

    from keras_mtl.data import mix

    options = dict(mix_options or {})
    valid = [
        name for name, p in inspect.signature(mix).parameters.items()
        if p.kind == p.KEYWORD_ONLY and name != "repeat"
    ]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise errors.ConfigError(
            f"`mix_options` has unknown keys {unknown}; valid keys are {valid}."
        )
    searched = "sampling_temperature" in (search_space or {}) or "sampling_temperature" in (
        fixed or {}
    )
    clashing = sorted({"sampling", "temperature"} & set(options))
    if searched and clashing:
        raise errors.ConfigError(
            f"`mix_options` sets {clashing} while `sampling_temperature` is a knob: the "
            "trials sample with sampling='temperature' at the knob's value. Received: "
            f"mix_options={mix_options!r}"
        )
    return options
