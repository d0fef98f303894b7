"""Labels checked per task kind before training (arrays, dicts, datasets) and in the graph;
task names that collide with inputs; NumPy unicode string inputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl import errors

N = 8


def _tasks():
    return [
        keras_mtl.Task("digit", "multiclass", num_classes=5, class_names=list("abcde")),
        keras_mtl.Task("odd", "binary"),
        keras_mtl.Task("ink", "regression", units=2),
        keras_mtl.Task("tags", "multilabel", num_classes=3),
        keras_mtl.Task("score", "regression", missing_label=-99),
        keras_mtl.Task("emb", "custom", units=2, loss="mse", missing_label="nan"),
    ]


@pytest.fixture(scope="module")
def model():
    return keras_mtl.build_mtl_model((4,), _tasks(), shared_units=8)


def _x(n=N):
    return np.random.default_rng(0).normal(size=(n, 4)).astype("float32")


def _labels(n=N, **changes):
    rng = np.random.default_rng(1)
    labels = {
        "digit": rng.integers(0, 5, n),
        "odd": rng.integers(0, 2, (n, 1)).astype("float32"),
        "ink": rng.normal(size=(n, 2)),
        "tags": rng.integers(0, 2, (n, 3)),
        "score": rng.normal(size=n),
        "emb": rng.normal(size=(n, 2)),
    }
    labels.update(changes)
    return labels


def _with_entry(values, index, value):
    values = np.array(values, dtype="float64")
    values[index] = value
    return values


@pytest.mark.parametrize("task, labels, words", [
    # Values.
    ("odd", _with_entry(np.zeros((N, 1)), (3, 0), 2.0),
     ["'odd' (binary)", "0 or 1, or -1 for a missing label", "2.0 at index (3, 0)"]),
    ("odd", _with_entry(np.zeros(N), 5, np.nan),
     ["'odd'", "nan at index 5", "replace NaN by -1"]),
    ("digit", _with_entry(np.zeros(N), 2, 1.5),
     ["'digit' (multiclass)", "integer class ids in [0, 5)", "1.5 at index 2"]),
    ("digit", np.arange(N), ["integer class ids in [0, 5)", "5 at index 5", "3 invalid"]),
    ("digit", _with_entry(np.zeros(N), 0, np.nan), ["'digit'", "nan", "replace NaN by -1"]),
    ("ink", _with_entry(np.zeros((N, 2)), (1, 1), np.inf),
     ["'ink' (regression)", "finite numbers, or NaN for a missing label", "inf at index (1, 1)"]),
    ("score", _with_entry(np.zeros(N), 4, np.nan),
     ["'score'", "or -99 for a missing label", "nan at index 4", "replace NaN by -99"]),
    ("tags", _with_entry(np.zeros((N, 3)), (0, 2), 3),
     ["'tags' (multilabel)", "0 or 1 for each of the 3 classes", "3.0 at index (0, 2)"]),
    # Shapes.
    ("odd", np.zeros((N, 2)), ["'odd'", "shape (n,) or (n, 1)", "shape (n, 2)", "y[:, 1]"]),
    ("digit", np.eye(5)[np.arange(N) % 5],
     ["'digit'", "shape (n,) or (n, 1)", "shape (n, 5)", "one-hot", "np.argmax"]),
    ("ink", np.zeros((N, 3)), ["'ink'", "shape (n, 2)", "shape (n, 3)"]),
    ("tags", np.zeros((N, 2)), ["'tags'", "shape (n, 3)", "shape (n, 2)"]),
    ("tags", np.zeros(N), ["'tags'", "shape (n, 3)", "shape (n,)", "multi-hot"]),
    ("emb", np.zeros((N, 3)), ["'emb' (custom)", "shape (n, 2)", "shape (n, 3)"]),
    # Dtypes.
    ("digit", np.array(list("abcdeabc")),
     ["'digit'", "be numbers (integer class ids in [0, 5))", "strings (dtype <U1), e.g. 'a'",
      "class_names.index"]),
    ("odd", np.array(["yes", "no"] * 4, dtype=object), ["'odd'", "be numbers", "'yes'"]),
])
def test_bad_labels_fail_naming_task_expected_and_received(model, task, labels, words):
    with pytest.raises(errors.LabelError) as info:
        model.check_labels(_x(), _labels(**{task: labels}))
    message = str(info.value)
    for word in words:
        assert word in message
    assert f"`y[{task!r}]`" in message


@pytest.mark.parametrize("changes", [
    dict(odd=np.array([0, 1, -1, 1, 0, 0, 1, 1])),  # (n,), with a missing label
    dict(odd=np.array([True, False] * 4)),  # booleans
    dict(digit=np.array([[0], [4], [-1], [2], [3], [1], [0], [2]]), score=np.ones((N, 1))),
    dict(digit=np.array([0.0, 4.0, -1.0, 2.0, 3.0, 1.0, 0.0, 2.0])),  # integral floats
    dict(ink=_with_entry(np.zeros((N, 2)), (2, 1), np.nan), score=_with_entry(np.zeros(N), 0, -99)),
    dict(tags=_with_entry(np.zeros((N, 3)), (2, 1), -1), emb=np.full((N, 2, 1), np.nan)),
])
def test_labels_users_really_pass_are_accepted(model, changes):
    model.check_labels(_x(), _labels(**changes))


def test_fit_evaluate_and_validation_data_check_before_training():
    model = keras_mtl.build_mtl_model((4,), _tasks(), shared_units=8)
    weights = [w.copy() for w in model.get_weights()]
    x, good = _x(), _labels()
    bad = _labels(odd=_with_entry(np.zeros(N), 0, 2.0))
    with pytest.raises(errors.LabelError, match=r"`y\['odd'\]`"):
        model.fit(x, bad, verbose=0)
    with pytest.raises(errors.LabelError, match=r"`validation_data\[1\]\['odd'\]`"):
        model.fit(x, good, validation_data=(x, bad), verbose=0)
    with pytest.raises(errors.LabelError, match=r"'odd' \(binary\)"):
        model.evaluate(x, bad, verbose=0)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_single_task_model_checks_a_bare_array():
    model = keras_mtl.build_mtl_model((4,), [keras_mtl.Task("odd", "binary")], shared_units=4)
    with pytest.raises(errors.LabelError, match=r"Task 'odd'.*Received 2 at index 1 .* in `y`"):
        model.check_labels(_x(), np.array([0, 2, 1, 0, 1, 0, 1, 0]))
    model.check_labels(_x(), np.array([0, 1, 1, 0, 1, 0, 1, 0]))


def test_dataset_labels_are_checked_from_the_spec_and_the_first_batch(model):
    x = _x()
    wide = tf.data.Dataset.from_tensor_slices((x, _labels(odd=np.zeros((N, 2))))).batch(4)
    expected = r"'odd'.*Received shape \(n, 2\) in the labels 'odd' of the dataset `x`"
    with pytest.raises(errors.LabelError, match=expected):
        model.check_labels(wide, None, argument="x")
    strings = tf.data.Dataset.from_tensor_slices((x, _labels(digit=np.array(["a"] * N))))
    with pytest.raises(errors.LabelError, match=r"'digit'.*be numbers.*tf\.string"):
        model.check_labels(strings.batch(4), None, argument="x")
    first = _labels(odd=_with_entry(np.zeros(N), 1, np.nan))
    dataset = tf.data.Dataset.from_tensor_slices((x, first)).batch(4)
    with pytest.raises(errors.LabelError, match=r"'odd'.*first batch of the dataset `x`"):
        model.fit(dataset, verbose=0)
    with pytest.raises(errors.LabelError, match=r"first batch of the dataset `validation_data`"):
        model.fit(x, _labels(), validation_data=dataset, verbose=0)


def test_a_bad_label_after_the_first_batch_fails_in_the_graph_before_its_update():
    labels = {"odd": _with_entry(np.zeros((N, 1)), (6, 0), 3.0), "ink": np.zeros((N, 2))}
    dataset = tf.data.Dataset.from_tensor_slices((_x(), labels)).batch(4)
    tasks = [keras_mtl.Task("odd", "binary"), keras_mtl.Task("ink", "regression", units=2)]
    model = keras_mtl.build_mtl_model((4,), tasks, shared_units=8)
    with pytest.raises(errors.LabelError) as info:
        model.fit(dataset, verbose=0)
    assert str(info.value) == (
        "Task 'odd' (binary): labels must be 0 or 1, or -1 for a missing label. Received 3 in "
        "the batch of training step 2."
    )
    # The first batch was trained on, the second was not.
    assert int(model.optimizer.iterations) == 1


# === Task names ===


def test_a_task_named_like_an_input_fails_when_building():
    inputs = {"age": keras.Input((1,), name="age"), "city": keras.Input((3,), name="city")}
    tasks = [keras_mtl.Task("age", "regression"), keras_mtl.Task("churn", "binary")]
    with pytest.raises(errors.TaskSpecError, match=r"Task 'age': the name is taken by an input"):
        keras_mtl.build_mtl_model(inputs, tasks, shared_units=4)
    model = keras_mtl.build_mtl_model(inputs, tasks[1:], shared_units=4)
    with pytest.raises(errors.TaskSpecError, match=r"Task 'city': the name is taken by an input"):
        keras_mtl.add_task(model, keras_mtl.Task("city", "multiclass", num_classes=3))


# === String inputs ===


def _text_model():
    text = keras.Input((), dtype="string", name="text")
    count = keras.Input((1,), name="count")
    words = keras.layers.Embedding(32, 4)(keras.layers.Hashing(32)(text))
    backbone = keras.Model({"text": text, "count": count},
                           keras.layers.Concatenate()([words, count]))
    tasks = [keras_mtl.Task("spam", "binary"), keras_mtl.Task("length", "regression")]
    return keras_mtl.build_mtl_model(backbone, tasks, shared_units=4)


def test_numpy_string_arrays_work_as_inputs():
    sentences = ["win money now", "lunch at noon", "free prize", "see you"]
    unicode = np.array(sentences)
    as_bytes = np.array([s.encode() for s in sentences])
    assert (unicode.dtype.kind, as_bytes.dtype.kind) == ("U", "S")
    x = {"text": unicode, "count": np.ones((4, 1), "float32")}
    y = {"spam": np.array([1, 0, 1, 0]), "length": np.array([3.0, 3.0, 2.0, 2.0])}
    model = _text_model()
    history = model.fit(x, y, validation_data=(dict(x, text=as_bytes), y), verbose=0)
    assert np.isfinite(history.history["val_loss"]).all()
    assert np.isfinite(model.evaluate(x, y, verbose=0)).all()
    expected = model.predict(dict(x, text=tf.constant(sentences)), verbose=0)["spam"]
    assert expected.shape == (4, 1)
    for text in (unicode, as_bytes, as_bytes.astype(object)):
        np.testing.assert_allclose(model.predict(dict(x, text=text), verbose=0)["spam"], expected)
