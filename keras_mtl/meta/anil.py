"""ANIL: MAML whose inner loop adapts only the head."""

import keras

from keras_mtl import errors
from keras_mtl.meta.maml import MAML


@keras.saving.register_keras_serializable(package="keras_mtl")
class ANIL(MAML):
    """Almost No Inner Loop: only the head adapts per task; the body is meta-learned.

    The inner loop adapts the head's weights; the body's weights are read unchanged and
    learned only by the outer step (through the adapted head, to second order unless
    `first_order`). For an `MTLModel` the head is every task head (the model's
    `structure`); for other models it is the last `head_layers` layers with weights.

    Args:
        model: the Keras model to meta-train.
        head_layers: positive integer, how many of the last layers with trainable weights
            form the head (ignored for an `MTLModel`, whose heads are known).
        inner_lr: positive number, the inner loop's learning rate.
        inner_steps: integer >= 0, inner steps while meta-training.
        first_order: drop the second-order term of the meta-gradient.
        learn_inner_lr: learn one inner learning rate per head tensor.
        **kwargs: passed to `keras.Model`.

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((1,)),
    ...     keras.layers.Dense(8, activation="relu", name="body"),
    ...     keras.layers.Dense(1, name="head"),
    ... ])
    >>> learner = keras_mtl.meta.ANIL(model, head_layers=1)
    >>> [v.name for v in learner.adapted_variables()]
    ['kernel', 'bias']
    >>> learner.adapted_variables()[0] is model.get_layer("head").kernel
    True

    Reference:
        - [Raghu, Raghu, Bengio, Vinyals, Rapid Learning or Feature Reuse? Towards
          Understanding the Effectiveness of MAML, ICLR 2020](https://arxiv.org/abs/1909.09157)
    """

    def __init__(self, model, head_layers=1, inner_lr=0.01, inner_steps=1, first_order=False,
                 learn_inner_lr=False, **kwargs):
        if isinstance(head_layers, bool) or not isinstance(head_layers, int) or head_layers < 1:
            raise errors.ConfigError(
                f"`head_layers` must be a positive integer. Received: head_layers={head_layers!r}"
            )
        self._head_layers = head_layers
        super().__init__(model, inner_lr=inner_lr, inner_steps=inner_steps,
                         first_order=first_order, learn_inner_lr=learn_inner_lr, **kwargs)
        self.head_layers = head_layers

    def adapted_variables(self):
        from keras_mtl.model import MTLModel

        model = self.model
        if isinstance(model, MTLModel) and model.structure is not None:
            heads = model.structure.head_variables()
            return [v for name in model.task_names for v in heads[name]]
        with_weights = [layer for layer in model.layers if layer.trainable_variables]
        if self._head_layers >= len(with_weights):
            raise errors.ConfigError(
                f"`head_layers` must leave a body: the model {model.name!r} has "
                f"{len(with_weights)} layers with trainable weights. "
                f"Received: head_layers={self._head_layers}"
            )
        return [v for layer in with_weights[-self._head_layers:]
                for v in layer.trainable_variables]

    def get_config(self):
        config = super().get_config()
        config["head_layers"] = self.head_layers
        return config
