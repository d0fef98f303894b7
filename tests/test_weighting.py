import numpy as np
import pytest
import keras
import tensorflow as tf

import keras_mtl
from keras_mtl import errors, weighting
from keras_mtl.weighting import gradients
from keras_mtl.weighting.cagrad import cagrad_coefficients
from keras_mtl.weighting.dwa import dwa_weights
from keras_mtl.weighting.gradnorm import gradnorm_gradient
from keras_mtl.weighting.pcgrad import pcgrad_coefficients

ALL = {
    "static": weighting.Static,
    "uncertainty": weighting.Uncertainty,
    "dwa": weighting.DWA,
    "rlw": weighting.RLW,
    "gradnorm": weighting.GradNorm,
    "pcgrad": weighting.PCGrad,
    "mgda": weighting.MGDA,
    "cagrad": weighting.CAGrad,
    "famo": weighting.FAMO,
    "imtl": weighting.IMTL,
    "aligned_mtl": weighting.AlignedMTL,
    "upgrad": weighting.UPGrad,
    "nash_mtl": weighting.NashMTL,
    "db_mtl": weighting.DBMTL,
    "gradvac": weighting.GradVac,
}


def _gram(*vectors):
    g = np.stack(vectors)
    return tf.constant(g @ g.T, "float32")


# === Registry and arguments ===


def test_registry_names_and_lookup():
    assert weighting.names() == sorted(ALL)
    for name, cls in ALL.items():
        method = weighting.get(name)
        assert type(method) is cls
        config = keras.saving.serialize_keras_object(method)
        assert type(weighting.get(config)) is cls
        assert type(method).from_config(method.get_config()).get_config() == method.get_config()
    instance = weighting.PCGrad(mode="rep")
    assert weighting.get(instance) is instance


def test_unknown_name_lists_valid_names():
    with pytest.raises(errors.ConfigError, match="Valid names: .*'pcgrad'"):
        weighting.get("pcgard")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: weighting.PCGrad(mode="fast"), "`mode` must be one of"),
        (lambda: weighting.CAGrad(c=-1), "Received: c=-1"),
        (lambda: weighting.DWA(temperature=0), "Received: temperature=0"),
        (lambda: weighting.GradNorm(alpha=-0.5), "Received: alpha=-0.5"),
        (lambda: weighting.Uncertainty(learning_rate=0), "Received: learning_rate=0"),
    ],
)
def test_bad_arguments_name_themselves(make, message):
    with pytest.raises(errors.ConfigError, match=message):
        make()


# === Combination rules against hand computation ===


def test_pcgrad_projects_conflicting_gradients_as_the_paper():
    g1 = np.array([1.0, 0.0, 2.0])
    g2 = np.array([-1.0, 1.0, 0.2])
    assert g1 @ g2 < 0
    present = tf.constant([True, True])
    for order in ([[0, 1], [1, 0]], [[1, 0], [0, 1]]):
        alpha = pcgrad_coefficients(_gram(g1, g2), present, tf.constant(order)).numpy()
        update = alpha[0] * g1 + alpha[1] * g2
        p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
        p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
        np.testing.assert_allclose(update, p1 + p2, rtol=1e-5)


def test_pcgrad_leaves_agreeing_gradients_alone():
    g1 = np.array([1.0, 0.5, 0.0])
    g2 = np.array([0.2, 1.0, 3.0])
    alpha = pcgrad_coefficients(
        _gram(g1, g2), tf.constant([True, True]), tf.constant([[1, 0], [0, 1]])
    ).numpy()
    np.testing.assert_allclose(alpha, [1.0, 1.0])


def test_mgda_two_tasks_matches_closed_form():
    rng = np.random.default_rng(1)
    for _ in range(5):
        g1, g2 = rng.normal(size=(2, 6))
        expected = np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0, 1)
        alpha = gradients.min_norm_weights(_gram(g1, g2), tf.constant([True, True])).numpy()
        np.testing.assert_allclose(alpha, [expected, 1 - expected], atol=1e-5)


