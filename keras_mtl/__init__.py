"""keras_mtl: multi-task learning models in Keras 3."""

from keras_mtl import (
    data,
    datasets,
    diagnostics,
    errors,
    losses,
    meta,
    sharing,
    structure,
    tuning,
    weighting,
)
from keras_mtl.export import export_saved_model, load_task_specs
from keras_mtl.hub import HubLayer
from keras_mtl.model import MTLModel, add_task, build_mtl_model
from keras_mtl.tasks import Task
from keras_mtl.tuning import MTLHyperModel

__version__ = "0.1.0"

__all__ = [
    "HubLayer",
    "MTLHyperModel",
    "MTLModel",
    "Task",
    "add_task",
    "build_mtl_model",
    "data",
    "datasets",
    "diagnostics",
    "errors",
    "export_saved_model",
    "load_task_specs",
    "losses",
    "meta",
    "sharing",
    "structure",
    "tuning",
    "weighting",
]
