"""Task kinds: one class per kind (binary, multiclass, ...), `get()` to look them up and
`register()` to add one.

A `keras_mtl.Task` names its kind; the kind builds its head, loss and metrics, checks its
labels, post-processes its exported outputs and gives its best constant prediction. See
`keras_mtl.kinds.TaskKind` for how to write a new kind.
"""

import keyword

from keras_mtl import _registry, errors
from keras_mtl.kinds.base import TaskKind
from keras_mtl.kinds.binary import Binary
from keras_mtl.kinds.custom import Custom
from keras_mtl.kinds.dense_regression import DenseRegression
from keras_mtl.kinds.multiclass import Multiclass
from keras_mtl.kinds.multilabel import Multilabel
from keras_mtl.kinds.regression import Regression
from keras_mtl.kinds.segmentation import Segmentation
from keras_mtl.kinds.token_classification import TokenClassification

_REGISTRY = {
    kind.name: kind
    for kind in (Binary, Multiclass, Multilabel, Regression, Custom, Segmentation,
                 DenseRegression, TokenClassification)
}


def names():
    """The names of the registered kinds, in the order they were registered."""
    return list(_REGISTRY)


def get(identifier):
    """A `TaskKind` from its name, a config dict or an instance.

    Example:

    >>> keras_mtl.kinds.get("multiclass")
    Multiclass()
    >>> keras_mtl.kinds.names()[:5]
    ['binary', 'multiclass', 'multilabel', 'regression', 'custom']
    """
    return _registry.get(_REGISTRY, TaskKind, identifier, "kind")


def register(kind_class):
    """Registers a `TaskKind` subclass under its `name`; usable as a class decorator.

    The name must be a lower-case identifier not taken by another kind (registering the
    same class again, or a redefinition of it in the same module, replaces it). Option
    names must not shadow a `Task` attribute.

    Args:
        kind_class: the `keras_mtl.kinds.TaskKind` subclass.

    Returns:
        `kind_class`.

    Example: see `keras_mtl.kinds.TaskKind`.
    """
    from keras_mtl.tasks import Task

    if not isinstance(kind_class, type) or not issubclass(kind_class, TaskKind):
        raise errors.TaskTypeError(
            "`kind_class` must be a subclass of keras_mtl.kinds.TaskKind. Received: "
            f"kind_class={kind_class!r}"
        )
    name = kind_class.name
    if (
        not isinstance(name, str)
        or not name.isidentifier()
        or keyword.iskeyword(name)
        or name != name.lower()
    ):
        raise errors.TaskSpecError(
            f"A kind's `name` must be a lower-case Python identifier. Received: name={name!r} "
            f"for {kind_class.__name__}"
        )
    existing = _REGISTRY.get(name)
    if existing is not None and (existing.__module__, existing.__qualname__) != (
        kind_class.__module__,
        kind_class.__qualname__,
    ):
        raise errors.TaskSpecError(
            f"The kind name {name!r} is taken by {existing.__module__}.{existing.__qualname__}; "
            f"choose another `name` for {kind_class.__qualname__}."
        )
    taken = [option for option in kind_class.options if hasattr(Task, option) or option in
             Task.ARGUMENTS]
    if taken:
        raise errors.TaskSpecError(
            f"The options {taken} of kind {name!r} are names `keras_mtl.Task` already uses; "
            "rename them."
        )
    _REGISTRY[name] = kind_class
    return kind_class


__all__ = [
    "Binary",
    "Custom",
    "DenseRegression",
    "Multiclass",
    "Multilabel",
    "Regression",
    "Segmentation",
    "TaskKind",
    "TokenClassification",
    "get",
    "names",
    "register",
]
