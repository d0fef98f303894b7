"""Resolving the `backbone` argument of `build_mtl_model` into inputs and a feature tensor."""

import difflib
import os
import re

import keras

from keras_mtl import errors

# keras.applications models use this input shape when the user gives none.
DEFAULT_IMAGE_SHAPE = (224, 224, 3)


@keras.saving.register_keras_serializable(package="keras_mtl")
class FeatureConcat(keras.layers.Layer):
    """Flattens several inputs, casts them to floats and concatenates them.

    Used when the backbone is a dict of `keras.Input`s (tabular data): the shared block then
    sees one feature vector.

    Example:

    >>> inputs = {"age": keras.Input((1,)), "counts": keras.Input((3,), dtype="int32")}
    >>> keras_mtl.backbones.FeatureConcat()(inputs).shape
    (None, 4)
    """

    def call(self, inputs):
        parts = []
        for key in sorted(inputs):
            x = keras.ops.cast(inputs[key], self.compute_dtype)
            parts.append(keras.ops.reshape(x, (keras.ops.shape(x)[0], -1)))
        return keras.ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        size = 0
        for key in sorted(input_shape):
            dims = input_shape[key][1:]
            if any(d is None for d in dims):
                return (input_shape[key][0], None)
            n = 1
            for d in dims:
                n *= d
            size += n
        return (next(iter(input_shape.values()))[0], size)


def _application_names():
    return sorted(
        name
        for name in dir(keras.applications)
        if name[0].isupper() and callable(getattr(keras.applications, name))
    )


