"""What an `MTLModel` is made of: its backbone output, its sharing layer, what each head reads.

`MTLModel.structure` is the one place weighting methods, export, `add_task` and diagnostics
learn which tensors and variables are shared and which belong to one task, instead of
walking Keras' graph themselves.
"""

import keras

from keras_mtl import errors


class ModelStructure:
    """The parts of an `MTLModel`: the shared trunk and one head per task.

    The trunk is every layer between the model's inputs and the tensors the heads read (the
    backbone and the sharing strategy); task `t`'s head is every layer between what it reads
    (`head_inputs[t]`) and the model's output `t`. Sub-models and layer lists are computed
    once, on first use; variables are read afresh on every call, so freezing a layer shows.

    Attributes:
        backbone_output: the symbolic tensor the sharing strategy receives (the backbone's
            features, pooled unless the model was built with `pool_features=False`).
        head_inputs: dict task name -> the symbolic tensor that task's head reads (a nested
            structure of tensors for a head that reads several).
        sharing_layer: the model's `keras_mtl.sharing.SharingStrategy` layer, or None.

    Example:

    >>> tasks = [keras_mtl.Task("a", "binary"), keras_mtl.Task("b", "regression")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, shared_units=16)
    >>> structure = model.structure
    >>> tuple(structure.backbone_output.shape), tuple(structure.head_inputs["a"].shape)
    ((None, 8), (None, 16))
    >>> [v.path for v in structure.head_variables()["a"]]
    ['a/kernel', 'a/bias']
    >>> structure.one_representation
    True
    """

    def __init__(self, model, backbone_output, head_inputs):
        self._model = model
        self.backbone_output = backbone_output
        self.head_inputs = dict(head_inputs)
        self.sharing_layer = _sharing_layer(model)
        self._cache = {}

    # === Layers and variables ===

    @property
    def trunk_layers(self):
        """The layers between the model's inputs and what the heads read (InputLayers too)."""
        return self._cached("trunk_layers", lambda: self.trunk_model.layers)

    @property
    def head_layers(self):
        """Dict task name -> the layers of that task's head, from its input to its output."""
        return self._cached("head_layers", self._head_layers)

    def _head_layers(self):
        trunk = {id(layer) for layer in self.trunk_layers}
        outputs = self._model.output
        return {
            name: [
                layer
                for layer in keras.Model(self._model.input, outputs[name]).layers
                if id(layer) not in trunk
            ]
            for name in self._model.task_names
        }

    def head_variables(self, trainable=True):
        """Dict task name -> the variables of that task's head (trainable ones by default)."""
        return {
            name: _variables(layers, trainable) for name, layers in self.head_layers.items()
        }

    def shared_variables(self, trainable=True):
        """The variables of the trunk (trainable ones by default), shared by the tasks.

        Parameters inside the sharing strategy that one task alone uses (an MMoE gate, a
        tower of Soft sharing) are part of the trunk too.
        """
        return _variables(self.trunk_layers, trainable)

    @property
    def heads_sharing_layers(self):
        """Names of the layers that belong to several heads (normally none)."""
        seen, shared = set(), []
        for layers in self.head_layers.values():
            for layer in layers:
                if id(layer) in seen and layer.name not in shared:
                    shared.append(layer.name)
                seen.add(id(layer))
        return shared

    # === Sub-models ===

    @property
    def trunk_model(self):
        """A model from the inputs to `{"backbone_output": ..., "head_inputs": {...}}`."""
        return self._cached(
            "trunk_model",
            lambda: keras.Model(
                self._model.input,
                {"backbone_output": self.backbone_output, "head_inputs": self.head_inputs},
                name=f"{self._model.name}_trunk",
            ),
        )

    @property
    def feature_model(self):
        """A model from the inputs to `{"outputs": <task outputs>, "head_inputs": {...}}`.

        One forward pass gives the predictions and the tensors the heads read, e.g. to take
        per-task gradients with respect to the shared representation.
        """
        return self._cached(
            "feature_model",
            lambda: keras.Model(
                self._model.input,
                {"outputs": self._model.output, "head_inputs": self.head_inputs},
                name=f"{self._model.name}_with_head_inputs",
            ),
        )

    # === One representation ===

    @property
    def one_representation(self):
        """Whether every head reads one and the same tensor (None when it cannot be told).

        True for Hard sharing, False when the sharing strategy gives each task its own
        tensor (MMoE, PLE, CrossStitch, Soft) or when some head reads something else (a head
        added with `add_task(..., features_from="backbone")`). The symbolic outputs of a
        layer are distinct objects even when it returns one tensor for every task, so the
        strategy is called once, eagerly, on zeros shaped as its input.
        """
        return self._cached("one_representation", self._one_representation)

    def _one_representation(self):
        tensors = list(self.head_inputs.values())
        if all(tensor is tensors[0] for tensor in tensors):
            return True
        strategy = self.sharing_layer
        if strategy is None or any(keras.tree.is_nested(t) for t in tensors):
            return None
        references = tensor_references(self._model, {"head_inputs": self.head_inputs})
        produced = list(references["head_inputs"].values())
        if any(ref[0] != strategy.name or ref[1] != produced[0][1] for ref in produced):
            return False
        shape = [1 if d is None else d for d in self.backbone_output.shape]
        try:
            outputs = keras.tree.flatten(
                strategy(keras.ops.zeros(shape, self.backbone_output.dtype), training=False)
            )
            chosen = [outputs[ref[2]] for ref in produced]
        except Exception:  # noqa: BLE001 - undecidable here; checked again when training
            return None
        return all(tensor is chosen[0] for tensor in chosen)

    def _cached(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


def tensor_references(model, tensors):
    """`[layer_name, node_index, tensor_index]` of each of `tensors` (a nested structure), as
    Keras writes a functional model's outputs in its config.

    The tensors must lie between the model's inputs and its outputs, so that the node
    indices are those of the model's own config.
    """
    helper = keras.Model(model.input, {"outputs": model.output, "tensors": tensors})
    return helper.get_config()["output_layers"]["tensors"]


def derive_structure(model):
    """The structure of a model that did not record one: its one sharing strategy's input and
    outputs (`None` when there is no single strategy, or it was not called in this model)."""
    strategy = _sharing_layer(model)
    if strategy is None or strategy.task_names is None:
        return None
    if sorted(strategy.task_names) != sorted(model.task_names):
        return None
    try:
        flat = keras.tree.flatten(strategy.output)
        outputs = keras.tree.pack_sequence_as({n: None for n in strategy.task_names}, flat)
        # Fails unless these tensors are this model's (the strategy's first call was here).
        keras.Model(model.input, [strategy.input, *flat])
    except (AttributeError, ValueError):
        return None
    return ModelStructure(model, strategy.input, outputs)


def _sharing_layer(model):
    from keras_mtl.sharing.base import SharingStrategy

    strategies = [layer for layer in model.layers if isinstance(layer, SharingStrategy)]
    return strategies[0] if len(strategies) == 1 else None


def _variables(layers, trainable):
    seen, variables = set(), []
    for layer in layers:
        for variable in layer.trainable_variables if trainable else layer.variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                variables.append(variable)
    return variables


def require_structure(model, needed_by):
    """`model.structure`, or a `ConfigError` saying what needed it."""
    structure = getattr(model, "structure", None)
    if structure is None:
        raise errors.ConfigError(
            f"{needed_by} needs to know which tensors the heads of the model {model.name!r} "
            "read, and this model does not record it: build it with "
            "keras_mtl.build_mtl_model, or pass `backbone_output` and `head_inputs` to "
            "keras_mtl.MTLModel."
        )
    return structure
