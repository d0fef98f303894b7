"""Every kind of backbone build_mtl_model accepts, and the errors for those it does not."""

import keras
import numpy as np
import pytest

import keras_mtl
from keras_mtl import errors


def _tasks():
    return [keras_mtl.Task("a", "binary"), keras_mtl.Task("b", "regression")]


def _conv_backbone():
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    return keras.Model(inputs, x, name="convnet")


def test_keras_model_backbone_is_nested_and_its_feature_map_pooled():
    backbone = _conv_backbone()
    model = keras_mtl.build_mtl_model(backbone, _tasks(), shared_units=8)
    assert model.get_layer("convnet") is backbone
    assert isinstance(model.get_layer("backbone_pool"), keras.layers.GlobalAveragePooling2D)
    out = model.predict(np.zeros((2, 8, 8, 1), "float32"), verbose=0)
    assert out["a"].shape == (2, 1)


@pytest.mark.parametrize("trainable", [False, True])
def test_trainable_backbone_freezes_or_unfreezes(trainable):
    backbone = _conv_backbone()
    model = keras_mtl.build_mtl_model(
        backbone, _tasks(), shared_units=8, trainable_backbone=trainable
    )
    before = [w.copy() for w in backbone.get_weights()]
    x = np.random.rand(16, 8, 8, 1).astype("float32")
    y = {"a": np.ones((16, 1), "float32"), "b": np.ones((16, 1), "float32")}
    model.fit(x, y, epochs=2, verbose=0)
    moved = any(not np.allclose(b, a) for b, a in zip(before, backbone.get_weights()))
    assert moved is trainable


def test_layer_backbone_needs_input_shape():
    layer = keras.layers.Dense(6, name="encoder")
    with pytest.raises(errors.BackboneError, match="`input_shape` is required.*'encoder'"):
        keras_mtl.build_mtl_model(layer, _tasks())
    model = keras_mtl.build_mtl_model(layer, _tasks(), input_shape=(3,), shared_units=4)
    assert model.predict(np.ones((2, 3)), verbose=0)["b"].shape == (2, 1)


def test_sequence_layer_backbone_is_pooled_over_time():
    layer = keras.layers.Embedding(20, 5)
    model = keras_mtl.build_mtl_model(
        layer, _tasks(), input_shape=(7,), input_dtype="int32", shared_units=4
    )
    assert isinstance(model.get_layer("backbone_pool"), keras.layers.GlobalAveragePooling1D)
    assert model.predict(np.ones((2, 7), "int32"), verbose=0)["a"].shape == (2, 1)


def test_inputs_only_backbones():
    by_shape = keras_mtl.build_mtl_model((5,), _tasks(), shared_units=4)
    assert by_shape.input_shape == (None, 5)
    tensor = keras.Input((5,), name="features")
    by_tensor = keras_mtl.build_mtl_model(tensor, _tasks(), shared_units=4)
    assert by_tensor.inputs[0].name == "features"
    by_dict = keras_mtl.build_mtl_model(
        {"age": keras.Input((1,), name="age"), "visits": keras.Input((3,), name="visits")},
        _tasks(), shared_units=4,
    )
    out = by_dict.predict({"age": np.ones((2, 1)), "visits": np.ones((2, 3))}, verbose=0)
    assert out["a"].shape == (2, 1)
    assert by_dict.get_layer("tabular_features").compute_output_shape(
        {"age": (None, 1), "visits": (None, 3)}
    ) == (None, 4)


def test_applications_backbone_is_built_without_downloading():
    model = keras_mtl.build_mtl_model(
        "mobilenet_v3_small", _tasks(), input_shape=(32, 32, 3), shared_units=8
    )
    backbone = model.layers[1]
    assert backbone.name.lower().startswith("mobilenetv3small")
    assert backbone.trainable
    assert model.predict(np.zeros((1, 32, 32, 3)), verbose=0)["a"].shape == (1, 1)


def test_unknown_applications_name_lists_close_names():
    with pytest.raises(errors.BackboneError) as info:
        keras_mtl.build_mtl_model("ResNet51", _tasks())
    message = str(info.value)
    assert "'ResNet51'" in message and "ResNet50" in message


def test_backbone_with_several_outputs_is_refused():
    inputs = keras.Input((4,))
    two = keras.Model(inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(3)(inputs)],
                      name="two_heads")
    with pytest.raises(errors.BackboneError, match="exactly one output.*'two_heads' has 2"):
        keras_mtl.build_mtl_model(two, _tasks())


