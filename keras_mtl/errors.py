"""Typed errors of keras_mtl.

Every error is still a `ValueError` or a `TypeError`, so callers may catch either the
specific class or the built-in one.
"""


class KerasMTLError(Exception):
    """Base class of every error keras_mtl raises on purpose."""


class TaskSpecError(KerasMTLError, ValueError):
    """A task specification is invalid (name, kind, size, class names, ...)."""


class TaskTypeError(KerasMTLError, TypeError):
    """A task specification, or a list of them, has the wrong type."""


class BackboneError(KerasMTLError, ValueError):
    """The `backbone` argument cannot be turned into a feature extractor."""


class BackboneTypeError(KerasMTLError, TypeError):
    """The `backbone` argument has a type keras_mtl does not accept."""


class LabelError(KerasMTLError, ValueError):
    """Labels given to `fit` / `evaluate` do not match the model's tasks."""


class ConfigError(KerasMTLError, ValueError):
    """An argument of a keras_mtl function or class is out of range."""


class HubHandleError(KerasMTLError, ValueError):
    """A TF Hub handle or SavedModel path cannot be resolved or loaded."""


class ExportError(KerasMTLError, ValueError):
    """A model cannot be exported, or an export would overwrite existing files."""


class SourceError(KerasMTLError, ValueError):
    """The data sets given to `keras_mtl.data.mix` do not fit the tasks or each other."""


class EpisodeError(KerasMTLError, ValueError):
    """Episodes or support sets for meta-learning have the wrong structure or shapes."""
