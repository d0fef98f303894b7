"""`MTLModel`, the multi-task functional model; `build_mtl_model`, which builds one; and
`add_task`, which grows a trained one by a task."""

import numbers

import keras
import tensorflow as tf

from keras_mtl import backbones, errors
from keras_mtl import sharing as sharing_module
from keras_mtl import weighting as weighting_module
from keras_mtl.sharing.hard import Hard
from keras_mtl.tasks import Task, validate_tasks


@keras.saving.register_keras_serializable(package="keras_mtl")
class MTLModel(keras.Model):
    """A functional Keras model with one named output per task.

    Built by `keras_mtl.build_mtl_model`. Its outputs are a dict keyed by task name; `compile`
    fills in each task's loss, metrics and loss weight unless given; `fit` and `evaluate`
    check that the labels are a dict with one entry per task before any training starts.
    It saves and loads as `.keras` in Keras' safe mode.

    Args:
        inputs: the model's inputs, as for a functional `keras.Model`.
        outputs: a dict of output tensors keyed by task name.
        tasks: the `keras_mtl.Task`s (or their configs), one per output.
        weighting: the weighting method: a name, config or `keras_mtl.weighting` instance.

    Example:

    >>> tasks = [keras_mtl.Task("a", "binary"), keras_mtl.Task("b", "regression")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, shared_units=16)
    >>> isinstance(model, keras_mtl.MTLModel), sorted(model.output_names)
    (True, ['a', 'b'])
    """

    def __init__(self, *args, tasks=None, weighting="static", **kwargs):
        super().__init__(*args, **kwargs)
        if tasks is None:
            raise errors.TaskTypeError("`MTLModel` needs `tasks`. Received: tasks=None")
        tasks = [Task.from_config(t) if isinstance(t, dict) else t for t in tasks]
        self.tasks = validate_tasks(tasks)
        if not isinstance(self.output, dict) or sorted(self.output) != sorted(
            t.name for t in self.tasks
        ):
            raise errors.TaskSpecError(
                "`outputs` must be a dict keyed by the task names "
                f"{[t.name for t in self.tasks]}. Received outputs of type "
                f"{type(self.output).__name__}"
                + (f" with keys {sorted(self.output)}"
                   if isinstance(self.output, dict) else "")
            )
        self.weighting = weighting_module.get(weighting)
        self.weighting.attach(self)

    @property
    def task_names(self):
        """The names of the tasks, in order."""
        return [t.name for t in self.tasks]

    def compile(self, optimizer="adam", loss=None, metrics=None, loss_weights=None, **kwargs):
        """Like `keras.Model.compile`; each task's own loss, metrics and weight by default."""
        if loss is None:
            loss = {t.name: t.build_loss() for t in self.tasks}
        if metrics is None:
            metrics = {t.name: t.build_metrics() for t in self.tasks}
        # Keras pairs per-output weights with per-output losses only; one loss for every
        # output takes no weights.
        if loss_weights is None and isinstance(loss, dict):
            loss_weights = {t.name: float(t.loss_weight) for t in self.tasks}
        super().compile(
            optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights, **kwargs
        )

    @property
    def sharing_layer(self):
        """The model's sharing strategy layer (a `keras_mtl.sharing.SharingStrategy`)."""
        for layer in self.layers:
            if isinstance(layer, sharing_module.SharingStrategy):
                return layer
        raise errors.ConfigError(f"The model {self.name!r} has no sharing strategy layer.")

    def train_step(self, data):
        logs = self.weighting.train_step(self, data, super().train_step)
        return _logs_for_workers(self.distribute_strategy, logs)

    def test_step(self, data):
        return _logs_for_workers(self.distribute_strategy, super().test_step(data))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 reads the first batch's shapes from `strategy.reduce` of the whole (x, y)
        # structure; with several workers `reduce` takes only one tensor, so `fit` and
        # `evaluate` fail before the first step. One replica's share has the same shapes.
        strategy = self._distribute_strategy
        if iterator is not None and _is_multi_worker(strategy):
            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues)
                    else value,
                    next(batches),
                )
                break
            iterator = None
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _get_metrics_result_or_logs(self, logs):
        # Keras reports the metrics' results over all replicas at the end of an epoch only when
        # the step's logs have exactly the metrics' names; `weight_<task>` would make it report
        # the last step's per-replica values averaged, wrong for masked labels and AUC.
        metric_logs = self.get_metrics_result()
        if isinstance(logs, dict) and set(metric_logs) <= set(logs):
            return {**logs, **metric_logs}
        return super()._get_metrics_result_or_logs(logs)

    def compile_from_config(self, config):
        # Keras skips models that override `compile`; ours takes the same arguments.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        self.check_labels(x, y, argument="y")
        if validation_data is not None:
            self._check_validation_data(validation_data)
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self.check_labels(x, y, argument="y")
        return super().evaluate(x, y, *args, **kwargs)

    def _check_validation_data(self, validation_data):
        if isinstance(validation_data, (tuple, list)):
            if len(validation_data) >= 2:
                self.check_labels(
                    validation_data[0], validation_data[1], argument="validation_data[1]"
                )
        else:
            self.check_labels(validation_data, None, argument="validation_data")

    def check_labels(self, x, y, argument="y"):
        """Raises `keras_mtl.errors.LabelError` unless the labels have one entry per task.

        `y` may be a dict of arrays; for a `tf.data.Dataset` given as `x` the labels are read
        from its `element_spec`. A model with a single task also accepts a bare array.
        """
        if y is None and isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            if not isinstance(spec, tuple) or len(spec) < 2:
                raise errors.LabelError(
                    f"`{argument}`: the dataset must yield `(inputs, labels)` or "
                    "`(inputs, labels, sample_weights)` with labels a dict keyed by task name. "
                    f"Received element_spec={spec}"
                )
            y = spec[1]
            argument = f"{argument} (the labels of the dataset)"
        if y is None:
            return
        expected = self.task_names
        if not isinstance(y, dict):
            if len(expected) == 1:
                return
            raise errors.LabelError(
                f"`{argument}` must be a dict with one entry per task {expected}. Received "
                f"labels of type {type(y).__name__}"
            )
        missing = [name for name in expected if name not in y]
        unknown = [name for name in y if name not in expected]
        if unknown:
            raise errors.LabelError(
                f"`{argument}` names unknown tasks {unknown}; the model's tasks are {expected}. "
                f"Received keys {list(y)}"
            )
        if missing:
            raise errors.LabelError(
                f"`{argument}` lacks labels for tasks {missing}; the model's tasks are "
                f"{expected}. Received keys {list(y)}. For a task without labels here, pass "
                "labels filled with its missing-label marker (-1 for classes, NaN for "
                "regression)."
            )

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config["tasks"] = [t.get_config() for t in self.tasks]
        config["weighting"] = keras.saving.serialize_keras_object(self.weighting)
        return config


