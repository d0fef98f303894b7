"""keras_mtl.data.mix: sampling shares, missing-label markers, determinism, errors."""

import os

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl import errors
from keras_mtl.data import mix, sampling_weights

SIZES = {"a": 600, "b": 300, "c": 100}


def _tasks():
    return [
        keras_mtl.Task("a", "multiclass", num_classes=3),
        keras_mtl.Task("b", "regression"),
        keras_mtl.Task("c", "binary", missing_label=-5),
    ]


def _sources(rng=None, sizes=SIZES):
    rng = rng or np.random.default_rng(0)
    labels = {
        "a": lambda n: rng.integers(0, 3, n),
        "b": lambda n: rng.normal(size=n),
        "c": lambda n: rng.integers(0, 2, (n, 1)).astype("float32"),
    }
    return {
        name: (rng.normal(size=(n, 2)).astype("float32"), labels[name](n))
        for name, n in sizes.items()
    }


def _present(y):
    """Per task, a boolean array over the batch: which labels are not the task's marker."""
    return {
        "a": y["a"].numpy().reshape(-1) != -1,
        "b": ~np.isnan(y["b"].numpy().reshape(-1)),
        "c": y["c"].numpy().reshape(-1) != -5,
    }


def _batch_sources(stream, steps):
    """The source of each of the first `steps` batches of a per-task stream."""

    def present(x, y):
        return tf.stack([
            tf.reduce_all(y["a"] != -1), tf.reduce_any(y["a"] != -1),
            tf.reduce_all(~tf.math.is_nan(y["b"])), tf.reduce_any(~tf.math.is_nan(y["b"])),
            tf.reduce_all(y["c"] != -5), tf.reduce_any(y["c"] != -5),
        ])

    # Read in the input pipeline, in one piece: thousands of eager steps would be slow.
    flags = next(iter(stream.take(steps).map(present).batch(steps))).numpy().reshape(-1, 3, 2)
    # A whole batch from one source: that task's labels all present, the others' all missing.
    np.testing.assert_array_equal(flags[..., 0], flags[..., 1])
    np.testing.assert_array_equal(flags[..., 0].sum(axis=1), 1)
    return [list(SIZES)[i] for i in flags[..., 0].argmax(axis=1)]


def _shares(names):
    return np.array([names.count(n) / len(names) for n in SIZES])


def _assert_shares(observed, expected, draws):
    # Four binomial standard errors: a false failure about once in 15 000 runs.
    tolerance = 4 * np.sqrt(np.maximum(expected * (1 - expected), 1e-4) / draws)
    np.testing.assert_array_less(np.abs(observed - expected), tolerance)


@pytest.mark.parametrize(
    "sampling, temperature, expected",
    [
        ("proportional", None, [0.6, 0.3, 0.1]),
        ("uniform", None, [1 / 3, 1 / 3, 1 / 3]),
        ("temperature", 2.0, np.sqrt([600, 300, 100]) / np.sqrt([600, 300, 100]).sum()),
        ({"a": 1.0, "b": 0.0, "c": 3.0}, None, [0.25, 0.0, 0.75]),
    ],
)
def test_share_of_batches_per_source_matches_the_sampling(sampling, temperature, expected):
    stream = mix(
        _sources(), _tasks(), sampling=sampling, temperature=temperature, batch_size=4,
        seed=1,
    )
    names = _batch_sources(stream, 3000)
    _assert_shares(_shares(names), np.array(expected), 3000)
    if isinstance(sampling, dict):
        assert "b" not in names


def test_annealed_schedule_goes_from_proportional_to_nearly_uniform():
    stream = mix(
        _sources(), _tasks(), sampling="annealed", epochs=3, steps_per_epoch=2000,
        batch_size=2, seed=2,
    )
    names = _batch_sources(stream, 6000)
    start, end = _shares(names[:2000]), _shares(names[4000:])
    _assert_shares(start, np.array([0.6, 0.3, 0.1]), 2000)
    final = np.array([600, 300, 100], dtype=float) ** 0.2
    _assert_shares(end, final / final.sum(), 2000)
    np.testing.assert_allclose(
        sampling_weights([600, 300, 100], "annealed", epoch=2, epochs=3), final / final.sum()
    )


