"""Random loss weighting (Lin et al., 2022)."""

import keras
import tensorflow as tf

from keras_mtl.weighting import gradients
from keras_mtl.weighting.base import LossWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class RLW(LossWeighting):
    """Random loss weighting: new random task weights at every step.

    Each step draws `z ~ N(0, I)` and weights the task losses by `P * softmax(z)` over the
    `P` tasks with labels in the batch (they sum to `P`; `P = T`, the number of tasks, when
    every task has labels). A task without labels in the batch gets weight 0 and takes no
    weight from the others. Under `tf.distribute` every replica uses the first replica's
    draw.

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
        present = tf.convert_to_tensor(present)
        mask = tf.cast(present, "float32")
        largest = tf.reduce_max(tf.where(present, draw, tf.fill(tf.shape(draw), -1e30)))
        exponentials = tf.where(present, tf.exp(draw - largest), 0.0)
        total = tf.maximum(tf.reduce_sum(exponentials), 1e-30)
        return tf.reduce_sum(mask) * exponentials / total
