"""How task losses and gradients are combined: one method per file, and `get()` to look them up."""

from keras_mtl import _registry
from keras_mtl.weighting.base import GradientWeighting, LossWeighting, WeightingMethod
from keras_mtl.weighting.cagrad import CAGrad
from keras_mtl.weighting.dwa import DWA
from keras_mtl.weighting.gradnorm import GradNorm
from keras_mtl.weighting.mgda import MGDA
from keras_mtl.weighting.pcgrad import PCGrad
from keras_mtl.weighting.rlw import RLW
from keras_mtl.weighting.static import Static
from keras_mtl.weighting.uncertainty import Uncertainty

_REGISTRY = {
    "static": Static,
    "uncertainty": Uncertainty,
    "dwa": DWA,
    "rlw": RLW,
    "gradnorm": GradNorm,
    "pcgrad": PCGrad,
    "mgda": MGDA,
    "cagrad": CAGrad,
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
    return _registry.get(_REGISTRY, WeightingMethod, identifier, "weighting")


__all__ = [
    "CAGrad",
    "DWA",
    "GradNorm",
    "GradientWeighting",
    "LossWeighting",
    "MGDA",
    "PCGrad",
    "RLW",
    "Static",
    "Uncertainty",
    "WeightingMethod",
    "get",
    "names",
]
