"""GradVac: gradient vaccine (Wang et al., 2021)."""

import keras
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.weighting import gradients
from keras_mtl.weighting.base import GradientWeighting, check_number


@keras.saving.register_keras_serializable(package="keras_mtl")
class GradVac(GradientWeighting):
    """GradVac: each pair of task gradients is pulled towards a target cosine similarity.

    Every pair of tasks `(i, j)` keeps a target `phi_hat_ij`, a moving average of their
    observed cosine similarity (`phi_hat <- (1 - beta) phi_hat + beta phi`, starting at 0).
    For each task `i`, over the other tasks `j` in a random order: with `phi` the cosine of
    (the adjusted) `g_i` and `g_j`, if `phi < phi_hat_ij`,
    `g_i <- g_i + g_j ||g_i|| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2)) /
    (||g_j|| sqrt(1 - phi_hat^2))`, after which the cosine is `phi_hat_ij`; gradients whose
    cosine is above the target are left alone. The update is the sum of the adjusted
    gradients. With all targets 0 this is PCGrad. The targets live in the model's variables
    (saved with it); they are computed on the whole shared gradient (or representation
    gradient), as LibMTL does, not per layer. The update is `sum_t alpha_t g_t`; `alpha` is
    logged as `weight_<task>`. Tasks without labels in the batch take no part (and their
    targets do not move).

    Args:
        beta: the rate of the targets' moving average, in (0, 1].
        mode: `"exact"` (gradients of the shared parameters, as in the paper) or `"rep"`
            (gradients of the shared representation). `"rep"` needs every task to read the
            same representation tensor (Hard sharing); with MMoE, PLE, CrossStitch or Soft it
            raises `keras_mtl.errors.ConfigError`.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model(
    ...     (8,), tasks, weighting=keras_mtl.weighting.GradVac(beta=0.01))

    Reference:
        Wang, Tsvetkov, Firat and Cao, "Gradient Vaccine: Investigating and Improving
        Multi-task Optimization in Massively Multilingual Models", ICLR 2021.
    """

    def __init__(self, beta=0.01, mode="exact"):
        super().__init__(mode=mode)
        check_number("beta", beta, positive=True)
        if beta > 1:
            raise errors.ConfigError(f"`beta` must be in (0, 1]. Received: beta={beta!r}")
        self.beta = beta

    def build_state(self, state, tasks):
        state.add_state("targets", (len(tasks), len(tasks)))

    def combine(self, state, gram, losses, present):
        num_tasks = gram.shape[0]
        draws = gradients.same_on_replicas(tf.random.uniform([num_tasks, num_tasks]))
        orders = tf.argsort(draws, axis=1)
        targets = state.get("targets")
        alpha, new_targets = gradvac_coefficients(
            gram, present, orders, tf.convert_to_tensor(targets), self.beta
        )
        targets.assign(new_targets)
        return alpha, tf.ones_like(alpha), alpha

    def get_config(self):
        return {"beta": self.beta, "mode": self.mode}


def gradvac_coefficients(gram, present, orders, targets, beta):
    """`(alpha, new_targets)`: GradVac's update `sum_t alpha_t g_t` and the moved targets.

    `orders[i]` is the order in which task `i`'s gradient is adjusted towards the others
    (entries equal to `i` are skipped). Runs as one XLA kernel.
    """
    return _gradvac_xla(
        tf.cast(gram, "float32"), tf.convert_to_tensor(present), orders,
        tf.cast(targets, "float32"), float(beta),
    )


@tf.function(jit_compile=True, autograph=False)
def _gradvac_xla(gram, present, orders, targets, beta):
    return _gradvac(gram, present, orders, targets, beta)


def _gradvac(gram, present, orders, targets, beta):
    # Row i holds the adjusted g_i as a combination of the original gradients. The rows
    # are independent of each other, so step k adjusts every row towards its k-th task at
    # once: T vector steps rather than T^2 scalar ones (much faster to compile for large T).
    num_tasks = gram.shape[0]
    squared_norms = tf.linalg.diag_part(gram)
    usable = tf.logical_and(present, squared_norms > 0)
    rows = tf.eye(num_tasks)
    for k in range(num_tasks):
        j = orders[:, k]
        towards = tf.one_hot(j, num_tasks)
        valid = tf.logical_and(usable, tf.gather(usable, j))
        valid = tf.logical_and(valid, j != tf.range(num_tasks))
        norm_j = tf.sqrt(tf.maximum(tf.gather(squared_norms, j), 1e-30))
        norm_i = tf.sqrt(tf.maximum(tf.reduce_sum(rows * tf.matmul(rows, gram), axis=1), 1e-30))
        cosine = tf.reduce_sum(rows * tf.gather(gram, j), axis=1) / (norm_i * norm_j)
        cosine = tf.clip_by_value(cosine, -1.0, 1.0)
        target = tf.reduce_sum(targets * towards, axis=1)
        root_target = tf.sqrt(tf.maximum(1.0 - tf.square(target), 1e-12))
        scale = norm_i * (
            target * tf.sqrt(tf.maximum(1.0 - tf.square(cosine), 0.0)) - cosine * root_target
        ) / (norm_j * root_target)
        adjust = tf.logical_and(valid, cosine < target)
        rows = rows + tf.where(adjust, scale, 0.0)[:, None] * towards
        moved = tf.where(valid, (1.0 - beta) * target + beta * cosine, target)
        targets = targets + (moved - target)[:, None] * towards
    return tf.reduce_sum(tf.where(usable[:, None], rows, 0.0), axis=0), targets