def test_mixed_batches_draw_each_example_with_the_sampling_share():
    stream = mix(_sources(), _tasks(), batching="mixed", batch_size=50, seed=3)
    counts, mixed_batches = np.zeros(3), 0
    for _, y in stream.take(60):
        present = _present(y)
        per_source = np.array([present[n].sum() for n in SIZES])
        # Every example carries the labels of exactly one source.
        assert per_source.sum() == 50
        mixed_batches += (per_source > 0).sum() > 1
        counts += per_source
    _assert_shares(counts / counts.sum(), np.array([0.6, 0.3, 0.1]), 3000)
    assert mixed_batches == 60


@pytest.mark.parametrize("batching", ["per_task", "mixed"])
def test_labels_outside_the_source_are_exactly_the_markers(batching):
    sources = _sources()
    stream = mix(sources, _tasks(), batch_size=8, batching=batching, repeat=False, seed=0)
    seen = {name: [] for name in SIZES}
    for x, y in stream:
        assert y["a"].dtype == tf.int64 and y["b"].dtype == tf.float32
        present = _present(y)
        for name in SIZES:
            rows = present[name]
            for other in set(SIZES) - {name}:
                values = y[other].numpy().reshape(len(rows), -1)[rows]
                if other == "b":
                    assert np.isnan(values).all()
                else:
                    assert (values == (-1 if other == "a" else -5)).all()
            seen[name].append(
                np.concatenate([x.numpy()[rows], y[name].numpy().reshape(len(rows), -1)[rows]], 1)
            )
    # One pass: every example of every source once, each with its own labels.
    for name, (x, labels) in sources.items():
        expected = np.concatenate([x, np.reshape(labels, (len(x), -1))], 1)
        got = np.concatenate(seen[name])
        np.testing.assert_allclose(got[np.lexsort(got.T)], expected[np.lexsort(expected.T)],
                                   rtol=1e-6)


def test_same_seed_same_stream_other_seed_other_stream():
    def first(seed, batching):
        stream = mix(_sources(), _tasks(), batch_size=4, seed=seed, batching=batching)
        return [x.numpy() for x, _ in stream.take(10)]

    for batching in ("per_task", "mixed"):
        np.testing.assert_array_equal(first(7, batching), first(7, batching))
        assert not np.array_equal(first(7, batching), first(8, batching))


def test_dataset_sources_several_tasks_per_source_and_tasks_without_source():
    tasks = _tasks() + [keras_mtl.Task("d", "multilabel", num_classes=2)]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 2)).astype("float32")
    both = tf.data.Dataset.from_tensor_slices(
        (x, {"a": rng.integers(0, 3, 20), "b": rng.normal(size=(20, 1)).astype("float32")})
    )
    single = tf.data.Dataset.from_tensor_slices((x[:10], np.ones((10, 1), "float32")))
    stream = mix(
        {("a", "b"): both, "c": single}, tasks, batch_size=5, repeat=False,
        allow_missing_tasks=True, seed=0,
    )
    batches = list(stream)
    assert sum(len(xb) for xb, _ in batches) == 30
    for _, y in batches:
        assert y["d"].shape == (5, 2)
        np.testing.assert_array_equal(y["d"], -1)
        assert y["b"].shape == (5, 1)
    assert stream.steps_per_epoch is None
    assert mix({("a", "b"): both, "c": single}, tasks, batch_size=5,
               allow_missing_tasks=True).steps_per_epoch == 6


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"datasets": {"zzz": ([[0.0, 0.0]], [1])}}, errors.SourceError, "unknown tasks"),
        ({"datasets": {"a": ([[0.0, 0.0]], [1])}}, errors.SourceError,
         r"Tasks \['b', 'c'\] have no source"),
        ({"sampling": "temperature", "temperature": 0.0}, errors.ConfigError,
         "temperature=0.0"),
        ({"sampling": "temperature"}, errors.ConfigError, "temperature=None"),
        ({"sampling": {"a": 1.0, "b": -1.0, "c": 1.0}}, errors.ConfigError,
         r"sampling\['b'\]=-1.0"),
        ({"sampling": {"a": 0, "b": 0, "c": 0}}, errors.ConfigError, "all be zero"),
        ({"sampling": {"a": 1.0}}, errors.ConfigError, "missing keys"),
        ({"sampling": "annealed"}, errors.ConfigError, "epochs"),
        ({"sampling": "square"}, errors.ConfigError, "sampling='square'"),
        ({"temperature": 2.0}, errors.ConfigError, "applies only"),
        ({"batching": "zip"}, errors.ConfigError, "batching='zip'"),
        ({"batch_size": 0}, errors.ConfigError, "batch_size=0"),
    ],
)
def test_bad_arguments_fail_with_a_clear_error(kwargs, error, message):
    kwargs = dict(kwargs)
    datasets = kwargs.pop("datasets", _sources())
    with pytest.raises(error, match=message):
        mix(datasets, _tasks(), **kwargs)


