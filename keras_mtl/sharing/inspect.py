"""Reading what a sharing strategy learned: gates, cross-stitch units, tower distance.

Every helper takes either a model built by `keras_mtl.build_mtl_model` (the strategy layer
is found in it) or the strategy layer itself.
"""

import keras
import numpy as np
from keras import ops

from keras_mtl import errors
from keras_mtl.sharing.base import SharingStrategy
from keras_mtl.sharing.cross_stitch import CrossStitch
from keras_mtl.sharing.mmoe import MMoE
from keras_mtl.sharing.ple import PLE
from keras_mtl.sharing.soft import Soft


def _walk(model):
    """The layers of `model`, and of the models nested in it."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer)


def find_strategy(model_or_layer, kind=SharingStrategy):
    """The sharing strategy layer of a model (or the layer itself), checked to be a `kind`.

    Args:
        model_or_layer: a `keras.Model` holding exactly one `SharingStrategy` layer, or a
            strategy layer.
        kind: the strategy class (or tuple of classes) required.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, sharing="mmoe", shared_units=4)
    >>> type(keras_mtl.sharing.find_strategy(model)).__name__
    'MMoE'
    """
    if isinstance(model_or_layer, SharingStrategy):
        found = [model_or_layer]
    elif isinstance(model_or_layer, keras.Model):
        found = [layer for layer in _walk(model_or_layer) if isinstance(layer, SharingStrategy)]
    else:
        raise errors.ConfigError(
            "Expected a `keras.Model` built by `keras_mtl.build_mtl_model` or a "
            f"`keras_mtl.sharing.SharingStrategy`. Received: {model_or_layer!r}"
        )
    if len(found) != 1:
        raise errors.ConfigError(
            f"Expected exactly one sharing strategy layer in the model; found {len(found)}: "
            f"{[layer.name for layer in found]}"
        )
    strategy = found[0]
    if not isinstance(strategy, kind):
        names = [k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,))]
        raise errors.ConfigError(
            f"This needs a sharing strategy of type {' or '.join(names)}; the model uses "
            f"{type(strategy).__name__} ({strategy.name!r})."
        )
    return strategy


def _strategy_features(model_or_layer, strategy, x, batch_size):
    """The strategy's input features for `x`: `x` itself when given the layer alone."""
    if model_or_layer is strategy:
        return np.asarray(x)
    structure = getattr(model_or_layer, "structure", None)
    features = strategy.input if structure is None else structure.backbone_output
    extractor = keras.Model(model_or_layer.input, features)
    return extractor.predict(x, batch_size=batch_size, verbose=0)


def gate_weights(model_or_layer, x, *, level=-1, batch_size=256):
    """The gate weights of each task of an MMoE or PLE strategy, for a batch.

    Args:
        model_or_layer: a model built by `keras_mtl.build_mtl_model` with MMoE or PLE
            sharing, or the `MMoE` / `PLE` layer.
        x: the model's inputs, or the layer's input features when given the layer.
        level: for PLE, the level whose task gates are read (default the last).
        batch_size: batch size of the forward pass.

    Returns:
        A dict task name -> NumPy array `(n, experts)` whose rows sum to one; the columns
        are named by `strategy.expert_names()[task]`.

    Example:

    >>> import numpy as np
    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, sharing="mmoe", shared_units=4)
    >>> gates = keras_mtl.sharing.gate_weights(model, np.ones((3, 8), "float32"))
    >>> gates["a"].shape
    (3, 8)
    """
    strategy = find_strategy(model_or_layer, (MMoE, PLE))
    features = _strategy_features(model_or_layer, strategy, x, batch_size)
    if isinstance(strategy, MMoE):
        if level != -1:
            raise errors.ConfigError(
                f"`level` applies to PLE only; MMoE has one level. Received: level={level!r}"
            )
        compute = strategy.gate_weights
    else:
        def compute(batch):
            return strategy.gate_weights(batch, level=level)
    parts = [
        compute(features[start:start + batch_size])
        for start in range(0, len(features), batch_size)
    ]
    return {
        name: np.concatenate([ops.convert_to_numpy(part[name]) for part in parts], axis=0)
        for name in strategy.task_names
    }


def gate_usage(model_or_layer, x, *, level=-1, batch_size=256):
    """How much each task uses each expert: its gate weights averaged over `x`.

    Returns:
        A dict task name -> dict expert name -> mean gate weight (summing to one per task).

    Example:

    >>> import numpy as np
    >>> layer = keras_mtl.sharing.MMoE(num_experts=2, task_names=["a", "b"])
    >>> usage = keras_mtl.sharing.gate_usage(layer, np.ones((4, 3), "float32"))
    >>> sorted(usage["a"])
    ['expert_0', 'expert_1']
    """
    strategy = find_strategy(model_or_layer, (MMoE, PLE))
    gates = gate_weights(model_or_layer, x, level=level, batch_size=batch_size)
    columns = strategy.expert_names()
    return {
        name: dict(zip(
            columns[name],
            gates[name].reshape(-1, gates[name].shape[-1]).mean(axis=0).tolist(),
        ))
        for name in strategy.task_names
    }


def cross_stitch_matrices(model_or_layer):
    """The cross-stitch matrices of a `CrossStitch` strategy, one `(tasks, tasks)` per layer.

    Row `s` holds the weights task `s` gives to each task's activations after that layer.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, sharing="cross_stitch", shared_units=4)
    >>> keras_mtl.sharing.cross_stitch_matrices(model)[0].astype(float).round(2).tolist()
    [[0.9, 0.1], [0.1, 0.9]]
    """
    return find_strategy(model_or_layer, CrossStitch).cross_stitch_matrices()


def soft_sharing_distance(model_or_layer):
    """The distance between the task towers of a `Soft` strategy (before its penalty).

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, sharing="soft", shared_units=4)
    >>> keras_mtl.sharing.soft_sharing_distance(model) > 0
    True
    """
    return float(ops.convert_to_numpy(find_strategy(model_or_layer, Soft).tower_distance()))
