"""Task kinds: the registry, what each kind owns, and a new kind added as one class."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl import errors, kinds

BUILT_IN = ["binary", "multiclass", "multilabel", "regression", "custom"]


def test_registry_lists_gets_and_rejects_unknown_kinds():
    assert kinds.names()[:5] == BUILT_IN
    assert [type(kinds.get(name)).__name__ for name in BUILT_IN] == [
        "Binary", "Multiclass", "Multilabel", "Regression", "Custom"
    ]
    instance = kinds.Regression()
    assert kinds.get(instance) is instance
    with pytest.raises(errors.ConfigError, match=r"Unknown `kind`: 'ranking'.*'binary'"):
        kinds.get("ranking")
    with pytest.raises(errors.TaskSpecError, match=r"kinds\.register"):
        keras_mtl.Task("t", "ranking")


@pytest.mark.parametrize("task", [
    keras_mtl.Task("a", "binary", class_names=["no", "yes"]),
    keras_mtl.Task("a", "multiclass", num_classes=3, class_names=["x", "y", "z"]),
    keras_mtl.Task("a", "multilabel", num_classes=3, class_names=["x", "y", "z"]),
    keras_mtl.Task("a", "regression", units=2),
    keras_mtl.Task("a", "custom", units=2, loss="mse"),
])
def test_export_outputs_are_those_each_kind_describes(task):
    kind = task.kind_object
    output = tf.constant(np.full((2, task.output_units), 0.25, "float32"))
    outputs = kind.export_outputs(task, output)
    assert sorted(outputs) == sorted(name for name, _ in kind.describe_export_outputs(task))
    for tensor in outputs.values():
        assert tensor.shape[0] == 2


def test_uncertainty_scales_come_from_the_kind():
    tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "multiclass", num_classes=3),
             keras_mtl.Task("c", "custom", units=1, loss="mse")]
    assert [t.kind_object.classification for t in tasks] == [False, True, False]


# === A new kind, as one class ===


class Rating(kinds.TaskKind):
    """A score between `low` and `high`: a scaled sigmoid, MSE, NaN for missing."""

    name = "rating_for_tests"
    arguments = ("units",)
    options = {"low": 0.0, "high": 1.0}
    activation = "sigmoid"
    loss = "mean_squared_error"
    metrics = ("mae",)
    missing_label = "nan"

    def validate(self, task):
        if not task.low < task.high:
            self._fail(task, f"`low` must be below `high`. Received: low={task.low}, "
                             f"high={task.high}")

    def output_units(self, task):
        return task.units or 1

    def build_head(self, task, features):
        x = keras.layers.Dense(self.output_units(task), activation="sigmoid",
                               name=f"{task.name}_unit")(self._hidden_layers(task, features))
        return keras.layers.Rescaling(task.high - task.low, offset=task.low, name=task.name)(x)

    def valid_labels(self, task, labels, ops):
        return ops.is_finite(labels) & (labels >= task.low) & (labels <= task.high)

    def expected_labels(self, task):
        return f"numbers between {task.low} and {task.high}"

    def constant_prediction(self, task, labels):
        values, present = self._present_columns(task, labels)
        return np.where(present, values, 0.0).sum(axis=0) / present.sum(axis=0)


@pytest.fixture
def rating():
    kinds.register(Rating)
    yield Rating
    del kinds._REGISTRY[Rating.name]


def test_a_registered_kind_trains_checks_labels_saves_and_gives_a_reference(rating, tmp_path):
    task = keras_mtl.Task("stars", "rating_for_tests", low=1.0, high=5.0, head_units=(4,))
    assert (task.low, task.high, task.output_units) == (1.0, 5.0, 1)
    assert keras_mtl.Task.from_config(task.get_config()) == task
    tasks = [task, keras_mtl.Task("odd", "binary")]
    model = keras_mtl.build_mtl_model((3,), tasks, shared_units=8)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = {"stars": rng.uniform(1, 5, 32), "odd": rng.integers(0, 2, 32)}
    y["stars"][:4] = np.nan
    history = model.fit(x, y, verbose=0)
    assert np.isfinite(history.history["stars_loss"]).all()
    predicted = model.predict(x, verbose=0)["stars"]
    assert predicted.min() >= 1.0 and predicted.max() <= 5.0

    with pytest.raises(errors.LabelError, match=r"'stars' \(rating_for_tests\).*between 1.0 "
                                                r"and 5.0, or NaN.*Received 6.0"):
        model.fit(x, dict(y, stars=np.full(32, 6.0)), verbose=0)

    reference = keras_mtl.tuning.prior_reference(tasks, y)
    present = y["stars"][~np.isnan(y["stars"])]
    assert reference["stars"] == pytest.approx(np.mean((present - present.mean()) ** 2), rel=1e-5)

    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.tasks == tasks
    for expected, got in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(got, expected)


def test_kind_options_are_checked(rating):
    with pytest.raises(errors.TaskTypeError, match=r"unexpected arguments \['low'\].*'binary'"):
        keras_mtl.Task("t", "binary", low=1.0)
    with pytest.raises(errors.TaskTypeError, match=r"\['hihg'\].*\['high', 'low'\]"):
        keras_mtl.Task("t", "rating_for_tests", hihg=3.0)
    with pytest.raises(errors.TaskSpecError, match=r"Task 't': `low` must be below `high`"):
        keras_mtl.Task("t", "rating_for_tests", low=2.0, high=1.0)


def test_register_rejects_what_would_break_tasks():
    with pytest.raises(errors.TaskTypeError, match="subclass of keras_mtl.kinds.TaskKind"):
        kinds.register(object)

    class Named(kinds.TaskKind):
        name = "Ordinal"

    with pytest.raises(errors.TaskSpecError, match="lower-case Python identifier.*'Ordinal'"):
        kinds.register(Named)
    Named.name = "binary"
    with pytest.raises(errors.TaskSpecError, match=r"'binary' is taken by .*Binary"):
        kinds.register(Named)
    Named.name = "ordinal_for_tests"
    Named.options = {"units": 3, "build_head": None}
    with pytest.raises(errors.TaskSpecError, match=r"\['units', 'build_head'\]"):
        kinds.register(Named)
    assert "ordinal_for_tests" not in kinds.names()
