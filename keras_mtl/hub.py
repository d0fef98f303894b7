"""HubLayer: a Keras 3 layer around a TF Hub handle or a SavedModel directory.

Finding and downloading the module is `keras_mtl.hub_resolver`'s job; this module is the layer.

`tensorflow_hub.KerasLayer` is a tf-keras layer and cannot be used in a Keras 3 model, and
`keras.layers.TFSMLayer` copies the SavedModel's variables, so the restored functions never see
what training does to the copies. `HubLayer` adopts the restored `tf.Variable`s themselves as
Keras variables: Keras' optimizers update the very variables the SavedModel's functions read.
"""

import inspect
import json
import os

import keras
import tensorflow as tf
from keras import tree

from keras_mtl import _keras_compat, hub_resolver
from keras_mtl.errors import HubHandleError

_LOAD_OPTION_NAMES = (
    "allow_partial_checkpoint",
    "experimental_io_device",
    "experimental_skip_checkpoint",
    "experimental_variable_policy",
    "experimental_load_function_aliases",
)


@keras.saving.register_keras_serializable(package="keras_mtl")
class HubLayer(keras.layers.Layer):
    """A Keras 3 layer that calls a TF Hub module or a SavedModel, frozen or fine-tuned.

    The handle is resolved with `tensorflow_hub` (`hub.resolve` / `hub.load`), so tfhub.dev and
    Kaggle URLs, compressed downloads and the cache directory `TFHUB_CACHE_DIR` all work. With
    `trainable=True` the layer fine-tunes the SavedModel's own variables: those the SavedModel
    lists in `trainable_variables` are trainable weights, all other variables are non-trainable
    weights. A module whose `__call__` takes `training` gets `training=True` only when the layer
    is trainable and called in training, so frozen batch-normalization statistics stay frozen.
    The module's `regularization_losses` join the model's losses when the layer is trainable.

    Args:
        handle: a TF Hub / Kaggle URL, a local SavedModel directory, or an already loaded
            SavedModel object (such a layer works but cannot be serialized).
        trainable: whether to fine-tune the module's trainable variables.
        signature: name of a signature to call instead of `__call__`. Requires `output_key`
            or `signature_outputs_as_dict=True`.
        output_key: key of the output to return when the module returns a dict.
        signature_outputs_as_dict: with `signature`, return the signature's whole output dict.
        arguments: dict of extra keyword arguments passed to every call of the module (e.g.
            hyperparameters the module's `__call__` accepts).
        output_shape: shape of the output without the batch dimension (or a dict of shapes for
            dict outputs). By default the shape is inferred from the module.
        load_options: a `tf.saved_model.LoadOptions`, or a dict of its arguments.
        **kwargs: base `keras.layers.Layer` arguments (`name`, ...).

    Example:

    ```python
    layer = keras_mtl.HubLayer("https://tfhub.dev/google/nnlm-en-dim50/2", trainable=True)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, keras.layers.Dense(1)(layer(inputs)))
    ```
    """

    def __init__(
        self,
        handle,
        trainable=False,
        *,
        signature=None,
        output_key=None,
        signature_outputs_as_dict=False,
        arguments=None,
        output_shape=None,
        load_options=None,
        **kwargs,
    ):
        if keras.backend.backend() != "tensorflow":
            raise HubHandleError(
                "`HubLayer` needs the TensorFlow backend of Keras, because TF Hub modules are "
                f"TensorFlow SavedModels. Received: backend={keras.backend.backend()!r}"
            )
        if signature is not None and not isinstance(signature, str):
            raise ValueError(
                f"`signature` must be the name of a signature. Received: signature={signature!r}"
            )
        if signature is not None and (output_key is not None) == bool(signature_outputs_as_dict):
            raise ValueError(
                "When `signature` is set, exactly one of `output_key` or "
                "`signature_outputs_as_dict=True` must be given. Received: "
                f"output_key={output_key!r}, "
                f"signature_outputs_as_dict={signature_outputs_as_dict!r}"
            )
        if signature is None and signature_outputs_as_dict:
            raise ValueError(
                "`signature_outputs_as_dict=True` is only valid with a `signature`. "
                f"Received: signature={signature!r}"
            )
        if arguments is not None and not isinstance(arguments, dict):
            raise ValueError(
                "`arguments` must be a dict of keyword arguments. "
                f"Received: arguments={arguments!r}"
            )
        super().__init__(trainable=trainable, **kwargs)
        self.handle = os.fspath(handle) if isinstance(handle, os.PathLike) else handle
        self.signature = signature
        self.output_key = output_key
        self.signature_outputs_as_dict = bool(signature_outputs_as_dict)
        self.arguments = dict(arguments or {})
        self._output_shapes = _to_shapes(output_shape, "output_shape")
        self.load_options = load_options
        # Restored functions may use ops XLA cannot compile (strings, hash tables).
        self.supports_jit = False
        # Inputs go to the module as they are (strings stay strings); `call` casts them.
        _keras_compat.pass_inputs_unchanged(self)

        self._module = hub_resolver.load(self.handle, _to_load_options(load_options))
        self._callable = self._find_callable()
        self._check_output_key()
        self._has_training_argument = _has_parameter(self._callable, "training")
        self._module_input_spec = _first_input_spec(self._callable, self.signature)
        self._regularization_losses = list(getattr(self._module, "regularization_losses", ()))
        for loss in self._regularization_losses:
            if not callable(loss):
                raise HubHandleError(
                    f"The SavedModel at {handle!r} lists a regularization loss that is not "
                    f"callable: {loss!r}"
                )
        self._adopt_variables()
        self.built = True

    # === Loading ===

    def _find_callable(self):
        module = self._module
        if self.signature is None:
            if not callable(module):
                available = sorted(getattr(module, "signatures", {}) or {})
                raise HubHandleError(
                    f"The SavedModel at {hub_resolver.describe(self.handle)} has no `__call__`; pass "
                    f"`signature=` with one of its signatures: {available}"
                )
            # The restored tf.function itself: calling the module object would go through
            # one more Python forwarding layer on every eager call.
            restored = getattr(module, "__call__", None)
            if isinstance(restored, tf.types.experimental.PolymorphicFunction):
                return restored
            return module
        signatures = getattr(module, "signatures", None) or {}
        if self.signature not in signatures:
            raise HubHandleError(
                f"The SavedModel at {hub_resolver.describe(self.handle)} has no signature "
                f"{self.signature!r}. Available signatures: {sorted(signatures)}"
            )
        return signatures[self.signature]

    def _check_output_key(self):
        if self.output_key is None:
            return
        outputs = [c.structured_outputs for c in _concrete_functions(self._callable)]
        if outputs and all(isinstance(o, dict) and self.output_key not in o for o in outputs):
            raise ValueError(
                f"`output_key` is not an output of the module. Available: {sorted(outputs[0])}."
                f" Received: output_key={self.output_key!r}"
            )

    def _adopt_variables(self):
        variables, trainable_ids = _module_variables(self._module, self._callable)
        adopted = []
        with keras.name_scope(self.name):
            for variable in variables:
                name = variable.name.split(":")[0].replace("/", "_") or "variable"
                adopted.append(
                    _keras_compat.AdoptedVariable(
                        variable, trainable=id(variable) in trainable_ids, name=name
                    )
                )
        # Trainable ones first, in the SavedModel's order: this order is what `.keras` files
        # save the weights in, so a reloaded layer must (and does) rebuild the same order.
        adopted.sort(key=lambda v: not v.trainable)
        # Keras tracks the variables of a list assigned to a layer, in the list's order.
        self._adopted_variables = adopted
        # A frozen layer's variables must not train: a model collects its trainable variables
        # by each variable's own flag. (`layer.trainable = True` sets it back, for the
        # variables Keras tracked as trainable.)
        if not self.trainable:
            for variable in adopted:
                variable.trainable = False

    @property
    def resolved_object(self):
        """The object `handle` resolved to (what `hub.load` returned)."""
        return self._module

    def inferred_input(self):
        """Returns `(shape_without_batch, dtype)` of the module's input, or `None` if unknown."""
        spec = self._module_input_spec
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank in (None, 0):
            return None
        return tuple(spec.shape.as_list()[1:]), spec.dtype.name

    # === Call ===

    def call(self, inputs, training=None):
        training = bool(training) if isinstance(training, bool) or training is None else training
        if not self.trainable or not self._has_training_argument:
            training = False
        if isinstance(training, bool):
            outputs = self._forward(inputs, training)
        else:
            outputs = tf.cond(
                training, lambda: self._forward(inputs, True), lambda: self._forward(inputs, False)
            )
        if self.trainable and self._regularization_losses:
            self.add_loss(
                tf.add_n([tf.cast(loss(), tf.float32) for loss in self._regularization_losses])
            )
        return outputs

    def _forward(self, inputs, training):
        args, kwargs = self._call_arguments(inputs)
        if self._has_training_argument:
            kwargs["training"] = training
        outputs = self._callable(*args, **kwargs)
        if self.output_key is not None:
            if not isinstance(outputs, dict):
                raise ValueError(
                    f"`output_key` was given but the module returns a {type(outputs).__name__}, "
                    f"not a dict. Received: output_key={self.output_key!r}"
                )
            if self.output_key not in outputs:
                raise ValueError(
                    f"`output_key` is not an output of the module. Available: "
                    f"{sorted(outputs)}. Received: output_key={self.output_key!r}"
                )
            outputs = outputs[self.output_key]
        if self._output_shapes is not None:
            outputs = _set_shapes(outputs, self._output_shapes)
        return outputs

    def _call_arguments(self, inputs):
        kwargs = dict(self.arguments)
        if self.signature is None:
            return (self._to_input(inputs, self._module_input_spec),), kwargs
        specs = self._callable.structured_input_signature[1]
        if isinstance(inputs, dict):
            kwargs.update(
                {key: self._to_input(value, specs.get(key)) for key, value in inputs.items()}
            )
        elif len(specs) == 1:
            (key, spec), = specs.items()
            kwargs[key] = self._to_input(inputs, spec)
        else:
            raise ValueError(
                f"Signature {self.signature!r} takes several inputs {sorted(specs)}: call the "
                f"layer on a dict of them. Received: inputs={inputs!r}"
            )
        return (), kwargs

    @staticmethod
    def _to_input(value, spec):
        """Converts `value` to the tensor(s) `spec` asks for, casting float to float, int to int."""
        if isinstance(value, dict):
            specs = spec if isinstance(spec, dict) else {}
            return {key: HubLayer._to_input(item, specs.get(key)) for key, item in value.items()}
        dtype = spec.dtype if isinstance(spec, tf.TensorSpec) else None
        if not tf.is_tensor(value):
            return tf.convert_to_tensor(value, dtype=dtype)
        if dtype is not None and value.dtype != dtype and (
            (value.dtype.is_floating and dtype.is_floating)
            or (value.dtype.is_integer and dtype.is_integer)
        ):
            return tf.cast(value, dtype)
        return value

    def compute_output_spec(self, inputs, training=None):
        outputs = self._trace_outputs(inputs)
        return tree.map_structure(
            lambda spec: keras.KerasTensor(tuple(spec.shape), dtype=spec.dtype.name), outputs
        )

    def compute_output_shape(self, input_shape):
        spec = self._module_input_spec
        dtype = spec.dtype.name if isinstance(spec, tf.TensorSpec) else "float32"
        outputs = self._trace_outputs(keras.KerasTensor(input_shape, dtype=dtype))
        return tree.map_structure(lambda spec: tuple(spec.shape), outputs)

    def _trace_outputs(self, inputs):
        # Tracing (not running) the module's function gives exact output shapes and dtypes
        # without side effects such as moving-statistics updates.
        input_specs = tree.map_structure(
            lambda x: tf.TensorSpec(tuple(x.shape), tf.as_dtype(x.dtype)), inputs
        )
        traced = tf.function(lambda x: self._forward(x, False), autograph=False)
        concrete = traced.get_concrete_function(input_specs)
        return tree.map_structure(
            lambda t: tf.TensorSpec(tuple(t.shape), t.dtype), concrete.structured_outputs
        )

    # === Config ===

    def get_config(self):
        if not isinstance(self.handle, str):
            raise NotImplementedError(
                "A `HubLayer` built from an already loaded object cannot be serialized: pass "
                "the handle (URL or SavedModel directory) instead. "
                f"Received: handle of type {type(self.handle).__name__}"
            )
        for key, value in self.arguments.items():
            try:
                json.dumps(value)
            except TypeError as error:
                raise NotImplementedError(
                    f"`arguments[{key!r}]` is not JSON-serializable, so the layer cannot be "
                    f"saved. Received: {value!r}"
                ) from error
        config = super().get_config()
        config.update(
            {
                "handle": self.handle,
                "signature": self.signature,
                "output_key": self.output_key,
                "signature_outputs_as_dict": self.signature_outputs_as_dict,
                "arguments": dict(self.arguments) or None,
                "output_shape": _from_shapes(self._output_shapes),
                "load_options": _load_options_config(self.load_options),
            }
        )
        return config