def test_mgda_min_norm_point_for_three_tasks_is_optimal():
    rng = np.random.default_rng(2)
    g = rng.normal(size=(3, 4))
    alpha = gradients.min_norm_weights(_gram(*g), tf.constant([True, True, True])).numpy()
    assert alpha.min() >= 0 and abs(alpha.sum() - 1) < 1e-5
    best = np.linalg.norm(alpha @ g)
    grid = rng.dirichlet(np.ones(3), size=5000)
    assert best <= np.linalg.norm(grid @ g, axis=1).min() + 1e-4


def test_absent_task_takes_no_part():
    g1, g2, g3 = np.eye(3)[0], -np.eye(3)[0] + np.eye(3)[1], np.eye(3)[2]
    present = tf.constant([True, False, True])
    alpha = gradients.min_norm_weights(_gram(g1, g2, g3), present).numpy()
    assert alpha[1] == 0
    alpha = pcgrad_coefficients(_gram(g1, g2, g3), present, tf.constant([[0, 1, 2]] * 3)).numpy()
    np.testing.assert_allclose(alpha, [1, 0, 1])


def test_cagrad_with_c_zero_is_the_mean_gradient():
    rng = np.random.default_rng(3)
    g = rng.normal(size=(3, 5))
    alpha = cagrad_coefficients(_gram(*g), tf.constant([True] * 3), c=0.0).numpy()
    np.testing.assert_allclose(alpha @ g, g.mean(axis=0), rtol=1e-6)


def test_cagrad_improves_the_worst_task_over_the_mean():
    g1 = np.array([1.0, 0.0])
    g2 = np.array([-0.8, 0.3])
    alpha = cagrad_coefficients(_gram(g1, g2), tf.constant([True, True]), c=0.5).numpy()
    d = alpha @ np.stack([g1, g2])
    mean = (g1 + g2) / 2
    worst = lambda v: min(v @ g1, v @ g2) / np.linalg.norm(v)  # noqa: E731
    assert worst(d) > worst(mean)


def test_dwa_weights_match_the_formula():
    last = np.array([0.5, 0.9, 0.3])
    before = np.array([1.0, 1.0, 0.2])
    temperature = 2.0
    r = last / before
    expected = 3 * np.exp(r / temperature) / np.exp(r / temperature).sum()
    np.testing.assert_allclose(dwa_weights(last, before, temperature).numpy(), expected, 1e-6)


def test_gradnorm_gradient_pushes_towards_the_target():
    weights = tf.constant([1.0, 1.0])
    norms = tf.constant([2.0, 1.0])
    # G = w * norms = (2, 1), mean 1.5. Task 1 has trained less (loss ratio 1.0 vs 0.2).
    grad = gradnorm_gradient(
        weights, norms, tf.constant([1.0, 0.2]), tf.constant([1.0, 1.0]),
        tf.constant([True, True]), alpha=1.0,
    ).numpy()
    # r = (1/0.6, 0.2/0.6); targets (2.5, 0.5): grow w_1 (negative gradient), shrink w_2.
    np.testing.assert_allclose(grad, [-2.0, 1.0])


# === Training ===


def _tasks():
    return [
        keras_mtl.Task("a", "regression"),
        keras_mtl.Task("b", "binary"),
        keras_mtl.Task("c", "multiclass", num_classes=3, head_units=(8,)),
    ]


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = {
        "a": (x[:, :1] * 2).astype("float32"),
        "b": (x[:, 1:2] > 0).astype("int32"),
        "c": (np.digitize(x[:, 2], [-0.5, 0.5])).astype("int32"),
    }
    return x, y


