"""`MetaLearner`, the base of every meta-learning algorithm: a `keras.Model` wrapping a model.

A meta-learner trains its wrapped model with `compile` + `fit` on a data set of episodes,
each element `((x_support, y_support), (x_query, y_query))` with a leading tasks axis. For
every task of the meta-batch the train step adapts the weights to the support set with a
few gradient steps (the inner loop), then measures the loss of the adapted weights on the
query set. The inner loop is functional: the wrapped model runs with `stateless_call` on
tensors, never assigning its variables, so it runs inside the compiled train step and, for
second-order MAML, the outer gradient goes through it.
"""

import numbers

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import errors
from keras_mtl import losses as losses_module


class MetaLearner(keras.Model):
    """The base class of meta-learning algorithms (`keras_mtl.meta.MAML`, `Reptile`, ...).

    Subclasses say which weights the inner loop adapts (`adapted_variables`) and how the
    outer step updates the initial weights (`meta_update`). Everything else is shared: the
    inner loop, the logged losses, `adapt`, the checks of episodes, saving.

    The loss is given to `compile` (`learner.compile(optimizer="adam", loss="mse")`); for a
    model built by `keras_mtl.build_mtl_model` it defaults to the tasks' own losses and loss
    weights. `fit` logs `loss` (the query loss after adaptation, averaged over the tasks
    and the query points), `support_loss` (the support loss before adaptation) and the
    compiled metrics on the query sets after adaptation. `predict` and `__call__` run the
    wrapped model with its current (meta-learned) weights.

    Args:
        model: the Keras model to meta-train (`Sequential`, functional, or an `MTLModel`),
            built, with trainable weights.
        inner_lr: positive number, the learning rate of the inner loop's SGD steps.
        inner_steps: integer >= 0, the inner loop's number of steps while meta-training
            (and the default of `adapt`).
        **kwargs: passed to `keras.Model` (`name`, ...).
    """

    def __init__(self, model, inner_lr=0.01, inner_steps=1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise errors.ConfigError(
                f"`model` must be a keras.Model. Received an object of type "
                f"{type(model).__name__}: {model!r}"
            )
        if not model.built:
            raise errors.ConfigError(
                f"`model` must be built before it is wrapped: give it a `keras.Input` or call "
                f"`model.build(input_shape)`. Received the unbuilt model {model.name!r}"
            )
        if not model.trainable_variables:
            raise errors.ConfigError(
                f"`model` must have trainable weights for meta-learning to adapt; the model "
                f"{model.name!r} has none (is it frozen?)."
            )
        check_positive("inner_lr", inner_lr)
        check_steps("inner_steps", inner_steps)
        self.model = model
        self.inner_lr = float(inner_lr)
        self.inner_steps = int(inner_steps)
        self._adapted = self.adapted_variables()
        if not self._adapted:
            raise errors.ConfigError(
                f"{type(self).__name__} found no trainable weights to adapt in the model "
                f"{model.name!r}."
            )
        ids = {id(v) for v in self._adapted}
        self._adapted_indices = [
            i for i, v in enumerate(model.trainable_variables) if id(v) in ids
        ]
        self._loss_tracker = keras.metrics.Mean(name="loss")
        self._support_loss_tracker = keras.metrics.Mean(name="support_loss")
        self._loss_fns = None
        self._query_metrics = []
        self._compile_arguments = {}
        self._adapt_functions = {}
        self.built = True

    # === What subclasses choose ===

    def adapted_variables(self):
        """The wrapped model's variables that the inner loop adapts (all trainable ones)."""
        return list(self.model.trainable_variables)

    def inner_learning_rates(self):
        """One learning rate per adapted variable (a float or a scalar tensor)."""
        return [self.inner_lr] * len(self._adapted)

    def meta_update(self, data):
        """One outer step on a meta-batch; returns `(query_loss, support_loss, y_query,
        y_pred_query)` for the logs, each query tensor with the tasks stacked."""
        raise NotImplementedError

    # === Compile ===

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Like `keras.Model.compile`: the loss is the inner and the outer loss.

        Args:
            optimizer: the outer (meta) optimizer.
            loss: a Keras loss (name, config, instance or function), or a dict of them keyed
                by output for a model with several outputs. For an `MTLModel` the default is
                each task's own loss weighted by its `loss_weight`.
            metrics: metrics of the query predictions after adaptation (a list, or for an
                `MTLModel` a dict of lists keyed by task; its tasks' own by default).
            **kwargs: further arguments of `keras.Model.compile` (`jit_compile`, ...).
        """
        self._loss_fns = self._resolve_losses(loss)
        self._query_metrics = self._resolve_metrics(metrics)
        self._compile_arguments = {"loss": loss, "metrics": metrics}
        super().compile(optimizer=optimizer, **kwargs)
        self._adapt_functions = {}

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            for key, value in self._compile_arguments.items():
                config[key] = keras.saving.serialize_keras_object(value)
        return config

    def compile_from_config(self, config):
        # Keras skips models that override `compile`; ours takes the same arguments.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return [self._loss_tracker, self._support_loss_tracker] + [
            metric for _, metric in self._query_metrics
        ]

    def _resolve_losses(self, loss):
        """Dict output name (None for a single output) -> (keras.losses.Loss, weight)."""
        from keras_mtl.model import MTLModel

        names = _output_names(self.model)
        if loss is None:
            if isinstance(self.model, MTLModel):
                return {t.name: (t.build_loss(), float(t.loss_weight)) for t in self.model.tasks}
            raise errors.ConfigError(
                f"`loss` is needed to meta-train the model {self.model.name!r}: "
                f"`{type(self).__name__}.compile(optimizer=..., loss=...)`. Received: loss=None"
            )
        if names is None:
            return {None: (losses_module.as_loss(loss, self.model.name), 1.0)}
        if isinstance(loss, dict):
            unknown = sorted(set(loss) - set(names))
            if unknown:
                raise errors.ConfigError(
                    f"`loss` names unknown outputs {unknown}; the model's outputs are "
                    f"{names}. Received: loss={loss!r}"
                )
            return {n: (losses_module.as_loss(v, n), 1.0) for n, v in loss.items()}
        return {n: (losses_module.as_loss(loss, n), 1.0) for n in names}

    def _resolve_metrics(self, metrics):
        """A list of (output name or None, keras.metrics.Metric)."""
        from keras_mtl.model import MTLModel

        names = _output_names(self.model)
        if metrics is None and isinstance(self.model, MTLModel):
            return [(t.name, m) for t in self.model.tasks for m in t.build_metrics()]
        if metrics is None:
            return []
        if isinstance(metrics, dict):
            pairs = [(n, spec) for n, specs in metrics.items() for spec in _as_list(specs)]
        else:
            pairs = [(n, spec) for n in (names or [None]) for spec in _as_list(metrics)]
        single = self._loss_fns.get(None, (None, 1.0))
        return [(n, _build_metric(spec, self._loss_fns.get(n, single)[0])) for n, spec in pairs]

    # === The inner loop ===

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def task_loss(self, y, y_pred):
        """The compiled loss of one task's labels and predictions (a scalar)."""
        if None in self._loss_fns:
            fn, _ = self._loss_fns[None]
            return _at_least_float32(fn(y, y_pred))
        total = 0.0
        for name, (fn, weight) in self._loss_fns.items():
            if name in y:
                total += weight * _at_least_float32(fn(y[name], y_pred[name]))
        return total

    def _current_values(self):
        """The wrapped model's trainable and non-trainable values, as tensors.

        Read inside the outer gradient tape, so the tape sees the trainable variables."""
        trainable = [tf.convert_to_tensor(v.value) for v in self.model.trainable_variables]
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        return trainable, non_trainable

    def loss_at(self, values, non_trainable, x, y, training=False):
        """The loss and predictions of the wrapped model with the weights `values`."""
        y_pred, _ = self.model.stateless_call(values, non_trainable, x, training=training)
        return self.task_loss(y, y_pred), y_pred

    def inner_loop(self, values, non_trainable, x, y, steps, *, first_order, training=False,
                   on_step=None):
        """`steps` SGD steps on `(x, y)` from the weights `values`, as tensors.

        Only the adapted variables move. With `first_order` the inner gradients are constants
        for an enclosing gradient tape; otherwise the tape differentiates through them.
        `on_step(k, values)` is called with the weights after each step k >= 1.

        Returns:
            The adapted values (for every trainable variable) and the loss on `(x, y)` at
            the initial weights.
        """
        values = list(values)
        rates = self.inner_learning_rates()
        initial_loss = None
        for step in range(steps):
            adapted = [values[i] for i in self._adapted_indices]
            with tf.GradientTape() as tape:
                tape.watch(adapted)
                for i, value in zip(self._adapted_indices, adapted):
                    values[i] = value
                loss, _ = self.loss_at(values, non_trainable, x, y, training=training)
            grads = tape.gradient(loss, adapted, unconnected_gradients="zero")
            if first_order:
                grads = [tf.stop_gradient(g) for g in grads]
            if initial_loss is None:
                initial_loss = loss
            for i, value, grad, rate in zip(self._adapted_indices, adapted, grads, rates):
                values[i] = value - rate * grad
            if on_step is not None:
                on_step(step + 1, values)
        if initial_loss is None:
            initial_loss, _ = self.loss_at(values, non_trainable, x, y, training=training)
        return values, initial_loss

    def adapt_tasks(self, data, *, first_order, training):
        """Adapts to every task of a meta-batch.

        The tasks run side by side (`tf.vectorized_map`), or one after the other in a
        `tf.map_fn` loop when the model's ops do not vectorize: either way the train step is
        traced once whatever the meta-batch size, and the gradient tape goes through it.

        Returns:
            The adapted values (one tensor per trainable variable, the tasks stacked), the
            mean query loss after adaptation, the mean support loss before it, and the query
            labels and predictions with the tasks stacked.
        """
        support, query, _ = keras.utils.unpack_x_y_sample_weight(data)
        (x_support, y_support), (x_query, y_query) = support, query
        y_support = self._labels(y_support)
        y_query = self._labels(y_query)
        values, non_trainable = self._current_values()

        def one_task(task):
            x_s, y_s, x_q, y_q = task
            task_values, support_loss = self.inner_loop(
                values, non_trainable, x_s, y_s, self.inner_steps,
                first_order=first_order, training=training,
            )
            query_loss, y_pred = self.loss_at(task_values, non_trainable, x_q, y_q,
                                              training=training)
            return task_values, loss_dtype(query_loss), loss_dtype(support_loss), y_pred

        dtype = values[0].dtype
        loss_dtype = lambda v: tf.cast(v, dtype)  # noqa: E731
        tasks = (x_support, y_support, x_query, y_query)
        try:
            # The tasks side by side: one batched op per op of the inner loop (about twice
            # as fast as a loop over tasks for small models). Ops without a vectorized form
            # run in a loop inside it.
            adapted, query_losses, support_losses, y_pred = tf.vectorized_map(one_task, tasks)
        except (ValueError, TypeError, NotImplementedError, tf.errors.OpError):
            adapted, query_losses, support_losses, y_pred = self._map_tasks(
                one_task, tasks, values, dtype, x_query
            )
        query_loss = keras.ops.mean(query_losses)
        support_loss = keras.ops.mean(support_losses)
        return adapted, query_loss, support_loss, y_query, y_pred

    def _map_tasks(self, one_task, tasks, values, dtype, x_query):
        """The tasks one after the other in a `tf.map_fn` loop (when they do not vectorize)."""
        query_inputs = keras.tree.map_structure(
            lambda v: keras.KerasTensor(tuple(v.shape[1:]), v.dtype.name), x_query
        )
        signature = (
            [tf.TensorSpec(v.shape, v.dtype) for v in values],
            tf.TensorSpec((), dtype),
            tf.TensorSpec((), dtype),
            keras.tree.map_structure(
                lambda o: tf.TensorSpec(o.shape, o.dtype),
                self.model.compute_output_spec(query_inputs),
            ),
        )
        return tf.map_fn(one_task, tasks, fn_output_signature=signature)

    # === Steps ===

    def train_step(self, data):
        query_loss, support_loss, y_query, y_pred = self.meta_update(data)
        return self._update_logs(query_loss, support_loss, y_query, y_pred)

    def test_step(self, data):
        _, query_loss, support_loss, y_query, y_pred = self.adapt_tasks(
            data, first_order=True, training=False
        )
        return self._update_logs(query_loss, support_loss, y_query, y_pred)

    def apply_gradients(self, grads, variables):
        """Applies the outer optimizer (with Keras' loss scaling, if any)."""
        self.optimizer.apply_gradients(zip(grads, variables))

    def _update_logs(self, query_loss, support_loss, y_query, y_pred):
        self._loss_tracker.update_state(query_loss)
        self._support_loss_tracker.update_state(support_loss)
        merge = lambda v: keras.ops.reshape(  # noqa: E731
            v, (-1,) + tuple(v.shape[2:])
        )
        y_query = keras.tree.map_structure(merge, y_query)
        y_pred = keras.tree.map_structure(merge, y_pred)
        logs = {
            "loss": self._loss_tracker.result(),
            "support_loss": self._support_loss_tracker.result(),
        }
        for name, metric in self._query_metrics:
            if name is None:
                metric.update_state(y_query, y_pred)
            elif name in y_query:
                metric.update_state(y_query[name], y_pred[name])
            key = metric.name if name is None else f"{name}_{metric.name}"
            logs[key] = metric.result()
        return logs

    def _labels(self, y):
        """Labels as the wrapped model's outputs are keyed (a bare array for one output)."""
        names = _output_names(self.model)
        if names is not None and len(names) == 1 and not isinstance(y, dict):
            return {names[0]: y}
        return y

    # === Fit, evaluate: episodes checked first ===

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        self._require_compiled("fit")
        self.check_episodes(x, y, "x" if y is None else "x, y")
        if validation_data is not None:
            self.check_episodes(validation_data, None, "validation_data")
        # Episodes come as a dataset, which Keras does not shuffle (and warns about).
        kwargs.setdefault("shuffle", False)
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._require_compiled("evaluate")
        self.check_episodes(x, y, "x" if y is None else "x, y")
        return super().evaluate(x, y, *args, **kwargs)

    def _require_compiled(self, method):
        if self._loss_fns is None:
            raise errors.ConfigError(
                f"The learner must be compiled before `{method}`: "
                f"`learner.compile(optimizer=..., loss=...)`."
            )

    def check_episodes(self, x, y, argument):
        """Checks the shapes of episodes before training (`EpisodeError` when wrong)."""
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
        elif y is not None:
            spec = (x, y)
        else:
            spec = x
        try:
            (x_support, y_support), (x_query, y_query) = spec
        except (TypeError, ValueError):
            raise errors.EpisodeError(
                f"`{argument}` must give episodes `((x_support, y_support), (x_query, "
                f"y_query))`, each with a leading tasks axis, as "
                f"`keras_mtl.meta.TaskDistribution.episodes()` does. Received: {spec!r}"
            ) from None
        parts = {"x_support": x_support, "y_support": y_support,
                 "x_query": x_query, "y_query": y_query}
        shapes = {
            key: [tuple(s.shape) for s in keras.tree.flatten(value)]
            for key, value in parts.items()
        }
        tasks = {s[0] for shape in shapes.values() for s in shape} - {None}
        if len(tasks) > 1:
            raise errors.EpisodeError(
                f"The support and query sets of `{argument}` must have the same number of "
                f"tasks (the leading axis). Received shapes {shapes}"
            )
        for side in ("support", "query"):
            counts = {s[1] for key in (f"x_{side}", f"y_{side}") for s in shapes[key]}
            if len(counts) != 1 or 0 in counts:
                raise errors.EpisodeError(
                    f"The {side} sets of `{argument}` must have at least one example, as "
                    f"many labels as inputs. Received shapes x_{side}={shapes[f'x_{side}']}, "
                    f"y_{side}={shapes[f'y_{side}']}"
                )
        for name in ("x", "y"):
            support = keras.tree.map_structure(
                lambda s: tuple(s.shape[2:]), parts[f"{name}_support"])
            query = keras.tree.map_structure(lambda s: tuple(s.shape[2:]), parts[f"{name}_query"])
            try:
                keras.tree.assert_same_structure(support, query)
                same = keras.tree.flatten(support) == keras.tree.flatten(query)
            except (TypeError, ValueError):
                same = False
            if not same:
                raise errors.EpisodeError(
                    f"The support and query sets of `{argument}` disagree: `{name}_support` "
                    f"has examples of shape {support} and `{name}_query` of shape {query}."
                )
        x_spec = keras.tree.map_structure(
            lambda s: keras.KerasTensor((None,) + tuple(s.shape[2:]), s.dtype.name), x_support
        )
        y_spec = keras.tree.map_structure(
            lambda s: keras.KerasTensor((None,) + tuple(s.shape[2:]), s.dtype.name), y_support
        )
        self.check_labels(x_spec, y_spec, f"y_support of `{argument}`")

    def check_labels(self, x, y, argument):
        """Checks that labels `y` fit the wrapped model's outputs for inputs `x`."""
        try:
            outputs = self.model.compute_output_spec(x)
        except Exception as e:  # noqa: BLE001 - any failure means the inputs do not fit
            raise errors.EpisodeError(
                f"The inputs do not fit the model {self.model.name!r}: "
                f"{_shapes(x)} (without the examples axis). {e}"
            ) from None
        y = self._labels(y)
        if isinstance(outputs, dict):
            if not isinstance(y, dict) or not set(y) <= set(outputs):
                raise errors.EpisodeError(
                    f"`{argument}` must be a dict keyed by the model's outputs "
                    f"{sorted(outputs)}. Received: {_shapes(y)}"
                )
            pairs = [(f"{argument}[{name!r}]", y[name], outputs[name]) for name in y]
        else:
            pairs = [(argument, y, outputs)]
        for label_argument, labels, output in pairs:
            _check_label_shape(label_argument, labels, output)

    # === Adaptation ===

    def adapt(self, x_support, y_support, steps=None):
        """A new model with the weights adapted to `(x_support, y_support)`.

        The learner and its wrapped model are unchanged. The new model is a copy of the
        wrapped model (an `MTLModel` stays one, compiled with its tasks' losses), ready for
        `predict`, `save` and `keras_mtl.export_saved_model`.

        Args:
            x_support: the support inputs of one task, `(shots, ...)`.
            y_support: its labels (a dict keyed by task for an `MTLModel`; the tasks left
                out are not adapted for).
            steps: the number of inner steps (default: `inner_steps`).

        Returns:
            A new `keras.Model`.
        """
        if self._loss_fns is None:
            self._loss_fns = self._resolve_losses(None)
        steps = self.inner_steps if steps is None else steps
        check_steps("steps", steps)
        x_support = keras.tree.map_structure(_as_array, x_support)
        y_support = keras.tree.map_structure(_as_array, y_support)
        self._check_support(x_support, y_support)
        values = self.adapted_values(x_support, y_support, steps)
        adapted = copy_model(self.model)
        # The copy's variables come in the model's order; which are trainable may not.
        position = {id(v): i for i, v in enumerate(self.model.variables)}
        for variable, value in zip(self.model.trainable_variables, values):
            adapted.variables[position[id(variable)]].assign(value)
        return adapted

    def _check_support(self, x, y):
        rows = {np.shape(v)[0] if np.ndim(v) else 0 for v in keras.tree.flatten(x)}
        label_rows = {np.shape(v)[0] if np.ndim(v) else 0 for v in keras.tree.flatten(y)}
        if len(rows | label_rows) != 1 or 0 in rows:
            raise errors.EpisodeError(
                "`x_support` and `y_support` must have the same number of examples, at least "
                f"one. Received: x_support {_shapes(x)}, y_support {_shapes(y)}"
            )
        spec = keras.tree.map_structure(
            lambda v: keras.KerasTensor((None,) + np.shape(v)[1:], str(v.dtype)), x
        )
        labels = keras.tree.map_structure(
            lambda v: keras.KerasTensor((None,) + np.shape(v)[1:], str(v.dtype)), y
        )
        self.check_labels(spec, labels, "y_support")

    def adapted_values(self, x, y, steps):
        """The trainable values after `steps` inner steps on one task (NumPy arrays)."""
        key = ("values", steps)
        if key not in self._adapt_functions:
            def run(x, y):
                values, non_trainable = self._current_values()
                adapted, _ = self.inner_loop(
                    values, non_trainable, x, self._labels(y), steps, first_order=True
                )
                return adapted

            self._adapt_functions[key] = tf.function(run, reduce_retracing=True)
        return [np.asarray(v) for v in self._adapt_functions[key](x, y)]

    def adaptation_curve(self, x_support, y_support, x_query, y_query, steps):
        """Query losses and predictions of one task after each number of steps in `steps`.

        Returns:
            A list (one per entry of `steps`) of `(query_loss, query_predictions)`.
        """
        steps = tuple(sorted(set(steps)))
        key = ("curve", steps)
        if key not in self._adapt_functions:
            def run(x_s, y_s, x_q, y_q):
                values, non_trainable = self._current_values()
                y_s, y_q = self._labels(y_s), self._labels(y_q)
                results = {}

                def record(step, current):
                    if step in steps:
                        results[step] = self.loss_at(current, non_trainable, x_q, y_q)

                record(0, values)
                self.inner_loop(values, non_trainable, x_s, y_s, max(steps),
                                first_order=True, on_step=record)
                return [results[s] for s in steps]

            self._adapt_functions[key] = tf.function(run, reduce_retracing=True)
        out = self._adapt_functions[key](x_support, y_support, x_query, y_query)
        return [(float(loss), keras.tree.map_structure(np.asarray, pred)) for loss, pred in out]

    # === Config ===

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.model),
            "inner_lr": self.inner_lr,
            "inner_steps": self.inner_steps,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(
            config["model"], custom_objects=custom_objects
        )
        return cls(**config)


# === Helpers ===


def check_positive(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(value)
        or value <= 0
    ):
        raise errors.ConfigError(
            f"`{name}` must be a positive number. Received: {name}={value!r}"
        )


def check_steps(name, value, minimum=0):
    """`value` is an integer >= `minimum` (a `ConfigError` naming `name` otherwise)."""
    from keras_mtl.model import _check_int

    _check_int(name, value, minimum)


def copy_model(model):
    """A copy of `model` with its weights (an `MTLModel` copy is compiled by default)."""
    from keras_mtl.model import MTLModel

    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    copy.set_weights(model.get_weights())
    for original, layer in zip(model.layers, copy.layers):
        layer.trainable = original.trainable
    if isinstance(copy, MTLModel):
        copy.compile()
    return copy


def _output_names(model):
    """The names of a model's dict outputs, or None for a tensor output."""
    output = getattr(model, "output", None) if _is_functional(model) else None
    if isinstance(output, dict):
        return list(output)
    return None


def _is_functional(model):
    try:
        return model.output is not None
    except (AttributeError, ValueError):
        return False


def _at_least_float32(value):
    """A loss in float32 under mixed precision, float64 kept for float64 models."""
    if keras.backend.standardize_dtype(value.dtype) in ("float16", "bfloat16"):
        return keras.ops.cast(value, "float32")
    return value


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _as_array(value):
    return np.asarray(value)


def _shapes(tree):
    return keras.tree.map_structure(lambda v: tuple(getattr(v, "shape", ())), tree)


_ACCURACY = {
    "SparseCategoricalCrossentropy": keras.metrics.SparseCategoricalAccuracy,
    "CategoricalCrossentropy": keras.metrics.CategoricalAccuracy,
    "BinaryCrossentropy": keras.metrics.BinaryAccuracy,
}


def _build_metric(spec, loss):
    """A fresh metric from a name, config, instance or function ("accuracy" follows the
    loss, as Keras does)."""
    if isinstance(spec, keras.metrics.Metric):
        return spec
    if spec in ("accuracy", "acc"):
        inner = getattr(loss, "loss", loss)
        cls = _ACCURACY.get(type(inner).__name__, keras.metrics.Accuracy)
        return cls(name="accuracy")
    metric = keras.metrics.get(spec)
    if isinstance(metric, keras.metrics.Metric):
        # Logged under the name given, as `compile` does ("mae", not "mean_absolute_error").
        if isinstance(spec, str):
            metric = type(metric).from_config(dict(metric.get_config(), name=spec))
        return metric
    name = spec if isinstance(spec, str) else getattr(metric, "__name__", "metric")
    return keras.metrics.MeanMetricWrapper(metric, name=name)


def _check_label_shape(argument, labels, output):
    """`labels` (per example) fit `output`: same shape, or class ids for class scores, or
    `(n,)` for one output unit."""
    label_shape = tuple(labels.shape[1:])
    output_shape = tuple(output.shape[1:])
    integer = "int" in str(labels.dtype)
    fits = (
        label_shape == output_shape
        or (output_shape[-1:] == (1,) and label_shape == output_shape[:-1])
        or (integer and label_shape in (output_shape[:-1], output_shape[:-1] + (1,)))
    )
    if not fits:
        raise errors.EpisodeError(
            f"`{argument}` must have labels of shape {output_shape} per example (or class "
            f"ids of shape {output_shape[:-1]} for class scores) to match the model's "
            f"output. Received labels of shape {label_shape} per example "
            f"(dtype {labels.dtype})."
        )