def _to_load_options(load_options):
    if load_options is None or isinstance(load_options, tf.saved_model.LoadOptions):
        return load_options
    if isinstance(load_options, dict):
        return tf.saved_model.LoadOptions(**load_options)
    raise ValueError(
        "`load_options` must be a `tf.saved_model.LoadOptions` or a dict of its arguments. "
        f"Received: load_options={load_options!r}"
    )


def _load_options_config(load_options):
    if not isinstance(load_options, tf.saved_model.LoadOptions):
        return load_options
    defaults = tf.saved_model.LoadOptions()
    config = {}
    for name in _LOAD_OPTION_NAMES:
        value = getattr(load_options, name)
        if value != getattr(defaults, name):
            config[name] = getattr(value, "value", value)
    return config


# === Introspection of restored functions ===


def _module_variables(module, fn):
    """Returns (variables, ids of the trainable ones) as the SavedModel lists them."""
    variables = getattr(module, "variables", None)
    trainable = getattr(module, "trainable_variables", None)
    if variables is None:
        # Not a reusable SavedModel: fall back to what the function captures, trainable
        # according to each variable's own flag.
        variables = getattr(fn, "variables", None) or []
        trainable = [v for v in variables if v.trainable]
    elif trainable is None:
        trainable = []
    unique = {}
    for variable in list(trainable) + list(variables):
        unique.setdefault(id(variable), variable)
    return list(unique.values()), {id(v) for v in trainable}


def _concrete_functions(fn):
    if isinstance(fn, tf.types.experimental.ConcreteFunction):
        return [fn]
    concrete = getattr(fn, "concrete_functions", None)
    if concrete is None and hasattr(fn, "__call__"):
        concrete = getattr(fn.__call__, "concrete_functions", None)
    return list(concrete or [])


def _first_input_spec(fn, signature):
    """The spec of the module's input, merged over its traces; or None if they disagree.

    A TensorSpec for a single tensor input (its shape merged over the traces), a dict of
    TensorSpecs for a dict input (e.g. the token ids and masks of a BERT encoder).
    """
    specs = []
    for concrete in _concrete_functions(fn):
        args, kwargs = concrete.structured_input_signature
        if signature is not None:
            values = list(kwargs.values())
            spec = values[0] if len(values) == 1 else None
        else:
            spec = args[0] if args else None
        specs.append(spec)
    if not specs:
        return None
    if isinstance(specs[0], dict):
        return specs[0] if all(spec == specs[0] for spec in specs) else None
    if not all(isinstance(spec, tf.TensorSpec) for spec in specs):
        return None
    if any(spec.dtype != specs[0].dtype or spec.shape.rank != specs[0].shape.rank
           for spec in specs):
        return None
    shape = specs[0].shape
    for spec in specs[1:]:
        shape = tf.TensorShape(
            [a if a == b else None for a, b in zip(shape.as_list(), spec.shape.as_list())]
        )
    return tf.TensorSpec(shape, specs[0].dtype)


