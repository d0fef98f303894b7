"""The private Keras attributes keras_mtl relies on (keras_mtl/_keras_compat.py), one test each.

When a Keras upgrade moves one, these fail with the attribute and the Keras version.
"""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mtl import _keras_compat


def _keras_has(owner, attribute):
    assert hasattr(owner, attribute), (
        f"Keras {keras.__version__} has no `{attribute}` on {type(owner).__name__}; "
        "keras_mtl/_keras_compat.py relies on it"
    )


def test_adopted_variable_is_the_tf_variable_itself():
    _keras_has(keras.Variable, "_initialize_with_initializer")
    _keras_has(keras.Variable, "_initialize")
    storage = tf.Variable([1.0, 2.0])
    variable = _keras_compat.AdoptedVariable(storage, trainable=True, name="adopted")
    assert variable.value is storage, (
        f"Keras {keras.__version__} no longer calls keras.Variable._initialize_with_initializer "
        "to create a variable's storage: AdoptedVariable would copy the tf.Variable"
    )
    variable.assign([3.0, 4.0])
    np.testing.assert_array_equal(storage.numpy(), [3.0, 4.0])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(storage * 2.0)
    assert tape.gradient(loss, variable.value) is not None


class _Recorder(keras.layers.Layer):
    def call(self, inputs, note=None):
        self.seen = (inputs.dtype, note)
        return inputs


def test_layer_can_take_its_inputs_unconverted():
    for attribute in ("_convert_input_args", "_allow_non_tensor_positional_args"):
        _keras_has(keras.layers.Layer(), attribute)
    converted = _Recorder(dtype="float32")
    converted(tf.constant([1.0], "float64"), note="note")
    assert converted.seen == (tf.float32, "note")
    with pytest.raises(ValueError, match="positional"):
        converted(tf.constant([1.0]), "note")
    layer = _Recorder(dtype="float32")
    _keras_compat.pass_inputs_unchanged(layer)
    layer(tf.constant([1.0], "float64"), "note")
    assert layer.seen == (tf.float64, "note"), (
        f"Keras {keras.__version__} ignores Layer._convert_input_args / "
        "_allow_non_tensor_positional_args: HubLayer's inputs would be converted"
    )


def test_a_moved_attribute_is_reported_with_the_keras_version():
    class Bare:
        pass

    with pytest.raises(_keras_compat.KerasVersionError) as info:
        _keras_compat.pass_inputs_unchanged(Bare())
    assert "_convert_input_args" in str(info.value)
    assert keras.__version__ in str(info.value)


def test_model_hooks_for_tf_distribute_exist():
    # MTLModel overrides them (keras_mtl/_keras_compat.py says why); a renamed hook would be
    # silently never called.
    # ... or one whose arguments changed.
    expected = {"_maybe_symbolic_build": ["self", "iterator", "data_batch"],
                "_get_metrics_result_or_logs": ["self", "logs"]}
    for attribute, arguments in expected.items():
        _keras_has(keras.Model, attribute)
        method = getattr(keras.Model, attribute)
        assert list(inspect.signature(method).parameters) == arguments, (
            f"Keras {keras.__version__} changed the arguments of keras.Model.{attribute}"
        )


def test_epoch_logs_report_the_metrics_over_the_epoch():
    import keras_mtl

    model = keras_mtl.build_mtl_model(
        (3,), [keras_mtl.Task("a", "regression")], shared_units=4, weighting="uncertainty"
    )
    model.fit(np.ones((4, 3)), {"a": np.ones((4, 1))}, epochs=1, verbose=0)
    step_logs = {**{name: -1.0 for name in model.get_metrics_result()}, "weight_a": 0.5}
    logs = _keras_compat.epoch_logs(model, step_logs)
    assert logs["weight_a"] == 0.5
    assert float(logs["loss"]) == pytest.approx(float(model.get_metrics_result()["loss"]))
    assert _keras_compat.epoch_logs(model, {"other": 1.0}) is None
