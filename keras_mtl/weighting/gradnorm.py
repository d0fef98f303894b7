"""GradNorm: gradient normalisation (Chen et al., 2018)."""

import keras
import tensorflow as tf

from keras_mtl.weighting import gradients
from keras_mtl.weighting.base import GradientWeighting, check_number


@keras.saving.register_keras_serializable(package="keras_mtl")
class GradNorm(GradientWeighting):
    """GradNorm: learned loss weights that balance the tasks' gradient norms and speeds.

    The loss is `sum_t w_t L_t`. With `G_t = w_t ||g_t||` (the norm of task `t`'s weighted
    gradient), `r_t = (L_t / L_t(0)) / mean_k(L_k / L_k(0))` (how slowly task `t` trains;
    `L_t(0)` is its first loss) and the target `mean(G) * r_t^alpha` held constant, the
    weights take an Adam step on `sum_t |G_t - mean(G) * r_t^alpha|`, are kept positive and
    renormalised to sum to the number of tasks. The weights are variables of the model
    (saved with it), updated by their own Adam at `learning_rate`. A slower-training
    task gets more weight. Tasks without labels in the batch take no part.

    Args:
        alpha: the strength of the pull towards equal training speeds.
        learning_rate: Adam's learning rate for the task weights.
        mode: `"rep"` (gradient norms with respect to the shared representation, the
            default and cheaper; closest to the paper's last shared layer) or `"exact"`
            (norms of the gradients of all shared parameters).

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model(
    ...     (8,), tasks, weighting=keras_mtl.weighting.GradNorm(alpha=1.5))

    Reference:
        Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm: Gradient Normalization for
        Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.
    """

    # Only the tasks' gradient norms (the Gram matrix's diagonal): "rep" suits every strategy.
    uses_inner_products = False

    def __init__(self, alpha=1.5, learning_rate=0.025, mode="rep"):
        super().__init__(mode=mode)
        check_number("alpha", alpha, positive=False)
        check_number("learning_rate", learning_rate, positive=True)
        self.alpha = alpha
        self.learning_rate = learning_rate

    def build_state(self, state, tasks):
        num_tasks = len(tasks)
        state.add_state("task_weights", (num_tasks,), "ones", trainable=True)
        state.add_state("initial_losses", (num_tasks,))
        state.add_adam_slots("task_weights", (num_tasks,))

    def combine(self, state, gram, losses, present):
        weights_variable = state.get("task_weights")
        weights = tf.convert_to_tensor(weights_variable)
        initial = state.get("initial_losses")
        first = tf.logical_and(present, initial <= 0)
        initial.assign(tf.where(first, losses, initial))
        norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 0.0))
        gradient = gradnorm_gradient(
            weights, norms, losses, tf.convert_to_tensor(initial), present, self.alpha
        )
        gradients.adam_update(
            state, "task_weights", weights_variable, gradient, self.learning_rate, mask=present
        )
        updated = tf.maximum(tf.convert_to_tensor(weights_variable), 1e-3)
        weights_variable.assign(updated * updated.shape[0] / tf.reduce_sum(updated))
        return weights, weights, weights

    def get_config(self):
        return {"alpha": self.alpha, "learning_rate": self.learning_rate, "mode": self.mode}


def gradnorm_gradient(weights, norms, losses, initial_losses, present, alpha):
    """The gradient of GradNorm's loss `sum_t |w_t n_t - target_t|` in the weights.

    `n_t` are the unweighted gradient norms; the target `mean(w n) * r_t^alpha` is constant.
    """
    mask = tf.cast(present, "float32")
    count = tf.maximum(tf.reduce_sum(mask), 1.0)
    ratios = tf.where(present, tf.math.divide_no_nan(losses, initial_losses), 0.0)
    relative = tf.math.divide_no_nan(ratios, tf.reduce_sum(ratios) / count)
    weighted_norms = weights * norms
    mean_norm = tf.reduce_sum(weighted_norms * mask) / count
    target = tf.stop_gradient(mean_norm * tf.pow(relative, alpha))
    return mask * tf.sign(weighted_norms - target) * norms