def test_unsupported_backbone_type():
    with pytest.raises(errors.BackboneTypeError, match="Received an object of type int"):
        keras_mtl.build_mtl_model(3, _tasks())
    with pytest.raises(errors.BackboneError, match="`weights` applies only"):
        keras_mtl.build_mtl_model((4,), _tasks(), weights="imagenet")
    with pytest.raises(errors.BackboneError, match="string tensor"):
        keras_mtl.build_mtl_model({"s": keras.Input((1,), dtype="string")}, _tasks())


# === Backbones users write: Sequential, functional, subclassed; built or not ===


@keras.saving.register_keras_serializable(package="keras_mtl_tests")
class _Encoder(keras.Model):
    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units, activation="tanh")

    def call(self, inputs):
        return self.dense(inputs)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _called(layer):
    layer(np.zeros((3, 6), "float32"))  # builds it, recording a batch of 3
    return layer


def _built(layer):
    layer.build((None, 6))
    return layer


# kind -> (backbone factory, input_shape to give)
USER_BACKBONES = {
    "sequential with Input": (
        lambda: keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)]), None
    ),
    "sequential built": (lambda: _built(keras.Sequential([keras.layers.Dense(4)])), None),
    "sequential called": (lambda: _called(keras.Sequential([keras.layers.Dense(4)])), None),
    "sequential unbuilt": (lambda: keras.Sequential([keras.layers.Dense(4)]), (6,)),
    "functional": (
        lambda: (lambda i: keras.Model(i, keras.layers.Dense(4)(i)))(keras.Input((6,))), None
    ),
    "subclassed": (lambda: _Encoder(), (6,)),
    "subclassed built": (lambda: _called(_Encoder()), (6,)),
}


@pytest.mark.parametrize("kind", list(USER_BACKBONES))
def test_backbones_users_write_train_and_reload(kind, tmp_path):
    make, input_shape = USER_BACKBONES[kind]
    backbone = make()
    model = keras_mtl.build_mtl_model(
        backbone, _tasks(), input_shape=input_shape, shared_units=4, learning_rate=0.05,
        run_eagerly=True,
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 6)).astype("float32")
    y = {"a": (x[:, :1] > 0).astype("float32"), "b": x[:, 1:2]}
    before = [w.numpy().copy() for w in backbone.trainable_weights]
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)  # one batch of 10, not of 3
    assert all(
        not np.allclose(b, w.numpy()) for b, w in zip(before, backbone.trainable_weights)
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    expected = model(x)
    for name, value in loaded(x).items():
        np.testing.assert_allclose(value, expected[name], atol=1e-6)


def test_a_backbone_with_inputs_takes_its_own_input_shape_only():
    backbone = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    model = keras_mtl.build_mtl_model(backbone, _tasks(), input_shape=(6,), shared_units=4)
    assert model.input_shape == (None, 6)
    with pytest.raises(errors.BackboneError, match=r"already takes inputs of shape \(6,\)"):
        keras_mtl.build_mtl_model(backbone, _tasks(), input_shape=(7,), shared_units=4)


# === Inputs only: never pooled to a mean ===


def test_inputs_only_images_are_flattened_not_pooled():
    model = keras_mtl.build_mtl_model((11, 11, 1), _tasks(), shared_units=8)
    assert isinstance(model.get_layer("inputs_flatten"), keras.layers.Flatten)
    assert not any("pool" in layer.name for layer in model.layers)
    assert model.sharing_layer.dense_layers[0].kernel.shape == (121, 8)


def test_inputs_only_images_are_learned_from_their_pixels():
    # One lit pixel per image; the label: is it in the left half? Every image has the same
    # mean, so a model that averages the pixels stays at chance.
    rng = np.random.default_rng(0)
    n = 256
    position = rng.integers(0, 36, n)
    x = np.zeros((n, 6, 6, 1), "float32")
    x[np.arange(n), position // 6, position % 6] = 1.0
    y = {"a": (position % 6 < 3).astype("float32")[:, None], "b": x.sum((1, 2))}
    model = keras_mtl.build_mtl_model((6, 6, 1), _tasks(), shared_units=16, learning_rate=0.05)
    model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    assert model.evaluate(x, y, verbose=0, return_dict=True)["a_accuracy"] > 0.95


def test_inputs_only_with_an_axis_of_unknown_size_are_refused():
    with pytest.raises(errors.BackboneError, match=r"\(None, 4\).*Give a backbone"):
        keras_mtl.build_mtl_model((None, 4), _tasks(), shared_units=4)
