"""IMTL: impartial multi-task learning (Liu et al., 2021)."""

import keras
import tensorflow as tf

from keras_mtl.weighting import _small, gradients
from keras_mtl.weighting.base import GradientWeighting, check_number


@keras.saving.register_keras_serializable(package="keras_mtl")
class IMTL(GradientWeighting):
    """IMTL: an update whose projection on every task's unit gradient is the same.

    IMTL-G finds the coefficients `alpha` (summing to 1) of the update `d = sum_t alpha_t g_t`
    such that `d . u_t` is equal for every task, `u_t = g_t / ||g_t||`: no task is favoured
    by the direction of the update. It is a linear system on the Gram matrix (the paper's
    closed form `alpha_{2..T} = g_1 U^T (D U^T)^{-1}`, solved here symmetrically in the tasks;
    coefficients may be negative). With `loss_scales=True` it is the full IMTL: IMTL-L also
    learns a scale `s_t` per task, the losses become `exp(s_t) L_t - s_t` (at equilibrium
    every scaled loss is 1), IMTL-G combines the scaled gradients, and each head gets its
    scaled gradient. The scales are trainable variables of the model (saved with it), updated
    by their own Adam at `learning_rate`. Logged as `weight_<task>`: the coefficient of each
    task's (unscaled) gradient in the update. Tasks without labels in the batch take no part.

    Args:
        loss_scales: also learn IMTL-L's loss scales (the paper's IMTL; IMTL-G alone when
            False).
        learning_rate: Adam's learning rate for the loss scales.
        mode: `"exact"` (gradients of the shared parameters, as in the paper) or `"rep"`
            (gradients of the shared representation). `"rep"` needs every task to read the
            same representation tensor (Hard sharing); with MMoE, PLE, CrossStitch or Soft it
            raises `keras_mtl.errors.ConfigError`.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model(
    ...     (8,), tasks, weighting=keras_mtl.weighting.IMTL(loss_scales=True))

    Reference:
        Liu, Li, Kuang, Xue, Chen, Yang, Liao and Zhang, "Towards Impartial Multi-task
        Learning", ICLR 2021.
    """

    def __init__(self, loss_scales=False, learning_rate=0.01, mode="exact"):
        super().__init__(mode=mode)
        check_number("learning_rate", learning_rate, positive=True)
        self.loss_scales = bool(loss_scales)
        self.learning_rate = learning_rate

    def build_state(self, state, tasks):
        if self.loss_scales:
            state.add_state("loss_scale", (len(tasks),), trainable=True)
            state.add_adam_slots("loss_scale", (len(tasks),))

    def combine(self, state, gram, losses, present):
        if not self.loss_scales:
            alpha = imtl_g_coefficients(gram, present)
            return alpha, tf.ones_like(alpha), alpha
        log_scales = state.get("loss_scale")
        scales = tf.exp(tf.convert_to_tensor(log_scales))
        alpha = imtl_g_coefficients(gram * scales[:, None] * scales[None, :], present) * scales
        # d/ds (exp(s) L - s), with L the loss of the global batch.
        gradients.adam_update(
            state, "loss_scale", log_scales, scales * losses - 1.0, self.learning_rate,
            mask=present,
        )
        return alpha, scales, alpha

    def get_config(self):
        return {
            "loss_scales": self.loss_scales,
            "learning_rate": self.learning_rate,
            "mode": self.mode,
        }


def imtl_g_coefficients(gram, present):
    """IMTL-G's coefficients: `sum alpha = 1` and equal `(G alpha)_t / ||g_t||` for every task.

    Solved as one `(T + 1)`-square linear system (the common projection is the last
    unknown) by pseudo-inverse, so linearly dependent gradients give the least-norm solution
    instead of failing. Tasks without labels, or with a zero gradient, get 0.
    """
    gram, active, _ = _small.normalized_gram(gram, present)
    mask = tf.cast(active, "float64")
    inverse_norms = tf.math.divide_no_nan(mask, tf.sqrt(tf.linalg.diag_part(gram)))
    projections = _small.identity_on_inactive(gram * inverse_norms[:, None], active)
    system = tf.concat(
        [
            tf.concat([projections, -mask[:, None]], axis=1),
            tf.concat([mask[None, :], tf.zeros([1, 1], "float64")], axis=1),
        ],
        axis=0,
    )
    target = tf.one_hot(gram.shape[0], gram.shape[0] + 1, dtype="float64")
    solution = tf.linalg.matvec(tf.linalg.pinv(system), target)
    return tf.cast(solution[:-1] * mask, "float32")
