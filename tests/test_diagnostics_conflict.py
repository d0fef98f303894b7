"""GradientConflict: values against gradients taken by hand, planted relations (with
TaskAffinity), training left unchanged by both callbacks, partial labels, logs, TensorBoard,
reload and bad input."""

import glob
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl import errors
from keras_mtl.diagnostics import GradientConflict, TaskAffinity


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = {
        "a": x[:, :1] * 2.0,
        "b": np.sin(x[:, 1:2]) - x[:, :1],
        "c": (x[:, 2:3] > 0).astype("float32"),
    }
    return x, y


def _tasks():
    return [
        keras_mtl.Task("a", "regression"),
        keras_mtl.Task("b", "regression", head_units=(3,)),
        keras_mtl.Task("c", "binary"),
    ]


def _by_hand(model, x, y):
    """Per-task gradients of the shared variables from a tape, on the model as it is now."""
    shared = model.structure.shared_variables()
    with tf.GradientTape(persistent=True) as tape:
        losses = model.compute_task_losses(y, model(x, training=True))
    grads = [
        [np.zeros(v.shape) if g is None else g.numpy() for g, v in
         zip(tape.gradient(loss, shared), shared)]
        for loss in losses
    ]
    return grads


def test_cosines_norms_and_variable_conflicts_match_tape_gradients():
    x, y = _data()
    model = keras_mtl.build_mtl_model(
        (5,), _tasks(), shared_layers=2, shared_units=6, optimizer=keras.optimizers.SGD(0.05)
    )
    conflict = GradientConflict(every=1)
    # One step on the whole batch; the measurement sees the parameters it produced.
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[conflict], verbose=0)
    grads = _by_hand(model, x, y)
    flat = [np.concatenate([g.ravel() for g in task]) for task in grads]
    history = conflict.history
    assert list(history["step"]) == [0, 0, 0]
    for row in history.itertuples():
        i, j = "abc".index(row.task_i), "abc".index(row.task_j)
        gi, gj = flat[i], flat[j]
        cosine = gi @ gj / (np.linalg.norm(gi) * np.linalg.norm(gj))
        np.testing.assert_allclose(row.cosine, cosine, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(row.norm_i, np.linalg.norm(gi), rtol=1e-4)
        np.testing.assert_allclose(row.norm_ratio, np.linalg.norm(gi) / np.linalg.norm(gj),
                                   rtol=1e-4)
        negative = [
            float(np.sum(a * b)) < 0 for a, b in zip(grads[i], grads[j])
            if np.any(a) and np.any(b)
        ]
        assert row.conflict_rate_variables == pytest.approx(np.mean(negative))
    matrix = conflict.matrix()
    assert list(matrix.index) == ["a", "b", "c"] and np.allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(matrix.to_numpy(), matrix.to_numpy().T)
    layers = conflict.matrix(by_layer=True)
    assert sorted(layers) == sorted(
        {v.path.rsplit("/", 1)[0] for v in model.structure.shared_variables()}
    )
    # Per layer, the cosine over that layer's variables.
    path = sorted(layers)[0]
    index = [k for k, v in enumerate(model.structure.shared_variables())
             if v.path.startswith(path + "/")]
    ga, gb = (np.concatenate([grads[t][k].ravel() for k in index]) for t in (0, 1))
    np.testing.assert_allclose(
        layers[path].loc["a", "b"], ga @ gb / np.linalg.norm(ga) / np.linalg.norm(gb),
        rtol=1e-4, atol=1e-6,
    )


def _twin_model(sign):
    """Tasks a and b with identical, frozen heads: b's target is `sign` times a's."""
    tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "regression")]
    model = keras_mtl.build_mtl_model((5,), tasks, shared_units=8, compile=False)
    model.get_layer("b").set_weights(model.get_layer("a").get_weights())
    model.get_layer("a").trainable = model.get_layer("b").trainable = False
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    x, y = _data(64)
    return model, x, {"a": y["a"], "b": sign * y["a"]}


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_planted_identical_and_opposite_tasks(sign):
    model, x, y = _twin_model(sign)
    conflict, affinity = GradientConflict(every=2), TaskAffinity(every=2, learning_rate=0.01)
    model.fit(x, y, batch_size=16, epochs=2, callbacks=[conflict, affinity], verbose=0)
    cosines = conflict.history["cosine"].to_numpy()
    between = affinity.history.query("source != target")["affinity"].to_numpy()
    assert len(cosines) == 4 and len(between) == 2 * 4
    if sign > 0:
        np.testing.assert_allclose(cosines, 1.0, atol=1e-5)
        assert np.all(between > 0)
        matrix = affinity.matrix()
        assert matrix.loc["a", "b"] == pytest.approx(matrix.loc["a", "a"], rel=1e-4)
    else:
        assert np.all(cosines < -0.5)
        assert conflict.history["conflict_rate_variables"].min() > 0.5
        assert np.all(between < 0)


def _weights(model):
    return [v.numpy() for v in model.weights]


