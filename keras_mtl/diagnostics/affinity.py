"""TaskAffinity: the lookahead inter-task affinity of Task Affinity Grouping (TAG)."""

import numpy as np
import pandas as pd
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.diagnostics import _probe
from keras_mtl.weighting import gradients
from keras_mtl.weighting.base import check_number


class TaskAffinity(_probe.StepProbe):
    """A callback measuring how a step for one task changes every other task's loss.

    Every `every` training steps, on the step's batch `X`: for each task `i`, the shared
    parameters `theta_s` take one gradient step with task `i`'s gradient alone, and every
    task `j`'s loss is measured again on the same batch (each task's head unchanged):

        Z[i -> j] = 1 - L_j(X, theta_s - lr * grad_{theta_s} L_i, theta_j) / L_j(X, theta_s, theta_j)

    A positive `Z[i -> j]` says a step for task `i` lowers task `j`'s loss (`i` helps
    `j`); a negative one that it raises it. `matrix()` averages `Z` over training; its row
    `i`, column `j` is `Z[i -> j]` (the diagonal is each task's own relative improvement).

    The lookahead is functional (`stateless_call` with the stepped values) inside the
    compiled training step, after the step's update: the model's variables are never
    written, random generators and moving statistics are not advanced (the lookahead
    passes reuse the dropout masks of the first), so training takes exactly the same steps
    with or without the callback. A task without labels in the batch takes no part in that
    measurement (its row and column are NaN). Under `tf.distribute` gradients and losses
    are those of the global batch.
    Under `tf.distribute` with several replicas the measurement runs at every step and is
    kept every `every` steps (synchronisation cannot sit inside a conditional), so it costs
    a measurement per step there.

    At each epoch end it writes the epoch's means into the logs: `task_affinity` (over the
    pairs `i != j`) and `affinity_<i>_to_<j>` per ordered pair; NaN in an epoch without a
    measurement. With `log_dir` it writes every measurement to TensorBoard at its step.

    Args:
        every: measure every `every` training steps (the first step included).
        learning_rate: the step size `lr` of the lookahead; None for the model optimizer's
            current learning rate.
        log_dir: a directory for TensorBoard summaries of every measurement, or None.

    Attributes:
        history: a pandas DataFrame, one row per measurement and ordered pair of tasks:
            `step`, `epoch`, `source`, `target`, `affinity` (`Z[source -> target]`).

    Example:

    >>> tasks = [keras_mtl.Task(n, "regression") for n in ("a", "b", "c")]
    >>> model = keras_mtl.build_mtl_model((4,), tasks, shared_units=8)
    >>> x = np.random.rand(64, 4).astype("float32")
    >>> y = {"a": x[:, :1], "b": 2 * x[:, :1], "c": x[:, 3:]}
    >>> affinity = keras_mtl.diagnostics.TaskAffinity(every=2)
    >>> _ = model.fit(x, y, batch_size=16, epochs=1, callbacks=[affinity], verbose=0)
    >>> affinity.matrix().shape, sorted(set(affinity.history.step))
    ((3, 3), [0, 2])

    Reference:
        Fifty, Amid, Zhao, Yu, Anil and Finn, "Efficiently Identifying Task Groupings for
        Multi-Task Learning", NeurIPS 2021.
    """

    def __init__(self, every=10, learning_rate=None, log_dir=None):
        super().__init__(every)
        if learning_rate is not None:
            check_number("learning_rate", learning_rate, positive=True)
        self.learning_rate = learning_rate
        self.log_dir = log_dir
        self._rows = []
        self._task_names = None
        self._writer = None

    # === Traced into the training step ===

    def create_state(self, model, shared_variables):
        self._task_names = list(model.task_names)
        num_tasks = len(self._task_names)
        self._affinity = _probe.state_variable([num_tasks, num_tasks], "affinity")
        self._present = _probe.state_variable([num_tasks], "present")
        if self.log_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))

    def probe(self, model, data, due):
        x, y, sample_weight = _probe.unpack(model, data)
        num_tasks = len(model.tasks)
        index = self._shared_index
        if self.learning_rate is None:
            learning_rate = tf.cast(model.optimizer.learning_rate, "float32")
        else:
            learning_rate = tf.constant(self.learning_rate, "float32")

        def local_gradients():
            trainable, non_trainable = _probe.current_values(model)
            return _probe.task_gradients(
                model, index, x, y, sample_weight, trainable, non_trainable
            )

        def lookahead(stacked):
            """`after[i, j]`: task j's loss after a step with task i's gradient."""
            trainable, non_trainable = _probe.current_values(model)
            after = []
            for i in range(num_tasks):
                stepped = list(trainable)
                for k, v in enumerate(index):
                    step = tf.reshape(stacked[k][i], trainable[v].shape) * learning_rate
                    stepped[v] = trainable[v] - tf.cast(step, trainable[v].dtype)
                after.append(
                    _probe.stateless_task_losses(
                        model, stepped, non_trainable, x, y, sample_weight
                    )
                )
            return tf.stack(after)

        def measure():
            stacked, losses = gradients.all_reduce_sum(local_gradients())
            after = gradients.all_reduce_sum(lookahead(stacked))
            return _affinity(losses, after), gradients.task_presence(model, y)

        affinity, present = self.when_due(
            due, measure,
            lambda: (tf.zeros([num_tasks, num_tasks]), tf.zeros([num_tasks], "bool")),
        )
        self.assign_when(self._affinity, due, affinity)
        self.assign_when(self._present, due, present)

    # === On the host ===

    def record(self, step):
        affinity = self._affinity.numpy().astype("float64")
        present = self._present.numpy() > 0
        affinity[~present, :] = np.nan
        affinity[:, ~present] = np.nan
        names = self._task_names
        rows = [
            {"step": step, "epoch": self.epoch, "source": names[i], "target": names[j],
             "affinity": affinity[i, j]}
            for i in range(len(names))
            for j in range(len(names))
        ]
        self._rows.extend(rows)
        if self._writer is not None:
            with self._writer.as_default():
                for name, value in _summaries(rows, names).items():
                    if np.isfinite(value):
                        tf.summary.scalar(name, value, step=step)
            self._writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        rows = [r for r in self._rows if r["epoch"] == epoch]
        logs.update(_summaries(rows, self._task_names))

    # === Results ===

    @property
    def history(self):
        return pd.DataFrame(self._rows, columns=["step", "epoch", "source", "target", "affinity"])

    def matrix(self):
        """The T x T affinity `Z[i -> j]` averaged over the measurements.

        Returns:
            A pandas DataFrame: row `i` (the task stepped), column `j` (the task whose loss
            is measured). Pairs never measured together are NaN.
        """
        if not self._rows:
            raise errors.ConfigError(
                "TaskAffinity has no measurement yet: train the model with it first."
            )
        table = self.history.pivot_table(
            index="source", columns="target", values="affinity", aggfunc="mean", dropna=False
        )
        return table.reindex(index=self._task_names, columns=self._task_names).rename_axis(
            index=None, columns=None
        )


def _affinity(before, after):
    """`Z[i, j] = 1 - after[i, j] / before[j]` (0 where task j has no loss)."""
    positive = before > 0
    ratio = after / tf.where(positive, before, tf.ones_like(before))[None, :]
    return tf.where(positive[None, :], 1.0 - ratio, tf.zeros_like(ratio))


def _summaries(rows, names):
    frame = pd.DataFrame(rows, columns=["step", "epoch", "source", "target", "affinity"])
    off_diagonal = frame[frame.source != frame.target]["affinity"].to_numpy(dtype="float64")
    measured = off_diagonal[~np.isnan(off_diagonal)]
    result = {"task_affinity": float(measured.mean()) if len(measured) else np.nan}
    for i in names:
        for j in names:
            if i != j:
                values = frame[(frame.source == i) & (frame.target == j)]["affinity"]
                values = values.to_numpy(dtype="float64")
                values = values[~np.isnan(values)]
                result[f"affinity_{i}_to_{j}"] = float(values.mean()) if len(values) else np.nan
    return result