METHODS = [
    weighting.Static(),
    weighting.Uncertainty(),
    weighting.DWA(),
    weighting.RLW(),
    weighting.GradNorm(mode="rep"),
    weighting.GradNorm(mode="exact"),
    weighting.PCGrad(mode="exact"),
    weighting.PCGrad(mode="rep"),
    weighting.MGDA(mode="rep"),
    weighting.MGDA(mode="exact"),
    weighting.CAGrad(mode="exact"),
    weighting.CAGrad(mode="rep"),
]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_fit_logs_weights_and_reloads(method, tmp_path):
    x, y = _data()
    y["a"][:32] = np.nan  # partial labels: task "a" has no label in the first two batches
    model = keras_mtl.build_mtl_model((6,), _tasks(), shared_units=16, weighting=method)
    before = [v.numpy().copy() for v in model.trainable_variables]
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    history = model.fit(dataset, epochs=2, verbose=0, shuffle=False)
    for name in ("a", "b", "c"):
        weights = history.history[f"weight_{name}"]
        assert len(weights) == 2 and np.all(np.isfinite(weights))
    assert np.all(np.isfinite(history.history["loss"]))
    moved = [not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    assert all(moved)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.weighting) is type(method)
    assert loaded.weighting.get_config() == method.get_config()
    expected = model(x, training=False)
    for k, v in loaded(x, training=False).items():
        np.testing.assert_allclose(v, expected[k], atol=1e-6)
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_validation_callbacks_and_resumed_training(tmp_path):
    x, y = _data()
    model = keras_mtl.build_mtl_model(
        (6,), _tasks(), shared_units=16, weighting=weighting.Uncertainty()
    )
    seen = []
    callback = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(logs["weight_a"])
    )
    history = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[callback])
    assert seen == history.history["weight_a"]
    assert "val_a_loss" in history.history
    assert not [k for k in history.history if k.startswith("val_weight")]
    results = model.evaluate(x, y, verbose=0, return_dict=True)
    assert "a_loss" in results and not [k for k in results if k.startswith("weight")]
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    log_variance = [v for v in loaded.weights if v.path.endswith("log_variance")][0]
    saved = log_variance.numpy().copy()
    assert np.any(saved != 0)
    loaded.fit(x, y, epochs=1, verbose=0)
    assert np.all(log_variance.numpy() != saved)


def test_a_task_without_labels_takes_no_part():
    x, y = _data()
    y["a"][:] = np.nan
    model = keras_mtl.build_mtl_model(
        (6,), _tasks(), shared_units=16, weighting=weighting.MGDA(mode="exact")
    )
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert history.history["weight_a"] == [0.0]
    np.testing.assert_allclose(history.history["weight_b"][0] + history.history["weight_c"][0], 1)


def _one_sgd_step(method, x, y, before_fit=None):
    keras.utils.set_random_seed(0)
    tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "regression")]
    model = keras_mtl.build_mtl_model(
        (x.shape[1],), tasks, shared_units=8, weighting=method,
        optimizer=keras.optimizers.SGD(1.0),
    )
    # Head "b" mirrors head "a": the tasks pull the shared layer in conflicting directions.
    head_a, head_b = model.get_layer("a"), model.get_layer("b")
    head_b.kernel.assign(-head_a.kernel)
    start = [v.numpy().copy() for v in model.trainable_variables]
    per_task = []
    for name in ("a", "b"):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)[name]
            loss = tf.reduce_mean(tf.square(pred - y[name]))
        grads = tape.gradient(loss, model.trainable_variables)
        per_task.append(
            [np.zeros(v.shape) if g is None else g.numpy()
             for g, v in zip(grads, model.trainable_variables)]
        )
    hand = None if before_fit is None else before_fit(model)
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    after = [v.numpy() for v in model.trainable_variables]
    paths = [v.path for v in model.trainable_variables]
    if before_fit is not None:
        return start, after, per_task, paths, hand
    return start, after, per_task, paths


def _pcgrad_by_hand(g1, g2):
    dot = g1.ravel() @ g2.ravel()
    p1 = g1 - min(dot, 0) / np.sum(g2 * g2) * g2
    p2 = g2 - min(dot, 0) / np.sum(g1 * g1) * g1
    return p1 + p2