def test_sources_whose_inputs_differ_are_named():
    sources = _sources()
    sources["c"] = (sources["c"][0].astype("int32"), sources["c"][1])
    with pytest.raises(errors.SourceError, match=r"datasets\['c'\].*dtype"):
        mix(sources, _tasks())
    sources["c"] = ({"features": sources["b"][0][:10]}, sources["c"][1][:10])
    with pytest.raises(errors.SourceError, match=r"structure.*datasets\['c'\]"):
        mix(sources, _tasks())


def test_a_task_without_marker_cannot_be_absent():
    tasks = _tasks()[:2] + [keras_mtl.Task("c", "binary", missing_label=None)]
    with pytest.raises(errors.SourceError, match="'c' marks no missing labels"):
        mix(_sources(), tasks)


# === Per-task evaluation ===


def _two_tasks():
    return [
        keras_mtl.Task("topic", "multiclass", num_classes=3),
        keras_mtl.Task("score", "regression"),
    ]


def _two_sources(rng, train=True):
    n_topic, n_score = (90, 60) if train else (30, 20)
    x_topic = rng.normal(size=(n_topic, 4)).astype("float32")
    x_score = rng.normal(size=(n_score, 4)).astype("float32")
    return {
        "topic": (x_topic, (x_topic[:, 0] > 0).astype("int64") + (x_topic[:, 1] > 1)),
        "score": (x_score, x_score[:, 2] - x_score[:, 3]),
    }


def test_evaluate_per_task_scores_each_task_on_its_own_data():
    tasks = _two_tasks()
    model = keras_mtl.build_mtl_model((4,), tasks, shared_units=8)
    valid = _two_sources(np.random.default_rng(1), train=False)
    frame = keras_mtl.data.evaluate_per_task(model, valid, batch_size=7)
    assert frame.index.tolist() == ["topic", "score"]
    x, y = valid["topic"]
    p = model.predict(x, verbose=0)["topic"]
    assert frame.loc["topic", "accuracy"] == pytest.approx(np.mean(p.argmax(1) == y))
    assert frame.loc["topic", "loss"] == pytest.approx(
        -np.mean(np.log(p[np.arange(len(y)), y])), rel=1e-4
    )
    x, y = valid["score"]
    p = model.predict(x, verbose=0)["score"][:, 0]
    assert frame.loc["score", "mae"] == pytest.approx(np.mean(np.abs(p - y)), rel=1e-5)
    assert frame.loc["score", "loss"] == pytest.approx(np.mean((p - y) ** 2), rel=1e-5)
    assert np.isnan(frame.loc["score", "accuracy"])
    assert frame["examples"].tolist() == [30, 20]


