"""PCGrad: projecting conflicting gradients (Yu et al., 2020)."""

import keras
import tensorflow as tf

from keras_mtl.weighting import gradients
from keras_mtl.weighting.base import GradientWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class PCGrad(GradientWeighting):
    """PCGrad: each task gradient loses its component along the task gradients it conflicts with.

    For each task `i`, over the other tasks `j` in a random order: if `g_i . g_j < 0`,
    `g_i <- g_i - (g_i . g_j) / ||g_j||^2 * g_j` (projected onto the normal plane of the
    original `g_j`); the update is the sum of the projected gradients. Every projection is
    computed from the tasks' Gram matrix, so the update is a linear combination
    `sum_t alpha_t g_t` of the task gradients, and `alpha` is logged as `weight_<task>`
    (all ones when no gradients conflict). Tasks without labels in the batch take no part.

    Args:
        mode: `"exact"` (gradients of the shared parameters, as in the paper) or `"rep"`
            (gradients of the shared representation; cheaper). `"rep"` needs every task to
            read the same representation tensor (Hard sharing); with MMoE, PLE, CrossStitch
            or Soft it raises `keras_mtl.errors.ConfigError`.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model(
    ...     (8,), tasks, weighting=keras_mtl.weighting.PCGrad(mode="rep"))

    Reference:
        Yu, Kumar, Gupta, Levine, Hausman and Finn, "Gradient Surgery for Multi-Task
        Learning", NeurIPS 2020.
    """

    def combine(self, state, gram, losses, present):
        num_tasks = gram.shape[0]
        draws = gradients.same_on_replicas(tf.random.uniform([num_tasks, num_tasks]))
        orders = tf.argsort(draws, axis=1)
        alpha = _pcgrad_coefficients_xla(tf.cast(gram, "float32"), present, orders)
        return alpha, tf.ones([num_tasks]), alpha

    def get_config(self):
        return {"mode": self.mode}


@tf.function(jit_compile=True, autograph=False)
def _pcgrad_coefficients_xla(gram, present, orders):
    # One XLA kernel instead of T^2 rounds of tiny operations.
    return pcgrad_coefficients(gram, present, orders)


def pcgrad_coefficients(gram, present, orders):
    """The coefficients `alpha` such that PCGrad's update is `sum_t alpha_t g_t`.

    `orders[i]` is the order in which task `i`'s gradient is projected on the others.
    Row `i` of the matrix kept here holds the projected `g_i` as a combination of the
    original gradients.
    """
    gram = tf.cast(gram, "float32")
    num_tasks = gram.shape[0]
    squared_norms = tf.linalg.diag_part(gram)
    total = tf.zeros([num_tasks])
    for i in range(num_tasks):
        row = tf.one_hot(i, num_tasks)
        for k in range(num_tasks):
            j = orders[i, k]
            dot = tf.tensordot(row, tf.gather(gram, j, axis=1), 1)
            norm = tf.gather(squared_norms, j)
            conflict = tf.logical_and(dot < 0, tf.gather(present, j))
            conflict = tf.logical_and(conflict, norm > 0)
            scale = tf.where(conflict, dot / tf.where(norm > 0, norm, 1.0), 0.0)
            row = row - scale * tf.one_hot(j, num_tasks)
        total = total + tf.where(present[i], row, tf.zeros_like(row))
    return total
