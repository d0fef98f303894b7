"""build_mtl_model and MTLModel: outputs, compile defaults, partial labels, errors, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl import errors


def _tasks():
    return [
        keras_mtl.Task("digit", "multiclass", num_classes=5, head_units=(8,)),
        keras_mtl.Task("odd", "binary", loss_weight=0.5),
        keras_mtl.Task("ink", "regression", units=2),
        keras_mtl.Task("tags", "multilabel", num_classes=3),
    ]


def _labels(n, rng):
    return {
        "digit": rng.integers(0, 5, n).astype("int32"),
        "odd": rng.integers(0, 2, (n, 1)).astype("float32"),
        "ink": rng.normal(size=(n, 2)).astype("float32"),
        "tags": rng.integers(0, 2, (n, 3)).astype("float32"),
    }


def test_outputs_are_a_dict_of_named_task_outputs():
    model = keras_mtl.build_mtl_model((12,), _tasks(), shared_layers=2, shared_units=16)
    assert isinstance(model, keras_mtl.MTLModel)
    assert sorted(model.output_names) == ["digit", "ink", "odd", "tags"]
    for task in model.tasks:
        assert model.get_layer(task.name).name == task.name
    out = model.predict(np.zeros((3, 12), "float32"), verbose=0)
    assert {k: v.shape for k, v in out.items()} == {
        "digit": (3, 5), "odd": (3, 1), "ink": (3, 2), "tags": (3, 3)
    }
    np.testing.assert_allclose(out["digit"].sum(axis=1), 1.0, rtol=1e-5)


def test_compiled_with_each_tasks_loss_weight_and_metrics():
    rng = np.random.default_rng(0)
    model = keras_mtl.build_mtl_model((12,), _tasks(), shared_units=16)
    x = rng.normal(size=(32, 12)).astype("float32")
    logs = model.evaluate(x, _labels(32, rng), batch_size=32, verbose=0, return_dict=True)
    assert set(logs) == {
        "loss", "digit_loss", "odd_loss", "ink_loss", "tags_loss", "digit_accuracy",
        "odd_accuracy", "odd_auc", "ink_mae", "tags_auc",
    }
    expected = logs["digit_loss"] + 0.5 * logs["odd_loss"] + logs["ink_loss"] + logs["tags_loss"]
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)


def test_partial_labels_match_hand_computation():
    rng = np.random.default_rng(1)
    model = keras_mtl.build_mtl_model((12,), _tasks(), shared_units=16)
    n = 40
    x = rng.normal(size=(n, 12)).astype("float32")
    y = _labels(n, rng)
    y["digit"][rng.random(n) < 0.4] = -1
    y["odd"][rng.random((n, 1)) < 0.4] = -1
    y["ink"][rng.random((n, 2)) < 0.4] = np.nan
    y["tags"][rng.random((n, 3)) < 0.4] = -1
    logs = model.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)
    p = model.predict(x, batch_size=n, verbose=0)

    keep = y["digit"] >= 0
    ce = -np.log(p["digit"][keep, y["digit"][keep]])
    acc = np.mean(p["digit"][keep].argmax(1) == y["digit"][keep])
    keep_odd = y["odd"] >= 0
    po = np.clip(p["odd"][keep_odd], 1e-7, 1 - 1e-7)
    yo = y["odd"][keep_odd]
    bce = -(yo * np.log(po) + (1 - yo) * np.log(1 - po))
    keep_ink = ~np.isnan(y["ink"])
    err = p["ink"][keep_ink] - y["ink"][keep_ink]
    assert logs["digit_loss"] == pytest.approx(ce.mean(), rel=1e-4)
    assert logs["digit_accuracy"] == pytest.approx(acc, rel=1e-6)
    assert logs["odd_loss"] == pytest.approx(bce.mean(), rel=1e-4)
    assert logs["odd_accuracy"] == pytest.approx(np.mean((po > 0.5) == (yo > 0.5)), rel=1e-6)
    assert logs["ink_loss"] == pytest.approx(np.mean(err**2), rel=1e-4)
    assert logs["ink_mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-4)


def test_task_without_any_label_in_a_batch_trains_the_others_only():
    rng = np.random.default_rng(2)
    model = keras_mtl.build_mtl_model((12,), _tasks(), shared_units=16)
    x = rng.normal(size=(16, 12)).astype("float32")
    y = _labels(16, rng)
    y["ink"][:] = np.nan
    ink_before = [w.copy() for w in model.get_layer("ink").get_weights()]
    odd_before = [w.copy() for w in model.get_layer("odd").get_weights()]
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert history.history["ink_loss"] == [0.0, 0.0]
    assert all(np.isfinite(history.history["loss"]))
    for before, after in zip(ink_before, model.get_layer("ink").get_weights()):
        np.testing.assert_array_equal(before, after)
    assert any(
        not np.allclose(b, a) for b, a in zip(odd_before, model.get_layer("odd").get_weights())
    )


def test_fit_rejects_labels_that_lack_or_invent_a_task():
    model = keras_mtl.build_mtl_model((12,), _tasks(), shared_units=16)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 12)).astype("float32")
    y = _labels(8, rng)
    weights = [w.copy() for w in model.get_weights()]
    lacking = {k: v for k, v in y.items() if k != "ink"}
    with pytest.raises(errors.LabelError, match=r"lacks labels for tasks \['ink'\]"):
        model.fit(x, lacking, verbose=0)
    with pytest.raises(errors.LabelError, match=r"unknown tasks \['color'\]"):
        model.fit(x, dict(y, color=y["odd"]), verbose=0)
    with pytest.raises(errors.LabelError, match=r"`validation_data\[1\]` lacks"):
        model.fit(x, y, validation_data=(x, lacking), verbose=0)
    with pytest.raises(errors.LabelError, match="must be a dict"):
        model.fit(x, y["odd"], verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, lacking)).batch(4)
    with pytest.raises(errors.LabelError, match=r"labels of the dataset.*lacks"):
        model.fit(dataset, verbose=0)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert isinstance(errors.LabelError("x"), ValueError)


def test_fit_accepts_tf_data():
    rng = np.random.default_rng(4)
    model = keras_mtl.build_mtl_model((12,), _tasks(), shared_units=16)
    x = rng.normal(size=(16, 12)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, _labels(16, rng))).batch(8)
    history = model.fit(dataset, validation_data=dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["val_loss"][0])


def test_save_and_load_in_safe_mode_predicts_the_same(tmp_path):
    rng = np.random.default_rng(5)
    tasks = _tasks() + [
        keras_mtl.Task("emb", "custom", loss="mse", units=2,
                       head_layers=[keras.layers.Dense(3, activation="tanh")]),
    ]
    model = keras_mtl.build_mtl_model(
        {"a": keras.Input((4,), name="a"), "b": keras.Input((2,), name="b", dtype="int32")},
        tasks, shared_layers=2, shared_units=16, dropout=0.1,
    )
    x = {"a": rng.normal(size=(20, 4)).astype("float32"), "b": rng.integers(0, 3, (20, 2))}
    y = dict(_labels(20, rng), emb=rng.normal(size=(20, 2)).astype("float32"))
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, keras_mtl.MTLModel)
    assert loaded.tasks == model.tasks
    expected, got = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-6)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    loaded.fit(x, y, epochs=1, verbose=0)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in loaded._flatten_layers())


@pytest.mark.parametrize("bad, words", [
    (dict(shared_layers=-1), ["shared_layers", "-1"]),
    (dict(shared_units=0), ["shared_units", "0"]),
    (dict(dropout=1.5), ["dropout", "1.5"]),
    (dict(sharing="sideways"), ["sideways", "hard"]),
    (dict(weighting="magic"), ["magic", "static"]),
])
def test_bad_builder_arguments(bad, words):
    with pytest.raises(ValueError) as info:
        keras_mtl.build_mtl_model((4,), _tasks(), **bad)
    for word in words:
        assert word in str(info.value)


def test_hard_sharing_depth_zero_feeds_features_to_heads():
    model = keras_mtl.build_mtl_model((6,), _tasks(), shared_layers=0)
    assert isinstance(model.sharing_layer, keras_mtl.sharing.Hard)
    assert model.sharing_layer.count_params() == 0
    assert model.get_layer("odd").kernel.shape == (6, 1)


@pytest.mark.parametrize("module, config, expected", [
    (keras_mtl.weighting, {"class_name": "PCGrad", "config": {"mode": "rep"}}, "PCGrad"),
    (keras_mtl.weighting, {"class_name": "pcgrad"}, "PCGrad"),
    (keras_mtl.sharing, {"class_name": "mmoe", "config": {"num_experts": 3}}, "MMoE"),
])
def test_registries_accept_short_config_dicts(module, config, expected):
    instance = module.get(config)
    assert type(instance).__name__ == expected
    for key, value in config.get("config", {}).items():
        assert instance.get_config()[key] == value
    assert type(module.get(keras.saving.serialize_keras_object(instance))) is type(instance)


def test_registries_reject_unknown_class_names_listing_valid_ones():
    with pytest.raises(errors.ConfigError, match=r"'Magic'.*'pcgrad'"):
        keras_mtl.weighting.get({"class_name": "Magic", "config": {}})
    with pytest.raises(errors.ConfigError, match=r"'sideways'.*'mmoe'"):
        keras_mtl.sharing.get({"class_name": "sideways"})


def test_compile_with_one_loss_for_every_output():
    tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "regression")]
    model = keras_mtl.build_mtl_model((3,), tasks, shared_units=4, compile=False)
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 3), "float32")
    y = {"a": np.zeros((4, 1), "float32"), "b": np.ones((4, 1), "float32")}
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["a_loss"] + logs["b_loss"], rel=1e-5)


def _partial_labels(n, rng):
    y = _labels(n, rng)
    y["digit"][rng.random(n) < 0.5] = -1
    y["odd"][rng.random((n, 1)) < 0.2] = -1
    y["ink"][rng.random((n, 2)) < 0.6] = np.nan
    y["tags"][rng.random((n, 3)) < 0.3] = -1
    return y


def _numpy_task_losses(p, y):
    """Each task's loss averaged over its labelled entries, by hand."""

    def bce(prob, label):
        prob = np.clip(prob, 1e-7, 1 - 1e-7)
        return -(label * np.log(prob) + (1 - label) * np.log(1 - prob))

    digit = y["digit"] >= 0
    odd, tags, ink = y["odd"] >= 0, y["tags"] >= 0, ~np.isnan(y["ink"])
    return {
        "digit": np.mean(-np.log(p["digit"][digit, y["digit"][digit]])),
        "odd": np.mean(bce(p["odd"][odd], y["odd"][odd])),
        "ink": np.mean((p["ink"][ink] - y["ink"][ink]) ** 2),
        "tags": np.mean(bce(p["tags"][tags], y["tags"][tags])),
    }


