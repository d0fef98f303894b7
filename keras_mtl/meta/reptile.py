"""Reptile: move the initial weights towards the weights adapted to each task."""

import keras

from keras_mtl.meta.base import MetaLearner


@keras.saving.register_keras_serializable(package="keras_mtl")
class Reptile(MetaLearner):
    """Reptile: `theta <- theta + eps * mean_tasks(phi_i - theta)`.

    For each task `phi_i` is the result of `inner_steps` SGD steps on the support set from
    `theta`. The outer step hands the compiled optimizer the pseudo-gradient
    `theta - mean_i(phi_i)`: with `keras.optimizers.SGD(learning_rate=eps)` this is exactly
    Reptile's update with step size `eps`; with Adam it is the Adam variant of the paper's
    implementation. No second derivative is computed.

    Args:
        model: the Keras model to meta-train (built, with trainable weights).
        inner_lr: positive number, the inner loop's learning rate.
        inner_steps: integer >= 0, inner steps per task (Reptile needs more than one to
            differ from joint training).
        **kwargs: passed to `keras.Model` (`name`, ...).

    Example:

    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(8, activation="relu"),
    ...                           keras.layers.Dense(1)])
    >>> learner = keras_mtl.meta.Reptile(model, inner_lr=0.02, inner_steps=5)
    >>> learner.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    >>> episodes = keras_mtl.datasets.sinusoid_tasks().episodes(4, shots=5, query_size=5)
    >>> history = learner.fit(episodes, epochs=1, steps_per_epoch=2, verbose=0)
    >>> len(history.history["loss"])
    1

    Reference:
        - [Nichol, Achiam, Schulman, On First-Order Meta-Learning Algorithms,
          2018](https://arxiv.org/abs/1803.02999)
    """

    def __init__(self, model, inner_lr=0.01, inner_steps=5, **kwargs):
        super().__init__(model, inner_lr=inner_lr, inner_steps=inner_steps, **kwargs)

    def meta_update(self, data):
        adapted, query_loss, support_loss, y_query, y_pred = self.adapt_tasks(
            data, first_order=True, training=True
        )
        variables = self.model.trainable_variables
        grads = []
        for variable, values in zip(variables, adapted):
            grads.append(keras.ops.convert_to_tensor(variable.value) - keras.ops.mean(values, 0))
        self.apply_gradients(grads, variables)
        return query_loss, support_loss, y_query, y_pred
