"""MGDA: the multiple-gradient descent algorithm (Sener and Koltun, 2018)."""

import keras
import tensorflow as tf

from keras_mtl.weighting import gradients
from keras_mtl.weighting.base import GradientWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class MGDA(GradientWeighting):
    """MGDA: the update is the min-norm point of the convex hull of the task gradients.

    Finds `alpha` on the simplex minimising `||sum_t alpha_t g_t||` (Frank-Wolfe with exact
    line search on the Gram matrix; the closed form for two tasks,
    `alpha_1 = clip((g_2 - g_1).g_2 / ||g_1 - g_2||^2, 0, 1)`), and updates the shared
    parameters by `sum_t alpha_t g_t`. `alpha` sums to 1 and is logged as `weight_<task>`.
    With `mode="rep"` this is the paper's MGDA-UB (gradients of the shared representation).
    Tasks without labels in the batch take no part.

    Args:
        mode: `"auto"` (the default): `"rep"` when every task reads the same representation
            tensor (Hard sharing), else `"exact"`. `"rep"`: MGDA-UB, gradients of the shared
            representation; only for strategies that give every task the same tensor (with
            MMoE, PLE, CrossStitch or Soft, which give each task its own, it raises
            `keras_mtl.errors.ConfigError`). `"exact"`: gradients of the shared parameters.
            `resolved_mode(model)` tells which mode a model trains with.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, weighting="mgda")

    Reference:
        Sener and Koltun, "Multi-Task Learning as Multi-Objective Optimization",
        NeurIPS 2018.
    """

    supported_modes = ("auto", "exact", "rep")

    def __init__(self, mode="auto"):
        super().__init__(mode=mode)

    def combine(self, state, gram, losses, present):
        alpha = gradients.min_norm_weights(gram, present)
        return alpha, tf.ones_like(alpha), alpha