@pytest.mark.parametrize(
    "sharing,weighting",
    [
        ("mmoe", "rlw"),
        pytest.param("cross_stitch", "famo", marks=pytest.mark.slow),
    ],
)
def test_training_is_unchanged(sharing, weighting):
    """Both callbacks at once, with dropout, partial labels and a random weighting method."""
    x, y = _data()
    y["a"][::3] = np.nan  # partial labels

    def train(callbacks):
        keras.utils.set_random_seed(1)
        model = keras_mtl.build_mtl_model(
            (5,), _tasks(), sharing=sharing, weighting=weighting, shared_units=6, dropout=0.3
        )
        model.fit(x, y, batch_size=8, epochs=1, callbacks=callbacks, verbose=0, shuffle=False)
        return model

    plain = train([])
    conflict, affinity = GradientConflict(every=2), TaskAffinity(every=3)
    watched = train([conflict, affinity])
    for a, b in zip(_weights(plain), _weights(watched)):
        np.testing.assert_array_equal(a, b)
    assert len(conflict.history) == 2 * 3 and conflict.history["cosine"].notna().all()
    assert sorted(set(affinity.history.step)) == [0, 3]
    assert affinity.history["affinity"].notna().all()


def test_partial_labels_leave_absent_tasks_out():
    x, y = _data(32)
    y["c"][:16] = -1  # no label of c in the first batch (labels are not shuffled)
    model = keras_mtl.build_mtl_model(
        (5,), _tasks(), sharing="soft", weighting="uncertainty", shared_units=6
    )
    conflict = GradientConflict(every=1)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, callbacks=[conflict], verbose=0)
    history = conflict.history
    first, second = history[history.step == 0], history[history.step == 1]
    with_c = first.task_j == "c"
    assert first[with_c]["cosine"].isna().all() and first[~with_c]["cosine"].notna().all()
    assert first[with_c]["norm_j"].isna().all()
    assert second["cosine"].notna().all()


def test_logs_history_and_tensorboard(tmp_path):
    x, y = _data(48)
    model = keras_mtl.build_mtl_model((5,), _tasks(), shared_units=6)
    conflict = GradientConflict(every=2, log_dir=str(tmp_path / "conflict"))
    history = model.fit(x, y, batch_size=16, epochs=2, callbacks=[conflict], verbose=0)
    frame = conflict.history
    assert sorted(set(frame.step)) == [0, 2, 4]
    assert list(frame.epoch) == [0] * 6 + [1] * 3
    keys = ["gradient_cosine", "conflict_rate_pairs", "conflict_rate_variables",
            "gradient_norm_ratio"] + [f"gradient_cosine_{i}_{j}"
                                      for i, j in itertools.combinations("abc", 2)]
    for key in keys:
        assert len(history.history[key]) == 2, key
    epoch_1 = frame[frame.epoch == 1]
    assert history.history["gradient_cosine"][1] == pytest.approx(epoch_1.cosine.mean())
    assert history.history["conflict_rate_pairs"][1] == pytest.approx(
        (epoch_1.cosine < 0).mean()
    )
    events = glob.glob(str(tmp_path / "conflict" / "events.out.tfevents.*"))
    assert events
    tags = {
        value.tag
        for event in tf.compat.v1.train.summary_iterator(events[0])
        for value in event.summary.value
    }
    assert {"gradient_cosine", "gradient_cosine_a_b", "conflict_rate_pairs"} <= tags
    # A later fit without the callback does not run the probe any more.
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert len(conflict.history) == len(frame)


def test_works_after_keras_reload(tmp_path):
    x, y = _data()
    model = keras_mtl.build_mtl_model((5,), _tasks(), sharing="ple", shared_units=6)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    conflict = GradientConflict(every=1)
    loaded.fit(x, y, batch_size=16, epochs=1, callbacks=[conflict], verbose=0)
    assert len(conflict.history) == 2 * 3 and conflict.history.cosine.notna().all()


def test_bad_input_fails_before_training():
    for every in (0, -3, 1.5, True, "10"):
        with pytest.raises(errors.ConfigError, match="`every` must be a positive integer"):
            GradientConflict(every=every)
    x, y = _data()
    single = keras_mtl.build_mtl_model((5,), [keras_mtl.Task("a", "regression")])
    with pytest.raises(errors.ConfigError, match="single task"):
        single.fit(x, y["a"], epochs=1, callbacks=[GradientConflict()], verbose=0)
    # Inputs only and no shared layer: the heads read the inputs, nothing is shared.
    unshared = keras_mtl.build_mtl_model((5,), _tasks(), shared_layers=0)
    before = _weights(unshared)
    with pytest.raises(errors.ConfigError, match="share no trainable parameters"):
        unshared.fit(x, y, epochs=1, callbacks=[GradientConflict()], verbose=0)
    for a, b in zip(before, _weights(unshared)):
        np.testing.assert_array_equal(a, b)
    plain = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    plain.compile(loss="mse")
    with pytest.raises(errors.ConfigError, match="keras_mtl.MTLModel"):
        plain.fit(x, y["a"], epochs=1, callbacks=[GradientConflict()], verbose=0)
    with pytest.raises(errors.ConfigError, match="no measurement yet"):
        GradientConflict().matrix()
