"""Dense task kinds: segmentation, dense regression and token classification."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl import errors


def _metric(task, name, y_true, y_pred):
    metric = next(m for m in task.build_metrics() if m.name == name)
    metric.update_state(y_true, y_pred)
    return float(metric.result())


# === Masked metrics against NumPy ===


def test_mean_iou_and_pixel_accuracy_ignore_pixels_and_absent_classes():
    rng = np.random.default_rng(0)
    task = keras_mtl.Task("seg", "segmentation", num_classes=5)
    # Classes 3 and 4 never occur, in labels or predictions.
    y_true = rng.integers(0, 3, (4, 6, 6))
    y_true[rng.random((4, 6, 6)) < 0.3] = -1
    predicted = rng.integers(0, 3, (4, 6, 6))
    y_pred = np.eye(5)[predicted] * 0.8 + 0.04

    labelled = y_true >= 0
    t, p = y_true[labelled], predicted[labelled]
    ious = []
    for c in range(5):
        union = np.sum((t == c) | (p == c))
        if union:
            ious.append(np.sum((t == c) & (p == c)) / union)
    assert len(ious) == 3
    assert _metric(task, "mean_iou", y_true, y_pred) == pytest.approx(np.mean(ious), abs=1e-6)
    assert _metric(task, "pixel_accuracy", y_true, y_pred) == pytest.approx(np.mean(t == p))


def test_abs_and_rel_error_over_labelled_pixels():
    rng = np.random.default_rng(1)
    task = keras_mtl.Task("depth", "dense_regression", units=2)
    y_true = rng.uniform(1, 5, (3, 4, 4, 2))
    y_true[rng.random(y_true.shape) < 0.25] = np.nan
    y_pred = rng.uniform(1, 5, y_true.shape).astype("float32")
    present = ~np.isnan(y_true)
    error = np.abs(y_true - y_pred)[present]
    assert _metric(task, "abs_err", y_true, y_pred) == pytest.approx(error.mean(), rel=1e-5)
    assert _metric(task, "rel_err", y_true, y_pred) == pytest.approx(
        (error / y_true[present]).mean(), rel=1e-5
    )
    # The default loss is the masked L1 error.
    assert float(task.build_loss()(y_true, y_pred)) == pytest.approx(error.mean(), rel=1e-5)


def test_normals_use_cosine_loss_and_angular_error_per_pixel():
    rng = np.random.default_rng(2)
    task = keras_mtl.Task("normals", "dense_regression", units=3, normalize=True)
    y_true = rng.normal(size=(2, 3, 3, 3))
    y_true /= np.linalg.norm(y_true, axis=-1, keepdims=True)
    y_true[0, 0, 0, 1] = np.nan  # one missing entry drops its whole pixel
    y_pred = rng.normal(size=y_true.shape).astype("float32")
    unit = y_pred / np.linalg.norm(y_pred, axis=-1, keepdims=True)
    present = ~np.isnan(y_true).any(axis=-1)
    cosine = np.sum(y_true * unit, axis=-1)[present]
    assert float(task.build_loss()(y_true, y_pred)) == pytest.approx(np.mean(1 - cosine), rel=1e-5)
    angles = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
    assert _metric(task, "angular_error", y_true, y_pred) == pytest.approx(angles.mean(), rel=1e-4)


def test_token_accuracy_and_macro_f1_over_labelled_tokens():
    rng = np.random.default_rng(3)
    task = keras_mtl.Task("tags", "token_classification", num_classes=4)
    y_true = rng.integers(0, 3, (5, 7))
    y_true[:, 5:] = -1  # padding
    predicted = np.where(rng.random((5, 7)) < 0.6, y_true, rng.integers(0, 4, (5, 7)))
    predicted[:, 5:] = 3  # padded tokens predict class 3, which must not count
    y_pred = np.eye(4)[np.maximum(predicted, 0)]
    t, p = y_true[:, :5].ravel(), predicted[:, :5].ravel()
    f1 = []
    for c in range(4):
        tp, fp, fn = np.sum((t == c) & (p == c)), np.sum((t != c) & (p == c)), np.sum(
            (t == c) & (p != c))
        if tp + fp + fn:
            f1.append(2 * tp / (2 * tp + fp + fn))
    assert _metric(task, "macro_f1", y_true, y_pred) == pytest.approx(np.mean(f1), rel=1e-5)
    assert _metric(task, "token_accuracy", y_true, y_pred) == pytest.approx(np.mean(t == p))


# === Masked losses: padding, empty batches, sample weights ===


def test_padded_tokens_change_neither_loss_nor_gradients():
    rng = np.random.default_rng(4)
    loss = keras_mtl.Task("tags", "token_classification", num_classes=3).build_loss()
    y_true = rng.integers(0, 3, (2, 6))
    y_true[:, 4:] = -1
    logits = rng.normal(size=(2, 6, 3)).astype("float32")
    perturbed = logits.copy()
    perturbed[:, 4:] += rng.normal(scale=5.0, size=(2, 2, 3)).astype("float32")

    def loss_and_gradient(values):
        values = tf.Variable(values)
        with tf.GradientTape() as tape:
            value = loss(y_true, tf.nn.softmax(values))
        return float(value), tape.gradient(value, values).numpy()

    value, gradient = loss_and_gradient(logits)
    value_perturbed, gradient_perturbed = loss_and_gradient(perturbed)
    assert value == pytest.approx(value_perturbed, rel=1e-6)
    np.testing.assert_allclose(gradient, gradient_perturbed, atol=1e-7)
    assert np.all(gradient[:, 4:] == 0) and np.any(gradient[:, :4] != 0)


@pytest.mark.parametrize("task, labels", [
    (keras_mtl.Task("seg", "segmentation", num_classes=3), np.full((2, 4, 4), -1)),
    (keras_mtl.Task("depth", "dense_regression"), np.full((2, 4, 4, 1), np.nan)),
    (keras_mtl.Task("n", "dense_regression", units=3, normalize=True),
     np.full((2, 4, 4, 3), np.nan)),
    (keras_mtl.Task("tags", "token_classification", num_classes=3), np.full((2, 4), -1)),
])
def test_a_batch_without_labels_gives_zero_loss_and_gradients(task, labels):
    shape = labels.shape[:-1] if labels.ndim == 4 else labels.shape
    prediction = tf.Variable(np.full(shape + (task.output_units,), 0.3, "float32"))
    with tf.GradientTape() as tape:
        value = task.build_loss()(labels, prediction)
    assert float(value) == 0.0
    assert np.all(tape.gradient(value, prediction).numpy() == 0)


def test_per_example_sample_weights_weigh_every_pixel():
    loss = keras_mtl.Task("seg", "segmentation", num_classes=2).build_loss()
    y_true = np.zeros((2, 2, 2), "int64")
    y_pred = np.stack([np.full((2, 2, 2), 0.5), np.tile([0.9, 0.1], (2, 2, 1))]).astype("float32")
    weighted = float(loss(y_true, y_pred, sample_weight=np.array([0.0, 1.0])))
    # Keras' reduction divides the weighted sum by every pixel, those of example 0 too.
    assert weighted == pytest.approx(-np.log(0.9) / 2, rel=1e-5)


# === Task arguments and labels ===


def test_dense_task_arguments_are_checked():
    task = keras_mtl.Task("seg", "segmentation", num_classes=3, output_size=[8, 6])
    assert task.output_size == (8, 6)
    assert keras_mtl.Task.from_config(task.get_config()) == task
    for bad in [(8,), (0, 8), (8.0, 8), "8x8"]:
        with pytest.raises(errors.TaskSpecError, match=r"`output_size` must be None or two "
                                                       r"positive integers.*Received"):
            keras_mtl.Task("seg", "segmentation", num_classes=3, output_size=bad)
    with pytest.raises(errors.TaskSpecError, match=r"`normalize=True`.*units"):
        keras_mtl.Task("n", "dense_regression", normalize=True)
    with pytest.raises(errors.TaskTypeError, match=r"unexpected arguments \['output_size'\]"):
        keras_mtl.Task("t", "token_classification", num_classes=3, output_size=(4, 4))


def _model(tasks, input_shape=(8, 8, 3), strides=2, **kwargs):
    backbone = keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(4, 3, strides=strides, padding="same", activation="relu"),
    ])
    return keras_mtl.build_mtl_model(backbone, tasks, shared_units=4, **kwargs)


def test_label_maps_are_checked_before_training():
    model = _model([keras_mtl.Task("seg", "segmentation", num_classes=3),
                    keras_mtl.Task("depth", "dense_regression")])
    x = np.zeros((4, 8, 8, 3), "float32")
    seg = np.zeros((4, 8, 8), "int64")
    depth = np.ones((4, 8, 8, 1))
    with pytest.raises(errors.LabelError, match=r"'seg' \(segmentation\): labels must have "
                                                r"shape \(n, 8, 8\).*Received shape \(n, 4, 4\)"):
        model.fit(x, {"seg": seg[:, :4, :4], "depth": depth}, verbose=0)
    with pytest.raises(errors.LabelError, match=r"one-hot label maps"):
        model.fit(x, {"seg": np.eye(3)[seg], "depth": depth}, verbose=0)
    with pytest.raises(errors.LabelError, match=r"integer class ids in \[0, 3\), or -1.*"
                                                r"Received 3 at index \(1, 2, 5\)"):
        bad = seg.copy()
        bad[1, 2, 5] = 3
        model.fit(x, {"seg": bad, "depth": depth}, verbose=0)
    with pytest.raises(errors.LabelError,
                       match=r"'depth'.*\(n, 8, 8, 1\). Received shape \(n, 8, 7, 1\)"):
        model.fit(x, {"seg": seg, "depth": depth[:, :, :7]}, verbose=0)


# === Heads ===


def test_dense_heads_upsample_and_vector_heads_pool_the_shared_map():
    tasks = [
        keras_mtl.Task("seg", "segmentation", num_classes=3, head_units=(4,)),
        keras_mtl.Task("depth", "dense_regression", output_size=(6, 6)),
        keras_mtl.Task("count", "multiclass", num_classes=4),
    ]
    model = _model(tasks)
    assert {k: tuple(v.shape) for k, v in model.output.items()} == {
        "seg": (None, 8, 8, 3), "depth": (None, 6, 6, 1), "count": (None, 4)}
    assert tuple(model.structure.backbone_output.shape) == (None, 4, 4, 4)
    assert model.structure.one_representation
    assert [layer.name for layer in model.structure.head_layers["count"]] == [
        "count_pool", "count"]
    assert "seg_upsample" in [layer.name for layer in model.structure.head_layers["seg"]]


def test_a_dense_task_needs_a_map_or_a_sequence():
    with pytest.raises(errors.BackboneError, match=r"'seg'.*reads a feature map.*shape "
                                                   r"\(None, 4\)"):
        keras_mtl.build_mtl_model((6,), [keras_mtl.Task("seg", "segmentation", num_classes=2)],
                                  shared_units=4)
    with pytest.raises(errors.BackboneError, match=r"'tags'.*reads a sequence"):
        _model([keras_mtl.Task("tags", "token_classification", num_classes=2)])


def test_a_mixed_model_trains_saves_and_reloads(tmp_path):
    rng = np.random.default_rng(5)
    tasks = [
        keras_mtl.Task("seg", "segmentation", num_classes=3, class_names=["bg", "a", "b"]),
        keras_mtl.Task("depth", "dense_regression"),
        keras_mtl.Task("count", "multiclass", num_classes=3),
    ]
    # Eager steps: tracing a training function would take most of this test's time.
    model = _model(tasks, run_eagerly=True)
    x = rng.random((16, 8, 8, 3)).astype("float32")
    y = {
        "seg": rng.integers(-1, 3, (16, 8, 8)),
        "depth": np.where(rng.random((16, 8, 8, 1)) < 0.2, np.nan, rng.random((16, 8, 8, 1))),
        "count": rng.integers(0, 3, 16),
    }
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for key in ("seg_mean_iou", "seg_pixel_accuracy", "depth_abs_err", "depth_rel_err",
                "count_accuracy", "loss"):
        assert np.all(np.isfinite(history.history[key])), key
    assert all(np.any(a != b) for a, b in zip(before, model.get_weights()) if a.size > 1)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.tasks == tasks
    expected, got = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-6)


@pytest.mark.parametrize("task, shape", [
    (keras_mtl.Task("seg", "segmentation", num_classes=3, class_names=["x", "y", "z"]),
     (2, 4, 4, 3)),
    (keras_mtl.Task("tags", "token_classification", num_classes=3, class_names=["O", "B", "I"]),
     (2, 5, 3)),
    (keras_mtl.Task("depth", "dense_regression"), (2, 4, 4, 1)),
])
def test_export_outputs_are_per_pixel_or_token_as_described(task, shape):
    kind = task.kind_object
    output = tf.nn.softmax(tf.random.normal(shape))
    outputs = kind.export_outputs(task, output)
    assert sorted(outputs) == sorted(name for name, _ in kind.describe_export_outputs(task))
    for tensor in outputs.values():
        assert tuple(tensor.shape) == shape[:-1]
    if outputs:
        ids = outputs[f"{task.name}_class_id"].numpy()
        np.testing.assert_array_equal(ids, np.argmax(output.numpy(), -1))
        assert outputs[f"{task.name}_label"].numpy().ravel()[0].decode() == task.class_names[
            ids.ravel()[0]]