def _rep_pcgrad_by_hand(x, y):
    """PCGrad on the Hard representation's gradients, then backprop through the shared part."""

    def compute(model):
        features = keras.Model(model.input, model.get_layer("a").input)
        head = {n: model.get_layer(n) for n in ("a", "b")}
        with tf.GradientTape(persistent=True) as tape:
            z = features(x, training=True)
            losses = [tf.reduce_mean(tf.square(head[n](z) - y[n])) for n in ("a", "b")]
        r1, r2 = (tape.gradient(loss, z).numpy() for loss in losses)
        assert r1.ravel() @ r2.ravel() < 0  # the representation gradients conflict
        combined = _pcgrad_by_hand(r1, r2)
        shared = features.trainable_variables
        grads = tape.gradient(z, shared, output_gradients=tf.constant(combined))
        del tape
        return {v.path: g.numpy() for v, g in zip(shared, grads)}

    return compute


def _flat_shared(grads, paths):
    heads = ("a/", "b/")
    return np.concatenate([g.ravel() for g, p in zip(grads, paths) if not p.startswith(heads)])


@pytest.mark.parametrize("mode", ["exact", "rep"])
def test_pcgrad_update_equals_hand_computation(mode):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, 5)).astype("float32")
    y = {"a": x[:, :1] * 3, "b": x[:, :1] * 3 + 1}
    hand = _rep_pcgrad_by_hand(x, y) if mode == "rep" else None
    result = _one_sgd_step(weighting.PCGrad(mode=mode), x, y, before_fit=hand)
    start, after, per_task, paths = result[:4]
    step = [s - a for s, a in zip(start, after)]
    for i, p in enumerate(paths):
        if p.startswith("a/"):
            np.testing.assert_allclose(step[i], per_task[0][i], atol=1e-5)
        if p.startswith("b/"):
            np.testing.assert_allclose(step[i], per_task[1][i], atol=1e-5)
    if mode == "exact":
        g1, g2 = _flat_shared(per_task[0], paths), _flat_shared(per_task[1], paths)
        assert g1 @ g2 < 0
        p1 = g1 - min(g1 @ g2, 0) / (g2 @ g2) * g2
        p2 = g2 - min(g1 @ g2, 0) / (g1 @ g1) * g1
        np.testing.assert_allclose(_flat_shared(step, paths), p1 + p2, rtol=1e-4, atol=1e-6)
    else:
        shared_by_hand = result[4]
        assert shared_by_hand and not any(p.startswith(("a/", "b/")) for p in shared_by_hand)
        for i, p in enumerate(paths):
            if not p.startswith(("a/", "b/")):
                np.testing.assert_allclose(step[i], shared_by_hand[p], rtol=1e-4, atol=1e-6)


def test_mgda_exact_update_equals_closed_form():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(32, 5)).astype("float32")
    y = {"a": x[:, :1] * 3, "b": x[:, :1] * 2 + x[:, 1:2]}
    start, after, per_task, paths = _one_sgd_step(weighting.MGDA(mode="exact"), x, y)
    step = [s - a for s, a in zip(start, after)]
    g1, g2 = _flat_shared(per_task[0], paths), _flat_shared(per_task[1], paths)
    a = np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0, 1)
    assert 0 < a < 1
    np.testing.assert_allclose(
        _flat_shared(step, paths), a * g1 + (1 - a) * g2, rtol=1e-4, atol=1e-6
    )


def test_static_logs_task_loss_weights():
    x, y = _data()
    tasks = _tasks()
    tasks[0] = keras_mtl.Task("a", "regression", loss_weight=0.25)
    model = keras_mtl.build_mtl_model((6,), tasks, shared_units=8)
    history = model.fit(x, y, epochs=1, verbose=0)
    assert history.history["weight_a"] == [0.25]
    assert history.history["weight_b"] == [1.0]


