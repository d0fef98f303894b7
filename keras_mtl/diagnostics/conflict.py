"""GradientConflict: how the tasks' gradients of the shared parameters agree during training."""

import contextlib
import itertools
import warnings

import numpy as np
import pandas as pd
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.diagnostics import _probe
from keras_mtl.weighting import gradients


class GradientConflict(_probe.StepProbe):
    """A callback measuring the conflict between the tasks' gradients of the shared parameters.

    Every `every` training steps it takes each task's gradient of its own loss with respect
    to the model's shared parameters (`model.structure.shared_variables()`: the backbone and
    the sharing strategy), on the step's batch, labels marked missing left out, summed over
    replicas under `tf.distribute`. From them, for every pair of tasks `(i, j)`:

    - the cosine similarity `<g_i, g_j> / (|g_i| |g_j|)` over all shared parameters (a
      negative value is a conflict: a step for one task increases the other's loss);
    - the share of shared variables (each kernel, each bias) on which the pair's cosine is
      negative;
    - the ratio of the gradient norms `|g_i| / |g_j|` (a task that dominates the update).

    A task without any label in the batch takes no part in that measurement. The
    measurement runs inside the compiled training step, after its update (it sees the
    parameters the step produced and the batch it used), and changes nothing: training
    takes exactly the same steps with or without the callback.
    Under `tf.distribute` with several replicas the measurement runs at every step and is
    kept every `every` steps (synchronisation cannot sit inside a conditional), so it costs
    a measurement per step there.

    At each epoch end it writes into the logs (so `History` and a `keras.callbacks.TensorBoard`
    placed after it in the callback list see them) the epoch's means of `gradient_cosine`
    (over pairs), `conflict_rate_pairs` (share of pairs with a negative cosine),
    `conflict_rate_variables`, `gradient_norm_ratio` (largest over smallest task gradient
    norm) and `gradient_cosine_<i>_<j>` per pair; NaN in an epoch without a measurement.
    With `log_dir` it also writes every measurement to TensorBoard at its step.

    Args:
        every: measure every `every` training steps (the first step included).
        log_dir: a directory for TensorBoard summaries of every measurement, or None.

    Attributes:
        history: a pandas DataFrame, one row per measurement and pair of tasks: `step`,
            `epoch`, `task_i`, `task_j`, `cosine`, `norm_i`, `norm_j`, `norm_ratio`,
            `conflict_rate_variables`.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "regression")]
    >>> model = keras_mtl.build_mtl_model((4,), tasks, shared_units=8)
    >>> x = np.random.rand(64, 4).astype("float32")
    >>> y = {"a": x[:, :1], "b": x[:, 1:2]}
    >>> conflict = keras_mtl.diagnostics.GradientConflict(every=2)
    >>> _ = model.fit(x, y, batch_size=16, epochs=1, callbacks=[conflict], verbose=0)
    >>> list(conflict.history.step), conflict.matrix().shape
    ([0, 2], (2, 2))
    """

    def __init__(self, every=50, log_dir=None):
        super().__init__(every)
        self.log_dir = log_dir
        self._rows = []
        self._layer_cosines = []
        self._task_names = None
        self._writer = None

    # === Traced into the training step ===

    def create_state(self, model, shared_variables):
        num_tasks = len(model.tasks)
        self._task_names = list(model.task_names)
        # Cosines per layer: the variables grouped by the layer that holds them.
        self._layers = list(dict.fromkeys(_layer_of(v) for v in shared_variables))
        self._variable_layer = np.array(
            [self._layers.index(_layer_of(v)) for v in shared_variables]
        )
        self._grams = _probe.state_variable([len(shared_variables), num_tasks, num_tasks], "grams")
        self._present = _probe.state_variable([num_tasks], "present")
        if self.log_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))

    def probe(self, model, data, due):
        x, y, sample_weight = _probe.unpack(model, data)
        num_tasks = len(model.tasks)
        shape = [len(self._shared_index), num_tasks, num_tasks]

        def local_gradients():
            trainable, non_trainable = _probe.current_values(model)
            stacked, _ = _probe.task_gradients(
                model, self._shared_index, x, y, sample_weight, trainable, non_trainable
            )
            return stacked

        def measure():
            stacked = gradients.all_reduce_sum(local_gradients())
            return _per_variable_grams(stacked), gradients.task_presence(model, y)

        grams, present = self.when_due(
            due, measure, lambda: (tf.zeros(shape), tf.zeros([num_tasks], "bool"))
        )
        self.assign_when(self._grams, due, grams)
        self.assign_when(self._present, due, present)

    # === On the host ===

    def record(self, step):
        grams = self._grams.numpy().astype("float64")
        present = self._present.numpy() > 0
        total = grams.sum(axis=0)
        cosine = _cosines(total, present)
        per_variable = np.stack([_cosines(g, present) for g in grams])
        norms = np.sqrt(np.maximum(np.diagonal(total), 0.0))
        summaries = {}
        for i, j in itertools.combinations(range(len(self._task_names)), 2):
            on_variables = per_variable[:, i, j]
            valid = ~np.isnan(on_variables)
            ratio = norms[i] / norms[j] if present[i] and present[j] and norms[j] > 0 else np.nan
            row = {
                "step": step,
                "epoch": self.epoch,
                "task_i": self._task_names[i],
                "task_j": self._task_names[j],
                "cosine": cosine[i, j],
                "norm_i": norms[i] if present[i] else np.nan,
                "norm_j": norms[j] if present[j] else np.nan,
                "norm_ratio": ratio,
                "conflict_rate_variables": (
                    float(np.mean(on_variables[valid] < 0)) if valid.any() else np.nan
                ),
            }
            self._rows.append(row)
            summaries[f"gradient_cosine_{row['task_i']}_{row['task_j']}"] = row["cosine"]
        self._layer_cosines.append(
            np.stack(
                [
                    _cosines(grams[self._variable_layer == k].sum(axis=0), present)
                    for k in range(len(self._layers))
                ]
            )
        )
        if self._writer is not None:
            summaries.update(_summaries(self._rows[-len(summaries):]))
            with self._writer.as_default():
                for name, value in summaries.items():
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
        return pd.DataFrame(self._rows, columns=_HISTORY_COLUMNS)

    def matrix(self, by_layer=False):
        """The T x T cosine similarity of the tasks' gradients, averaged over the measurements.

        Args:
            by_layer: False for the cosine over all shared parameters (a DataFrame); True
                for a dict layer path -> the cosine over that layer's parameters.

        Returns:
            A pandas DataFrame indexed by task name on both axes (1 on the diagonal), or a
            dict of them. Pairs never measured together are NaN.
        """
        if not self._layer_cosines:
            raise errors.ConfigError(
                "GradientConflict has no measurement yet: train the model with it first."
            )
        names = self._task_names
        if not by_layer:
            table = pd.DataFrame(np.nan, index=names, columns=names)
            for name in names:
                table.loc[name, name] = 1.0
            for pair, group in self.history.groupby(["task_i", "task_j"]):
                table.loc[pair[0], pair[1]] = table.loc[pair[1], pair[0]] = group[
                    "cosine"
                ].mean()
            return table
        with _quiet_nanmean():
            means = np.nanmean(np.stack(self._layer_cosines), axis=0)
        return {
            layer: pd.DataFrame(means[k], index=names, columns=names)
            for k, layer in enumerate(self._layers)
        }


