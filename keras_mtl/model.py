"""`MTLModel`, the multi-task functional model; `build_mtl_model`, which builds one; and
`add_task`, which grows a trained one by a task."""

import numbers

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import _keras_compat, backbones, errors, labels
from keras_mtl import losses as losses_module
from keras_mtl import sharing as sharing_module
from keras_mtl import structure as structure_module
from keras_mtl import weighting as weighting_module
from keras_mtl.tasks import Task, check_names_free, validate_tasks
from keras_mtl.weighting import gradients


@keras.saving.register_keras_serializable(package="keras_mtl")
class MTLModel(keras.Model):
    """A functional Keras model with one named output per task.

    Built by `keras_mtl.build_mtl_model`. Its outputs are a dict keyed by task name; `compile`
    fills in each task's loss, metrics and loss weight unless given; `fit` and `evaluate`
    check that the labels are a dict with one entry per task before any training starts.
    It saves and loads as `.keras` in Keras' safe mode.

    The model knows its structure (`structure`): the tensor its sharing strategy receives
    and the tensor each task's head reads, hence which layers and variables are shared and
    which belong to one task's head.

    The logged losses do not depend on how the data is batched: `<task>_loss` is the task's
    loss averaged over every label present in the data (labels marked missing left out), and
    `loss` is the sum of those with the tasks' static loss weights (each task's
    `loss_weight`, or the `loss_weights` given to `compile`), plus the model's additional
    losses (regularizers, `add_loss`) averaged per example. Adaptive weighting methods train
    with their own weights but log this same `loss`, so it stays comparable with `val_loss`.

    Args:
        inputs: the model's inputs, as for a functional `keras.Model`.
        outputs: a dict of output tensors keyed by task name.
        tasks: the `keras_mtl.Task`s (or their configs), one per output.
        weighting: the weighting method: a name, config or `keras_mtl.weighting` instance.
        backbone_output: the tensor the sharing strategy receives (the shared features).
        head_inputs: a dict task name -> the tensor that task's head reads. With
            `backbone_output`, the model's structure, as `build_mtl_model` records it; when
            both are omitted they are taken from the model's one sharing strategy layer.

    Example:

    >>> tasks = [keras_mtl.Task("a", "binary"), keras_mtl.Task("b", "regression")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, shared_units=16)
    >>> isinstance(model, keras_mtl.MTLModel), sorted(model.output_names)
    (True, ['a', 'b'])
    """

    def __init__(
        self, *args, tasks=None, weighting="static", backbone_output=None, head_inputs=None,
        **kwargs,
    ):
        if kwargs.pop(_STRUCTURE_IN_OUTPUTS, False):
            packed = kwargs["outputs"]
            kwargs["outputs"] = packed["outputs"]
            backbone_output = packed["structure"].get("backbone_output")
            head_inputs = packed["structure"].get("head_inputs")
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
        self._structure = self._resolve_structure(backbone_output, head_inputs)
        # The logged losses, in place of Keras' per-batch means (see `metrics`).
        self._task_loss_means = losses_module.TaskLossMeans(self.task_names)
        self._total_loss = losses_module.TotalLoss(self._task_loss_means)
        self._task_losses = None
        self.weighting = weighting_module.get(weighting)
        self.weighting.attach(self)

    def _resolve_structure(self, backbone_output, head_inputs):
        if backbone_output is None and head_inputs is None:
            return structure_module.derive_structure(self)
        if (
            backbone_output is None
            or not isinstance(head_inputs, dict)
            or sorted(head_inputs) != sorted(self.task_names)
        ):
            raise errors.TaskSpecError(
                "`backbone_output` and `head_inputs` go together, `head_inputs` as a dict "
                f"keyed by the task names {self.task_names}. Received: backbone_output="
                f"{backbone_output!r}, head_inputs of type {type(head_inputs).__name__}"
                + (f" with keys {sorted(head_inputs)}" if isinstance(head_inputs, dict) else "")
            )
        return structure_module.ModelStructure(self, backbone_output, head_inputs)

    @property
    def task_names(self):
        """The names of the tasks, in order."""
        return [t.name for t in self.tasks]

    @property
    def structure(self):
        """The model's `keras_mtl.structure.ModelStructure`, or None when it is unknown.

        It says what the sharing strategy receives (`backbone_output`), what each head
        reads (`head_inputs`), and which layers and variables belong to each head
        (`head_layers`, `head_variables()`) and to the shared trunk (`trunk_layers`,
        `shared_variables()`).
        """
        return self._structure

    @property
    def sharing_layer(self):
        """The model's sharing strategy layer (a `keras_mtl.sharing.SharingStrategy`)."""
        if self._structure is not None and self._structure.sharing_layer is not None:
            return self._structure.sharing_layer
        for layer in self.layers:
            if isinstance(layer, sharing_module.SharingStrategy):
                return layer
        raise errors.ConfigError(f"The model {self.name!r} has no sharing strategy layer.")

    # === Losses ===

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
        task_losses = {
            name: None if value is None else losses_module.as_loss(value, name)
            for name, value in _per_task(self, loss, "loss").items()
        }
        if not isinstance(self.weighting, weighting_module.Static):
            missing = [name for name, fn in task_losses.items() if fn is None]
            if missing:
                raise errors.ConfigError(
                    f"Every task needs a loss for adaptive weighting; tasks {missing} have "
                    "none. Compile the model with one loss per task (the default of "
                    "`MTLModel.compile`)."
                )
        weights = tuple(
            1.0 if value is None else float(value)
            for value in _per_task(self, loss_weights, "loss_weights").values()
        )
        # Keras gets no loss: `compute_loss` computes each task's own (`get_compile_config`
        # keeps the losses for saving).
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.loss = loss
        self._compile_losses = {"loss": loss, "loss_weights": loss_weights}
        self._task_losses = task_losses
        self._total_loss.loss_weights = weights

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            for key, value in self._compile_losses.items():
                config[key] = keras.saving.serialize_keras_object(value)
        return config

    def train_step(self, data):
        data = labels.checked_in_graph(self, data)
        logs = self.weighting.train_step(self, data, super().train_step)
        # keras_mtl.diagnostics callbacks measure here, after the update, on the same batch;
        # after it, so the ops they add cannot change the op seeds of random draws above.
        for probe in getattr(self, "_diagnostic_probes", ()):
            probe(data)
        return _keras_compat.logs_for_workers(self.distribute_strategy, logs)

    def test_step(self, data):
        return _keras_compat.logs_for_workers(self.distribute_strategy, super().test_step(data))

    # Two private Keras hooks, overridden for tf.distribute (see keras_mtl/_keras_compat.py).
    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        iterator, data_batch = _keras_compat.symbolic_build_arguments(
            self._distribute_strategy, iterator, data_batch
        )
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _get_metrics_result_or_logs(self, logs):
        epoch_logs = _keras_compat.epoch_logs(self, logs)
        if epoch_logs is None:
            return super()._get_metrics_result_or_logs(logs)
        return epoch_logs

    def compile_from_config(self, config):
        # Keras skips models that override `compile`; ours takes the same arguments.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_task_losses(self, y, y_pred, sample_weight=None):
        """Each task's loss, unweighted, as the compiled losses compute it.

        Under `tf.distribute` a loss is scaled as Keras scales it (summing over replicas
        gives the loss of the global batch). Logs nothing.

        Args:
            y: the labels, a dict keyed by task name (a bare array for a single task).
            y_pred: the model's outputs.
            sample_weight: optional sample weights (a dict keyed by task name, or one
                array for every task).

        Returns:
            A list of float32 scalars in the order of `task_names` (zero for a task compiled
            without a loss).
        """
        return self._losses_and_counts(y, y_pred, sample_weight, counts=False)[0]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The loss to minimise: the weighted sum of the task losses, plus added losses.

        The weights are the static loss weights, or, while training, those of the weighting
        method. Also records the task losses for the logs (see the class docstring).
        """
        losses, extra = self.record_losses(y, y_pred, sample_weight)
        if training:
            weights = self.weighting.loss_weights(self, y, losses)
        else:
            weights = self._total_loss.loss_weights
        total = keras.ops.sum(keras.ops.stack(losses) * weights)
        return total if extra is None else total + extra

    def record_losses(self, y, y_pred, sample_weight=None):
        """The task losses (`compute_task_losses`) and the sum of the model's added losses
        (None without any), recorded for the logged `<task>_loss` and `loss`."""
        losses, counts = self._losses_and_counts(y, y_pred, sample_weight, counts=True)
        self._task_loss_means.update_state(keras.ops.stack(losses), counts)
        extra = gradients.additional_loss(self)
        if extra is not None:
            batch_size = keras.ops.shape(keras.tree.flatten(y_pred)[0])[0]
            self._total_loss.update_state(extra, batch_size)
        return losses, extra

    def _losses_and_counts(self, y, y_pred, sample_weight, counts):
        if self._task_losses is None:
            raise errors.ConfigError(
                "The model must be compiled before training; call `model.compile()`."
            )
        y = gradients.keyed_by_task(self, y)
        sample_weight = gradients.keyed_by_task(self, sample_weight)
        values, numbers = [], []
        for name in self.task_names:
            loss_fn = self._task_losses[name]
            if loss_fn is None:
                values.append(keras.ops.zeros((), "float32"))
                numbers.append(keras.ops.zeros((), "float32"))
                continue
            weight = sample_weight.get(name) if isinstance(sample_weight, dict) else sample_weight
            values.append(
                keras.ops.cast(loss_fn(y[name], y_pred[name], weight), "float32")
            )
            if counts:
                numbers.append(losses_module.label_count(loss_fn, y[name], y_pred[name]))
        if not counts:
            return values, None
        # A replica's loss is divided by the label count of the global batch over the
        # number of replicas; weighing it by that count sums back to the global total.
        numbers = keras.ops.stack(numbers)
        replicas = gradients.num_replicas()
        if replicas > 1:
            numbers = gradients.all_reduce_sum(numbers) / replicas
        return values, numbers

    @property
    def metrics(self):
        # `loss` is ours (the Keras tracker averages the weighted total per batch).
        keras_metrics = [m for m in super().metrics if m.name != "loss"]
        return [self._total_loss] + keras_metrics


    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        # An infinite stream of `keras_mtl.data.mix` knows the length of its epoch.
        if isinstance(x, tf.data.Dataset) and "steps_per_epoch" not in kwargs:
            kwargs["steps_per_epoch"] = getattr(x, "steps_per_epoch", None)
        x = _strings_as_tensors(x)
        self.check_labels(x, y, argument=_labels_argument(x, y, "y"))
        if isinstance(validation_data, (tuple, list)) and validation_data:
            validation_data = (_strings_as_tensors(validation_data[0]), *validation_data[1:])
        if validation_data is not None:
            self._check_validation_data(validation_data)
        # Labels given as `y` were checked whole; those of a dataset or generator are checked
        # in the graph too, which costs tracing time. Retrace when that changes.
        if getattr(self, labels.GRAPH_CHECK_ATTRIBUTE, None) != (y is None):
            setattr(self, labels.GRAPH_CHECK_ATTRIBUTE, y is None)
            self.train_function = None
        try:
            return super().fit(x, y, *args, validation_data=validation_data, **kwargs)
        except tf.errors.InvalidArgumentError as e:
            error = labels.graph_check_error(e)
            if error is None:
                raise
            raise error from None

    def evaluate(self, x=None, y=None, *args, **kwargs):
        x = _strings_as_tensors(x)
        self.check_labels(x, y, argument=_labels_argument(x, y, "y"))
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        return super().predict(_strings_as_tensors(x), *args, **kwargs)

    def _check_validation_data(self, validation_data):
        if isinstance(validation_data, (tuple, list)):
            if len(validation_data) >= 2:
                self.check_labels(
                    validation_data[0], validation_data[1], argument="validation_data[1]"
                )
        else:
            self.check_labels(validation_data, None, argument="validation_data")

    def check_labels(self, x, y, argument="y"):
        """Raises `keras_mtl.errors.LabelError` unless the labels fit the model's tasks.

        `y` must be a dict with one entry per task (a model with a single task also accepts
        a bare array), each of the shape, dtype and values its task's kind takes (see
        `keras_mtl.kinds.TaskKind`): e.g. 0 or 1 for a binary task, integer class ids in range
        for a multi-class one, finite numbers for regression, NaN only where it is the task's
        missing-label marker. Arrays are checked whole. For a `tf.data.Dataset` given as `x`,
        the labels are checked from its `element_spec` and on its first batch; `fit` also
        checks, in the graph, the labels of the model's first training steps.

        Args:
            x: the inputs, or a `tf.data.Dataset` of `(inputs, labels)`.
            y: the labels (None for a dataset).
            argument: the name of the argument holding the labels (or the dataset), for
                error messages.

        Example:

        >>> model = keras_mtl.build_mtl_model((4,), [keras_mtl.Task("odd", "binary")])
        >>> try:
        ...     model.check_labels(None, {"odd": np.array([0, 1, 2])})
        ... except keras_mtl.errors.LabelError as error:
        ...     print(error)  # doctest: +NORMALIZE_WHITESPACE
        Task 'odd' (binary): labels must be 0 or 1, or -1 for a missing label. Received 2 at
        index 2 (1 invalid of 3 entries) in `y['odd']`.
        """
        labels.check_labels(self, x, y, argument)

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config["tasks"] = [t.get_config() for t in self.tasks]
        config["weighting"] = keras.saving.serialize_keras_object(self.weighting)
        if self._structure is not None:
            # As Keras writes the outputs: [layer name, node index, tensor index].
            config.update(
                structure_module.tensor_references(
                    self,
                    {
                        "backbone_output": self._structure.backbone_output,
                        "head_inputs": self._structure.head_inputs,
                    },
                )
            )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        structure = {
            key: config.pop(key)
            for key in ("backbone_output", "head_inputs")
            if config.get(key) is not None
        }
        if structure:
            # Keras turns the references of the outputs into the rebuilt tensors; it does
            # the same for these, carried along with the outputs and split off in __init__.
            config["output_layers"] = {"outputs": config["output_layers"], "structure": structure}
            config[_STRUCTURE_IN_OUTPUTS] = True
        return super().from_config(config, custom_objects=custom_objects)


# A key of the config `from_config` hands to `__init__`: `outputs` also hold the structure.
_STRUCTURE_IN_OUTPUTS = "_structure_in_outputs"


def _per_task(model, value, argument):
    """A `compile` argument given per output (dict or list) or for all, as a dict by task."""
    names = model.task_names
    if isinstance(value, dict):
        unknown = [key for key in value if key not in names]
        if unknown:
            raise errors.ConfigError(
                f"`{argument}` names unknown tasks {unknown}; the model's tasks are {names}. "
                f"Received keys {list(value)}"
            )
        return {name: value.get(name) for name in names}
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise errors.ConfigError(
                f"`{argument}` must have one entry per output {model.output_names}. "
                f"Received {len(value)} entries"
            )
        by_output = dict(zip(model.output_names, value))
        return {name: by_output[name] for name in names}
    return {name: value for name in names}


def _labels_argument(x, y, argument):
    """The argument that holds the labels: the dataset `x` when it yields them."""
    return "x" if y is None and isinstance(x, tf.data.Dataset) else argument


def _strings_as_tensors(data):
    """`data` with its NumPy string arrays as `tf.string` tensors.

    Keras rejects the `<U..` and `|S..` dtypes, and object arrays unless they are 1-D and
    hold `str`.
    """
    return keras.tree.map_structure(
        lambda value: tf.convert_to_tensor(value) if _is_string_array(value) else value, data
    )


def _is_string_array(value):
    if not isinstance(value, np.ndarray) or value.size == 0:
        return False
    if value.dtype.kind in "US":
        return True
    return value.dtype.kind == "O" and isinstance(value.flat[0], (str, bytes))


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise errors.ConfigError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )


def _image_size(inputs):
    """The `(height, width)` of a model's one image input, or None."""
    if not isinstance(inputs, keras.KerasTensor) or len(inputs.shape) != 4:
        return None
    size = tuple(inputs.shape[1:3])
    return None if None in size else size


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
        pool_features: pool a feature map to a vector (global average) before sharing. With
            dense tasks (segmentation, dense regression, token classification) the sharing
            strategy works on the map or sequence, which the dense heads read, and each
            vector task's head pools it (layer `<task>_pool`).
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
    if pool_features and not any(task.is_dense for task in tasks):
        features = backbones.pool_features(
            features, flatten=backbones.is_inputs_only(backbone)
        )
    task_features = strategy(features)
    check_names_free(tasks, keras.Model(inputs, task_features).layers)
    input_size = _image_size(inputs)
    outputs = {
        task.name: task.build_head(
            task_features[task.name], input_size=input_size, pool=pool_features
        )
        for task in tasks
    }
    model = MTLModel(
        inputs=inputs,
        outputs=outputs,
        tasks=tasks,
        weighting=method,
        backbone_output=features,
        head_inputs={task.name: task_features[task.name] for task in tasks},
        name=name,
    )

    if compile:
        model.compile(optimizer=optimizer, **compile_kwargs)
    return model


