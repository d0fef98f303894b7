"""FAMO: fast adaptive multitask optimization (Liu et al., 2023)."""

import keras
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.weighting import gradients
from keras_mtl.weighting.base import LossWeighting, check_number

_EPSILON = 1e-8
_LOSS_AFTER = ("next_batch", "same_batch")
_LOGITS_OPTIMIZERS = ("sgd", "adam")


@keras.saving.register_keras_serializable(package="keras_mtl")
class FAMO(LossWeighting):
    """FAMO: loss weights that make every task's log-loss fall at the same rate, at O(1) cost.

    Task logits `xi` (starting at 0) give `z = softmax(xi)`; the step descends
    `sum_t c_t L_t` with `c_t = (z_t / L_t) / sum_k (z_k / L_k)`, i.e. the gradient of
    `sum_t z_t log L_t` normalised (one backward pass, no per-task gradients). Then, with
    `delta_t = log L_t(before the step) - log L_t(after)`, the logits take a step along
    `-(J_softmax(xi)^T delta + weight_decay * xi)`, so tasks whose loss fell less gain weight:
    the paper's Algorithm 1 takes the plain step `xi <- xi - learning_rate * (...)`
    (`logits_optimizer="sgd"`); the authors' code, with which the paper's results were
    obtained, takes an Adam step (`"adam"`, the default). Per-step changes of the log-losses
    are small, so at `learning_rate=0.025` the plain step hardly moves the logits (on
    `examples/conflicting_tasks.py`, 0.03 in about 1,000 steps against 0.3 with Adam) and FAMO
    stays close to weighting every task by `1 / L_t`. Which loss counts as "after":
    `loss_after="same_batch"` is the paper's, the same batch evaluated again after the update
    (one more forward pass a step, in training mode as the authors' code does);
    `"next_batch"` (the default) takes
    the next step's loss, computed anyway, on the next batch: no extra cost, so FAMO costs
    what a static weighting costs, at the price of batch-to-batch noise in `delta`. The
    logits and the last losses live in the model's variables (saved with it). Logged as
    `weight_<task>`: `c_t` (they sum to 1). Tasks without labels in the batch get `c_t = 0`
    and no `delta`.

    Args:
        learning_rate: the step size `beta` of the logits.
        weight_decay: the logits' decay `gamma` (an L2 term `gamma * xi` in their gradient).
        loss_after: `"next_batch"` or `"same_batch"` (see above).
        logits_optimizer: `"adam"`, as the authors' code updates the logits (Adam with L2
            `weight_decay`), or `"sgd"`, the plain step of the paper's Algorithm 1.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, weighting="famo")

    Reference:
        Liu, Feng, Stone and Liu, "FAMO: Fast Adaptive Multitask Optimization",
        NeurIPS 2023.
    """

    def __init__(
        self, learning_rate=0.025, weight_decay=1e-3, loss_after="next_batch",
        logits_optimizer="adam",
    ):
        check_number("learning_rate", learning_rate, positive=True)
        check_number("weight_decay", weight_decay, positive=False)
        if loss_after not in _LOSS_AFTER:
            raise errors.ConfigError(
                f"`loss_after` must be one of {list(_LOSS_AFTER)}. Received: "
                f"loss_after={loss_after!r}"
            )
        if logits_optimizer not in _LOGITS_OPTIMIZERS:
            raise errors.ConfigError(
                f"`logits_optimizer` must be one of {list(_LOGITS_OPTIMIZERS)}. Received: "
                f"logits_optimizer={logits_optimizer!r}"
            )
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.loss_after = loss_after
        self.logits_optimizer = logits_optimizer
        self.uses_losses_after_update = loss_after == "same_batch"

    def build_state(self, state, tasks):
        num_tasks = len(tasks)
        state.add_state("logits", (num_tasks,))
        if self.logits_optimizer == "adam":
            state.add_adam_slots("logits", (num_tasks,))
        if self.loss_after == "next_batch":
            state.add_state("previous_losses", (num_tasks,))
            state.add_state("previous_present", (num_tasks,))

    def task_weights(self, state, losses, present):
        if self.loss_after == "next_batch":
            both = tf.logical_and(present, state.get("previous_present") > 0)
            self._update_logits(state, state.get("previous_losses"), losses, both)
        return famo_weights(state.get("logits"), losses, present)

    def update_state(self, state, losses, present, weights):
        if self.loss_after == "next_batch":
            state.get("previous_losses").assign(losses)
            state.get("previous_present").assign(tf.cast(present, "float32"))

    def update_from_losses_after(self, state, losses, losses_after, present):
        self._update_logits(state, losses, losses_after, present)

    def _update_logits(self, state, before, after, present):
        # One step of the logits' optimizer every training step; a task without a loss
        # change (no labels before or after, or the first step) has delta 0.
        logits = state.get("logits")
        delta = tf.where(
            present, tf.math.log(before + _EPSILON) - tf.math.log(after + _EPSILON), 0.0
        )
        gradient = famo_logits_gradient(logits, delta) + self.weight_decay * logits
        if self.logits_optimizer == "adam":
            gradients.adam_update(state, "logits", logits, gradient, self.learning_rate)
        else:
            logits.assign_sub(self.learning_rate * gradient)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "loss_after": self.loss_after,
            "logits_optimizer": self.logits_optimizer,
        }


def famo_weights(logits, losses, present):
    """`c_t = (z_t / L_t) / sum_k (z_k / L_k)` over the present tasks, `z = softmax(logits)`."""
    z = tf.nn.softmax(tf.convert_to_tensor(logits, "float32"))
    ratios = tf.where(present, z / (losses + _EPSILON), 0.0)
    return ratios / tf.maximum(tf.reduce_sum(ratios), 1e-30)


def famo_logits_gradient(logits, delta):
    """`J_softmax(logits)^T delta = z * (delta - z . delta)`."""
    z = tf.nn.softmax(tf.convert_to_tensor(logits, "float32"))
    return z * (delta - tf.tensordot(z, delta, 1))