def test_dwa_weights_follow_epoch_losses():
    x, y = _data(n=128)
    model = keras_mtl.build_mtl_model(
        (6,), _tasks(), shared_units=16, weighting=weighting.DWA(temperature=2.0)
    )
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    epoch_losses = {n: history.history[f"{n}_loss"] for n in ("a", "b", "c")}
    np.testing.assert_allclose([history.history["weight_a"][e] for e in (0, 1)], [1.0, 1.0])
    for epoch in (2, 3):
        expected = dwa_weights(
            [epoch_losses[n][epoch - 1] for n in "abc"],
            [epoch_losses[n][epoch - 2] for n in "abc"],
            2.0,
        ).numpy()
        logged = [history.history[f"weight_{n}"][epoch] for n in "abc"]
        np.testing.assert_allclose(logged, expected, rtol=1e-4)


def test_gradnorm_weights_positive_sum_to_tasks_and_favour_the_slow_task():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(512, 8)).astype("float32")
    # "fast" is linear in x; "slow" is a harder target with larger noise.
    y = {
        "fast": x[:, :1].copy(),
        "slow": (np.sin(3 * x[:, 1:2]) * x[:, 2:3] + rng.normal(size=(512, 1))).astype("float32"),
    }
    tasks = [keras_mtl.Task("fast", "regression"), keras_mtl.Task("slow", "regression")]
    model = keras_mtl.build_mtl_model(
        (8,), tasks, shared_units=32, weighting=weighting.GradNorm(alpha=1.5),
        learning_rate=1e-2,
    )
    history = model.fit(x, y, batch_size=64, epochs=6, verbose=0)
    fast, slow = history.history["weight_fast"], history.history["weight_slow"]
    assert all(f > 0 and s > 0 for f, s in zip(fast, slow))
    np.testing.assert_allclose(np.add(fast, slow), 2.0, rtol=1e-4)
    assert slow[-1] > fast[-1]


@pytest.mark.slow
def test_uncertainty_learns_the_noise_variances():
    rng = np.random.default_rng(7)
    n = 4096
    x = rng.normal(size=(n, 4)).astype("float32")
    clean = x @ rng.normal(size=(4, 1))
    y = {
        "low": (clean + rng.normal(scale=0.1, size=(n, 1))).astype("float32"),
        "high": (-clean + rng.normal(scale=1.0, size=(n, 1))).astype("float32"),
    }
    tasks = [keras_mtl.Task("low", "regression"), keras_mtl.Task("high", "regression")]
    model = keras_mtl.build_mtl_model(
        (4,), tasks, shared_units=32, weighting=weighting.Uncertainty(learning_rate=0.01),
        learning_rate=3e-3,
    )
    model.fit(x, y, batch_size=64, epochs=12, verbose=0)
    state = [v for v in model.weights if v.path.endswith("log_variance")][0]
    variances = np.exp(state.numpy())
    for learned, true in zip(variances, (0.01, 1.0)):
        assert true / 2 < learned < true * 2, variances


@pytest.mark.slow
@pytest.mark.parametrize("sharing", keras_mtl.sharing.names())
def test_gradient_methods_train_every_sharing_strategy(sharing):
    x, y = _data(n=32)
    tasks = _tasks()
    for method in (weighting.PCGrad(mode="exact"), weighting.MGDA()):
        model = keras_mtl.build_mtl_model(
            (6,), tasks, shared_units=8, sharing=sharing, weighting=method, run_eagerly=True
        )
        before = [v.numpy().copy() for v in model.trainable_variables]
        history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert np.isfinite(history.history["weight_b"][0])
        for b, v in zip(before, model.trainable_variables):
            assert not np.allclose(b, v.numpy()), (sharing, repr(method), v.path)


# === Representation mode needs one representation tensor ===


@pytest.mark.parametrize(
    "method",
    [weighting.PCGrad(mode="rep"), weighting.MGDA(mode="rep"), weighting.CAGrad(mode="rep")],
    ids=repr,
)
def test_rep_mode_with_per_task_representations_is_refused(method):
    x, y = _data(n=32)
    with pytest.raises(errors.ConfigError, match='mode="exact"') as info:
        model = keras_mtl.build_mtl_model(
            (6,), _tasks(), shared_units=8, sharing="mmoe", weighting=method
        )
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    message = str(info.value)
    assert type(method).__name__ in message and "mode='rep'" in message and "MMoE" in message


