"""UPGrad: unconflicting projection of gradients (Quinton and Rey, 2024)."""

import keras
import tensorflow as tf

from keras_mtl.weighting import _small
from keras_mtl.weighting.base import GradientWeighting

_SWEEPS = 200
_TOLERANCE = 1e-12


@keras.saving.register_keras_serializable(package="keras_mtl")
class UPGrad(GradientWeighting):
    """UPGrad: each task gradient projected onto the dual cone of all of them, then averaged.

    The dual cone of the task gradients is the set of directions `x` with `g_j . x >= 0` for
    every task `j`: directions along which, to first order, no task's loss increases. Each
    `g_i` is projected onto it; in the Gram matrix `M` this is `w_i = argmin_{v >= e_i}
    v^T M v` (a small quadratic program, solved by coordinate descent and refined on its
    active set), and the projection is `w_i^T G`. The update is the mean of the projections,
    `sum_t alpha_t g_t` with `alpha = mean_i w_i`, so its inner product with every task
    gradient is non-negative; when no two gradients conflict it is the mean gradient.
    `alpha` is logged as `weight_<task>`. Tasks without labels in the batch take no part.

    Args:
        mode: `"exact"` (gradients of the shared parameters, as in the paper's Jacobian
            descent) or `"rep"` (gradients of the shared representation). `"rep"` needs every
            task to read the same representation tensor (Hard sharing); with MMoE, PLE,
            CrossStitch or Soft it raises `keras_mtl.errors.ConfigError`.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, weighting="upgrad")

    Reference:
        Quinton and Rey, "Jacobian Descent for Multi-Objective Optimization", arXiv
        2406.16232, 2024.
    """

    def combine(self, state, gram, losses, present):
        alpha = upgrad_coefficients(gram, present)
        return alpha, tf.ones_like(alpha), alpha


def upgrad_coefficients(gram, present):
    """UPGrad's `alpha`: the mean over present tasks `i` of `argmin_{v >= e_i} v^T M v`."""
    scaled, active, _ = _small.normalized_gram(gram, present)
    weights = _projection_weights_xla(scaled, active)
    count = tf.reduce_sum(tf.cast(present, "float64"))
    return tf.cast(tf.reduce_sum(weights, axis=0) / tf.maximum(count, 1.0), "float32")


def projection_weights(gram, present):
    """Row `i`: the weights `w_i` of `g_i`'s projection onto the dual cone (0 if absent)."""
    scaled, active, _ = _small.normalized_gram(gram, present)
    return tf.cast(_projection_weights_xla(scaled, active), "float32")


@tf.function(jit_compile=True, autograph=False)
def _projection_weights_xla(gram, active):
    # One XLA kernel: the T quadratic programs are solved together, row i for task i.
    return _projection_weights(gram, active)


def _projection_weights(gram, active):
    num_tasks = gram.shape[0]
    lower = tf.linalg.diag(tf.cast(active, gram.dtype))
    inverse_diagonal = tf.math.divide_no_nan(
        tf.cast(active, gram.dtype), tf.linalg.diag_part(gram)
    )
    columns = tf.eye(num_tasks, dtype=gram.dtype)

    def sweep(iteration, weights, change):
        start = weights
        for c in range(num_tasks):
            # Exact minimisation in coordinate c of every program, then the bound.
            gradient = tf.linalg.matvec(weights, gram[:, c])
            value = tf.maximum(lower[:, c], weights[:, c] - gradient * inverse_diagonal[c])
            weights = weights + (value - weights[:, c])[:, None] * columns[c][None, :]
        return iteration + 1, weights, tf.reduce_max(tf.abs(weights - start))

    _, weights, _ = tf.while_loop(
        lambda iteration, weights, change: tf.logical_and(
            iteration < _SWEEPS, change > _TOLERANCE
        ),
        sweep,
        (tf.constant(0), lower, tf.constant(1.0, gram.dtype)),
    )
    return _refine_on_active_set(gram, active, lower, weights)


def _refine_on_active_set(gram, active, lower, weights):
    """Solves each program exactly on the free set coordinate descent found.

    Free coordinates (above their bound) satisfy `(M w)_c = 0`, the others `w_c = bound`.
    The exact solution replaces the iterate only where it is feasible and no worse, so a
    wrongly guessed free set (descent not converged) costs nothing.
    """
    num_tasks = gram.shape[0]
    free = tf.logical_and(weights > lower + 1e-9, active[None, :])
    identity = tf.eye(num_tasks, dtype=gram.dtype)
    systems = tf.where(free[:, :, None], gram[None, :, :], identity[None, :, :])
    targets = tf.where(free, tf.zeros_like(lower), lower)
    exact = tf.linalg.solve(systems, targets[:, :, None])[:, :, 0]
    residual = tf.linalg.matmul(exact, gram)
    objective = lambda w: tf.reduce_sum(tf.linalg.matmul(w, gram) * w, axis=1)  # noqa: E731
    feasible = tf.reduce_all(tf.math.is_finite(exact), axis=1)
    feasible = tf.logical_and(feasible, tf.reduce_all(exact >= lower - 1e-9, axis=1))
    feasible = tf.logical_and(feasible, tf.reduce_all(residual >= -1e-9, axis=1))
    better = objective(tf.where(tf.math.is_finite(exact), exact, 0.0)) <= objective(weights) + 1e-12
    keep_exact = tf.logical_and(feasible, better)
    return tf.where(keep_exact[:, None], exact, weights)
