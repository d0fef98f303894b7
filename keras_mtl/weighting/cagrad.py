"""CAGrad: conflict-averse gradient descent (Liu et al., 2021)."""

import numbers

import keras
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.weighting.base import GradientWeighting, check_number


@keras.saving.register_keras_serializable(package="keras_mtl")
class CAGrad(GradientWeighting):
    """CAGrad: the update that most improves the worst task, near the mean gradient.

    With `g_0` the mean task gradient, it finds `w` on the simplex minimising
    `g_w . g_0 + c * ||g_0|| * ||g_w||` (`g_w = sum_t w_t g_t`; mirror descent on the Gram
    matrix) and updates by `d = (g_0 + c * ||g_0|| / ||g_w|| * g_w) / (1 + c^2)`, as the
    authors' code does. With `c = 0` the update is the mean gradient. `d` is a linear
    combination `sum_t alpha_t g_t`; `alpha` is logged as `weight_<task>`. Tasks without
    labels in the batch take no part.

    Args:
        c: the radius of the ball around `g_0`, relative to `||g_0||` (>= 0).
        mode: `"exact"` (gradients of the shared parameters, as in the paper) or `"rep"`
            (gradients of the shared representation). `"rep"` needs every task to read the
            same representation tensor (Hard sharing); with MMoE, PLE, CrossStitch or Soft it
            raises `keras_mtl.errors.ConfigError`.
        iterations: steps of the inner solver.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model(
    ...     (8,), tasks, weighting=keras_mtl.weighting.CAGrad(c=0.4))

    Reference:
        Liu, Liu, Jin, Stone and Liu, "Conflict-Averse Gradient Descent for Multi-task
        Learning", NeurIPS 2021.
    """

    def __init__(self, c=0.4, mode="exact", iterations=50):
        super().__init__(mode=mode)
        check_number("c", c, positive=False)
        if (
            isinstance(iterations, bool)
            or not isinstance(iterations, numbers.Integral)
            or iterations < 1
        ):
            raise errors.ConfigError(
                f"`iterations` must be a positive integer. Received: iterations={iterations!r}"
            )
        self.c = c
        self.iterations = int(iterations)

    def combine(self, state, gram, losses, present):
        alpha = cagrad_coefficients(gram, present, self.c, self.iterations)
        return alpha, tf.ones_like(alpha), alpha

    def get_config(self):
        return {"c": self.c, "mode": self.mode, "iterations": self.iterations}


def cagrad_coefficients(gram, present, c, iterations=50):
    """The coefficients `alpha` of CAGrad's update `sum_t alpha_t g_t`.

    The inner solver runs as one XLA kernel.
    """
    return _cagrad_xla(tf.cast(gram, "float32"), tf.convert_to_tensor(present), c, iterations)


@tf.function(jit_compile=True, autograph=False)
def _cagrad_xla(gram, present, c, iterations):
    return _cagrad_coefficients(gram, present, c, iterations)


def _cagrad_coefficients(gram, present, c, iterations):
    mask = tf.cast(present, "float32")
    mean = mask / tf.maximum(tf.reduce_sum(mask), 1.0)
    if c == 0:
        return mean
    mean_norm = tf.sqrt(tf.maximum(tf.tensordot(mean, tf.linalg.matvec(gram, mean), 1), 0.0))
    radius = c * mean_norm
    linear = tf.linalg.matvec(gram, mean)

    def objective(w):
        quadratic = tf.tensordot(w, tf.linalg.matvec(gram, w), 1)
        return tf.tensordot(w, linear, 1) + radius * tf.sqrt(tf.maximum(quadratic, 0.0) + 1e-12)

    def step(k, w, best, best_value):
        gw = tf.linalg.matvec(gram, w)
        norm = tf.sqrt(tf.maximum(tf.tensordot(w, gw, 1), 0.0) + 1e-12)
        grad = linear + radius * gw / norm
        grad = tf.where(present, grad, 0.0)
        scale = tf.reduce_max(tf.abs(grad)) + 1e-12
        rate = 2.0 / tf.sqrt(tf.cast(k, "float32") + 1.0)
        w = w * tf.exp(-rate * grad / scale) * mask
        w = w / tf.maximum(tf.reduce_sum(w), 1e-12)
        value = objective(w)
        better = value < best_value
        return (
            k + 1,
            w,
            tf.where(better, w, best),
            tf.where(better, value, best_value),
        )

    _, _, weights, _ = tf.while_loop(
        lambda k, *_: k < iterations,
        step,
        (tf.constant(0), mean, mean, objective(mean)),
    )
    weights_norm = tf.sqrt(
        tf.maximum(tf.tensordot(weights, tf.linalg.matvec(gram, weights), 1), 0.0)
    )
    scale = tf.math.divide_no_nan(radius, weights_norm)
    return (mean + scale * weights) / (1.0 + c**2)
