"""Task specifications: what each output of a multi-task model predicts and how it is trained."""

import keyword
import math
import numbers

import keras

from keras_mtl import backbones, errors, kinds
from keras_mtl.kinds.base import clone as _clone
from keras_mtl.losses import MaskedLoss, MaskedMetric


def _serialize(value):
    if value is None or isinstance(value, (str, numbers.Number)):
        return value
    return keras.saving.serialize_keras_object(value)


def _deserialize(value):
    if isinstance(value, dict) and "class_name" in value:
        return keras.saving.deserialize_keras_object(value)
    return value


class Task:
    """One task of a multi-task model: its name, kind, output size, head, loss and metrics.

    A `Task` is a plain value: it stores exactly what it was given and builds fresh Keras
    objects (head layers, loss, metrics) each time a model is built from it. Everything that
    depends on the kind comes from the kind's class in `keras_mtl.kinds` (`kind_object`).

    Args:
        name: the task's name, a Python identifier. It names the model's output, the key of
            its labels in `fit`, and its entries in the logs (`val_<name>_loss`).
        kind: the name of a registered kind (`keras_mtl.kinds.names()`): `"binary"`,
            `"multiclass"` (needs `num_classes`), `"multilabel"` (needs `num_classes`),
            `"regression"` (`units`, default 1), `"custom"` (give `loss`, and
            `head_layers` and/or `units`), or the dense kinds `"segmentation"`
            (`num_classes`), `"dense_regression"` (`units`) and `"token_classification"`
            (`num_classes`), which predict per pixel or per token.
        num_classes: number of classes of a `multiclass` or `multilabel` task.
        units: output size of a `regression` or `custom` task.
        head_units: widths of the task's own hidden Dense layers, between the shared features
            and the output layer.
        head_dropout: dropout rate after each hidden head layer.
        activation: the output layer's activation; defaults per kind (sigmoid, softmax,
            sigmoid, linear).
        loss: the task's loss; defaults per kind (binary cross-entropy, sparse categorical
            cross-entropy, binary cross-entropy, mean squared error). Required for `custom`.
        metrics: the task's metrics; defaults per kind (binary: accuracy and AUC; multiclass:
            accuracy; multilabel: AUC; regression: MAE). `"accuracy"` means the accuracy that
            fits the kind.
        loss_weight: the weight of the task's loss in the total loss (static weighting).
        class_names: labels of the classes (binary: `[negative, positive]`), used by
            exports and reports.
        missing_label: the value that marks a missing label. `"auto"` means -1 for class ids
            and multi-label entries, NaN for regression, no masking for custom tasks; give a
            number, `"nan"`, or `None` (no masking).
        threshold: decision threshold of a binary or multilabel task, used when exporting.
        head_layers: for a `custom` task, Keras layers applied in order after the hidden head
            layers; if `units` is given a final Dense layer follows them.
        **options: arguments that only the task's kind takes (its `TaskKind.options`):
            `output_size` for segmentation and dense regression, `normalize` for dense
            regression.

    Example:

    >>> tasks = [
    ...     keras_mtl.Task("digit", "multiclass", num_classes=10),
    ...     keras_mtl.Task("odd", "binary", loss_weight=0.5),
    ...     keras_mtl.Task("ink", "regression", head_units=(32,)),
    ... ]
    >>> tasks[0].output_units
    10
    >>> keras_mtl.Task.from_config(tasks[1].get_config()) == tasks[1]
    True
    """

    # Arguments a kind takes or refuses (`TaskKind.arguments`); the others apply to every kind.
    SIZE_ARGUMENTS = ("num_classes", "units", "class_names", "head_layers")
    ARGUMENTS = (
        "name", "kind", "num_classes", "units", "head_units", "head_dropout", "activation",
        "loss", "metrics", "loss_weight", "class_names", "missing_label", "threshold",
        "head_layers",
    )

    def __init__(
        self,
        name,
        kind,
        *,
        num_classes=None,
        units=None,
        head_units=(),
        head_dropout=0.0,
        activation=None,
        loss=None,
        metrics=None,
        loss_weight=1.0,
        class_names=None,
        missing_label="auto",
        threshold=0.5,
        head_layers=None,
        **options,
    ):
        self.name = name
        self.kind = kind
        self.num_classes = num_classes
        self.units = units
        self.head_units = tuple(head_units) if isinstance(head_units, list) else head_units
        self.head_dropout = head_dropout
        self.activation = activation
        self.loss = loss
        self.metrics = list(metrics) if isinstance(metrics, tuple) else metrics
        self.loss_weight = loss_weight
        self.class_names = list(class_names) if class_names is not None else None
        self.missing_label = missing_label
        self.threshold = threshold
        self.head_layers = list(head_layers) if head_layers is not None else None
        self._validate_name_and_kind()
        self._set_options(options)
        self._validate()

    # === Validation ===

    def _fail(self, message, error=errors.TaskSpecError):
        raise error(f"Task {self.name!r}: {message}")

    def _validate_name_and_kind(self):
        if not isinstance(self.name, str) or not self.name.isidentifier() or keyword.iskeyword(
            self.name
        ):
            raise errors.TaskSpecError(
                "`name` must be a Python identifier (letters, digits and underscores, not "
                f"starting with a digit, not a keyword). Received: name={self.name!r}"
            )
        if not isinstance(self.kind, str) or self.kind not in kinds.names():
            self._fail(
                f"`kind` must be one of {kinds.names()} (a kind of your own is added with "
                f"`keras_mtl.kinds.register`). Received: kind={self.kind!r}"
            )

    def _set_options(self, options):
        kind = self.kind_object
        unknown = sorted(set(options) - set(kind.options))
        if unknown:
            self._fail(
                f"unexpected arguments {unknown} for a {self.kind!r} task; it takes "
                f"{sorted(kind.options) or 'no arguments beyond those of Task'}. Received: "
                + ", ".join(f"{key}={options[key]!r}" for key in unknown),
                errors.TaskTypeError,
            )
        for option, default in kind.options.items():
            setattr(self, option, options.get(option, default))

    def _validate(self):
        kind = self.kind_object
        for argument in self.SIZE_ARGUMENTS:
            value = getattr(self, argument)
            if value is not None and argument not in kind.arguments:
                taking = [name for name in kinds.names()
                          if argument in kinds.get(name).arguments]
                self._fail(
                    f"`{argument}` applies only to {_quoted(taking)} tasks, not "
                    f"{self.kind!r}. Received: {argument}={value!r}"
                )
        if self.head_layers is not None:
            for layer in self.head_layers:
                if not isinstance(layer, keras.layers.Layer):
                    self._fail(
                        "`head_layers` must be Keras layers. Received an item of type "
                        f"{type(layer).__name__}: {layer!r}",
                        errors.TaskTypeError,
                    )
        kind.validate(self)
        if not isinstance(self.head_units, tuple) or not all(
            _is_int(u) and u >= 1 for u in self.head_units
        ):
            self._fail(
                "`head_units` must be a tuple of positive integers. "
                f"Received: head_units={self.head_units!r}"
            )
        if not isinstance(self.head_dropout, numbers.Real) or not 0 <= self.head_dropout < 1:
            self._fail(
                f"`head_dropout` must be in [0, 1). Received: head_dropout={self.head_dropout!r}"
            )
        if (
            isinstance(self.loss_weight, bool)
            or not isinstance(self.loss_weight, numbers.Real)
            or not self.loss_weight >= 0
            or math.isinf(self.loss_weight)
        ):
            self._fail(
                "`loss_weight` must be a finite number >= 0. "
                f"Received: loss_weight={self.loss_weight!r}"
            )
        if not isinstance(self.threshold, numbers.Real) or not 0 < self.threshold < 1:
            self._fail(f"`threshold` must be in (0, 1). Received: threshold={self.threshold!r}")
        marker = self.missing_label
        if not (
            marker is None
            or marker == "auto"
            or (isinstance(marker, str) and marker.lower() == "nan")
            or (isinstance(marker, numbers.Real) and not isinstance(marker, bool))
        ):
            self._fail(
                "`missing_label` must be 'auto', a number, 'nan' or None. "
                f"Received: missing_label={marker!r}"
            )

    # === What the task builds ===

    @property
    def kind_object(self):
        """The `keras_mtl.kinds.TaskKind` of this task's kind."""
        return kinds.get(self.kind)

    @property
    def output_units(self):
        """The size of the task's output layer."""
        return self.kind_object.output_units(self)

    @property
    def output_activation(self):
        return self.kind_object.output_activation(self)

    @property
    def resolved_missing_label(self):
        """The marker of a missing label in effect (`None`: nothing is masked)."""
        if self.missing_label == "auto":
            return self.kind_object.missing_label
        return self.missing_label

    @property
    def elementwise_labels(self):
        """True when labels have one entry per output unit, False for sparse class ids,
        `"vector"` when one label is a whole output vector (masked as one)."""
        return self.kind_object.elementwise(self)

    def build_loss(self):
        """A fresh Keras loss for this task, ignoring missing labels."""
        loss = _clone(_deserialize(self.loss)) if self.loss is not None else None
        loss = loss if loss is not None else self.kind_object.default_loss(self)
        if self.resolved_missing_label is None:
            return keras.losses.get(loss)
        return MaskedLoss(loss, self.resolved_missing_label, self.elementwise_labels)

    def build_metrics(self):
        """Fresh Keras metrics for this task, ignoring missing labels."""
        kind = self.kind_object
        specs = self.metrics if self.metrics is not None else kind.default_metrics(self)
        built = []
        for spec in specs:
            spec = _deserialize(spec)
            metric = kind.build_metric_alias(self, spec) if isinstance(spec, str) else None
            if metric is None and isinstance(spec, keras.metrics.Metric):
                metric = _clone(spec)
            elif metric is None:
                try:
                    metric = keras.metrics.get(spec)
                except ValueError as e:
                    self._fail(f"unknown metric in `metrics`: {spec!r} ({e})")
                if not isinstance(metric, keras.metrics.Metric):
                    metric = keras.metrics.MeanMetricWrapper(metric, name=str(spec))
            if self.resolved_missing_label is not None:
                metric = MaskedMetric(metric, self.resolved_missing_label, self.elementwise_labels)
            built.append(metric)
        return built

    def build_head(self, features, input_size=None, pool=False):
        """Applies fresh head layers to `features`; the output layer is named `self.name`.

        Args:
            features: the tensor the head reads.
            input_size: the `(height, width)` of the model's input, which a dense head
                resizes its output to unless the task gives `output_size`.
            pool: pool a feature map or sequence to a vector first (layer `<name>_pool`),
                for a kind that reads vectors.
        """
        kind = self.kind_object
        rank = len(features.shape)
        if kind.head_input == "vector":
            if pool and rank > 2:
                features = backbones.pool_features(features, name=f"{self.name}_pool")
            return kind.build_head(self, features)
        expected = {"feature_map": 4, "sequence": 3}[kind.head_input]
        if rank != expected:
            layout = ("a feature map (batch, height, width, channels)" if expected == 4
                      else "a sequence (batch, length, channels)")
            self._fail(
                f"a {self.kind!r} head reads {layout}, but the backbone (after the sharing "
                f"strategy) gives features of shape {tuple(features.shape)}. Use a backbone "
                f"whose output keeps its {'spatial' if expected == 4 else 'sequence'} axes.",
                errors.BackboneError,
            )
        return kind.build_head(self, features, input_size=input_size)

    @property
    def is_dense(self):
        """Whether the task predicts per pixel or per token (its head reads a map or sequence)."""
        return self.kind_object.head_input != "vector"

    # === Config ===

    def get_config(self):
        config = {
            "name": self.name,
            "kind": self.kind,
            "num_classes": self.num_classes,
            "units": self.units,
            "head_units": list(self.head_units),
            "head_dropout": self.head_dropout,
            "activation": self.activation,
            "loss": _serialize(self.loss),
            "metrics": None if self.metrics is None else [_serialize(m) for m in self.metrics],
            "loss_weight": self.loss_weight,
            "class_names": self.class_names,
            "missing_label": self.missing_label,
            "threshold": self.threshold,
            "head_layers": None
            if self.head_layers is None
            else [keras.layers.serialize(layer) for layer in self.head_layers],
        }
        for option in self.kind_object.options:
            config[option] = _serialize(getattr(self, option))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["head_units"] = tuple(config.get("head_units", ()))
        if config.get("loss") is not None:
            config["loss"] = _deserialize(config["loss"])
        if config.get("metrics") is not None:
            config["metrics"] = [_deserialize(m) for m in config["metrics"]]
        if config.get("head_layers") is not None:
            config["head_layers"] = [keras.layers.deserialize(c) for c in config["head_layers"]]
        for key in set(config) - set(cls.ARGUMENTS):
            config[key] = _deserialize(config[key])
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, Task) and _comparable(self.get_config()) == _comparable(
            other.get_config()
        )

    def __hash__(self):
        return hash((self.name, self.kind))

    def __repr__(self):
        size = {"num_classes": self.num_classes, "units": self.units}
        size = ", ".join(f"{k}={v}" for k, v in size.items() if v is not None)
        return f"Task({self.name!r}, {self.kind!r}{', ' + size if size else ''})"


