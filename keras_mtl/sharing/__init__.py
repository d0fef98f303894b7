"""How tasks share parameters: one strategy per file, and `get()` to look them up.

Every strategy is a Keras layer that maps backbone features to one feature tensor per task.
"""

from keras_mtl import _registry
from keras_mtl.sharing.base import SharingStrategy
from keras_mtl.sharing.cross_stitch import CrossStitch
from keras_mtl.sharing.hard import Hard
from keras_mtl.sharing.inspect import (
    cross_stitch_matrices,
    find_strategy,
    gate_usage,
    gate_weights,
    soft_sharing_distance,
)
from keras_mtl.sharing.mmoe import MMoE
from keras_mtl.sharing.mtan import MTAN
from keras_mtl.sharing.ple import PLE
from keras_mtl.sharing.soft import Soft

_REGISTRY = {
    "hard": Hard,
    "soft": Soft,
    "cross_stitch": CrossStitch,
    "mmoe": MMoE,
    "ple": PLE,
    "mtan": MTAN,
}


def names():
    """The lookup names of the registered strategies."""
    return sorted(_REGISTRY)


def get_class(name):
    """The strategy class registered under `name` (snake_case, e.g. `"cross_stitch"`)."""
    return _registry.lookup_class(_REGISTRY, name, "sharing")


def get(identifier):
    """A sharing strategy from a name, a config dict or an instance.

    Example:

    >>> type(keras_mtl.sharing.get("mmoe")).__name__
    'MMoE'
    >>> keras_mtl.sharing.get("cross_stitch").get_config()["shared_layers"]
    1
    """
    return _registry.get(_REGISTRY, SharingStrategy, identifier, "sharing")


__all__ = [
    "CrossStitch",
    "Hard",
    "MMoE",
    "MTAN",
    "PLE",
    "SharingStrategy",
    "Soft",
    "cross_stitch_matrices",
    "find_strategy",
    "gate_usage",
    "gate_weights",
    "get",
    "get_class",
    "names",
    "soft_sharing_distance",
]