# === Model surgery ===


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
    structure = structure_module.require_structure(model, "add_task")
    valid = ["backbone"] + model.task_names
    if features_from is None and not structure.one_representation:
        raise errors.ConfigError(
            "The heads of this model read different features (its sharing strategy "
            f"{type(structure.sharing_layer).__name__} gives each task its own); choose which "
            f"ones the new head reads with `features_from`, one of {valid}. "
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
    check_names_free([task], copy.layers)
    copied = copy.structure
    if features_from == "backbone":
        features = copied.backbone_output
    else:
        features = copied.head_inputs[features_from or copy.task_names[0]]

    trunk_layers = {id(layer) for layer in copied.trunk_layers}
    for layer in copy.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        layer.trainable = trainable_trunk if id(layer) in trunk_layers else trainable_heads

    # === Functional Model ===
    outputs = {name: copy.output[name] for name in copy.task_names}
    outputs[task.name] = task.build_head(
        features,
        input_size=_image_size(copy.input),
        pool=any(t.is_dense for t in model.tasks),
    )
    if weighting is None:
        weighting = weighting_module.get(keras.saving.serialize_keras_object(model.weighting))
    new_model = MTLModel(
        inputs=copy.input,
        outputs=outputs,
        tasks=list(model.tasks) + [task],
        weighting=weighting,
        backbone_output=copied.backbone_output,
        head_inputs=dict(copied.head_inputs, **{task.name: features}),
        name=name or model.name,
    )
    if compile:
        new_model.compile(optimizer=optimizer, **compile_kwargs)
    return new_model
