"""What the diagnostic callbacks share: checks, the hook in the training step, task gradients.

A diagnostic callback installs a *probe* on its `MTLModel` (`MTLModel.train_step` runs the
model's probes after the step's update, on the step's batch) and rebuilds the model's train
function, so its measurements are traced into the same compiled function as training. A
probe measures every `every` steps (`tf.cond` on the optimizer's step counter) and writes
its results into its own variables, which the callback reads between steps. Probes are
functional (`stateless_call`): they never assign a model variable, nor advance a random
generator, nor update a metric, so training takes the same steps with or without them.

Under `tf.distribute` with several replicas, synchronisation (sums over replicas, and the
label counts of the global batch inside the task losses) cannot sit inside a `tf.cond`: the
measurement then runs at every step and is kept every `every` steps, which costs a
measurement per step.
"""

import numbers
import weakref

import keras
import tensorflow as tf

from keras_mtl import errors
from keras_mtl import structure as structure_module
from keras_mtl.weighting import gradients

# The attribute of an `MTLModel` holding the probes its training step runs.
PROBES_ATTRIBUTE = "_diagnostic_probes"

# Per model: the train function Keras made before any probe was installed (restored after
# training), and, while Keras keeps that one, the functions traced with probes, keyed by the
# callbacks that installed them.
_PLAIN_FUNCTIONS = weakref.WeakKeyDictionary()
_TRACED_FUNCTIONS = weakref.WeakKeyDictionary()


def check_every(every):
    if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
        raise errors.ConfigError(
            f"`every` must be a positive integer. Received: every={every!r}"
        )
    return int(every)


def check_model(model, needed_by):
    """The model's trainable shared variables; a `ConfigError` unless diagnostics apply."""
    from keras_mtl.model import MTLModel

    if not isinstance(model, MTLModel):
        raise errors.ConfigError(
            f"{needed_by} needs a keras_mtl.MTLModel. Received a model of type "
            f"{type(model).__name__}"
        )
    if len(model.tasks) < 2:
        raise errors.ConfigError(
            f"{needed_by} compares tasks, and the model {model.name!r} has a single task "
            f"{model.task_names}; it needs at least two."
        )
    structure = structure_module.require_structure(model, needed_by)
    shared = structure.shared_variables()
    if not shared:
        raise errors.ConfigError(
            f"{needed_by}: the tasks of the model {model.name!r} ({model.task_names}) share "
            "no trainable parameters (its trunk has none, or it is frozen), so there are no "
            "shared gradients to compare. Unfreeze the backbone or add shared layers."
        )
    return shared


