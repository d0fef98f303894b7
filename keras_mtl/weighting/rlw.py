"""Random loss weighting (Lin et al., 2022)."""

import keras
import tensorflow as tf

from keras_mtl.weighting import gradients
from keras_mtl.weighting.base import LossWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class RLW(LossWeighting):
    """Random loss weighting: new random task weights at every step.

    Each step draws `z ~ N(0, I)` and weights the task losses by `T * softmax(z)` (they sum
    to the number of tasks `T`). Under `tf.distribute` every replica uses the first
    replica's draw.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, weighting="rlw")

    Reference:
        Lin, Ye, Xu, Shi and Zhang, "Reasonable Effectiveness of Random Weighting: A Litmus
        Test for Multi-Task Learning", TMLR 2022.
    """

    def build_state(self, state, tasks):
        state.num_tasks = len(tasks)

    def task_weights(self, state, losses, present):
        draw = gradients.same_on_replicas(tf.random.normal([state.num_tasks]))
        return state.num_tasks * tf.nn.softmax(draw)
