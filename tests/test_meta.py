"""keras_mtl.meta: the meta-gradients against independent computations, the learners'
saving, task distributions, adaptation, and bad input failing before training."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl import errors, meta

# === Helpers ===


def _tiny(dtype="float32", hidden=3, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((1,), dtype=dtype),
            keras.layers.Dense(hidden, activation="tanh", dtype=dtype, name="body"),
            keras.layers.Dense(1, dtype=dtype, name="head"),
        ]
    )


def _batch(tasks=2, shots=4, query=3, dtype="float32", seed=0):
    batch = keras_mtl.datasets.sinusoid_tasks().sample_batch(tasks, shots, query, seed=seed)
    return tf.nest.map_structure(lambda a: a.astype(dtype), batch)


def _weights(model):
    return [np.array(v) for v in model.trainable_variables]


def _sgd_step(learner, batch, learning_rate):
    """The update of one outer SGD step, divided by minus the learning rate: the gradient."""
    before = _weights(learner.model)
    (x_s, y_s), (x_q, y_q) = batch
    learner.train_on_batch(x=(x_s, y_s), y=(x_q, y_q))
    return [(b - a) / learning_rate for b, a in zip(before, _weights(learner.model))]


def _mse64():
    return keras.losses.MeanSquaredError(dtype="float64")


def _query_loss_after_adaptation(learner, batch):
    """A function: weight values -> mean query loss after the inner loop (no outer tape)."""
    (x_s, y_s), (x_q, y_q) = batch
    non_trainable = [v.value for v in learner.model.non_trainable_variables]

    @tf.function
    def loss(values):
        losses = []
        for t in range(len(x_s)):
            adapted, _ = learner.inner_loop(values, non_trainable, x_s[t], y_s[t],
                                            learner.inner_steps, first_order=True)
            losses.append(learner.loss_at(adapted, non_trainable, x_q[t], y_q[t])[0])
        return tf.reduce_mean(tf.stack(losses))

    return lambda values: float(loss(values))


# === Meta-gradients ===


def test_second_order_maml_gradient_matches_finite_differences():
    model = _tiny("float64", hidden=2)
    learner = meta.MAML(model, inner_lr=0.3, inner_steps=2)
    rate = 1e-3
    learner.compile(optimizer=keras.optimizers.SGD(rate), loss=_mse64())
    batch = _batch(dtype="float64")
    initial = [tf.constant(w) for w in _weights(model)]

    eps = 1e-6
    query_loss = _query_loss_after_adaptation(learner, batch)
    numeric = []
    for i, w in enumerate(initial):
        grad = np.zeros(w.shape)
        for index in np.ndindex(*w.shape):
            shift = np.zeros(w.shape)
            shift[index] = eps
            plus = list(initial)
            plus[i] = w + shift
            minus = list(initial)
            minus[i] = w - shift
            grad[index] = (query_loss(plus) - query_loss(minus)) / (2 * eps)
        numeric.append(grad)

    analytic = _sgd_step(learner, batch, rate)
    numeric_flat = np.concatenate([g.ravel() for g in numeric])
    analytic_flat = np.concatenate([g.ravel() for g in analytic])
    error = np.linalg.norm(analytic_flat - numeric_flat) / np.linalg.norm(numeric_flat)
    assert error < 1e-3

    # The second-order term matters here, so the check can tell first order apart.
    first = meta.MAML(_tiny("float64", hidden=2), inner_lr=0.3, inner_steps=2,
                      first_order=True)
    first.compile(optimizer=keras.optimizers.SGD(rate), loss=_mse64())
    first_flat = np.concatenate([g.ravel() for g in _sgd_step(first, batch, rate)])
    assert np.linalg.norm(first_flat - numeric_flat) / np.linalg.norm(numeric_flat) > 1e-2


def test_first_order_maml_gradient_is_the_query_gradient_at_adapted_weights():
    model = _tiny("float64")
    learner = meta.MAML(model, inner_lr=0.3, inner_steps=2, first_order=True)
    rate = 1e-3
    learner.compile(optimizer=keras.optimizers.SGD(rate), loss=_mse64())
    batch = _batch(tasks=3, dtype="float64")
    (x_s, y_s), (x_q, y_q) = batch
    non_trainable = []
    initial = [tf.constant(w) for w in _weights(model)]
    expected = [np.zeros(w.shape) for w in initial]
    for t in range(3):
        adapted, _ = learner.inner_loop(initial, non_trainable, x_s[t], y_s[t], 2,
                                        first_order=True)
        adapted = [tf.constant(np.array(a)) for a in adapted]
        with tf.GradientTape() as tape:
            tape.watch(adapted)
            loss, _ = learner.loss_at(adapted, non_trainable, x_q[t], y_q[t])
        for total, grad in zip(expected, tape.gradient(loss, adapted)):
            total += np.array(grad) / 3

    for got, want in zip(_sgd_step(learner, batch, rate), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_reptile_update_is_step_size_times_adapted_minus_initial():
    step_size, inner_lr, steps = 0.5, 0.1, 3
    learner = meta.Reptile(_tiny(), inner_lr=inner_lr, inner_steps=steps)
    learner.compile(optimizer=keras.optimizers.SGD(step_size), loss="mse")
    batch = _batch(tasks=2)
    (x_s, y_s), (x_q, y_q) = batch
    initial = _weights(learner.model)

    # Each task adapted independently, with plain Keras training steps on a copy.
    adapted = []
    for t in range(2):
        copy = _tiny()
        copy.set_weights(learner.model.get_weights())
        copy.compile(optimizer=keras.optimizers.SGD(inner_lr), loss="mse")
        for _ in range(steps):
            copy.train_on_batch(x_s[t], y_s[t])
        adapted.append(_weights(copy))

    learner.train_on_batch(x=(x_s, y_s), y=(x_q, y_q))
    for i, (theta, new) in enumerate(zip(initial, _weights(learner.model))):
        phi = np.mean([a[i] for a in adapted], axis=0)
        np.testing.assert_allclose(new, theta + step_size * (phi - theta), rtol=1e-4, atol=1e-6)


def test_maml_without_inner_steps_is_plain_training_on_the_query_sets():
    learner = meta.MAML(_tiny(), inner_lr=0.1, inner_steps=0)
    learner.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    plain = _tiny()
    plain.set_weights(learner.model.get_weights())
    plain.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    (x_s, y_s), (x_q, y_q) = _batch(tasks=3, query=4)

    logs = learner.train_on_batch(x=(x_s, y_s), y=(x_q, y_q), return_dict=True)
    plain_loss = plain.train_on_batch(x_q.reshape(-1, 1), y_q.reshape(-1, 1))
    for got, want in zip(_weights(learner.model), _weights(plain)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert logs["loss"] == pytest.approx(float(plain_loss), rel=1e-5)


def test_anil_adapts_only_the_head_and_meta_learns_the_body():
    learner = meta.ANIL(_tiny(), head_layers=1, inner_lr=0.5, inner_steps=2)
    learner.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model = learner.model
    assert [id(v) for v in learner.adapted_variables()] == [
        id(v) for v in model.get_layer("head").trainable_variables
    ]
    (x_s, y_s), (x_q, y_q) = _batch()
    adapted = learner.adapt(x_s[0], y_s[0], steps=3)
    np.testing.assert_array_equal(adapted.get_layer("body").get_weights()[0],
                                  model.get_layer("body").get_weights()[0])
    assert not np.allclose(adapted.get_layer("head").get_weights()[0],
                           model.get_layer("head").get_weights()[0])

    body = model.get_layer("body").get_weights()[0]
    learner.train_on_batch(x=(x_s, y_s), y=(x_q, y_q))
    assert not np.allclose(model.get_layer("body").get_weights()[0], body)


def test_learned_inner_rates_move_and_are_used():
    learner = meta.MAML(_tiny(), inner_lr=0.1, learn_inner_lr=True)
    learner.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    assert len(learner.inner_lrs) == len(learner.model.trainable_variables)
    (x_s, y_s), (x_q, y_q) = _batch()
    learner.train_on_batch(x=(x_s, y_s), y=(x_q, y_q))
    rates = [float(v) for v in learner.inner_lrs]
    assert any(abs(r - 0.1) > 1e-6 for r in rates)


# === Saving ===


@pytest.mark.parametrize(
    "make",
    [
        lambda m: meta.MAML(m, inner_lr=0.05, inner_steps=2, learn_inner_lr=True),
        lambda m: meta.MAML(m, first_order=True),
        lambda m: meta.ANIL(m, head_layers=1),
        lambda m: meta.Reptile(m, inner_lr=0.05, inner_steps=3),
    ],
    ids=["meta_sgd", "fomaml", "anil", "reptile"],
)
def test_learner_saves_and_reloads_in_safe_mode(make, tmp_path):
    learner = make(_tiny())
    learner.compile(optimizer="adam", loss="mse")
    episodes = keras_mtl.datasets.sinusoid_tasks().episodes(2, shots=3, query_size=3, seed=0)
    learner.fit(episodes, epochs=1, steps_per_epoch=1, verbose=0)
    path = str(tmp_path / "learner.keras")
    learner.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)

    assert type(loaded) is type(learner)
    as_json = lambda config: json.loads(json.dumps(config))  # noqa: E731 - tuples as lists
    assert as_json(loaded.get_config()) == as_json(learner.get_config())
    x = np.linspace(-5, 5, 7, dtype="float32")[:, None]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), learner.predict(x, verbose=0),
                               rtol=1e-6)
    (x_s, y_s), _ = _batch()
    np.testing.assert_allclose(loaded.adapt(x_s[0], y_s[0]).predict(x, verbose=0),
                               learner.adapt(x_s[0], y_s[0]).predict(x, verbose=0), rtol=1e-5)
    assert loaded.optimizer.iterations.numpy() == 1


# === Training with fit ===


def test_fit_logs_query_and_support_losses_and_metrics():
    learner = meta.MAML(_tiny(), inner_lr=0.05)
    learner.compile(optimizer="adam", loss="mse", metrics=["mae"])
    tasks = keras_mtl.datasets.sinusoid_tasks()
    history = learner.fit(
        tasks.episodes(3, shots=4, query_size=4, seed=0), epochs=2, steps_per_epoch=3,
        validation_data=tasks.split("val").episodes(3, shots=4, query_size=4, seed=1,
                                                    num_batches=2),
        verbose=0,
    )
    assert sorted(history.history) == [
        "loss", "mae", "support_loss", "val_loss", "val_mae", "val_support_loss"
    ]
    assert all(np.isfinite(v) for values in history.history.values() for v in values)


def test_adapt_returns_a_new_model_and_leaves_the_learner_unchanged():
    learner = meta.MAML(_tiny(), inner_lr=0.1)
    learner.compile(loss="mse")
    before = _weights(learner.model)
    (x_s, y_s), _ = _batch(shots=10)
    adapted = learner.adapt(x_s[0], y_s[0], steps=5)
    assert adapted is not learner.model
    for got, want in zip(_weights(learner.model), before):
        np.testing.assert_array_equal(got, want)
    loss = keras.losses.MeanSquaredError()
    assert float(loss(y_s[0], adapted.predict(x_s[0], verbose=0))) < float(
        loss(y_s[0], learner.predict(x_s[0], verbose=0))
    )
    # The values equal the inner loop's, computed step by step with Keras' SGD.
    copy = _tiny()
    copy.set_weights(learner.model.get_weights())
    copy.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    for _ in range(5):
        copy.train_on_batch(x_s[0], y_s[0])
    for got, want in zip(_weights(adapted), _weights(copy)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_evaluate_adaptation_reports_learner_and_baseline_with_intervals():
    learner = meta.MAML(_tiny(), inner_lr=0.1)
    learner.compile(loss="mse")
    tasks = keras_mtl.datasets.sinusoid_tasks()
    baseline = meta.pooled_baseline(_tiny(seed=1), tasks, loss="mse", epochs=1,
                                    num_examples=256)
    test = tasks.split("test")
    table = meta.evaluate_adaptation(learner, test, shots=5, steps=(0, 1, 3), num_tasks=3,
                                     query_size=10, baseline=baseline)
    assert list(table["model"]) == ["MAML"] * 3 + ["baseline"] * 3
    assert list(table["steps"]) == [0, 1, 3] * 2
    assert (table["loss_ci95"] > 0).all()
    np.testing.assert_allclose(table["loss"], table["mse"], rtol=1e-5)
    # The same numbers from `adapt` on the same tasks, and a different baseline.
    for steps in (0, 3):
        errors_ = []
        for i in range(3):
            (x_s, y_s), (x_q, y_q) = test.sample_task(5, 10, seed=i)
            y_pred = learner.adapt(x_s, y_s, steps=steps).predict(x_q, verbose=0)
            errors_.append(np.mean((y_pred - y_q) ** 2))
        row = table[(table["model"] == "MAML") & (table["steps"] == steps)]
        assert float(row["loss"].iloc[0]) == pytest.approx(np.mean(errors_), rel=1e-4)
        assert float(row["loss_ci95"].iloc[0]) == pytest.approx(
            1.96 * np.std(errors_, ddof=1) / np.sqrt(3), rel=1e-3)
    assert not np.allclose(table["loss"][:3], table["loss"][3:])


def test_registry():
    model = _tiny()
    assert meta.names() == ["anil", "maml", "meta_sgd", "reptile"]
    learner = meta.get("maml", model, inner_steps=2)
    assert isinstance(learner, meta.MAML) and learner.inner_steps == 2
    assert meta.get(learner) is learner
    with pytest.raises(errors.ConfigError, match="Valid names"):
        meta.get("mamal", model)


# === Task distributions ===


def test_sinusoid_tasks_follow_the_maml_setup():
    tasks = keras_mtl.datasets.sinusoid_tasks()
    (x_s, y_s), (x_q, y_q) = tasks.sample_batch(50, shots=5, query_size=10, seed=0)
    assert x_s.shape == (50, 5, 1) and y_q.shape == (50, 10, 1)
    assert x_s.dtype == np.float32 and np.all(np.abs(x_s) <= 5)
    assert np.all(np.abs(y_s) <= 5)
    # Support and query come from the same sinusoid.
    rng = np.random.default_rng(0)
    task = tasks.draw_task(rng)
    (xs, ys), (xq, yq) = tasks.draw_examples(task, rng, 3, 4)
    np.testing.assert_allclose(yq, task[0] * np.sin(xq - task[1]), rtol=1e-5)
    first = next(iter(tasks.episodes(4, 5, 10, seed=3)))
    again = next(iter(tasks.episodes(4, 5, 10, seed=3)))
    np.testing.assert_array_equal(first[0][0], again[0][0])
    test = next(iter(tasks.split("test").episodes(4, 5, 10, seed=3)))
    assert not np.allclose(first[0][0], test[0][0])


def test_few_shot_digits_has_disjoint_rotated_classes_and_fresh_labels():
    tasks = keras_mtl.datasets.few_shot_digits(ways=5)
    classes = tasks.split_classes
    assert sorted(np.concatenate(list(classes.values())).tolist()) == list(range(40))
    assert [len(classes[s]) for s in ("train", "val", "test")] == [24, 8, 8]
    assert tasks.split("test").num_classes == 8
    (x_s, y_s), (x_q, y_q) = tasks.sample_batch(3, shots=2, query_size=3, seed=0)
    assert x_s.shape == (3, 10, 8, 8, 1) and y_s.shape == (3, 10) and y_q.shape == (3, 15)
    assert y_s.dtype == np.int32
    for labels in y_s:
        assert np.bincount(labels).tolist() == [2] * 5
    # A class's label is drawn afresh for each task.
    rng = np.random.default_rng(0)
    orders = [tuple(tasks.draw_task(rng)) for _ in range(20)]
    assert len(set(orders)) > 1
    assert set(np.concatenate(orders)) <= set(classes["train"].tolist())
    # Rotations: class c + 10 holds the digits of class c turned by 90 degrees.
    x0 = tasks.x[tasks.classes == 3][0, ..., 0]
    x1 = tasks.x[tasks.classes == 13][0, ..., 0]
    np.testing.assert_array_equal(np.rot90(x0), x1)


# === Multi-task models ===


@pytest.mark.slow
def test_mtl_model_meta_trains_then_adapts_a_new_task(tmp_path):
    keras.utils.set_random_seed(0)
    tasks = [keras_mtl.Task("wave", "regression")]
    model = keras_mtl.build_mtl_model((1,), tasks, shared_layers=1, shared_units=8)
    learner = meta.MAML(model, inner_lr=0.05)
    learner.compile(optimizer="adam")  # the tasks' own losses
    episodes = keras_mtl.datasets.sinusoid_tasks().episodes(2, shots=4, query_size=4, seed=0)
    before = [np.array(v) for v in model.trainable_variables]
    history = learner.fit(episodes, epochs=1, steps_per_epoch=2, verbose=0)
    assert {"loss", "support_loss"} <= set(history.history)
    assert all(not np.allclose(b, a) for b, a in zip(before, model.trainable_variables))

    bigger = keras_mtl.add_task(learner.model, keras_mtl.Task("new", "regression"))
    (x_s, y_s), _ = keras_mtl.datasets.sinusoid_tasks().sample_task(5, 5, seed=2)
    adapted = meta.MAML(bigger, inner_lr=0.1).adapt(x_s, {"new": y_s}, steps=5)
    assert isinstance(adapted, keras_mtl.MTLModel)
    assert adapted.task_names == ["wave", "new"]
    np.testing.assert_array_equal(  # the trunk is frozen by add_task
        adapted.structure.shared_variables(trainable=False)[0],
        bigger.structure.shared_variables(trainable=False)[0],
    )
    moved = [not np.allclose(a, b) for a, b in zip(adapted.get_weights(), bigger.get_weights())]
    assert any(moved)
    keras_mtl.export_saved_model(adapted, str(tmp_path / "export"))


# === Bad input ===


def _dataset(x_s, y_s, x_q, y_q):
    return tf.data.Dataset.from_tensors(((x_s, y_s), (x_q, y_q)))


def test_bad_episodes_fail_before_training():
    learner = meta.MAML(_tiny(), inner_lr=0.1)
    learner.compile(optimizer="sgd", loss="mse")
    before = _weights(learner.model)
    z = np.zeros
    cases = [
        (_dataset(z((2, 3, 1)), z((2, 3, 1)), z((2, 3, 2)), z((2, 3, 1))), "disagree"),
        (_dataset(z((2, 3, 1)), z((2, 3, 1)), z((3, 3, 1)), z((3, 3, 1))), "number of tasks"),
        (_dataset(z((2, 0, 1)), z((2, 0, 1)), z((2, 3, 1)), z((2, 3, 1))), "at least one"),
        (_dataset(z((2, 3, 1)), z((2, 3, 4)), z((2, 3, 1)), z((2, 3, 4))), r"shape \(1,\)"),
        (tf.data.Dataset.from_tensors((z((2, 3, 1)), z((2, 3, 1)))), "episodes"),
    ]
    for data, message in cases:
        with pytest.raises(errors.EpisodeError, match=message):
            learner.fit(data, epochs=1, verbose=0)
    with pytest.raises(errors.EpisodeError, match="disagree"):
        learner.fit((z((4, 3, 1)), z((4, 3, 1))), (z((4, 3, 2)), z((4, 3, 1))), verbose=0)
    for got, want in zip(_weights(learner.model), before):
        np.testing.assert_array_equal(got, want)


def test_bad_arguments_are_named():
    tasks = keras_mtl.datasets.sinusoid_tasks()
    with pytest.raises(errors.ConfigError, match="`shots` must be an integer >= 1"):
        tasks.episodes(2, shots=0, query_size=3)
    for value in (0, -0.1, "0.1", float("nan"), True):
        with pytest.raises(errors.ConfigError, match="`inner_lr` must be a positive number"):
            meta.MAML(_tiny(), inner_lr=value)
    frozen = _tiny()
    frozen.trainable = False
    with pytest.raises(errors.ConfigError, match="no trainable|has none"):
        meta.Reptile(frozen)
    with pytest.raises(errors.ConfigError, match="`head_layers` must leave a body"):
        meta.ANIL(_tiny(), head_layers=2)
    with pytest.raises(errors.ConfigError, match="`ways` must be at most 8"):
        keras_mtl.datasets.few_shot_digits(ways=9)
    learner = meta.MAML(_tiny())
    with pytest.raises(errors.ConfigError, match="`loss` is needed"):
        learner.compile(optimizer="adam")
    learner.compile(loss="mse")
    x = np.zeros((5, 1), "float32")
    with pytest.raises(errors.EpisodeError, match=r"y_support.*shape \(1,\).*\(3,\)"):
        learner.adapt(x, np.zeros((5, 3), "float32"))
    with pytest.raises(errors.EpisodeError, match="same number of examples"):
        learner.adapt(x, np.zeros((4, 1), "float32"))
