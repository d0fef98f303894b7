"""The base classes of weighting methods: how per-task losses or gradients become one update.

- `WeightingMethod`: the interface `MTLModel` uses (`attach`, `loss_weights`, `train_step`,
  `get_config`).
- `LossWeighting`: methods that weight the task losses (one backward pass a step), through
  `MTLModel.compute_loss` in Keras' own training step.
- `GradientWeighting`: methods that combine the tasks' gradients from their Gram matrix,
  either of the shared parameters (`mode="exact"`) or of the shared representation
  (`mode="rep"`).
"""

import numbers
import threading

import keras
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.weighting import gradients

_STATE_ATTRIBUTE = "_weighting_state"


class WeightingMethod:
    """How an `MTLModel` combines its tasks' losses (or gradients) into one update.

    A method is a plain serializable value (`get_config` returns its `__init__` arguments).
    `MTLModel` calls `attach(model)` once, before training, so the method can create its
    state (as Keras variables of the model, saved with it) and read the tasks' static
    `loss_weight`s. The state lives on the model, so one method instance may train several
    models. Every method logs the task weights in use as `weight_<task>`.
    """

    def attach(self, model):
        """Called by `MTLModel` with the model the method will train."""
        state = WeightingState(task_names=model.task_names, name="weighting_state")
        self.build_state(state, model.tasks)
        self.build_model_state(state, model)
        state.built = True
        setattr(model, _STATE_ATTRIBUTE, state)

    def build_state(self, state, tasks):
        """Creates the method's variables with `state.add_state(...)` (`tasks`: the Tasks)."""

    def loss_weights(self, model, y, losses):
        """The weights of the task losses in `model.compute_loss` while training.

        `losses` are the task losses of the replica's batch, `y` its labels. The default is
        the static loss weights.
        """
        return tf.constant(gradients.static_weights(model), "float32")

    def build_model_state(self, state, model):
        """Creates variables shaped by the model's own (e.g. one slot per model variable)."""

    def train_step(self, model, data, default_train_step):
        """One training step of `model` on `data`; the default is Keras' own step."""
        return default_train_step(data)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class WeightingState(keras.layers.Layer):
    """The Keras variables of a weighting method, attached to (and saved with) its model.

    Variables are mirrored under `tf.distribute` and every replica computes the same update,
    so they are written from the first replica only. They are non-trainable for Keras: the
    method updates them itself, never the model's optimizer.

    Args:
        task_names: the names of the model's tasks.
    """

    def __init__(self, task_names, **kwargs):
        super().__init__(**kwargs)
        self.task_names = list(task_names)
        self._by_name = {}
        self.cache = _Cache()

    def add_state(self, name, shape=(), initializer="zeros", trainable=False):
        """Adds a float32 variable.

        `trainable` says that the method learns the variable (by itself, e.g. with
        `gradients.adam_update`); it does not make Keras train it.
        """
        del trainable  # every state variable is the method's to update, never Keras'
        variable = self.add_weight(
            shape=shape,
            initializer=initializer,
            trainable=False,
            aggregation="only_first_replica",
            name=name,
        )
        self._by_name[name] = variable
        return variable

    def get(self, name):
        return self._by_name[name]

    def add_adam_slots(self, name, shape):
        """The moments of `gradients.adam_update` for a variable of this shape."""
        self.add_state(f"{name}_m", shape)
        self.add_state(f"{name}_v", shape)
        self.add_state(f"{name}_iterations")

    def get_config(self):
        config = super().get_config()
        config["task_names"] = self.task_names
        return config


class _Cache:
    """Python-side values (traced structures) that Keras must not track.

    `step` holds values of the training step being traced, one set per thread: under
    `tf.distribute` each replica's step is traced in its own thread.
    """

    def __init__(self):
        self.step = threading.local()


def _state(model):
    return getattr(model, _STATE_ATTRIBUTE)


def _with_weights(model, logs, weights):
    """`logs` (a dict) with the task weights of the step as `weight_<task>`."""
    logs = dict(logs)
    for name, weight in zip(model.task_names, tf.unstack(weights)):
        logs[f"weight_{name}"] = weight
    return logs


def _apply(model, grads_and_vars):
    optimizer = model.optimizer
    if not optimizer.built:
        # As Keras does (and as a reloaded model does), so saved optimizer state matches.
        optimizer.build(model.trainable_variables)
    pairs = [(g, v) for g, v in grads_and_vars if g is not None]
    optimizer.apply_gradients(pairs)