def _is_multi_worker(strategy):
    """Whether `strategy` is a MultiWorkerMirroredStrategy with more than one worker."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)
    )


def _logs_for_workers(strategy, logs):
    """The step's logs, each of shape `(1,)` under several workers (else unchanged).

    With several workers Keras 3.15 averages each log over the replicas with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on a scalar; one entry per replica
    averages to the same scalar, which is what Keras then reports.
    """
    if not _is_multi_worker(strategy):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise errors.ConfigError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )


def resolve_optimizer(optimizer, learning_rate):
    """`optimizer`, built with `learning_rate` when one is given (then it must be a name)."""
    if learning_rate is None:
        return optimizer
    if not isinstance(optimizer, str):
        raise errors.ConfigError(
            "`learning_rate` applies when `optimizer` is a name; set it on the optimizer "
            f"instance instead. Received: optimizer={optimizer!r}, learning_rate={learning_rate}"
        )
    optimizer = keras.optimizers.get(optimizer)
    optimizer.learning_rate = learning_rate
    return optimizer


def build_mtl_model(
    backbone,
    tasks,
    *,
    shared_layers=1,
    shared_units=128,
    dropout=0.0,
    activation="relu",
    sharing="hard",
    weighting="static",
    trainable_backbone=None,
    input_shape=None,
    input_dtype=None,
    weights=None,
    hub_options=None,
    pool_features=True,
    compile=True,
    optimizer="adam",
    learning_rate=None,
    name="mtl_model",
    **compile_kwargs,
):
    """Builds a multi-task model: backbone -> sharing strategy -> one head per task.

    Args:
        backbone: what turns inputs into features: a `keras.Model` (one output); a
            `keras.layers.Layer` (give `input_shape`); the name of a `keras.applications` model
            (built headless, `weights=None` unless `weights` is given, so nothing is
            downloaded); a TF Hub handle or SavedModel directory (wrapped in
            `keras_mtl.HubLayer`); or only inputs for tabular data: a `keras.Input`, a shape
            tuple, or a dict of `keras.Input`.
        tasks: a list of `keras_mtl.Task`.
        shared_layers: the depth of the shared block (for hard sharing, the number of shared
            Dense layers; 0 feeds the backbone's features straight to the heads).
        shared_units: the width of the shared layers.
        dropout: dropout rate after each shared layer.
        activation: activation of the shared layers.
        sharing: the sharing strategy: a name (`keras_mtl.sharing.names()`), a config or an
            instance. A name is built with `shared_layers`, `shared_units`, `dropout` and
            `activation`; an instance is used as it is.
        weighting: how task losses are combined: a name (`keras_mtl.weighting.names()`), a
            config or an instance.
        trainable_backbone: True or False to unfreeze or freeze the backbone; None keeps its
            default (trainable, except pretrained `weights` and hub modules, which are frozen).
        input_shape: the shape of one example, for a backbone layer without inputs of its own,
            a hub module whose shape cannot be inferred, or a `keras.applications` model
            (default (224, 224, 3)).
        input_dtype: the input dtype in those cases (default float32).
        weights: pretrained weights of a `keras.applications` backbone (e.g. `"imagenet"`,
            which downloads, or a local file).
        hub_options: keyword arguments for `keras_mtl.HubLayer` (signature, output_key, ...).
        pool_features: pool a feature map to a vector (global average) before sharing.
        compile: compile the model with each task's loss, metrics and loss weight.
        optimizer: the optimizer for `compile` (name, config or instance).
        learning_rate: the learning rate, when `optimizer` is a name.
        name: the model's name.
        **compile_kwargs: further arguments for `MTLModel.compile` (e.g. `jit_compile`).

    Returns:
        An `MTLModel` whose outputs are a dict keyed by task name.

    Example:

    >>> import numpy as np
    >>> tasks = [
    ...     keras_mtl.Task("digit", "multiclass", num_classes=10),
    ...     keras_mtl.Task("odd", "binary"),
    ... ]
    >>> model = keras_mtl.build_mtl_model((64,), tasks, shared_layers=2, shared_units=32)
    >>> x = np.random.rand(8, 64).astype("float32")
    >>> y = {"digit": np.arange(8) % 10, "odd": (np.arange(8) % 2).reshape(-1, 1)}
    >>> history = model.fit(x, y, epochs=1, verbose=0)
    >>> {k: v.shape for k, v in model.predict(x, verbose=0).items()}
    {'digit': (8, 10), 'odd': (8, 1)}
    """
    tasks = validate_tasks(tasks)
    _check_int("shared_layers", shared_layers, 0)
    _check_int("shared_units", shared_units, 1)
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise errors.ConfigError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    optimizer = resolve_optimizer(optimizer, learning_rate)
    if isinstance(sharing, str):
        strategy = sharing_module.get_class(sharing).from_builder_args(
            shared_layers=shared_layers,
            shared_units=shared_units,
            dropout=dropout,
            activation=activation,
        )
    else:
        strategy = sharing_module.get(sharing)
    strategy.set_task_names([t.name for t in tasks])
    method = weighting_module.get(weighting)

    # === Functional Model ===
    inputs, features = backbones.resolve_backbone(
        backbone,
        input_shape=input_shape,
        input_dtype=input_dtype,
        weights=weights,
        trainable=trainable_backbone,
        hub_options=hub_options,
    )
    if pool_features:
        features = backbones.pool_features(features)
    task_features = strategy(features)
    outputs = {task.name: task.build_head(task_features[task.name]) for task in tasks}
    model = MTLModel(inputs=inputs, outputs=outputs, tasks=tasks, weighting=method, name=name)

    if compile:
        model.compile(optimizer=optimizer, **compile_kwargs)
    return model


# === Model surgery ===


def _sharing_strategy(model):
    strategies = [layer for layer in model.layers if isinstance(layer, sharing_module.SharingStrategy)]
    return strategies[0] if len(strategies) == 1 else None


def _strategy_tensors(strategy):
    """The strategy's input tensor and its dict of per-task output tensors in the model.

    Raises ValueError when the strategy was called more than once (no single input/output).
    """
    flat = keras.tree.flatten(strategy.output)
    outputs = keras.tree.pack_sequence_as({name: None for name in strategy.task_names}, flat)
    return strategy.input, outputs


def add_task(
    model,
    task,
    *,
    features_from=None,
    trainable_trunk=False,
    trainable_heads=False,
    weighting=None,
    compile=True,
    optimizer="adam",
    learning_rate=None,
    name=None,
    **compile_kwargs,
):
    """A new multi-task model: a trained model's trunk and heads, plus a head for `task`.

    The original model is left untouched: the new model holds a copy of its layers and
    weights. The trunk (backbone and sharing strategy) and the existing heads are frozen by
    default, so training the new model trains only the new head and the existing tasks keep
    their predictions. Labels of the existing tasks may then be given as their
    missing-label markers (-1 for classes, NaN for regression), which contribute no loss.

    Args:
        model: a `keras_mtl.MTLModel` built by `keras_mtl.build_mtl_model`.
        task: the new `keras_mtl.Task`; its name must differ from the model's tasks.
        features_from: what the new head reads: `None` (hard sharing: the shared
            representation), `"backbone"` (the features the sharing strategy receives), or
            the name of an existing task (the features that task's head receives; for
            strategies with task-specific features, such as MMoE, this is required).
        trainable_trunk: train the backbone and the sharing strategy too.
        trainable_heads: train the existing task heads too.
        weighting: the weighting method of the new model; `None` for a fresh copy of the
            model's own.
        compile: compile the new model with each task's loss, metrics and loss weight.
        optimizer: the optimizer for `compile`.
        learning_rate: the learning rate, when `optimizer` is a name.
        name: the new model's name (default: the model's).
        **compile_kwargs: further arguments for `MTLModel.compile` (e.g. `run_eagerly`).

    Returns:
        A new `keras_mtl.MTLModel` with the tasks `model.tasks + [task]`.

    Example:

    ```python
    model = keras_mtl.build_mtl_model((8,), [keras_mtl.Task("a", "binary")])
    model.fit(x, {"a": y_a}, epochs=5)
    bigger = keras_mtl.add_task(model, keras_mtl.Task("b", "regression"))
    bigger.fit(x, {"a": np.full_like(y_a, -1), "b": y_b}, epochs=5)  # trains only b's head
    ```
    """
    if not isinstance(model, MTLModel):
        raise errors.ConfigError(
            "`model` must be a keras_mtl.MTLModel. Received an object of type "
            f"{type(model).__name__}: {model!r}"
        )
    if not isinstance(task, Task):
        raise errors.TaskTypeError(
            f"`task` must be a keras_mtl.Task. Received an object of type "
            f"{type(task).__name__}: {task!r}"
        )
    if task.name in model.task_names:
        raise errors.TaskSpecError(
            f"The model already has a task named {task.name!r}; the new task needs another "
            f"name. The model's tasks are {model.task_names}."
        )
    for arg, value in (("trainable_trunk", trainable_trunk), ("trainable_heads", trainable_heads),
                       ("compile", compile)):
        if not isinstance(value, bool):
            raise errors.ConfigError(f"`{arg}` must be True or False. Received: {arg}={value!r}")
    strategy = _sharing_strategy(model)
    if strategy is None:
        raise errors.ConfigError(
            f"The model {model.name!r} has no single sharing strategy layer, so its trunk "
            "cannot be found; add_task needs a model built by keras_mtl.build_mtl_model."
        )
    valid = ["backbone"] + model.task_names
    if features_from is None and not isinstance(strategy, Hard):
        raise errors.ConfigError(
            f"The sharing strategy {type(strategy).__name__} gives each task its own features; "
            f"choose which ones the new head reads with `features_from`, one of {valid}. "
            "Received: features_from=None"
        )
    if features_from is not None and features_from not in valid:
        raise errors.ConfigError(
            f"`features_from` must be None, 'backbone' or a task name of the model, one of "
            f"{valid}. Received: features_from={features_from!r}"
        )
    optimizer = resolve_optimizer(optimizer, learning_rate)
    if compile_kwargs and not compile:
        raise errors.ConfigError(
            f"Compile arguments {sorted(compile_kwargs)} apply only with compile=True."
        )

    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy_strategy = _sharing_strategy(copy)
    backbone_features, task_features = _strategy_tensors(copy_strategy)
    if features_from == "backbone":
        features = backbone_features
    else:
        features = task_features[features_from or copy_strategy.task_names[0]]

    trunk = keras.Model(copy.input, [backbone_features, *task_features.values()])
    trunk_layers = {id(layer) for layer in trunk.layers}
    for layer in copy.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        layer.trainable = trainable_trunk if id(layer) in trunk_layers else trainable_heads

    # === Functional Model ===
    outputs = {name: copy.output[name] for name in copy.task_names}
    outputs[task.name] = task.build_head(features)
    if weighting is None:
        weighting = weighting_module.get(keras.saving.serialize_keras_object(model.weighting))
    new_model = MTLModel(
        inputs=copy.input,
        outputs=outputs,
        tasks=list(model.tasks) + [task],
        weighting=weighting,
        name=name or model.name,
    )
    if compile:
        new_model.compile(optimizer=optimizer, **compile_kwargs)
    return new_model