_HISTORY_COLUMNS = [
    "step", "epoch", "task_i", "task_j", "cosine", "norm_i", "norm_j", "norm_ratio",
    "conflict_rate_variables",
]


def _layer_of(variable):
    path = variable.path
    return path.rsplit("/", 1)[0] if "/" in path else path


def _per_variable_grams(stacked):
    """`(V, T, T)`: the tasks' Gram matrix on each shared variable."""
    return tf.stack([tf.matmul(rows, rows, transpose_b=True) for rows in stacked])


def _cosines(gram, present):
    """The cosine matrix from a Gram matrix; NaN where a task is absent or its gradient zero."""
    norms = np.sqrt(np.maximum(np.diagonal(gram), 0.0))
    valid = present & (norms > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = gram / np.outer(norms, norms)
    cosine = np.clip(cosine, -1.0, 1.0)
    cosine[~(valid[:, None] & valid[None, :])] = np.nan
    return cosine


def _summaries(rows, task_names=None):
    """The scalars logged for a set of history rows (one epoch, or one measurement)."""
    frame = pd.DataFrame(rows, columns=_HISTORY_COLUMNS)
    cosine = frame["cosine"].to_numpy(dtype="float64")
    measured = ~np.isnan(cosine)
    with _quiet_nanmean():
        result = {
            "gradient_cosine": float(np.nanmean(cosine)) if measured.any() else np.nan,
            "conflict_rate_pairs": (
                float(np.mean(cosine[measured] < 0)) if measured.any() else np.nan
            ),
            "conflict_rate_variables": float(
                np.nanmean(frame["conflict_rate_variables"].to_numpy(dtype="float64"))
            ) if len(frame) else np.nan,
            "gradient_norm_ratio": _norm_ratio(frame),
        }
    if task_names is not None:
        for i, j in itertools.combinations(task_names, 2):
            pair = frame[(frame["task_i"] == i) & (frame["task_j"] == j)]["cosine"]
            with _quiet_nanmean():
                result[f"gradient_cosine_{i}_{j}"] = (
                    float(np.nanmean(pair.to_numpy(dtype="float64"))) if len(pair) else np.nan
                )
    return result


def _norm_ratio(frame):
    """The mean over measurements of the largest over the smallest task gradient norm."""
    ratios = []
    for _, group in frame.groupby("step"):
        norms = np.concatenate([group["norm_i"].to_numpy(), group["norm_j"].to_numpy()])
        norms = norms[np.isfinite(norms)]
        if len(norms) and norms.min() > 0:
            ratios.append(norms.max() / norms.min())
    return float(np.mean(ratios)) if ratios else np.nan


@contextlib.contextmanager
def _quiet_nanmean():
    """Silences NumPy's warning for the mean of an all-NaN slice (the result is NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield
