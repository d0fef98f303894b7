"""Every use keras_mtl makes of Keras' private attributes, in one place.

Keras does not keep its private attributes from one version to the next. keras_mtl uses
these, for `keras_mtl.HubLayer` only:

- `keras.Variable._initialize_with_initializer` (overridden) and the TensorFlow backend's
  `Variable._initialize`: a Keras variable whose storage *is* an existing `tf.Variable`
  (a SavedModel's own), not a copy, so that training updates what the restored functions
  read. No public API adopts a `tf.Variable`.
- `keras.layers.Layer._convert_input_args` and `_allow_non_tensor_positional_args`: a layer
  whose inputs reach `call` as given (strings stay strings, nothing is cast to the layer's
  compute dtype), because a SavedModel's signature fixes its input dtypes.

Everything else (losses, logged metrics, weighting methods, the model's structure) goes
through Keras' public API (`compute_loss`, `metrics`, `get_config` / `from_config`).
`requirements.txt` pins Keras below its next minor version for the sake of this file: on a
Keras upgrade, run `tests/test_keras_compat.py`, whose tests name the attribute and the
Keras version when one has moved. The functions below also fail loudly, with the same
message, rather than silently copying a variable or converting inputs.
"""

import keras


class KerasVersionError(RuntimeError):
    """This version of Keras no longer has a private attribute keras_mtl relies on."""


def moved(attribute):
    """The error for a private Keras `attribute` that this Keras no longer has."""
    return KerasVersionError(
        f"keras_mtl relies on the private Keras attribute `{attribute}`, which Keras "
        f"{keras.__version__} does not have (or no longer uses). Install the Keras version "
        "pinned in keras_mtl's requirements.txt, or update keras_mtl/_keras_compat.py."
    )


# === Variables that adopt a tf.Variable ===


class AdoptedVariable(keras.Variable):
    """A Keras variable whose value *is* an existing `tf.Variable`, not a copy of it.

    Keras' TensorFlow backend keeps the storage of a `keras.Variable` in a `tf.Variable`;
    here that storage is the given variable, so `assign` (what optimizers do) changes the
    state every other user of the `tf.Variable` reads, and gradients flow to it through its
    handle.

    Args:
        variable: the `tf.Variable` to adopt.
        trainable: whether Keras trains it.
        name: the Keras variable's name.
    """

    def __init__(self, variable, *, trainable, name):
        self._adopted = variable
        super().__init__(
            initializer=self._initial_value,
            shape=tuple(variable.shape),
            dtype=variable.dtype.name,
            trainable=trainable,
            autocast=False,
            name=name,
        )
        if self.value is not variable:
            raise moved("keras.Variable._initialize_with_initializer")

    def _initial_value(self, shape, dtype):
        return self._adopted

    # Keras creates the storage of a variable with an initializer here.
    def _initialize_with_initializer(self, initializer):
        self._initialize(self._adopted)


# === Layers whose inputs reach `call` as given ===

_INPUT_FLAGS = {"_convert_input_args": False, "_allow_non_tensor_positional_args": True}


def pass_inputs_unchanged(layer):
    """Makes Keras hand `layer.call` its inputs as given: no conversion to tensors of the
    layer's compute dtype, and non-tensor positional arguments allowed."""
    for attribute, value in _INPUT_FLAGS.items():
        if not hasattr(layer, attribute):
            raise moved(f"keras.layers.Layer.{attribute}")
        setattr(layer, attribute, value)
