"""TaskAffinity: values against a lookahead computed by hand, partial labels, logs and bad
input (planted relations and training left unchanged: tests/test_diagnostics_conflict.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl import errors
from keras_mtl.diagnostics import TaskAffinity


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    return x, {
        "a": x[:, :1] * 2.0,
        "b": np.sin(x[:, 1:2]) - x[:, :1],
        "c": (x[:, 2:3] > 0).astype("float32"),
    }


def _tasks():
    return [
        keras_mtl.Task("a", "regression"),
        keras_mtl.Task("b", "regression", head_units=(3,)),
        keras_mtl.Task("c", "binary"),
    ]


def _explicit_lookahead(model, x, y, learning_rate):
    """Z[i, j] by hand: assign the stepped shared weights, evaluate, put them back."""
    shared = model.structure.shared_variables()
    saved = [v.numpy() for v in shared]
    with tf.GradientTape(persistent=True) as tape:
        before = [float(v) for v in model.compute_task_losses(y, model(x, training=True))]
        losses = model.compute_task_losses(y, model(x, training=True))
    grads = [tape.gradient(loss, shared) for loss in losses]
    affinity = np.zeros((3, 3))
    for i in range(3):
        for variable, value, grad in zip(shared, saved, grads[i]):
            variable.assign(value - learning_rate * (0 if grad is None else grad.numpy()))
        after = model.compute_task_losses(y, model(x, training=True))
        affinity[i] = [1 - float(after[j]) / before[j] for j in range(3)]
    for variable, value in zip(shared, saved):
        variable.assign(value)
    return affinity


def test_affinity_matches_an_explicit_lookahead():
    x, y = _data()
    model = keras_mtl.build_mtl_model(
        (5,), _tasks(), shared_layers=2, shared_units=6, optimizer=keras.optimizers.SGD(0.1)
    )
    affinity = TaskAffinity(every=1)  # the lookahead step: the optimizer's learning rate
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[affinity], verbose=0)
    expected = _explicit_lookahead(model, x, y, 0.1)
    matrix = affinity.matrix()
    assert list(matrix.index) == list(matrix.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(matrix.to_numpy(), expected, rtol=2e-3, atol=2e-5)
    assert np.all(np.diag(matrix) > 0)  # a step for a task lowers its own loss


def test_partial_labels_logs_and_tensorboard(tmp_path):
    x, y = _data(32)
    y["c"][:16] = -1  # no label of c in the first batch (not shuffled)
    model = keras_mtl.build_mtl_model((5,), _tasks(), shared_units=6)
    affinity = TaskAffinity(every=1, log_dir=str(tmp_path / "tb"))
    history = model.fit(
        x, y, batch_size=16, epochs=1, shuffle=False, callbacks=[affinity], verbose=0
    )
    frame = affinity.history
    first = frame[frame.step == 0]
    with_c = (first.source == "c") | (first.target == "c")
    assert first[with_c]["affinity"].isna().all() and first[~with_c]["affinity"].notna().all()
    assert frame[frame.step == 1]["affinity"].notna().all()
    ac = frame.query("source == 'a' and target == 'c'")["affinity"]
    assert history.history["affinity_a_to_c"][0] == pytest.approx(ac.dropna().mean())
    off = frame.query("source != target")["affinity"].dropna()
    assert history.history["task_affinity"][0] == pytest.approx(off.mean())
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_bad_input():
    with pytest.raises(errors.ConfigError, match="`every` must be a positive integer"):
        TaskAffinity(every=0)
    with pytest.raises(errors.ConfigError, match="`learning_rate` must be a positive number"):
        TaskAffinity(learning_rate=-1.0)
    x, y = _data()
    single = keras_mtl.build_mtl_model((5,), [keras_mtl.Task("a", "regression")])
    with pytest.raises(errors.ConfigError, match="single task"):
        single.fit(x, y["a"], epochs=1, callbacks=[TaskAffinity()], verbose=0)
    with pytest.raises(errors.ConfigError, match="no measurement yet"):
        TaskAffinity().matrix()
