"""Dynamic weight average (Liu et al., 2019)."""

import keras
import tensorflow as tf

from keras_mtl.weighting.base import LossWeighting, check_number


@keras.saving.register_keras_serializable(package="keras_mtl")
class DWA(LossWeighting):
    """Dynamic weight average: weights follow how fast each task's loss went down.

    With `L_t(e)` task `t`'s mean training loss over epoch `e`, `r_t = L_t(e-1) / L_t(e-2)`
    and `w_t = T * exp(r_t / temperature) / sum_k exp(r_k / temperature)`; the first two
    epochs use equal weights. The epoch means are kept in the model's variables (saved with
    it); an epoch ends when Keras resets the model's metrics (at the start of each epoch of
    `fit`, or of an `evaluate`, such as validation). A task without labels in a batch adds
    nothing to its epoch mean; a task without labels for a whole epoch keeps its previous
    mean.

    Args:
        temperature: the softmax temperature; larger values give more even weights.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model(
    ...     (8,), tasks, weighting=keras_mtl.weighting.DWA(temperature=2.0))

    Reference:
        Liu, Johns and Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019.
    """

    def __init__(self, temperature=2.0):
        check_number("temperature", temperature, positive=True)
        self.temperature = temperature

    def build_state(self, state, tasks):
        num_tasks = len(tasks)
        state.add_state("epoch_loss_sum", (num_tasks,))
        state.add_state("epoch_loss_count", (num_tasks,))
        # Row 0: the last finished epoch's mean losses; row 1: the epoch before.
        state.add_state("epoch_losses", (2, num_tasks))
        state.add_state("epochs_recorded")
        state.epoch_end = _EpochEnd(lambda: _end_epoch(state), name="dwa_epoch_end")

    def task_weights(self, state, losses, present):
        history = state.get("epoch_losses")
        weights = dwa_weights(history[0], history[1], self.temperature)
        ready = state.get("epochs_recorded") >= 2
        return tf.where(ready, weights, tf.ones_like(weights))

    def update_state(self, state, losses, present, weights):
        mask = tf.cast(present, "float32")
        state.get("epoch_loss_sum").assign_add(mask * losses)
        state.get("epoch_loss_count").assign_add(mask)

    def get_config(self):
        return {"temperature": self.temperature}


def dwa_weights(last, before_last, temperature):
    """DWA's weights from the mean losses of the last two epochs.

    `w_t = T * softmax(r / temperature)_t` with `r_t = last_t / before_last_t` (1 where
    `before_last_t` is 0).
    """
    last = tf.convert_to_tensor(last, "float32")
    before_last = tf.convert_to_tensor(before_last, "float32")
    ratio = tf.where(before_last > 0, tf.math.divide_no_nan(last, before_last), 1.0)
    return last.shape[-1] * tf.nn.softmax(ratio / temperature)


def _end_epoch(state):
    count = state.get("epoch_loss_count")
    if float(tf.reduce_sum(count)) == 0.0:
        return
    history = state.get("epoch_losses")
    mean = tf.math.divide_no_nan(state.get("epoch_loss_sum"), count)
    last = tf.where(count > 0, mean, history[0])
    history.assign(tf.stack([last, history[0]]))
    state.get("epochs_recorded").assign_add(1.0)
    state.get("epoch_loss_sum").assign(tf.zeros_like(count))
    count.assign(tf.zeros_like(count))


class _EpochEnd(keras.metrics.Metric):
    """Calls `on_reset` whenever Keras resets the model's metrics; logs nothing."""

    def __init__(self, on_reset, **kwargs):
        super().__init__(**kwargs)
        self._on_reset = on_reset

    def update_state(self, *args, **kwargs):
        pass

    def result(self):
        return {}

    def reset_state(self):
        self._on_reset()
