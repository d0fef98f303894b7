"""MTAN: shared stages with per-task attention masks."""

import keras
import numpy as np
import pytest
from layer_checks import run_layer_checks

import keras_mtl
from keras_mtl import errors, sharing

TASKS = ["seg", "depth"]


def test_layer_checks_on_feature_maps(tmp_path):
    # On vectors MTAN runs in every test parametrised over `keras_mtl.sharing.names()`.
    input_shape, kwargs = (2, 4, 4, 3), dict(shared_layers=2, units=5, dropout=0.1,
                                             task_names=TASKS)
    expected = {name: (2, 4, 4, 5) for name in TASKS}
    # The masks' last kernels start at zero, so the layers before them move from step two.
    run_layer_checks(sharing.MTAN, kwargs, input_shape, tmp_path,
                     expected_output_shape=expected, expect_all_weights_to_move=False)


def test_masks_have_the_features_shape_and_start_near_pass_through():
    layer = sharing.MTAN(shared_layers=3, units=4, kernel_size=3, initial_attention=0.9,
                         task_names=TASKS)
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 3)).astype("float32")
    masks = layer.attention_masks(x)
    assert sorted(masks) == sorted(TASKS)
    for name in TASKS:
        assert [tuple(m.shape) for m in masks[name]] == [(2, 6, 5, 4)] * 3
        for mask in masks[name]:
            np.testing.assert_allclose(np.array(mask), 0.9, rtol=1e-6)
    # The attended features of the last stage are 0.9 times the shared network's.
    shared = x
    for stage in layer.stages:
        shared = np.maximum(np.array(stage(shared)), 0)
    np.testing.assert_allclose(np.array(layer(x)["seg"]), 0.9 * shared, rtol=1e-5, atol=1e-6)
    # Later stages read the shared features beside the task's own: twice the channels.
    assert layer.attention_hidden[1]["seg"].kernel.shape == (8, 4)
    assert layer.attention_hidden[0]["seg"].kernel.shape == (4, 4)


def test_mtan_shares_stages_and_learns_task_masks_in_a_dense_model():
    tasks = [
        keras_mtl.Task("seg", "segmentation", num_classes=3, metrics=[]),
        keras_mtl.Task("depth", "dense_regression", metrics=[]),
        keras_mtl.Task("count", "multiclass", num_classes=3, metrics=[]),
    ]
    backbone = keras.Sequential([keras.Input((8, 8, 3)),
                                 keras.layers.Conv2D(3, 3, strides=2, padding="same")])
    model = keras_mtl.build_mtl_model(backbone, tasks, sharing="mtan", shared_layers=2,
                                      shared_units=4, learning_rate=0.05, run_eagerly=True)
    layer = model.sharing_layer
    assert isinstance(layer, sharing.MTAN) and (layer.shared_layers, layer.units) == (2, 4)
    assert {k: tuple(v.shape) for k, v in model.output.items()} == {
        "seg": (None, 8, 8, 3), "depth": (None, 8, 8, 1), "count": (None, 3)}
    rng = np.random.default_rng(1)
    x = rng.random((4, 8, 8, 3)).astype("float32")
    y = {"seg": rng.integers(-1, 3, (4, 8, 8)), "depth": rng.random((4, 8, 8, 1)),
         "count": rng.integers(0, 3, 4)}
    features = model.structure.trunk_model(x)["backbone_output"]
    for _ in range(3):
        model.train_on_batch(x, y)
    masks = layer.attention_masks(features)
    for name in ("seg", "depth"):
        assert np.abs(np.array(masks[name][1]) - 0.95).max() > 1e-3
    assert not np.allclose(np.array(masks["seg"][1]), np.array(masks["depth"][1]))


@pytest.mark.parametrize("kwargs, message", [
    (dict(initial_attention=1.0), r"`initial_attention` must be in \(0, 1\). Received: "
                                  r"initial_attention=1.0"),
    (dict(kernel_size=0), r"`kernel_size` must be a positive integer. Received: kernel_size=0"),
    (dict(units=0), r"`units` must be a positive integer"),
])
def test_mtan_arguments_are_checked(kwargs, message):
    with pytest.raises(errors.ConfigError, match=message):
        sharing.MTAN(**kwargs)
