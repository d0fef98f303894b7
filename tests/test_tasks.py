"""Task specifications: defaults per kind, validation, and config round trips."""

import keras
import numpy as np
import pytest

import keras_mtl
from keras_mtl import errors
from keras_mtl.losses import MaskedLoss, MaskedMetric


@pytest.mark.parametrize(
    "task, units, activation, loss, metrics",
    [
        (keras_mtl.Task("a", "binary"), 1, "sigmoid", "binary_crossentropy",
         ["BinaryAccuracy", "AUC"]),
        (keras_mtl.Task("a", "multiclass", num_classes=4), 4, "softmax",
         "sparse_categorical_crossentropy", ["SparseCategoricalAccuracy"]),
        (keras_mtl.Task("a", "multilabel", num_classes=3), 3, "sigmoid", "binary_crossentropy",
         ["AUC"]),
        (keras_mtl.Task("a", "regression", units=2), 2, "linear", "mean_squared_error",
         ["MeanAbsoluteError"]),
    ],
)
def test_defaults_per_kind(task, units, activation, loss, metrics):
    assert task.output_units == units
    assert task.output_activation == activation
    built_loss = task.build_loss()
    assert isinstance(built_loss, MaskedLoss)
    assert getattr(built_loss.loss, "__name__", None) == loss or loss in repr(built_loss.loss)
    built = task.build_metrics()
    assert all(isinstance(m, MaskedMetric) for m in built)
    assert [type(m.metric).__name__ for m in built] == metrics


def test_defaults_are_overridable():
    task = keras_mtl.Task(
        "price", "regression", activation="relu", loss="huber", metrics=["rmse", "mse"],
        missing_label=None,
    )
    assert task.output_activation == "relu"
    assert not isinstance(task.build_loss(), MaskedLoss)
    assert [m.name for m in task.build_metrics()] == ["rmse", "mse"]


def test_missing_label_defaults():
    assert keras_mtl.Task("a", "binary").resolved_missing_label == -1
    assert keras_mtl.Task("a", "regression").resolved_missing_label == "nan"
    assert keras_mtl.Task("a", "regression", missing_label=-99).resolved_missing_label == -99
    assert keras_mtl.Task(
        "a", "custom", units=2, loss="mse"
    ).resolved_missing_label is None


@pytest.mark.parametrize(
    "task",
    [
        keras_mtl.Task("digit", "multiclass", num_classes=3, class_names=["x", "y", "z"],
                       head_units=(16, 8), head_dropout=0.1, loss_weight=0.3),
        keras_mtl.Task("odd", "binary", metrics=[keras.metrics.Precision(name="p")],
                       threshold=0.7, class_names=["even", "odd"]),
        keras_mtl.Task("ink", "regression", units=3, loss=keras.losses.Huber(delta=2.0),
                       missing_label=float("nan")),
        keras_mtl.Task("emb", "custom", loss="cosine_similarity",
                       head_layers=[keras.layers.Dense(4), keras.layers.UnitNormalization()]),
    ],
)
def test_config_round_trip_is_equal(task):
    config = task.get_config()
    clone = keras_mtl.Task.from_config(config)
    assert clone == task
    assert clone.get_config() == config or clone.missing_label != clone.missing_label


def test_custom_task_builds_its_head_layers_fresh_each_time():
    task = keras_mtl.Task(
        "emb", "custom", loss="mse", head_layers=[keras.layers.Dense(4, name="proj")]
    )
    inputs = keras.Input((3,))
    first = keras.Model(inputs, task.build_head(inputs))
    second = keras.Model(inputs, task.build_head(inputs))
    assert first.output_shape == (None, 4)
    assert first.layers[-1].name == "emb"
    assert first.layers[1] is not second.layers[1]


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(name="2fast", kind="binary"), errors.TaskSpecError, ["`name`", "'2fast'"]),
        (dict(name="my-task", kind="binary"), errors.TaskSpecError, ["`name`", "'my-task'"]),
        (dict(name="class", kind="binary"), errors.TaskSpecError, ["`name`", "'class'"]),
        (dict(name="t", kind="ranking"), errors.TaskSpecError, ["`kind`", "'ranking'", "'t'"]),
        (dict(name="t", kind="multiclass"), errors.TaskSpecError,
         ["num_classes", "'t'", "None"]),
        (dict(name="t", kind="multilabel", num_classes=0), errors.TaskSpecError,
         ["num_classes", "0"]),
        (dict(name="t", kind="regression", units=0), errors.TaskSpecError, ["units=0"]),
        (dict(name="t", kind="binary", num_classes=2), errors.TaskSpecError, ["num_classes"]),
        (dict(name="t", kind="multiclass", num_classes=3, class_names=["a", "b"]),
         errors.TaskSpecError, ["class_names", "3", "'t'", "['a', 'b']"]),
        (dict(name="t", kind="binary", class_names=["yes"]), errors.TaskSpecError,
         ["class_names", "2"]),
        (dict(name="t", kind="custom"), errors.TaskSpecError, ["loss"]),
        (dict(name="t", kind="binary", loss_weight=-1), errors.TaskSpecError,
         ["loss_weight=-1"]),
        (dict(name="t", kind="binary", head_units=(8, 0)), errors.TaskSpecError,
         ["head_units"]),
        (dict(name="t", kind="binary", head_dropout=1.0), errors.TaskSpecError,
         ["head_dropout"]),
        (dict(name="t", kind="binary", threshold=1.5), errors.TaskSpecError, ["threshold"]),
        (dict(name="t", kind="custom", loss="mse", head_layers=["dense"]), errors.TaskTypeError,
         ["head_layers"]),
    ],
)
def test_bad_specs_fail_naming_argument_task_and_value(kwargs, error, words):
    with pytest.raises(error) as info:
        keras_mtl.Task(**kwargs)
    assert isinstance(info.value, (ValueError, TypeError))
    for word in words:
        assert word in str(info.value)


def test_task_lists_are_checked():
    with pytest.raises(errors.TaskSpecError, match="'a' appears more than once"):
        keras_mtl.build_mtl_model(
            (4,), [keras_mtl.Task("a", "binary"), keras_mtl.Task("a", "regression")]
        )
    with pytest.raises(errors.TaskTypeError, match=r"`tasks\[1\]`"):
        keras_mtl.build_mtl_model((4,), [keras_mtl.Task("a", "binary"), "b"])
    with pytest.raises(TypeError, match="non-empty list"):
        keras_mtl.build_mtl_model((4,), [])


def test_task_head_output_is_named_after_task():
    task = keras_mtl.Task("score", "regression", head_units=(8, 4), head_dropout=0.2)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, task.build_head(inputs))
    assert [layer.name for layer in model.layers[1:]] == [
        "score_head_0", "score_head_dropout_0", "score_head_1", "score_head_dropout_1", "score"
    ]
    assert model.predict(np.ones((2, 6)), verbose=0).shape == (2, 1)
