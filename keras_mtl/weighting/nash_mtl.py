"""Nash-MTL: multi-task learning as a bargaining game (Navon et al., 2022)."""

import numbers

import keras
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.weighting import _small
from keras_mtl.weighting.base import GradientWeighting, check_number

_ITERATIONS = 50
# Added to the matrix of cosines: the bargaining problem has no solution when a
# non-negative combination of the gradients is zero; this keeps the weights finite there.
_RIDGE = 1e-8


@keras.saving.register_keras_serializable(package="keras_mtl")
class NashMTL(GradientWeighting):
    """Nash-MTL: the Nash bargaining solution of the tasks over the update direction.

    The update `d = sum_t alpha_t g_t` has `alpha > 0` with `(M alpha)_t = 1 / alpha_t` for
    every task (`M`: the Gram matrix): each task's share of the update, `g_t . d`, is
    `1 / alpha_t`, the bargaining condition. It is the minimiser of the strictly convex
    `alpha^T M alpha / 2 - sum_t log(alpha_t)`, found by damped Newton steps on the T x T
    problem (the paper solves the same problem by a sequence of convex approximations with
    cvxpy; no solver package is needed here). As in the paper, the weights may be
    refreshed only every `update_every` steps and reused in between (also refreshed at once
    when the set of tasks with labels changes). Since `alpha^T M alpha = T`, the update's
    norm is `sqrt(T)` whatever the gradients' scale; the authors' code clips it to
    `max_norm=1`. `alpha` is logged as `weight_<task>`. Tasks without labels in the batch
    take no part.

    Args:
        update_every: solve for the weights every this many steps (1: every step).
        max_norm: if given, the update is scaled down to at most this norm (the authors'
            code uses 1.0).
        mode: `"exact"` (gradients of the shared parameters, as in the paper) or `"rep"`
            (gradients of the shared representation). `"rep"` needs every task to read the
            same representation tensor (Hard sharing); with MMoE, PLE, CrossStitch or Soft it
            raises `keras_mtl.errors.ConfigError`.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model(
    ...     (8,), tasks, weighting=keras_mtl.weighting.NashMTL(update_every=5))

    Reference:
        Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik and Fetaya, "Multi-Task
        Learning as a Bargaining Game", ICML 2022.
    """

    def __init__(self, update_every=1, max_norm=None, mode="exact"):
        super().__init__(mode=mode)
        if (
            isinstance(update_every, bool)
            or not isinstance(update_every, numbers.Integral)
            or update_every < 1
        ):
            raise errors.ConfigError(
                "`update_every` must be a positive integer. "
                f"Received: update_every={update_every!r}"
            )
        if max_norm is not None:
            check_number("max_norm", max_norm, positive=True)
        self.update_every = int(update_every)
        self.max_norm = max_norm

    def build_state(self, state, tasks):
        num_tasks = len(tasks)
        state.add_state("weights", (num_tasks,))
        state.add_state("weights_present", (num_tasks,))
        state.add_state("steps")

    def combine(self, state, gram, losses, present):
        stored = state.get("weights")
        stored_present = state.get("weights_present")
        steps = state.get("steps")
        mask = tf.cast(present, "float32")
        refresh = tf.logical_or(
            tf.equal(tf.math.floormod(steps, float(self.update_every)), 0.0),
            tf.reduce_any(tf.not_equal(mask, stored_present)),
        )
        alpha = tf.cond(
            refresh,
            lambda: nash_mtl_weights(gram, present),
            lambda: tf.convert_to_tensor(stored) * mask,
        )
        stored.assign(alpha)
        stored_present.assign(mask)
        steps.assign_add(1.0)
        if self.max_norm is not None:
            norm = tf.sqrt(tf.maximum(tf.tensordot(alpha, tf.linalg.matvec(gram, alpha), 1), 0.0))
            alpha = alpha * tf.minimum(1.0, self.max_norm / tf.maximum(norm, 1e-12))
        return alpha, tf.ones_like(alpha), alpha

    def get_config(self):
        return {"update_every": self.update_every, "max_norm": self.max_norm, "mode": self.mode}


def nash_mtl_weights(gram, present):
    """The `alpha > 0` with `M alpha = 1 / alpha` over the tasks with labels (0 elsewhere).

    Tasks with a zero gradient get 0 too (their condition cannot hold). Scaling a task's
    gradient by `s` divides its weight by `s`, so the problem is solved for unit gradients
    (the matrix of cosines, well conditioned whatever the norms) and divided by the norms.
    """
    scaled, active, scale = _small.normalized_gram(gram, present)
    inverse_norms = tf.math.divide_no_nan(
        tf.cast(active, "float64"), tf.sqrt(tf.linalg.diag_part(scaled))
    )
    cosines = scaled * inverse_norms[:, None] * inverse_norms[None, :]
    alpha = _nash_xla(cosines, active) * inverse_norms / tf.sqrt(scale)
    return tf.cast(alpha, "float32")


@tf.function(jit_compile=True, autograph=False)
def _nash_xla(cosines, active):
    return _nash(cosines, active)


def _nash(cosines, active):
    """Damped Newton on `f(a) = a^T C a / 2 - sum log a` (self-concordant).

    The step `-H^-1 grad f / (1 + delta)`, with `delta` the Newton decrement, never leaves
    `a > 0` and converges from any start; inactive tasks are decoupled (`C_tt = 1`) and
    zeroed at the end.
    """
    num_tasks = cosines.shape[0]
    matrix = _small.identity_on_inactive(cosines, active) + _RIDGE * tf.eye(
        num_tasks, dtype=cosines.dtype
    )

    def step(iteration, alpha, decrement):
        gradient = tf.linalg.matvec(matrix, alpha) - 1.0 / alpha
        hessian = matrix + tf.linalg.diag(1.0 / tf.square(alpha))
        direction = tf.linalg.solve(hessian, gradient[:, None])[:, 0]
        decrement = tf.sqrt(tf.maximum(tf.tensordot(direction, gradient, 1), 0.0))
        return iteration + 1, alpha - direction / (1.0 + decrement), decrement

    _, alpha, _ = tf.while_loop(
        lambda iteration, alpha, decrement: tf.logical_and(
            iteration < _ITERATIONS, decrement > 1e-12
        ),
        step,
        (tf.constant(0), tf.ones([num_tasks], cosines.dtype), tf.constant(1.0, cosines.dtype)),
    )
    return alpha * tf.cast(active, cosines.dtype)
