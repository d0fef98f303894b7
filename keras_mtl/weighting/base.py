"""The base classes of weighting methods: how per-task losses or gradients become one update.

- `WeightingMethod`: the interface `MTLModel` uses (`attach`, `train_step`, `get_config`).
- `LossWeighting`: methods that weight the task losses (one backward pass a step).
- `GradientWeighting`: methods that combine the tasks' gradients from their Gram matrix,
  either of the shared parameters (`mode="exact"`) or of the shared representation
  (`mode="rep"`).
"""

import numbers

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
        state.built = True
        setattr(model, _STATE_ATTRIBUTE, state)

    def build_state(self, state, tasks):
        """Creates the method's variables with `state.add_state(...)` (`tasks`: the Tasks)."""

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
    so they are written from the first replica only.

    Args:
        task_names: the names of the model's tasks.
    """

    def __init__(self, task_names, **kwargs):
        super().__init__(**kwargs)
        self.task_names = list(task_names)
        self._by_name = {}
        self.cache = _Cache()

    def add_state(self, name, shape=(), initializer="zeros", trainable=False):
        """Adds a float32 variable; `trainable` marks what the method learns (by itself)."""
        variable = self.add_weight(
            shape=shape,
            initializer=initializer,
            trainable=trainable,
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
    """Python-side values (traced structures) that Keras must not track."""


def _state(model):
    return getattr(model, _STATE_ATTRIBUTE)


def _model_variables(model):
    """The model's trainable variables, without those of the weighting method."""
    own = {id(v) for v in _state(model).weights}
    return [v for v in model.trainable_variables if id(v) not in own]


def _logs(model, x, y, y_pred, sample_weight, losses, extra, weights):
    """Updates the loss tracker and metrics; returns the logs with `weight_<task>`.

    The logged `loss` is what `evaluate` reports: the task losses with their static weights,
    plus the model's added losses.
    """
    static = gradients.static_weights(model)
    total = tf.add_n([w * loss for w, loss in zip(static, losses)])
    if extra is not None:
        total = total + extra
    batch_size = tf.shape(next(t for t in tf.nest.flatten(x) if t is not None))[0]
    model._loss_tracker.update_state(
        keras.src.losses.loss.unscale_loss_for_distribution(total), sample_weight=batch_size
    )
    logs = dict(model.compute_metrics(x, y, y_pred, sample_weight=sample_weight))
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
    the method's state. The logged `loss` is the sum of the task losses with their static
    `loss_weight`s, the same quantity as `val_loss`.
    """

    def task_weights(self, state, losses, present):
        """The weights (a float32 vector, one per task) used at this step."""
        raise NotImplementedError

    def update_state(self, state, losses, present, weights):
        """Updates the method's variables after the step."""

    def train_step(self, model, data, default_train_step):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y = gradients.keyed_by_task(model, y)
        sample_weight = gradients.keyed_by_task(model, sample_weight)
        state = _state(model)
        variables = _model_variables(model)
        present = gradients.task_presence(model, y)
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            losses = gradients.task_losses(model, y, y_pred, sample_weight)
            global_losses = tf.stop_gradient(gradients.all_reduce_sum(tf.stack(losses)))
            weights = tf.stop_gradient(self.task_weights(state, global_losses, present))
            total = tf.add_n([weights[t] * loss for t, loss in enumerate(losses)])
            extra = gradients.additional_loss(model)
            if extra is not None:
                total = total + extra
            total = model.optimizer.scale_loss(total)
        _apply(model, zip(tape.gradient(total, variables), variables))
        self.update_state(state, global_losses, present, weights)
        return _logs(model, x, y, y_pred, sample_weight, losses, extra, weights)


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
                    cache.structure = gradients.ModelStructure(model)
                    cache.mode = "rep"
                except errors.ConfigError:
                    pass
        elif shared is False and self.uses_inner_products:
            self._raise_distinct_representations(model)

    def resolved_mode(self, model):
        """The mode used to train `model`: `"exact"` or `"rep"` (`"auto"` resolved)."""
        return getattr(_state(model).cache, "mode", self.mode)

    def _raise_distinct_representations(self, model):
        try:
            strategy = gradients.sharing_strategy_layer(model)
            described = f"{type(strategy).__name__} ({strategy.name!r})"
        except errors.ConfigError:
            described = "of this model"
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
            losses = gradients.task_losses(model, y, y_pred, sample_weight)
            scaled = [model.optimizer.scale_loss(loss) for loss in losses]
            extra = gradients.additional_loss(model)
            scaled_extra = None if extra is None else model.optimizer.scale_loss(extra)
        global_losses = gradients.all_reduce_sum(tf.stack(losses))
        return outputs, y_pred, losses, scaled, extra, scaled_extra, global_losses

    def _exact_step(self, model, state, x, y, sample_weight, present):
        variables = _model_variables(model)
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
            gram = gradients.gram_matrix(stacked)
        else:
            gram = tf.zeros([num_tasks, num_tasks])
        alpha, head_scale, logged = self.combine(state, gram, global_losses, present)
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
        return _logs(model, x, y, y_pred, sample_weight, losses, extra, logged)

    def _rep_step(self, model, state, x, y, sample_weight, present):
        cache = state.cache
        if not hasattr(cache, "structure"):
            cache.structure = gradients.ModelStructure(model)
        structure = cache.structure
        variables = _model_variables(model)
        shared_variables = [v for v in variables if id(v) not in structure.head_ids]
        tape = tf.GradientTape(persistent=True)
        outputs, y_pred, losses, scaled, extra, scaled_extra, global_losses = self._forward(
            model, tape, x, y, sample_weight, feature_model=structure.feature_model
        )
        representations = [outputs["representations"][n] for n in model.task_names]
        if self.uses_inner_products and any(r is not representations[0] for r in representations):
            self._raise_distinct_representations(model)
        rep_grads, head_grads = [], []
        for t, name in enumerate(model.task_names):
            head_variables = structure.head_variables[name]
            result = tape.gradient(scaled[t], [representations[t]] + head_variables)
            rep_grads.append(
                result[0] if result[0] is not None else tf.zeros_like(representations[t])
            )
            head_grads.append(result[1:])
        if all(g.shape == rep_grads[0].shape for g in rep_grads):
            gram = gradients.gram_matrix(gradients.stack_task_gradients([[g] for g in rep_grads]))
        else:
            gram = gradients.pairwise_gram_matrix([[g] for g in rep_grads])
        gram = gradients.all_reduce_sum(gram)
        alpha, head_scale, logged = self.combine(state, gram, global_losses, present)
        shared_grads = tape.gradient(
            representations,
            shared_variables,
            output_gradients=[alpha[t] * g for t, g in enumerate(rep_grads)],
        )
        extra_grads = None if extra is None else tape.gradient(scaled_extra, variables)
        del tape
        grads_and_vars = list(zip(shared_grads, shared_variables))
        for t, name in enumerate(model.task_names):
            for grad, variable in zip(head_grads[t], structure.head_variables[name]):
                grads_and_vars.append(
                    (None if grad is None else head_scale[t] * _dense(grad), variable)
                )
        if extra_grads is not None:
            by_id = {id(v): g for v, g in zip(variables, extra_grads)}
            grads_and_vars = [
                (_add([g], [by_id.get(id(v))])[0], v) for g, v in grads_and_vars
            ]
        _apply(model, grads_and_vars)
        return _logs(model, x, y, y_pred, sample_weight, losses, extra, logged)


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
