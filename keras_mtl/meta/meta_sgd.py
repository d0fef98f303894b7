"""Meta-SGD: MAML whose inner learning rates are learned too (one per weight tensor)."""

import keras

from keras_mtl.meta.maml import MAML


@keras.saving.register_keras_serializable(package="keras_mtl")
class MetaSGD(MAML):
    """Meta-SGD, per tensor: `keras_mtl.meta.MAML` with `learn_inner_lr=True`.

    Each adapted weight tensor has its own inner learning rate, initialised to `inner_lr`
    and learned with the initial weights in the outer loop (the paper learns one per
    parameter; one per tensor is its cheap variant).

    Args:
        model: the Keras model to meta-train.
        inner_lr: positive number, the initial inner learning rate.
        inner_steps: integer >= 0, inner steps while meta-training.
        first_order: drop the second-order term of the meta-gradient.
        **kwargs: passed to `keras.Model`.

    Example:

    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> learner = keras_mtl.meta.MetaSGD(model, inner_lr=0.05)
    >>> [round(float(v), 6) for v in learner.inner_lrs]
    [0.05, 0.05]

    Reference:
        - [Li, Zhou, Chen, Li, Meta-SGD: Learning to Learn Quickly for Few-Shot Learning,
          2017](https://arxiv.org/abs/1707.09835)
    """

    def __init__(self, model, inner_lr=0.01, inner_steps=1, first_order=False, **kwargs):
        kwargs.pop("learn_inner_lr", None)
        super().__init__(model, inner_lr=inner_lr, inner_steps=inner_steps,
                         first_order=first_order, learn_inner_lr=True, **kwargs)