def test_logged_losses_are_means_over_all_labels_whatever_the_batch_size():
    rng = np.random.default_rng(6)
    n = 100
    model = keras_mtl.build_mtl_model(
        (12,), _tasks(), shared_units=16, optimizer=keras.optimizers.SGD(0.0)
    )
    x = rng.normal(size=(n, 12)).astype("float32")
    y = _partial_labels(n, rng)
    p = model.predict(x, batch_size=n, verbose=0)
    expected = _numpy_task_losses(p, y)
    weights = {"digit": 1.0, "odd": 0.5, "ink": 1.0, "tags": 1.0}
    total = sum(weights[name] * loss for name, loss in expected.items())
    digit, ink = y["digit"] >= 0, ~np.isnan(y["ink"])
    accuracy = np.mean(p["digit"][digit].argmax(1) == y["digit"][digit])
    mae = np.mean(np.abs(p["ink"][ink] - y["ink"][ink]))
    for batch_size in (1, 7, 64, n):
        logs = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
        for name, loss in expected.items():
            assert logs[f"{name}_loss"] == pytest.approx(loss, rel=1e-4), (batch_size, name)
        assert logs["loss"] == pytest.approx(total, rel=1e-4), batch_size
        # Masked metrics were already means over the labelled entries.
        assert logs["digit_accuracy"] == pytest.approx(accuracy, rel=1e-6), batch_size
        assert logs["ink_mae"] == pytest.approx(mae, rel=1e-4), batch_size
    # Training logs the same means (the learning rate is 0, so the model does not change).
    history = model.fit(x, y, batch_size=7, epochs=1, shuffle=False, verbose=0)
    for name, loss in expected.items():
        assert history.history[f"{name}_loss"][0] == pytest.approx(loss, rel=1e-4), name
    assert history.history["loss"][0] == pytest.approx(total, rel=1e-4)