class LossWeighting(WeightingMethod):
    """A method that weights the task losses: `loss = sum_t w_t * L_t` (+ its own terms).

    Subclasses implement `task_weights` (the weights of this step, from the tasks' losses
    over the global batch) and may implement `update_state` (learn or record after the step).
    A task without labels in the batch has a loss of zero and takes no part in the update of
    the method's state. The method plugs into Keras' own training step through
    `MTLModel.compute_loss`, which asks `loss_weights` for this step's weights. The logged
    `loss` is the sum of the task losses with their static `loss_weight`s, the same quantity
    as `val_loss`.
    """

    def task_weights(self, state, losses, present):
        """The weights (a float32 vector, one per task) used at this step."""
        raise NotImplementedError

    def update_state(self, state, losses, present, weights):
        """Updates the method's variables after the step."""

    # Whether the method needs the task losses on the same batch after the update
    # (`update_from_losses_after`): one more forward pass a step.
    uses_losses_after_update = False

    def update_from_losses_after(self, state, losses, losses_after, present):
        """With `uses_losses_after_update`: learns from the losses before and after the step."""

    def loss_weights(self, model, y, losses):
        state = _state(model)
        present = gradients.task_presence(model, y)
        global_losses = tf.stop_gradient(gradients.all_reduce_sum(tf.stack(losses)))
        weights = tf.stop_gradient(self.task_weights(state, global_losses, present))
        # The method's variables depend on no model variable: updating them before the
        # optimizer's step gives the same result as after it.
        self.update_state(state, global_losses, present, weights)
        state.cache.step.weights = weights
        state.cache.step.losses = global_losses
        state.cache.step.present = present
        return weights

    def train_step(self, model, data, default_train_step):
        # Keras' own step; `model.compute_loss` asks `loss_weights` for the weights.
        logs = default_train_step(data)
        state = _state(model)
        if self.uses_losses_after_update:
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            after = model.compute_task_losses(y, model(x, training=True), sample_weight)
            after = tf.stop_gradient(gradients.all_reduce_sum(tf.stack(after)))
            self.update_from_losses_after(
                state, state.cache.step.losses, after, state.cache.step.present
            )
        return _with_weights(model, logs, state.cache.step.weights)