def test_callback_logs_per_task_metrics_for_early_stopping_and_checkpoints(tmp_path):
    tasks = _two_tasks()
    rng = np.random.default_rng(0)
    train, valid = _two_sources(rng), _two_sources(rng, train=False)
    model = keras_mtl.build_mtl_model((4,), tasks, shared_units=8)
    before = [w.copy() for w in model.get_weights()]
    evaluation = keras_mtl.data.PerTaskEvaluation(valid, batch_size=16)
    path = str(tmp_path / "best.keras")
    stream = mix(train, tasks, batch_size=30, seed=0)
    assert stream.steps_per_epoch == 5
    history = model.fit(
        stream, epochs=2, verbose=0,
        callbacks=[
            evaluation,
            keras.callbacks.EarlyStopping("val_topic_loss", patience=5, mode="min"),
            keras.callbacks.ModelCheckpoint(
                path, "val_score_mae", save_best_only=True, mode="min"
            ),
        ],
    )
    for name in ("val_topic_loss", "val_topic_accuracy", "val_score_loss", "val_score_mae"):
        assert len(history.history[name]) == 2
    assert "val_score_accuracy" not in history.history
    # The logged values are the last epoch's per-task table.
    assert history.history["val_score_mae"][-1] == evaluation.frames[-1].loc["score", "mae"]
    assert os.path.exists(path)
    # `fit` ran the stream's epochs of `steps_per_epoch` batches, and learned.
    assert model.optimizer.iterations.numpy() == 10
    assert all(np.isfinite(v).all() for v in history.history.values())
    assert any(not np.allclose(b, a) for b, a in zip(before, model.get_weights()))


@pytest.mark.slow
def test_hypermodel_tunes_the_sampling_temperature(tmp_path, monkeypatch):
    tasks = _two_tasks()
    rng = np.random.default_rng(0)
    train, valid = _two_sources(rng), _two_sources(rng, train=False)
    hypermodel = keras_mtl.MTLHyperModel(
        keras.Input((4,)), tasks,
        search_space={"sampling_temperature": (1.0, 8.0), "loss_weight": None,
                      "shared_layers": None, "dropout": None, "learning_rate": None},
        mix_options={"batch_size": 30, "seed": 0}, shared_units=8,
    )
    temperatures = []
    original = keras_mtl.data.mix

    def recording_mix(*args, **kwargs):
        if kwargs.get("repeat", True):
            temperatures.append((kwargs.get("sampling"), kwargs.get("temperature")))
        return original(*args, **kwargs)

    monkeypatch.setattr(keras_mtl.data, "mix", recording_mix)
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=2, seed=3,
        directory=str(tmp_path), project_name="p",
    )
    tuner.search(train, validation_data=valid, epochs=1, verbose=0)
    trials = list(tuner.oracle.trials.values())
    chosen = [t.hyperparameters.values["sampling_temperature"] for t in trials]
    assert all(t.status == "COMPLETED" for t in trials)
    assert all(np.isfinite(t.score) for t in trials)
    assert temperatures == [("temperature", value) for value in chosen]
    assert len(set(chosen)) == 2


def test_hypermodel_temperature_needs_separate_data_sets():
    with pytest.raises(errors.ConfigError, match="mix_options"):
        keras_mtl.MTLHyperModel(
            keras.Input((4,)), _two_tasks(), search_space={"sampling_temperature": True},
            mix_options={"sampling": "uniform"},
        )
    with pytest.raises(errors.ConfigError, match="unknown keys"):
        keras_mtl.MTLHyperModel(keras.Input((4,)), _two_tasks(), mix_options={"bacth": 1})


# === Weighting methods with tasks absent from whole batches ===


def _topic_batch(tasks, data):
    stream = mix({"topic": data["topic"]}, tasks, batch_size=30, allow_missing_tasks=True)
    return next(iter(stream))