def _normalise(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


def application_model(name, *, weights=None, input_shape=None):
    """Builds the `keras.applications` model called `name` (case and `_` ignored), headless.

    Nothing is downloaded unless `weights` is given (e.g. `"imagenet"`, or a local path).
    """
    names = _application_names()
    by_key = {_normalise(n): n for n in names}
    match = by_key.get(_normalise(name))
    if match is None:
        close = difflib.get_close_matches(_normalise(name), list(by_key), n=5, cutoff=0.5)
        hint = (
            f" Close names: {[by_key[c] for c in close]}."
            if close
            else f" Known names: {names}."
        )
        raise errors.BackboneError(
            "`backbone` is not a known keras.applications model, TF Hub handle or SavedModel "
            f"directory. Received: backbone={name!r}.{hint}"
        )
    constructor = getattr(keras.applications, match)
    return constructor(
        include_top=False,
        weights=weights,
        input_shape=tuple(input_shape) if input_shape else DEFAULT_IMAGE_SHAPE,
    )


def _check_single_output(output, what):
    if isinstance(output, (list, tuple, dict)):
        count = len(output)
        raise errors.BackboneError(
            f"`backbone` must have exactly one output (the shared features); {what} has "
            f"{count}. Wrap it in a model that returns the one feature tensor to share."
        )
    return output


def _input_like(tensor):
    return keras.Input(
        batch_shape=tensor.shape, dtype=tensor.dtype, name=getattr(tensor, "name", None)
    )


def _call_model(model, inputs):
    """New inputs like `inputs` (a model's), and `model` applied to them as one nested layer."""
    if len(model.outputs) != 1:
        raise errors.BackboneError(
            "`backbone` must have exactly one output (the shared features); the model "
            f"{model.name!r} has {len(model.outputs)}. Wrap it in a model that returns the one "
            "feature tensor to share."
        )
    inputs = keras.tree.map_structure(_input_like, inputs)
    return inputs, model(inputs)


def _model_inputs(model):
    """The input tensors a `keras.Model` backbone was built with, or None if it has none.

    A functional model's are its `input` (a tensor, list or dict); a built Sequential has
    one; a subclassed model records none.
    """
    if isinstance(model, keras.Sequential):
        try:
            (tensor,) = model.inputs
        except (AttributeError, ValueError):  # not built yet, or several inputs
            return None
        # A Sequential built by calling it on data holds that batch's size; ours is free.
        return keras.KerasTensor((None,) + tuple(tensor.shape[1:]), tensor.dtype, name=tensor.name)
    if not model.built or not getattr(model, "outputs", None):
        return None
    return model.input


def is_inputs_only(backbone):
    """Whether `backbone` gives only inputs (a shape, a `keras.Input` or a dict of them)."""
    if isinstance(backbone, dict) or keras.backend.is_keras_tensor(backbone):
        return True
    return isinstance(backbone, (tuple, list)) and all(
        isinstance(d, int) or d is None for d in backbone
    )


def pool_features(features, flatten=False, name="backbone_pool"):
    """Pools a feature map to a vector (global average); leaves vectors as they are.

    With `flatten` (inputs given as the backbone: an image's pixels are the features, not a
    map to average) the map is flattened instead. `name` names the pooling layer.
    """
    rank = len(features.shape)
    if rank == 2:
        return features
    if flatten:
        if any(d is None for d in features.shape[1:]):
            raise errors.BackboneError(
                f"Inputs of shape {tuple(features.shape[1:])} were given as the backbone, but "
                "an axis of unknown size cannot be flattened into one feature vector. Give a "
                "backbone that maps them to a vector (e.g. a keras.Sequential ending in a "
                "pooling layer), or fix the axis sizes."
            )
        return keras.layers.Flatten(name="inputs_flatten")(features)
    if rank == 3:
        return keras.layers.GlobalAveragePooling1D(name=name)(features)
    if rank == 4:
        return keras.layers.GlobalAveragePooling2D(name=name)(features)
    if rank == 5:
        return keras.layers.GlobalAveragePooling3D(name=name)(features)
    return keras.layers.Flatten(name="backbone_flatten")(features)


def resolve_backbone(
    backbone,
    *,
    input_shape=None,
    input_dtype=None,
    weights=None,
    trainable=None,
    hub_options=None,
):
    """Returns `(inputs, features)` for the `backbone` argument of `build_mtl_model`.

    `inputs` is what the multi-task model takes (a tensor or a dict of tensors), `features`
    the one tensor the sharing strategy receives, before pooling.

    Accepted backbones: a `keras.Model` (one output); a `keras.layers.Layer` with
    `input_shape`; the name of a `keras.applications` model; a TF Hub handle or SavedModel
    directory; or only inputs: a `keras.Input`, a shape tuple, or a dict of `keras.Input`.
    `trainable=None` keeps the backbone's default: trainable, except for pretrained weights
    and hub modules, which start frozen.
    """
    if weights is not None and not isinstance(backbone, str):
        raise errors.BackboneError(
            "`weights` applies only when `backbone` names a keras.applications model. "
            f"Received: weights={weights!r} with a backbone of type {type(backbone).__name__}"
        )
    if hub_options and not isinstance(backbone, str):
        from keras_mtl import hub_resolver

        if not hub_resolver.is_hub_handle(backbone):
            raise errors.BackboneError(
                "`hub_options` applies only to a TF Hub handle or SavedModel backbone. "
                f"Received: hub_options={hub_options!r}"
            )

    if isinstance(backbone, dict):
        for key, value in backbone.items():
            if not keras.backend.is_keras_tensor(value):
                raise errors.BackboneTypeError(
                    "A dict `backbone` must map input names to `keras.Input` tensors. "
                    f"Received for {key!r}: {value!r}"
                )
            if value.dtype == "string":
                raise errors.BackboneError(
                    f"Input {key!r} of the `backbone` dict is a string tensor; tabular inputs "
                    "must be numeric. Encode it first (e.g. keras.layers.StringLookup) in a "
                    "backbone model."
                )
        if len(backbone) == 1:
            (only,) = backbone.values()
            return dict(backbone), only
        return dict(backbone), FeatureConcat(name="tabular_features")(dict(backbone))

    if keras.backend.is_keras_tensor(backbone):
        return backbone, backbone

    if isinstance(backbone, (tuple, list)) and all(
        isinstance(d, int) or d is None for d in backbone
    ):
        inputs = keras.Input(tuple(backbone), dtype=input_dtype or "float32", name="inputs")
        return inputs, inputs

    if isinstance(backbone, keras.Model):
        _set_trainable(backbone, trainable)
        model_inputs = _model_inputs(backbone)
        if model_inputs is None:
            return _call_layer(backbone, input_shape, input_dtype)
        own = [tuple(t.shape[1:]) for t in keras.tree.flatten(model_inputs)]
        if input_shape is not None and [tuple(input_shape)] != own:
            raise errors.BackboneError(
                "`input_shape` applies to a backbone without inputs of its own; the model "
                f"{backbone.name!r} already takes inputs of shape "
                f"{own[0] if len(own) == 1 else own}. Received: input_shape={input_shape!r}"
            )
        return _call_model(backbone, model_inputs)

    if isinstance(backbone, keras.layers.Layer):
        _set_trainable(backbone, trainable)
        return _call_layer(backbone, input_shape, input_dtype)

    from keras_mtl import hub, hub_resolver

    if hub_resolver.is_hub_handle(backbone) or _looks_like_path(backbone):
        layer = hub.HubLayer(backbone, trainable=bool(trainable), **(hub_options or {}))
        if input_shape is None:
            inferred = layer.inferred_input()
            if inferred is None:
                raise errors.BackboneError(
                    f"Cannot infer the input shape of the hub module {backbone!r}; pass "
                    "`input_shape` (without the batch dimension) and `input_dtype`."
                )
            input_shape, inferred_dtype = inferred
            input_dtype = input_dtype or inferred_dtype
        return _call_layer(layer, input_shape, input_dtype)

    if isinstance(backbone, str):
        model = application_model(backbone, weights=weights, input_shape=input_shape)
        _set_trainable(model, (weights is None) if trainable is None else trainable)
        return _call_model(model, model.input)

    raise errors.BackboneTypeError(
        "`backbone` must be a keras.Model, a keras.layers.Layer, the name of a "
        "keras.applications model, a TF Hub handle or SavedModel directory, a keras.Input, an "
        f"input shape tuple, or a dict of keras.Input. Received an object of type "
        f"{type(backbone).__name__}: {backbone!r}"
    )


def _looks_like_path(value):
    """A string meant as a file path (keras.applications names never are): it goes to
    `HubLayer`, whose error names the path, rather than to the applications lookup."""
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and (
        os.sep in value or "/" in value or value.startswith((".", "~"))
    )


def _set_trainable(layer, trainable):
    if trainable is not None:
        layer.trainable = bool(trainable)


def _call_layer(layer, input_shape, input_dtype):
    if input_shape is None:
        raise errors.BackboneError(
            f"`input_shape` is required when `backbone` is a layer or a model without inputs "
            f"of its own, such as a subclassed model or a Sequential without `keras.Input` "
            f"({type(layer).__name__} {layer.name!r}): pass the shape of one example, without "
            "the batch dimension. Received: input_shape=None"
        )
    inputs = keras.Input(tuple(input_shape), dtype=input_dtype or "float32", name="inputs")
    return inputs, _check_single_output(layer(inputs), f"the layer {layer.name!r}")
