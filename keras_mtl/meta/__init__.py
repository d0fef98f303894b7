"""Meta-learning: learn from a distribution of tasks, adapt to a new one from a few examples.

One algorithm per file (MAML with FOMAML and Meta-SGD, ANIL, Reptile), each a `keras.Model`
that wraps any Keras model and trains with `compile` + `fit` on episodes from a
`TaskDistribution`; `evaluate_adaptation` measures the gain against a baseline.
"""

from keras_mtl import _registry
from keras_mtl.meta.anil import ANIL
from keras_mtl.meta.base import MetaLearner
from keras_mtl.meta.distributions import FewShotClassification, SinusoidTasks, TaskDistribution
from keras_mtl.meta.evaluation import evaluate_adaptation, pooled_baseline
from keras_mtl.meta.maml import MAML
from keras_mtl.meta.meta_sgd import MetaSGD
from keras_mtl.meta.reptile import Reptile

_REGISTRY = {
    "maml": MAML,
    "meta_sgd": MetaSGD,
    "anil": ANIL,
    "reptile": Reptile,
}


def names():
    """The lookup names of the registered meta-learning algorithms."""
    return sorted(_REGISTRY)


def get_class(name):
    """The learner class registered under `name` (snake_case, e.g. `"meta_sgd"`)."""
    return _registry.lookup_class(_REGISTRY, name, "learner")


def get(identifier, model=None, **kwargs):
    """A meta-learner from a name (with the `model` to wrap), a config dict or an instance.

    Example:

    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> type(keras_mtl.meta.get("reptile", model, inner_steps=3)).__name__
    'Reptile'
    >>> keras_mtl.meta.names()
    ['anil', 'maml', 'meta_sgd', 'reptile']
    """
    if isinstance(identifier, str):
        if model is None:
            raise _registry.errors.ConfigError(
                f"A learner looked up by name needs the `model` to wrap. "
                f"Received: identifier={identifier!r}, model=None"
            )
        return get_class(identifier)(model, **kwargs)
    return _registry.get(_REGISTRY, MetaLearner, identifier, "learner")


__all__ = [
    "ANIL",
    "FewShotClassification",
    "MAML",
    "MetaLearner",
    "MetaSGD",
    "Reptile",
    "SinusoidTasks",
    "TaskDistribution",
    "evaluate_adaptation",
    "get",
    "get_class",
    "names",
    "pooled_baseline",
]