class StepProbe(keras.callbacks.Callback):
    """Base of the diagnostic callbacks: installs `probe` in the model's training step.

    Subclasses implement `create_state(model, shared_variables)` (the variables the probe
    writes, created under the model's distribution strategy), `probe(model, data, due)`
    (traced into the training step) and `record(step)` (reads the state on the host after
    a measurement).
    """

    def __init__(self, every):
        super().__init__()
        self.every = check_every(every)

    def set_model(self, model):
        # Keras calls this before training starts: bad models fail before any step.
        self._shared = check_model(model, type(self).__name__)
        super().set_model(model)

    # === Installing the probe ===

    def on_train_begin(self, logs=None):
        model = self.model
        if getattr(self, "_state_of", None) is not model:
            # Created once per model: the train function traced with them can be reused.
            shared_ids = {id(v) for v in self._shared}
            self._shared_index = [
                i for i, v in enumerate(model.trainable_variables) if id(v) in shared_ids
            ]
            with model.distribute_strategy.scope():
                self._count = state_variable((), "measurements", "int64")
                self._step = state_variable((), "measured_step", "int64")
                self.create_state(
                    model, [model.trainable_variables[i] for i in self._shared_index]
                )
            self._state_of = model
        self._seen = int(self._count.numpy())
        self.epoch = 0
        probes = getattr(model, PROBES_ATTRIBUTE, ())
        if not probes:
            _PLAIN_FUNCTIONS[model] = model.train_function
        probes = probes + (self._run,)
        setattr(model, PROBES_ATTRIBUTE, probes)
        # Keras made the train function before `on_train_begin`; one with these probes is
        # traced on its first call, then reused while Keras keeps its own (a `compile`, for
        # one, makes Keras build a new one, and these are traced anew).
        plain = _PLAIN_FUNCTIONS[model]
        if _TRACED_FUNCTIONS.get(model, (None,))[0] is not plain:
            _TRACED_FUNCTIONS[model] = (plain, {})
        functions = _TRACED_FUNCTIONS[model][1]
        key = tuple(p.__self__ for p in probes)
        if key not in functions:
            model.make_train_function(force=True)
            functions[key] = model.train_function
        model.train_function = functions[key]

    def on_train_end(self, logs=None):
        model = self.model
        probes = tuple(p for p in getattr(model, PROBES_ATTRIBUTE, ()) if p != self._run)
        setattr(model, PROBES_ATTRIBUTE, probes)
        if not probes:
            model.train_function = _PLAIN_FUNCTIONS.pop(model, None)

    def on_train_batch_end(self, batch, logs=None):
        count = int(self._count.numpy())
        if count > self._seen:
            self._seen = count
            self.record(int(self._step.numpy()))

    def _run(self, data):
        model = self.model
        # Runs after the step's update: the counter already counts this step.
        step = tf.cast(model.optimizer.iterations, "int64") - 1
        due = tf.equal(step % self.every, 0)
        self.probe(model, data, due)
        self._step.assign(tf.where(due, step, self._step))
        self._count.assign_add(tf.cast(due, "int64"))

    def create_state(self, model, shared_variables):
        raise NotImplementedError

    def probe(self, model, data, due):
        raise NotImplementedError

    def record(self, step):
        raise NotImplementedError

    # === Helpers for subclasses ===

    def assign_when(self, variable, due, value):
        variable.assign(tf.where(due, tf.cast(value, variable.dtype), variable))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def when_due(self, due, measure, zeros):
        """`measure()` when a measurement is due, else `zeros()` (same structure).

        With several replicas `measure()` runs at every step (its results are kept only
        when due): the task losses synchronise the replicas (label counts of the global
        batch), and synchronisation cannot sit inside a `tf.cond`.
        """
        if gradients.num_replicas() > 1:
            return measure()
        return tf.cond(due, measure, zeros)


def state_variable(shape, name, dtype="float32"):
    """A variable a probe writes from the first replica (create under the model's strategy)."""
    return keras.Variable(
        tf.zeros(shape, dtype), trainable=False, aggregation="only_first_replica", name=name
    )


def unpack(model, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    return x, gradients.keyed_by_task(model, y), gradients.keyed_by_task(model, sample_weight)


def current_values(model):
    """The values of the model's trainable and non-trainable variables, as tensors."""
    trainable = [tf.identity(v.value) for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    return trainable, non_trainable


def stateless_task_losses(model, trainable, non_trainable, x, y, sample_weight):
    """The task losses (this replica's share) with the variables set to the given values.

    The non-trainable values (moving statistics, random generator states) updated by the
    call are discarded, so that repeated calls see the same dropout masks.
    """
    y_pred, _ = model.stateless_call(trainable, non_trainable, x, training=True)
    return tf.stack(model.compute_task_losses(y, y_pred, sample_weight))


def task_gradients(model, shared_index, x, y, sample_weight, trainable, non_trainable):
    """Each task's gradient of its loss w.r.t. the shared variables (this replica's share).

    Returns `(stacked, losses)`: `stacked[k]` is the `(T, size)` matrix whose rows are the
    tasks' gradients of the shared variable `k` (`gradients.stack_task_gradients`), zeros
    where a task's loss does not depend on it; `losses` the `(T,)` task losses.
    """
    shared_values = [trainable[i] for i in shared_index]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(shared_values)
        losses = stateless_task_losses(model, trainable, non_trainable, x, y, sample_weight)
        per_task = [losses[t] for t in range(len(model.tasks))]
    rows = []
    for loss in per_task:
        grads = tape.gradient(loss, shared_values)
        rows.append(
            [
                tf.zeros_like(value) if g is None else tf.convert_to_tensor(g)
                for g, value in zip(grads, shared_values)
            ]
        )
    del tape
    rows = [[tf.cast(g, "float32") for g in task] for task in rows]
    return gradients.stack_task_gradients(rows), losses
