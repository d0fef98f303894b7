"""One helper running the checks every keras_mtl layer must pass.

`run_layer_checks(layer_cls, init_kwargs, input_shape, tmp_path)` checks, in order: build,
symbolic call, eager call, one training step that moves the layer's weights,
`get_config` -> `from_config` -> `get_config`, and a `.keras` save/load of a model using the
layer that predicts the same in safe mode. The layer's outputs may be a tensor or any nest
of tensors (e.g. a dict keyed by task name).
"""

import os

import keras
import numpy as np


def _flat_shapes(shapes):
    """Flattens a nest of shapes (tuples of ints/None) into a list of tuples."""
    if isinstance(shapes, dict):
        return [shape for key in sorted(shapes) for shape in _flat_shapes(shapes[key])]
    if isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple)):
        return [shape for item in shapes for shape in _flat_shapes(item)]
    return [tuple(shapes)]


def _flat_tensors(outputs):
    if isinstance(outputs, dict):
        return [outputs[key] for key in sorted(outputs)]
    return keras.tree.flatten(outputs)


def _model_around(layer, input_shape):
    """A functional model: Input -> layer -> one Dense(1) per output, summed."""
    inputs = keras.Input(input_shape[1:])
    outputs = _flat_tensors(layer(inputs))
    heads = [keras.layers.Dense(1, name=f"check_head_{i}")(x) for i, x in enumerate(outputs)]
    total = heads[0] if len(heads) == 1 else keras.layers.Add(name="check_sum")(heads)
    return keras.Model(inputs, total)


def run_layer_checks(
    layer_cls,
    init_kwargs,
    input_shape,
    tmp_path,
    *,
    expected_output_shape=None,
    expect_all_weights_to_move=True,
    seed=0,
):
    """Runs the standard layer checks; returns the trained model for further assertions.

    Args:
        layer_cls: the layer class (registered as serializable).
        init_kwargs: the arguments of its constructor.
        input_shape: the input shape with its batch size, e.g. `(4, 8)`.
        tmp_path: a directory for the `.keras` file.
        expected_output_shape: the expected output shape(s) (nest as the outputs) for a
            batch of `input_shape`; defaults to `compute_output_shape`.
        expect_all_weights_to_move: require every trainable weight of the layer to change in
            the training step (otherwise at least one).
        seed: seed of the random inputs and targets.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=input_shape).astype("float32")

    # Build.
    layer = layer_cls(**init_kwargs)
    layer.build(input_shape)
    assert layer.built
    assert layer.weights, f"{layer_cls.__name__} created no weights in build"
    if expected_output_shape is None:
        expected_output_shape = layer.compute_output_shape(input_shape)
    expected = _flat_shapes(expected_output_shape)

    # Symbolic call.
    layer = layer_cls(**init_kwargs)
    symbolic = _flat_tensors(layer(keras.Input(input_shape[1:], batch_size=input_shape[0])))
    assert [tuple(t.shape) for t in symbolic] == expected

    # Eager call.
    eager = _flat_tensors(layer(x))
    assert [tuple(t.shape) for t in eager] == expected
    for tensor in eager:
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(tensor)))

    # One training step moves the layer's weights.
    layer = layer_cls(**init_kwargs)
    model = _model_around(layer, input_shape)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [keras.ops.convert_to_numpy(w).copy() for w in layer.trainable_weights]
    y = rng.normal(size=(input_shape[0],) + tuple(model.output.shape[1:])).astype("float32")
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    moved = [
        not np.allclose(b, keras.ops.convert_to_numpy(w))
        for b, w in zip(before, layer.trainable_weights)
    ]
    if expect_all_weights_to_move:
        still = [w.path for w, m in zip(layer.trainable_weights, moved) if not m]
        assert not still, f"weights that did not move in a training step: {still}"
    else:
        assert any(moved)

    # get_config -> from_config -> get_config.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is layer_cls and revived.get_config() == config

    # .keras save/load in safe mode gives the same predictions.
    path = os.path.join(str(tmp_path), f"{layer_cls.__name__}.keras")
    expected_predictions = model.predict(x, verbose=0)
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected_predictions, rtol=1e-5,
                               atol=1e-6)
    return model