def test_rep_mode_is_refused_when_training_if_attach_cannot_tell(monkeypatch):
    monkeypatch.setattr(gradients, "shares_one_representation", lambda model: None)
    x, y = _data(n=32)
    model = keras_mtl.build_mtl_model(
        (6,), _tasks(), shared_units=8, sharing="mmoe", weighting=weighting.PCGrad(mode="rep")
    )
    with pytest.raises(errors.ConfigError, match='mode="exact"'):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)


def test_gradnorm_keeps_rep_mode_with_per_task_representations():
    x, y = _data(n=32)
    method = weighting.GradNorm(mode="rep")
    model = keras_mtl.build_mtl_model(
        (6,), _tasks(), shared_units=8, sharing="mmoe", weighting=method
    )
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert method.resolved_mode(model) == "rep"
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("sharing, resolved", [("mmoe", "exact"), ("hard", "rep")])
def test_mgda_default_mode_is_auto(sharing, resolved):
    method = weighting.MGDA()
    assert method.get_config() == {"mode": "auto"}
    x, y = _data(n=32)
    model = keras_mtl.build_mtl_model(
        (6,), _tasks(), shared_units=8, sharing=sharing, weighting=method
    )
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert method.resolved_mode(model) == resolved
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables))


# === Single-task models and plain labels ===


@pytest.mark.parametrize("method", ["uncertainty", "pcgrad", "rlw", "mgda", "gradnorm"])
def test_single_task_model_trains_on_plain_array_labels(method):
    x, y = _data(n=32)
    model = keras_mtl.build_mtl_model(
        (6,), [keras_mtl.Task("a", "regression")], shared_units=8, weighting=method
    )
    history = model.fit(
        x, y["a"], sample_weight=np.ones(32, "float32"), batch_size=16, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    assert np.isfinite(history.history["weight_a"][0])


# === RLW with missing labels ===


def test_rlw_absent_task_gets_no_weight():
    present = tf.constant([True, False, True])
    keras.utils.set_random_seed(3)
    state = type("State", (), {"num_tasks": 3})()
    weights = weighting.RLW().task_weights(state, tf.ones([3]), present).numpy()
    assert weights[1] == 0
    np.testing.assert_allclose(weights.sum(), 2.0, rtol=1e-6)
    assert np.all(weights[[0, 2]] > 0)
    keras.utils.set_random_seed(3)
    draw = tf.random.normal([3]).numpy()[[0, 2]]
    expected = 2 * np.exp(draw) / np.exp(draw).sum()
    np.testing.assert_allclose(weights[[0, 2]], expected, rtol=1e-5)
    none = weighting.RLW().task_weights(state, tf.ones([3]), tf.constant([False] * 3)).numpy()
    np.testing.assert_array_equal(none, [0, 0, 0])


def test_rlw_task_without_labels_in_training_has_weight_zero():
    x, y = _data()
    y["a"][:] = np.nan
    model = keras_mtl.build_mtl_model((6,), _tasks(), shared_units=8, weighting="rlw")
    history = model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    assert history.history["weight_a"] == [0.0, 0.0]
    for epoch in range(2):
        total = history.history["weight_b"][epoch] + history.history["weight_c"][epoch]
        np.testing.assert_allclose(total, 2.0, rtol=1e-5)


def test_numeric_arguments_are_checked_once_and_numpy_integers_accepted():
    with pytest.raises(errors.ConfigError, match=r"`temperature` must be a positive number. "
                                          r"Received: temperature=0"):
        weighting.DWA(temperature=0)
    with pytest.raises(errors.ConfigError, match=r"`alpha` must be a number >= 0. Received: alpha=-1"):
        weighting.GradNorm(alpha=-1)
    assert weighting.CAGrad(iterations=np.int64(5)).get_config()["iterations"] == 5