def _has_parameter(fn, name):
    if isinstance(fn, tf.types.experimental.ConcreteFunction):
        return False
    if not isinstance(fn, tf.types.experimental.PolymorphicFunction):
        fn = getattr(fn, "__call__", fn)
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters


# === Output shapes ===


def _to_shapes(output_shape, argument):
    if output_shape is None:
        return None
    if isinstance(output_shape, dict):
        return {key: _to_shapes(value, argument) for key, value in output_shape.items()}
    try:
        return tf.TensorShape(output_shape)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`{argument}` must be a shape without the batch dimension (or a dict of them). "
            f"Received: {argument}={output_shape!r}"
        ) from error


def _from_shapes(shapes):
    if shapes is None:
        return None
    if isinstance(shapes, dict):
        return {key: _from_shapes(value) for key, value in shapes.items()}
    return list(shapes.as_list())


def _set_shapes(outputs, shapes):
    if isinstance(shapes, dict):
        return {key: _set_shapes(outputs[key], shapes[key]) if key in shapes else outputs[key]
                for key in outputs}
    expected = tf.TensorShape([outputs.shape[0]]).concatenate(shapes)
    if not expected.is_compatible_with(outputs.shape):
        raise ValueError(
            f"The module's output has shape {outputs.shape}, which does not match "
            f"`output_shape` {shapes.as_list()} (plus the batch dimension)."
        )
    if tf.executing_eagerly():
        return outputs
    return tf.ensure_shape(outputs, expected)
