"""Dense tasks exported, grown with add_task, and tuned."""

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl

CLASS_NAMES = ["bg", "square", "disc"]


def _backbone():
    return keras.Sequential([
        keras.Input((8, 8, 3), name="image"),
        keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="relu"),
    ])


def _data(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 3)).astype("float32")
    y = {
        "seg": rng.integers(-1, 3, (n, 8, 8)),
        "depth": np.where(rng.random((n, 8, 8, 1)) < 0.2, np.nan, rng.uniform(1, 3, (n, 8, 8, 1))),
        "count": rng.integers(0, 3, n),
    }
    return x, y


def _tasks():
    return [
        keras_mtl.Task("seg", "segmentation", num_classes=3, class_names=CLASS_NAMES),
        keras_mtl.Task("depth", "dense_regression"),
        keras_mtl.Task("count", "multiclass", num_classes=3),
    ]


def test_export_gives_per_pixel_class_ids_and_labels(tmp_path):
    model = keras_mtl.build_mtl_model(_backbone(), _tasks(), shared_units=3)
    x, _ = _data()
    keras_mtl.export_saved_model(model, tmp_path / "1", include_features=False)
    served = tf.saved_model.load(str(tmp_path / "1")).signatures["serving_default"]
    outputs = {k: v.numpy() for k, v in served(image=tf.constant(x)).items()}
    expected = model.predict(x, verbose=0)
    for name in ("seg", "depth", "count"):
        np.testing.assert_allclose(outputs[name], expected[name], atol=1e-5)
    class_id = np.argmax(expected["seg"], axis=-1)
    np.testing.assert_array_equal(outputs["seg_class_id"], class_id)
    assert outputs["seg_label"].shape == (6, 8, 8)
    assert outputs["seg_label"][0, 0, 0].decode() == CLASS_NAMES[class_id[0, 0, 0]]
    assert not any(key.startswith("depth_") for key in outputs)
    assert keras_mtl.load_task_specs(tmp_path / "1") == _tasks()
    document = keras_mtl.export.read_specs_document(tmp_path / "1")
    assert "of each pixel" in str(document)


def test_add_task_grows_a_model_by_a_dense_head():
    tasks = [_tasks()[0], _tasks()[2]]
    model = keras_mtl.build_mtl_model(_backbone(), tasks, shared_units=3, run_eagerly=True)
    x, y = _data()
    bigger = keras_mtl.add_task(model, _tasks()[1], run_eagerly=True)
    assert tuple(bigger.output["depth"].shape) == (None, 8, 8, 1)
    before = bigger.predict(x, verbose=0)
    bigger.train_on_batch(x, {"seg": np.full_like(y["seg"], -1), "depth": y["depth"],
                              "count": np.full_like(y["count"], -1)})
    after = bigger.predict(x, verbose=0)
    np.testing.assert_allclose(after["seg"], before["seg"], atol=1e-6)
    assert np.abs(after["depth"] - before["depth"]).max() > 0


def test_prior_reference_of_dense_tasks_is_the_loss_of_a_constant():
    _, y = _data(n=20, seed=1)
    reference = keras_mtl.tuning.prior_reference(_tasks(), y)
    ids = y["seg"][y["seg"] >= 0]
    p = (np.bincount(ids, minlength=3) + 1.0) / (len(ids) + 3)
    assert reference["seg"] == pytest.approx(-np.mean(np.log(p[ids])), rel=1e-4)
    depth = y["depth"][~np.isnan(y["depth"])]
    assert reference["depth"] == pytest.approx(np.mean(np.abs(depth - np.median(depth))),
                                               rel=1e-4)


def test_the_hypermodel_tunes_a_model_with_dense_tasks():
    hypermodel = keras_mtl.tuning.MTLHyperModel(
        _backbone(), _tasks(), fixed={"shared_layers": 1, "shared_units": 3},
        run_eagerly=True,
    )
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert tuple(model.output["seg"].shape) == (None, 8, 8, 3)
    x, y = _data()
    history = hypermodel.fit(hp, model, x, y, validation_data=_data(seed=2), epochs=1,
                             batch_size=6, verbose=0)
    assert np.isfinite(history.history["val_delta_m"][-1])