def _quoted(names):
    quoted = [repr(name) for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _comparable(config):
    """NaN markers compare equal to each other."""
    marker = config.get("missing_label")
    if isinstance(marker, float) and math.isnan(marker):
        config = dict(config, missing_label="nan")
    return config


def validate_tasks(tasks):
    """Checks a list of tasks and returns it as a list; raises on duplicates or wrong types."""
    if isinstance(tasks, Task):
        tasks = [tasks]
    if not isinstance(tasks, (list, tuple)) or not tasks:
        raise errors.TaskTypeError(
            "`tasks` must be a non-empty list of `keras_mtl.Task`. "
            f"Received: tasks={tasks!r}"
        )
    for i, task in enumerate(tasks):
        if not isinstance(task, Task):
            raise errors.TaskTypeError(
                f"`tasks[{i}]` must be a `keras_mtl.Task`. Received an object of type "
                f"{type(task).__name__}: {task!r}"
            )
    seen = set()
    for task in tasks:
        if task.name in seen:
            raise errors.TaskSpecError(
                f"Task names must be unique; {task.name!r} appears more than once. Received: "
                f"names={[t.name for t in tasks]}"
            )
        seen.add(task.name)
    return list(tasks)


def check_names_free(tasks, layers):
    """Raises `TaskSpecError` when a task has the name of one of `layers`.

    A task's output layer takes the task's name, and the layer names of a Keras model must
    be unique, so a task cannot be named like an input or a layer of the trunk.
    """
    by_name = {layer.name: layer for layer in layers}
    for task in tasks:
        layer = by_name.get(task.name)
        if layer is None:
            continue
        if isinstance(layer, keras.layers.InputLayer):
            what, fix = "an input of the model", "the input (`keras.Input(..., name=...)`)"
        else:
            what, fix = f"a layer of the trunk ({type(layer).__name__})", "that layer"
        raise errors.TaskSpecError(
            f"Task {task.name!r}: the name is taken by {what}; a task names its output layer "
            f"and the layers of a model need distinct names. Rename the task or {fix}. "
            f"Received: name={task.name!r}"
        )