class GradientWeighting(WeightingMethod):
    """A method that combines the tasks' gradients from their Gram matrix.

    Per step: each task's gradient (of the shared parameters, or of the shared
    representation), summed over replicas before anything else; the Gram matrix of inner
    products; from it, the coefficients `alpha` of the update `sum_t alpha_t * g_t` of the
    shared parameters (`combine`). Each task's own parameters (its head) get that task's
    gradient, scaled by `head_scale` (1 unless the method weights losses, as GradNorm does).

    Modes:
        `"exact"`: per-task gradients of every shared parameter, from one forward pass and
            one backward pass per task; the update is their linear combination.
        `"rep"`: per-task gradients of the sharing strategy's outputs (the shared
            representation, as LibMTL's `rep_grad`), combined there, then one backward pass
            through the shared part. Cheaper; parameters inside the sharing layer that only
            one task uses (e.g. MMoE gates) then get that task's gradient times `alpha_t`.
            Methods that combine task gradients by their inner products (PCGrad, MGDA,
            CAGrad: `uses_inner_products`) need every task to read the same representation
            tensor (Hard sharing); with a strategy that gives each task its own tensor (MMoE,
            PLE, CrossStitch, Soft) they raise `keras_mtl.errors.ConfigError` when attached
            to the model (or, if that cannot be told then, on the first training step).
        `"auto"` (where a method supports it): `"rep"` when all tasks read one representation
            tensor, else `"exact"`; `resolved_mode(model)` tells which.

    A variable is shared when more than one task's loss depends on it.
    """

    supported_modes = ("exact", "rep")
    # Whether `combine` uses the inner products of different tasks' gradients (the
    # off-diagonal of the Gram matrix), which are meaningless between different tensors.
    uses_inner_products = True

    def __init__(self, mode="exact"):
        if mode not in self.supported_modes:
            raise errors.ConfigError(
                f"`mode` must be one of {list(self.supported_modes)}. Received: mode={mode!r}"
            )
        self.mode = mode

    def combine(self, state, gram, losses, present):
        """Returns `(alpha, head_scale, logged_weights)`, float32 vectors, one entry a task."""
        raise NotImplementedError

    def task_gradients(self, state, stacked, variables, losses, present):
        """The task gradients to combine, from those of this step (exact mode only).

        `stacked[k]` holds the tasks' gradients of the shared variable `variables[k]` as the
        rows of a `(T, size)` matrix (summed over replicas). The default uses them as they
        are; a method may return others of the same shapes (e.g. moving averages).
        """
        return stacked

    def get_config(self):
        return {"mode": self.mode}

    def attach(self, model):
        super().attach(model)
        cache = _state(model).cache
        cache.mode = self.mode
        if self.mode == "exact" or not (self.uses_inner_products or self.mode == "auto"):
            return
        shared = gradients.shares_one_representation(model)
        if self.mode == "auto":
            cache.mode = "exact"
            if shared:
                try:
                    gradients.representation_structure(model)
                    cache.mode = "rep"
                except errors.ConfigError:
                    pass
        elif shared is False and self.uses_inner_products:
            self._raise_distinct_representations(model)

    def resolved_mode(self, model):
        """The mode used to train `model`: `"exact"` or `"rep"` (`"auto"` resolved)."""
        return getattr(_state(model).cache, "mode", self.mode)

    def _raise_distinct_representations(self, model):
        strategy = getattr(model.structure, "sharing_layer", None)
        described = (
            "of this model" if strategy is None
            else f"{type(strategy).__name__} ({strategy.name!r})"
        )
        raise errors.ConfigError(
            f"{type(self).__name__}(mode={self.mode!r}) cannot train with the sharing "
            f"strategy {described}: it gives each task its own representation tensor, and "
            f"{type(self).__name__} compares the tasks' gradients by their inner products, "
            "which only make sense for one tensor read by every task (Hard sharing). Use "
            'mode="exact" instead.'
        )

    def train_step(self, model, data, default_train_step):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y = gradients.keyed_by_task(model, y)
        sample_weight = gradients.keyed_by_task(model, sample_weight)
        state = _state(model)
        present = gradients.task_presence(model, y)
        if self.resolved_mode(model) == "rep":
            return self._rep_step(model, state, x, y, sample_weight, present)
        return self._exact_step(model, state, x, y, sample_weight, present)

    def _forward(self, model, tape, x, y, sample_weight, feature_model=None):
        with tape:
            if feature_model is None:
                outputs = y_pred = model(x, training=True)
            else:
                outputs = feature_model(x, training=True)
                y_pred = outputs["outputs"]
            losses, extra = model.record_losses(y, y_pred, sample_weight)
            scaled = [model.optimizer.scale_loss(loss) for loss in losses]
            scaled_extra = None if extra is None else model.optimizer.scale_loss(extra)
        global_losses = gradients.all_reduce_sum(tf.stack(losses))
        return outputs, y_pred, losses, scaled, extra, scaled_extra, global_losses

    def _combine(self, model, state, gram, losses, present):
        """`combine` on the Gram matrix of the unscaled gradients.

        Under loss scaling (`mixed_float16`) a step whose scaled gradients overflowed is
        skipped by the optimizer; the method's variables are then left as they were too.
        """
        # The per-task gradients are those of the scaled losses (1 unless loss scaling).
        scale = tf.cast(model.optimizer.scale_loss(tf.constant(1.0)), "float32")
        gram = gram / tf.square(scale)
        if not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
            return self.combine(state, gram, losses, present)
        finite = tf.reduce_all(tf.math.is_finite(gram))
        before = [tf.identity(v) for v in state.weights]
        result = self.combine(state, tf.where(finite, gram, tf.zeros_like(gram)), losses, present)
        for variable, value in zip(state.weights, before):
            variable.assign(tf.where(finite, variable, value))
        return result

    def _exact_step(self, model, state, x, y, sample_weight, present):
        variables = model.trainable_variables
        tape = tf.GradientTape(persistent=True)
        _, y_pred, losses, scaled, extra, scaled_extra, global_losses = self._forward(
            model, tape, x, y, sample_weight
        )
        per_task = [tape.gradient(loss, variables) for loss in scaled]
        extra_grads = None if extra is None else tape.gradient(scaled_extra, variables)
        del tape
        num_tasks = len(losses)
        owners = [
            [t for t in range(num_tasks) if per_task[t][v] is not None]
            for v in range(len(variables))
        ]
        shared = [v for v, o in enumerate(owners) if len(o) > 1]
        stacked = []
        if shared:
            stacked = gradients.stack_task_gradients(
                [
                    [_dense_or_zeros(per_task[t][v], variables[v]) for v in shared]
                    for t in range(num_tasks)
                ]
            )
            if gradients.num_replicas() > 1:
                stacked = gradients.all_reduce_sum(stacked)
            stacked = self.task_gradients(
                state, stacked, [variables[v] for v in shared], global_losses, present
            )
            gram = gradients.gram_matrix(stacked)
        else:
            gram = tf.zeros([num_tasks, num_tasks])
        alpha, head_scale, logged = self._combine(model, state, gram, global_losses, present)
        combined = gradients.linear_combination(
            alpha, stacked, [variables[v].shape for v in shared]
        )
        # The optimizer sums gradients over replicas; these are already global sums.
        combined = [g / gradients.num_replicas() for g in combined]
        grads = [None] * len(variables)
        for v, grad in zip(shared, combined):
            grads[v] = grad
        for v, owner in enumerate(owners):
            if len(owner) == 1:
                grads[v] = head_scale[owner[0]] * _dense(per_task[owner[0]][v])
        if extra_grads is not None:
            grads = _add(grads, extra_grads)
        _apply(model, zip(grads, variables))
        return _with_weights(model, model.compute_metrics(x, y, y_pred, sample_weight), logged)

    def _rep_step(self, model, state, x, y, sample_weight, present):
        structure = gradients.representation_structure(model)
        variables = model.trainable_variables
        head_variables = structure.head_variables()
        head_ids = {id(v) for vs in head_variables.values() for v in vs}
        shared_variables = [v for v in variables if id(v) not in head_ids]
        tape = tf.GradientTape(persistent=True)
        outputs, y_pred, losses, scaled, extra, scaled_extra, global_losses = self._forward(
            model, tape, x, y, sample_weight, feature_model=structure.feature_model
        )
        representations = [outputs["head_inputs"][n] for n in model.task_names]
        if self.uses_inner_products and any(r is not representations[0] for r in representations):
            self._raise_distinct_representations(model)
        rep_grads, head_grads = [], []
        for t, name in enumerate(model.task_names):
            result = tape.gradient(scaled[t], [representations[t]] + head_variables[name])
            rep_grads.append(
                result[0] if result[0] is not None else tf.zeros_like(representations[t])
            )
            head_grads.append(result[1:])
        # In float32 whatever the compute dtype: the products of scaled float16 gradients
        # would overflow.
        rows = [[tf.cast(g, "float32")] for g in rep_grads]
        if all(g.shape == rep_grads[0].shape for g in rep_grads):
            gram = gradients.gram_matrix(gradients.stack_task_gradients(rows))
        else:
            gram = gradients.pairwise_gram_matrix(rows)
        gram = gradients.all_reduce_sum(gram)
        alpha, head_scale, logged = self._combine(model, state, gram, global_losses, present)
        shared_grads = tape.gradient(
            representations,
            shared_variables,
            output_gradients=[tf.cast(alpha[t], g.dtype) * g for t, g in enumerate(rep_grads)],
        )
        extra_grads = None if extra is None else tape.gradient(scaled_extra, variables)
        del tape
        grads_and_vars = list(zip(shared_grads, shared_variables))
        for t, name in enumerate(model.task_names):
            for grad, variable in zip(head_grads[t], head_variables[name]):
                grads_and_vars.append(
                    (None if grad is None else head_scale[t] * _dense(grad), variable)
                )
        if extra_grads is not None:
            by_id = {id(v): g for v, g in zip(variables, extra_grads)}
            grads_and_vars = [
                (_add([g], [by_id.get(id(v))])[0], v) for g, v in grads_and_vars
            ]
        _apply(model, grads_and_vars)
        return _with_weights(model, model.compute_metrics(x, y, y_pred, sample_weight), logged)


def _dense_or_zeros(gradient, variable):
    return tf.zeros_like(variable) if gradient is None else _dense(gradient)


def _dense(gradient):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.convert_to_tensor(gradient)
    return gradient


def _add(grads, more):
    result = []
    for a, b in zip(grads, more):
        if b is None:
            result.append(a)
        elif a is None:
            result.append(_dense(b))
        else:
            result.append(a + _dense(b))
    return result


def check_number(name, value, *, positive):
    """Raises `ConfigError` unless `value` is a real number > 0 (`positive`) or >= 0."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    ok = ok and (value > 0 if positive else value >= 0)
    if not ok:
        kind = "a positive number" if positive else "a number >= 0"
        raise errors.ConfigError(f"`{name}` must be {kind}. Received: {name}={value!r}")