@pytest.mark.parametrize("method", ["gradnorm", "pcgrad"])
def test_a_task_absent_from_a_per_task_batch_is_left_alone(method):
    tasks = _two_tasks()
    data = _two_sources(np.random.default_rng(0))
    model = keras_mtl.build_mtl_model((4,), tasks, shared_units=8, weighting=method)
    heads = {n: model.get_layer(n).kernel.numpy().copy() for n in ("topic", "score")}
    x, y = _topic_batch(tasks, data)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert logs["score_loss"] == 0.0
    # The absent task's head gets no gradient: the first step leaves it as it was.
    np.testing.assert_array_equal(model.get_layer("score").kernel.numpy(), heads["score"])
    assert not np.allclose(model.get_layer("topic").kernel.numpy(), heads["topic"])
    state = model._weighting_state
    if method == "gradnorm":
        # The initial loss of the absent task waits for its first batch.
        initial = state.get("initial_losses").numpy()
        assert initial[0] == pytest.approx(logs["topic_loss"], rel=1e-5)
        assert initial[1] == 0.0


def test_dwa_epoch_losses_count_only_the_batches_of_each_task():
    tasks = _two_tasks()
    data = _two_sources(np.random.default_rng(0))
    model = keras_mtl.build_mtl_model((4,), tasks, shared_units=8, weighting="dwa")
    history = model.fit(mix(data, tasks, batch_size=30, seed=0), epochs=2, verbose=0)
    # The first epoch's mean losses, recorded when the second began: the mean over the
    # batches holding each task (all of one size), as Keras logs them, not diluted by the
    # batches of the other source.
    recorded = model._weighting_state.get("epoch_losses").numpy()[0]
    np.testing.assert_allclose(
        recorded, [history.history["topic_loss"][0], history.history["score_loss"][0]],
        rtol=1e-4,
    )


# === Training on a mixed stream ===


def _learnable_sources(rng, n_topic, n_score):
    x_topic = rng.normal(size=(n_topic, 4)).astype("float32")
    x_score = rng.normal(size=(n_score, 4)).astype("float32")
    topic = (x_topic[:, 0] + x_topic[:, 1] > 0).astype("int64") + (x_topic[:, 2] > 0.8)
    return {
        "topic": (x_topic, topic),
        "score": (x_score, (x_score[:, 2] - 0.5 * x_score[:, 3]).astype("float32")),
    }


@pytest.mark.slow
def test_mixed_stream_reaches_the_metrics_of_data_merged_by_hand():
    tasks = _two_tasks()
    rng = np.random.default_rng(0)
    train = _learnable_sources(rng, 600, 400)
    valid = _learnable_sources(rng, 300, 300)
    (xt, yt), (xs, ys) = train["topic"], train["score"]
    merged_x = np.concatenate([xt, xs])
    merged_y = {
        "topic": np.concatenate([yt, np.full(len(xs), -1)]),
        "score": np.concatenate([np.full(len(xt), np.nan, "float32"), ys]),
    }
    results = {}
    for name in ("stream", "merged"):
        keras.utils.set_random_seed(1)
        model = keras_mtl.build_mtl_model((4,), tasks, shared_units=32, learning_rate=3e-3)
        if name == "stream":
            model.fit(mix(train, tasks, batch_size=32, seed=0), epochs=10, verbose=0)
        else:
            model.fit(merged_x, merged_y, batch_size=32, epochs=10, verbose=0)
        results[name] = keras_mtl.data.evaluate_per_task(model, valid, batch_size=300)
    stream, merged = results["stream"], results["merged"]
    # Both learn (chance accuracy is about 0.4, the labels' variance 1.25) ...
    assert merged.loc["topic", "accuracy"] > 0.85 and merged.loc["score", "loss"] < 0.1
    # ... and the stream gets about as far as the same data merged by hand.
    assert abs(stream.loc["topic", "accuracy"] - merged.loc["topic", "accuracy"]) < 0.04
    assert stream.loc["score", "loss"] < max(1.5 * merged.loc["score", "loss"], 0.03)
