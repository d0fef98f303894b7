"""Masked losses and metrics against values computed by hand in NumPy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl.losses import MaskedLoss, MaskedMetric


def _bce(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_regression_loss_ignores_nan_labels():
    y = np.array([[1.0], [np.nan], [3.0], [np.nan]], "float32")
    p = np.array([[0.0], [9.0], [1.0], [9.0]], "float32")
    loss = MaskedLoss("mse", missing_label="nan")
    expected = np.mean([(1 - 0) ** 2, (3 - 1) ** 2])
    np.testing.assert_allclose(float(loss(y, p)), expected, rtol=1e-6)


def test_multi_unit_regression_masks_each_entry():
    y = np.array([[1.0, np.nan], [np.nan, np.nan], [2.0, 4.0]], "float32")
    p = np.array([[0.0, 5.0], [7.0, 7.0], [0.0, 1.0]], "float32")
    loss = MaskedLoss("mse", missing_label="nan")
    np.testing.assert_allclose(float(loss(y, p)), np.mean([1.0, 4.0, 9.0]), rtol=1e-6)


def test_sparse_multiclass_loss_ignores_minus_one():
    y = np.array([2, -1, 0], "int32")
    p = np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]], "float32")
    loss = MaskedLoss("sparse_categorical_crossentropy", missing_label=-1, elementwise=False)
    expected = np.mean([-np.log(0.7), -np.log(0.6)])
    np.testing.assert_allclose(float(loss(y, p)), expected, rtol=1e-5)


def test_multilabel_loss_masks_entries():
    y = np.array([[1, -1, 0], [-1, 1, 1]], "float32")
    p = np.array([[0.9, 0.5, 0.2], [0.5, 0.6, 0.3]], "float32")
    loss = MaskedLoss("binary_crossentropy", missing_label=-1)
    expected = np.mean([_bce(1, 0.9), _bce(0, 0.2), _bce(1, 0.6), _bce(1, 0.3)])
    np.testing.assert_allclose(float(loss(y, p)), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "kind, y, p",
    [
        ("regression", np.full((4, 1), np.nan, "float32"), np.ones((4, 1), "float32")),
        ("binary", -np.ones((4, 1), "float32"), np.full((4, 1), 0.3, "float32")),
        ("multiclass", -np.ones((4,), "int32"), np.full((4, 3), 1 / 3, "float32")),
    ],
)
def test_batch_without_labels_gives_zero_loss_and_zero_gradient(kind, y, p):
    task = keras_mtl.Task("t", kind, **({"num_classes": 3} if kind == "multiclass" else {}))
    loss = task.build_loss()
    p = tf.Variable(p)
    with tf.GradientTape() as tape:
        value = loss(y, p)
    grad = tape.gradient(value, p)
    assert float(value) == 0.0
    assert np.all(np.isfinite(grad.numpy())) and np.all(grad.numpy() == 0)


def test_masked_metrics_match_numpy():
    y = np.array([[1.0], [np.nan], [3.0]], "float32")
    p = np.array([[0.0], [100.0], [1.5]], "float32")
    mae = MaskedMetric(keras.metrics.MeanAbsoluteError(), missing_label="nan")
    mae.update_state(y, p)
    np.testing.assert_allclose(float(mae.result()), np.mean([1.0, 1.5]), rtol=1e-6)

    y = np.array([1, -1, 2, 0], "int32")
    p = np.eye(3, dtype="float32")[[1, 1, 0, 0]]
    acc = MaskedMetric(
        keras.metrics.SparseCategoricalAccuracy(), missing_label=-1, elementwise=False
    )
    acc.update_state(y, p)
    np.testing.assert_allclose(float(acc.result()), 2 / 3, rtol=1e-6)

    y = np.array([[1], [-1], [0], [1]], "float32")
    p = np.array([[0.8], [0.9], [0.6], [0.4]], "float32")
    binary_acc = MaskedMetric(keras.metrics.BinaryAccuracy(), missing_label=-1)
    binary_acc.update_state(y, p)
    np.testing.assert_allclose(float(binary_acc.result()), 1 / 3, rtol=1e-6)


def test_masked_auc_equals_auc_of_present_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(50, 3)).astype("float32")
    p = rng.random((50, 3)).astype("float32")
    y_missing = y.copy()
    y_missing[rng.random((50, 3)) < 0.3] = -1
    present = y_missing >= 0
    masked = MaskedMetric(keras.metrics.AUC(), missing_label=-1)
    masked.update_state(y_missing, p)
    plain = keras.metrics.AUC()
    plain.update_state(y[present], p[present])
    np.testing.assert_allclose(float(masked.result()), float(plain.result()), rtol=1e-6)


def test_masked_loss_and_metric_round_trip_config():
    loss = MaskedLoss("huber", missing_label=-5.0)
    clone = MaskedLoss.from_config(loss.get_config())
    y = np.array([[1.0], [-5.0]], "float32")
    p = np.array([[3.0], [0.0]], "float32")
    assert float(clone(y, p)) == pytest.approx(float(loss(y, p)))
    metric = MaskedMetric(keras.metrics.AUC(name="auc"), missing_label=-1)
    assert MaskedMetric.from_config(metric.get_config()).get_config() == metric.get_config()
