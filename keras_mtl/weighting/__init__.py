"""How task losses and gradients are combined: one method per file, and `get()` to look them up."""

from keras_mtl import _registry
from keras_mtl.weighting.aligned_mtl import AlignedMTL
from keras_mtl.weighting.base import GradientWeighting, LossWeighting, WeightingMethod
from keras_mtl.weighting.cagrad import CAGrad
from keras_mtl.weighting.db_mtl import DBMTL
from keras_mtl.weighting.dwa import DWA
from keras_mtl.weighting.famo import FAMO
from keras_mtl.weighting.gradnorm import GradNorm
from keras_mtl.weighting.gradvac import GradVac
from keras_mtl.weighting.imtl import IMTL
from keras_mtl.weighting.mgda import MGDA
from keras_mtl.weighting.nash_mtl import NashMTL
from keras_mtl.weighting.pcgrad import PCGrad
from keras_mtl.weighting.rlw import RLW
from keras_mtl.weighting.static import Static
from keras_mtl.weighting.uncertainty import Uncertainty
from keras_mtl.weighting.upgrad import UPGrad

_REGISTRY = {
    "static": Static,
    "uncertainty": Uncertainty,
    "dwa": DWA,
    "rlw": RLW,
    "famo": FAMO,
    "gradnorm": GradNorm,
    "pcgrad": PCGrad,
    "mgda": MGDA,
    "cagrad": CAGrad,
    "imtl": IMTL,
    "aligned_mtl": AlignedMTL,
    "upgrad": UPGrad,
    "nash_mtl": NashMTL,
    "db_mtl": DBMTL,
    "gradvac": GradVac,
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
    "AlignedMTL",
    "CAGrad",
    "DBMTL",
    "DWA",
    "FAMO",
    "GradNorm",
    "GradVac",
    "GradientWeighting",
    "IMTL",
    "LossWeighting",
    "MGDA",
    "NashMTL",
    "PCGrad",
    "RLW",
    "Static",
    "UPGrad",
    "Uncertainty",
    "WeightingMethod",
    "get",
    "names",
]
