"""How task losses and gradients are combined: one method per file, and `get()` to look them up."""

import keras

from keras_mtl import errors
from keras_mtl.weighting.base import WeightingMethod
from keras_mtl.weighting.static import Static

_REGISTRY = {
    "static": Static,
}


def names():
    """The lookup names of the registered weighting methods."""
    return sorted(_REGISTRY)


def get(identifier):
    """A weighting method from a name, a config dict or an instance.

    Example:

    >>> keras_mtl.weighting.get("static")
    Static()
    """
    if isinstance(identifier, WeightingMethod):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _REGISTRY:
            raise errors.ConfigError(
                f"Unknown weighting method: {identifier!r}. Valid names: {names()}, or pass a "
                "`keras_mtl.weighting.WeightingMethod` instance."
            )
        return _REGISTRY[key]()
    if isinstance(identifier, dict):
        method = keras.saving.deserialize_keras_object(identifier)
        if isinstance(method, WeightingMethod):
            return method
    raise errors.ConfigError(
        "`weighting` must be a method name, a config dict or a `keras_mtl.weighting."
        f"WeightingMethod` instance. Valid names: {names()}. Received: weighting={identifier!r}"
    )


__all__ = ["WeightingMethod", "Static", "get", "names"]
