"""DB-MTL: dual-balancing multi-task learning (Lin et al., 2023)."""

import keras
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.weighting.base import GradientWeighting, check_number

_LOG_EPSILON = 1e-8


@keras.saving.register_keras_serializable(package="keras_mtl")
class DBMTL(GradientWeighting):
    """DB-MTL: log-transformed losses, and gradients rescaled to the largest task gradient.

    Loss balancing: each task trains on `log L_t`, whose gradient is `grad L_t / L_t`, so the
    losses' scales no longer matter. Gradient balancing: `h_t`, a moving average of task
    `t`'s gradient of `log L_t` (`h_t <- (1 - b_s) grad log L_t + b_s h_t` with
    `b_s = beta / s^beta_sigma` at the task's `s`-th step), is rescaled to the largest norm
    among the tasks; the shared parameters move by `sum_t (max_k ||h_k|| / ||h_t||) h_t`, and
    each head by its own `grad log L_t`. The moving averages are kept per model variable, in
    the model's variables (saved with it): `T` times the size of the model's trainable
    variables (those trainable when the model is built). Only `mode="exact"`: a moving
    average of representation gradients, which differ from batch to batch, has no meaning.
    The coefficients `max_k ||h_k|| / ||h_t||` are logged as `weight_<task>`. Tasks without
    labels in the batch take no part (their averages do not move).

    Args:
        beta: the base rate of the gradients' moving average, in [0, 1).
        beta_sigma: how fast the rate decays with the step count (>= 0).
        mode: `"exact"` (gradients of the shared parameters).

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, weighting="db_mtl")

    Reference:
        Lin, Ye, Zhang and Wang, "Dual-Balancing for Multi-Task Learning", arXiv 2308.12029,
        2023.
    """

    supported_modes = ("exact",)

    def __init__(self, beta=0.9, beta_sigma=0.5, mode="exact"):
        super().__init__(mode=mode)
        check_number("beta", beta, positive=False)
        if beta >= 1:
            raise errors.ConfigError(f"`beta` must be in [0, 1). Received: beta={beta!r}")
        check_number("beta_sigma", beta_sigma, positive=False)
        self.beta = beta
        self.beta_sigma = beta_sigma

    def build_state(self, state, tasks):
        state.add_state("steps", (len(tasks),))

    def build_model_state(self, state, model):
        num_tasks = len(model.tasks)
        state.cache.averages = {}
        for k, variable in enumerate(model.trainable_variables):
            state.cache.averages[id(variable)] = state.add_state(
                f"gradient_average_{k}", (num_tasks,) + tuple(variable.shape)
            )

    def task_gradients(self, state, stacked, variables, losses, present):
        steps = state.get("steps")
        steps.assign_add(tf.cast(present, "float32"))
        rate = self.beta / tf.pow(tf.maximum(tf.convert_to_tensor(steps), 1.0), self.beta_sigma)
        # new = (1 - rate) * g / L + rate * previous, per task; an absent task keeps its
        # average (weights 0 and 1). Two scaled reads of (T, size) matrices and a sum.
        on_gradient = tf.where(present, (1.0 - rate) / (losses + _LOG_EPSILON), 0.0)[:, None]
        on_previous = tf.where(present, rate, 1.0)[:, None]
        averaged = []
        for rows, variable in zip(stacked, variables):
            average = state.cache.averages.get(id(variable))
            if average is None:
                raise errors.ConfigError(
                    f"DBMTL keeps a moving average of each task's gradient of every variable "
                    f"trainable when the model was built; {variable.path!r} was not. Build "
                    "the model again after choosing which variables train."
                )
            new = rows * on_gradient + tf.reshape(average, tf.shape(rows)) * on_previous
            average.assign(tf.reshape(new, average.shape))
            averaged.append(new)
        return averaged

    def combine(self, state, gram, losses, present):
        alpha = db_mtl_coefficients(gram, present)
        head_scale = tf.where(present, 1.0 / (losses + _LOG_EPSILON), 0.0)
        return alpha, head_scale, alpha

    def get_config(self):
        return {"beta": self.beta, "beta_sigma": self.beta_sigma, "mode": self.mode}


def db_mtl_coefficients(gram, present):
    """`max_k ||h_k|| / ||h_t||` for the present tasks with a non-zero gradient, else 0."""
    norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(tf.cast(gram, "float32")), 0.0))
    usable = tf.logical_and(present, norms > 0)
    largest = tf.reduce_max(tf.where(usable, norms, 0.0))
    return tf.where(usable, largest / tf.where(usable, norms, 1.0), 0.0)
