"""MAML, first-order MAML and Meta-SGD (MAML with learned inner learning rates)."""

import keras
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.meta.base import MetaLearner


@keras.saving.register_keras_serializable(package="keras_mtl")
class MAML(MetaLearner):
    """Model-Agnostic Meta-Learning: initial weights from which a few steps learn a task.

    For each task of a meta-batch the inner loop takes `inner_steps` SGD steps on the
    support set, `theta'_i = theta - inner_lr * grad L_support_i(theta)`; the outer step
    minimises the mean query loss at the adapted weights, `mean_i L_query_i(theta'_i)`,
    differentiating through the inner loop (second order). With `first_order=True`
    (FOMAML) the inner gradients are treated as constants, so the meta-gradient is the query
    gradient at the adapted weights. With `learn_inner_lr=True` (Meta-SGD, per tensor) each
    adapted weight tensor has its own inner learning rate, a weight of the learner
    initialised to `inner_lr` and learned in the outer loop.

    Args:
        model: the Keras model to meta-train (built, with trainable weights).
        inner_lr: positive number, the inner loop's learning rate (alpha).
        inner_steps: integer >= 0, inner steps while meta-training (and `adapt`'s default).
            With 0, MAML is plain training on the query sets.
        first_order: drop the second-order term (FOMAML).
        learn_inner_lr: learn one inner learning rate per weight tensor (Meta-SGD).
        **kwargs: passed to `keras.Model` (`name`, ...).

    Example:

    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(8, activation="relu"),
    ...                           keras.layers.Dense(1)])
    >>> learner = keras_mtl.meta.MAML(model, inner_lr=0.01, inner_steps=1)
    >>> learner.compile(optimizer="adam", loss="mse")
    >>> tasks = keras_mtl.datasets.sinusoid_tasks()
    >>> episodes = tasks.episodes(meta_batch_size=4, shots=5, query_size=5, seed=0)
    >>> history = learner.fit(episodes, epochs=1, steps_per_epoch=2, verbose=0)
    >>> sorted(history.history)
    ['loss', 'support_loss']
    >>> (x, y), (x_query, y_query) = tasks.split("test").sample_task(5, query_size=10, seed=1)
    >>> learner.adapt(x, y, steps=3).predict(x_query, verbose=0).shape
    (10, 1)

    Reference:
        - [Finn, Abbeel, Levine, Model-Agnostic Meta-Learning for Fast Adaptation of Deep
          Networks, ICML 2017](https://arxiv.org/abs/1703.03400)
        - [Li, Zhou, Chen, Li, Meta-SGD: Learning to Learn Quickly for Few-Shot Learning,
          2017](https://arxiv.org/abs/1707.09835) (`learn_inner_lr`)
    """

    def __init__(self, model, inner_lr=0.01, inner_steps=1, first_order=False,
                 learn_inner_lr=False, **kwargs):
        super().__init__(model, inner_lr=inner_lr, inner_steps=inner_steps, **kwargs)
        for name, value in (("first_order", first_order), ("learn_inner_lr", learn_inner_lr)):
            if not isinstance(value, bool):
                raise errors.ConfigError(
                    f"`{name}` must be True or False. Received: {name}={value!r}"
                )
        self.first_order = first_order
        self.learn_inner_lr = learn_inner_lr
        self.inner_lrs = [
            self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(self.inner_lr),
                name=f"inner_lr_{i}",
            )
            for i in range(len(self._adapted) if learn_inner_lr else 0)
        ]

    def inner_learning_rates(self):
        if self.learn_inner_lr:
            return [tf.convert_to_tensor(v.value) for v in self.inner_lrs]
        return super().inner_learning_rates()

    def meta_update(self, data):
        with tf.GradientTape() as tape:
            _, query_loss, support_loss, y_query, y_pred = self.adapt_tasks(
                data, first_order=self.first_order, training=True
            )
        variables = self.trainable_variables
        grads = tape.gradient(query_loss, variables, unconnected_gradients="zero")
        self.apply_gradients(grads, variables)
        return query_loss, support_loss, y_query, y_pred

    def get_config(self):
        config = super().get_config()
        config.update(first_order=self.first_order, learn_inner_lr=self.learn_inner_lr)
        return config
