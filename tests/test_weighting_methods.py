"""FAMO, IMTL, Aligned-MTL, UPGrad, Nash-MTL, DB-MTL and GradVac: their papers' properties,
hand computation, and training end to end (partial labels, strategies, saving, resuming)."""

import numpy as np
import pytest
import keras
import scipy.optimize
import tensorflow as tf

import keras_mtl
from keras_mtl import errors, weighting
from keras_mtl.weighting.aligned_mtl import aligned_mtl_coefficients
from keras_mtl.weighting.base import WeightingState
from keras_mtl.weighting.db_mtl import db_mtl_coefficients
from keras_mtl.weighting.famo import famo_weights
from keras_mtl.weighting.gradvac import gradvac_coefficients
from keras_mtl.weighting.imtl import imtl_g_coefficients
from keras_mtl.weighting.nash_mtl import nash_mtl_weights
from keras_mtl.weighting.pcgrad import pcgrad_coefficients
from keras_mtl.weighting.upgrad import projection_weights, upgrad_coefficients
from test_weighting import _data, _flat_shared, _one_sgd_step

ALL_PRESENT = tf.constant([True] * 4)
# The solvers compile once per number of tasks: 3 as in the training tests below.
THREE_PRESENT = tf.constant([True] * 3)


def _gram(g):
    return tf.constant(g @ g.T, "float32")


def _conflicting(num_tasks=4, dim=6, seed=0):
    """Random gradients, some pairs conflicting, of very different norms."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(num_tasks, dim)) * rng.uniform(0.1, 10.0, size=(num_tasks, 1))
    products = g @ g.T
    assert (products < 0).any() and (products > 0)[~np.eye(num_tasks, dtype=bool)].any()
    return g


def _state(method, num_tasks):
    state = WeightingState(task_names=[f"t{i}" for i in range(num_tasks)])
    method.build_state(state, [None] * num_tasks)
    return state


# === Arguments ===


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: weighting.FAMO(learning_rate=0), "Received: learning_rate=0"),
        (lambda: weighting.FAMO(loss_after="later"), "`loss_after` must be one of"),
        (lambda: weighting.FAMO(logits_optimizer="sgdm"), "Received: logits_optimizer='sgdm'"),
        (lambda: weighting.IMTL(learning_rate=-1), "Received: learning_rate=-1"),
        (lambda: weighting.NashMTL(update_every=0), "Received: update_every=0"),
        (lambda: weighting.NashMTL(max_norm=0), "Received: max_norm=0"),
        (lambda: weighting.GradVac(beta=1.5), r"`beta` must be in \(0, 1\]. Received: beta=1.5"),
        (lambda: weighting.DBMTL(beta=1.0), r"`beta` must be in \[0, 1\). Received: beta=1.0"),
        (lambda: weighting.DBMTL(mode="rep"), "`mode` must be one of \\['exact'\\]"),
        (lambda: weighting.UPGrad(mode="auto"), "Received: mode='auto'"),
    ],
)
def test_bad_arguments_name_themselves(make, message):
    with pytest.raises(errors.ConfigError, match=message):
        make()


# === IMTL ===


def test_imtl_g_update_has_equal_projections_on_every_unit_gradient():
    g = _conflicting()
    alpha = imtl_g_coefficients(_gram(g), ALL_PRESENT).numpy()
    d = alpha @ g
    projections = (g / np.linalg.norm(g, axis=1, keepdims=True)) @ d
    np.testing.assert_allclose(projections, projections[0], rtol=1e-4)
    assert projections[0] > 0
    np.testing.assert_allclose(alpha.sum(), 1.0, rtol=1e-5)


def test_imtl_g_matches_the_papers_closed_form():
    g = _conflicting(seed=1)
    u = g / np.linalg.norm(g, axis=1, keepdims=True)
    big_d = (g[0] - g[1:]).T  # columns g_1 - g_t
    big_u = (u[0] - u[1:]).T
    rest = g[0] @ big_u @ np.linalg.inv(big_d.T @ big_u)
    expected = np.concatenate([[1 - rest.sum()], rest])
    alpha = imtl_g_coefficients(_gram(g), ALL_PRESENT).numpy()
    np.testing.assert_allclose(alpha, expected, rtol=1e-4, atol=1e-6)


def test_imtl_g_two_tasks_bisects_the_angle():
    g1, g2 = np.array([3.0, 0.0, 1.0]), np.array([-0.2, 0.5, 0.1])
    alpha = imtl_g_coefficients(_gram(np.stack([g1, g2])), tf.constant([True, True])).numpy()
    expected_2 = g1 @ (g1 / np.linalg.norm(g1) - g2 / np.linalg.norm(g2)) / (
        (g1 - g2) @ (g1 / np.linalg.norm(g1) - g2 / np.linalg.norm(g2))
    )
    np.testing.assert_allclose(alpha, [1 - expected_2, expected_2], rtol=1e-4)
    d = alpha @ np.stack([g1, g2])
    bisector = g1 / np.linalg.norm(g1) + g2 / np.linalg.norm(g2)
    np.testing.assert_allclose(d / np.linalg.norm(d), bisector / np.linalg.norm(bisector), 1e-5)


def test_imtl_absent_task_takes_no_part():
    g = _conflicting()
    present = tf.constant([True, False, True, True])
    g_absent = g.copy()
    g_absent[1] = 0.0
    alpha = imtl_g_coefficients(_gram(g_absent), present).numpy()
    assert alpha[1] == 0
    kept = imtl_g_coefficients(_gram(g[[0, 2, 3]]), tf.constant([True] * 3)).numpy()
    np.testing.assert_allclose(alpha[[0, 2, 3]], kept, rtol=1e-5)


# === UPGrad ===


def test_upgrad_never_conflicts_with_a_task():
    for seed in (1, 3, 4, 5):
        g = _conflicting(num_tasks=3, seed=seed)
        alpha = upgrad_coefficients(_gram(g), THREE_PRESENT).numpy()
        d = alpha @ g
        assert np.all(g @ d >= -1e-5 * np.linalg.norm(g, axis=1) * np.linalg.norm(d)), seed
        assert np.linalg.norm(d) > 0


def test_upgrad_solves_each_projection_problem():
    g = _conflicting(num_tasks=3, seed=6)
    gram = g @ g.T
    weights = projection_weights(tf.constant(gram, "float32"), THREE_PRESENT).numpy()
    for i in range(3):
        bounds = [(1.0 if k == i else 0.0, None) for k in range(3)]
        best = scipy.optimize.minimize(
            lambda v: v @ gram @ v, np.eye(3)[i], jac=lambda v: 2 * gram @ v,
            bounds=bounds, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12},
        )
        assert np.all(weights[i] >= np.eye(3)[i] - 1e-6)
        assert weights[i] @ gram @ weights[i] <= best.fun * (1 + 1e-4) + 1e-9


def test_upgrad_is_the_mean_without_conflict_and_halved_pcgrad_for_two_tasks():
    rng = np.random.default_rng(3)
    g = np.abs(rng.normal(size=(3, 5)))  # non-negative vectors: no conflict
    np.testing.assert_allclose(upgrad_coefficients(_gram(g), THREE_PRESENT).numpy(), 1 / 3, 1e-5)
    g2 = np.array([[1.0, 0.0, 2.0], [-1.0, 1.0, 0.2]])
    both = tf.constant([True, True])
    pcgrad = pcgrad_coefficients(_gram(g2), both, tf.constant([[0, 1], [1, 0]])).numpy()
    np.testing.assert_allclose(upgrad_coefficients(_gram(g2), both).numpy(), pcgrad / 2, 1e-5)


# === Aligned-MTL ===


def test_aligned_mtl_equalises_the_principal_components():
    g = _conflicting(seed=4)
    alpha = aligned_mtl_coefficients(_gram(g), ALL_PRESENT).numpy()
    lam, v = np.linalg.eigh(g @ g.T)
    b = np.sqrt(lam.min()) * v @ np.diag(lam**-0.5) @ v.T
    aligned = b @ g
    # The aligned gradient system has every singular value equal to the smallest of G's,
    # and the same principal directions: each direction contributes the same magnitude.
    singular = np.linalg.svd(aligned, compute_uv=False)
    np.testing.assert_allclose(singular, np.sqrt(lam.min()), rtol=1e-5)
    _, _, directions = np.linalg.svd(g, full_matrices=False)
    components = np.abs(directions @ aligned.T)  # per direction, each task's component
    np.testing.assert_allclose(np.linalg.norm(components, axis=1), np.sqrt(lam.min()), 1e-4)
    np.testing.assert_allclose(alpha @ g, aligned.sum(axis=0), rtol=1e-4, atol=1e-6)


def test_aligned_mtl_orthogonal_gradients_take_the_smallest_norm():
    g = np.diag([3.0, 0.5, 2.0])
    alpha = aligned_mtl_coefficients(_gram(g), tf.constant([True] * 3)).numpy()
    np.testing.assert_allclose(alpha, [0.5 / 3.0, 1.0, 0.5 / 2.0], rtol=1e-5)


def test_aligned_mtl_handles_dependent_gradients_and_absent_tasks():
    g = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])  # rank 2; task 4 absent
    present = tf.constant([True, True, True, False])
    alpha = aligned_mtl_coefficients(_gram(g), present).numpy()
    lam, v = np.linalg.eigh(g[:3] @ g[:3].T)
    lam, v = lam[1:], v[:, 1:]  # the zero eigenvalue is dropped (pseudo-inverse)
    b = np.sqrt(lam.min()) * v @ np.diag(lam**-0.5) @ v.T
    np.testing.assert_allclose(alpha, np.append(b.sum(axis=1), 0.0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.svd(b @ g[:3], compute_uv=False), [np.sqrt(lam.min())] * 2, rtol=1e-5
    )


# === Nash-MTL ===


def test_nash_mtl_weights_satisfy_the_bargaining_condition():
    for seed in range(3):
        g = np.random.default_rng(seed).normal(size=(3, 8)) * [[0.01], [1.0], [5.0]]
        alpha = nash_mtl_weights(_gram(g), THREE_PRESENT).numpy()
        assert np.all(alpha > 0)
        np.testing.assert_allclose(g @ g.T @ alpha, 1 / alpha, rtol=1e-4)


def test_nash_mtl_two_tasks_closed_form():
    g = np.array([[2.0, 0.0], [0.6, 0.8]]) * [[1.0], [3.0]]
    norms = np.linalg.norm(g, axis=1)
    cosine = g[0] @ g[1] / norms.prod()
    alpha = nash_mtl_weights(_gram(g), tf.constant([True, True])).numpy()
    np.testing.assert_allclose(alpha, 1 / (norms * np.sqrt(1 + cosine)), rtol=1e-5)


def test_nash_mtl_refreshes_every_few_steps_and_when_tasks_change():
    method = weighting.NashMTL(update_every=3)
    state = _state(method, 2)
    both = tf.constant([True, True])
    grams = [_gram(np.diag([1.0, 1.0]) * s) for s in (1.0, 2.0, 4.0, 8.0, 16.0)]
    logged = [method.combine(state, grams[0], None, both)[2].numpy()]
    logged.append(method.combine(state, grams[1], None, both)[2].numpy())
    logged.append(method.combine(state, grams[2], None, tf.constant([True, False]))[2].numpy())
    logged.append(method.combine(state, grams[3], None, both)[2].numpy())
    np.testing.assert_allclose(logged[0], [1, 1], rtol=1e-5)
    np.testing.assert_allclose(logged[1], logged[0])  # reused
    np.testing.assert_allclose(logged[2], [1 / 4, 0], rtol=1e-5)  # tasks changed: solved
    np.testing.assert_allclose(logged[3], [1 / 8, 1 / 8], rtol=1e-5)  # step 4: solved


def test_nash_mtl_max_norm_clips_the_update():
    g = np.array([[3.0, 0.0], [0.0, 0.5]])
    method = weighting.NashMTL(max_norm=1.0)
    alpha = method.combine(_state(method, 2), _gram(g), None, tf.constant([True, True]))[0]
    np.testing.assert_allclose(np.linalg.norm(alpha.numpy() @ g), 1.0, rtol=1e-5)


# === FAMO ===


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _famo_by_hand(sequence, lr, decay, adam):
    """Logits after each step for the (before, after) loss pairs of `sequence` (None: no
    loss change known at that step)."""
    xi, m, v, history = np.zeros(3), np.zeros(3), np.zeros(3), []
    for t, pair in enumerate(sequence, start=1):
        z = _softmax(xi)
        delta = np.zeros(3) if pair is None else np.log(pair[0] + 1e-8) - np.log(pair[1] + 1e-8)
        gradient = z * (delta - z @ delta) + decay * xi
        if adam:
            m = 0.9 * m + 0.1 * gradient
            v = 0.999 * v + 0.001 * gradient**2
            xi = xi - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-7)
        else:
            xi = xi - lr * gradient
        history.append(xi)
    return history


@pytest.mark.parametrize("loss_after", ["next_batch", "same_batch"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_famo_logits_follow_the_papers_update(loss_after, optimizer):
    rng = np.random.default_rng(5)
    losses = rng.uniform(0.2, 3.0, size=(7, 3)).astype("float32")
    method = weighting.FAMO(
        learning_rate=0.5, weight_decay=0.1, loss_after=loss_after, logits_optimizer=optimizer
    )
    state = _state(method, 3)
    present = tf.constant([True] * 3)
    logits = []
    for t in range(6):
        weights = method.task_weights(state, tf.constant(losses[t]), present)
        z = _softmax(state.get("logits").numpy())
        expected = z / (losses[t] + 1e-8)
        np.testing.assert_allclose(weights.numpy(), expected / expected.sum(), rtol=1e-5)
        if loss_after == "same_batch":
            # The loss of this step's batch after the step: here, the next row.
            method.update_from_losses_after(
                state, tf.constant(losses[t]), tf.constant(losses[t + 1]), present
            )
        method.update_state(state, tf.constant(losses[t]), present, weights)
        logits.append(state.get("logits").numpy().copy())
    pairs = list(zip(losses[:-1], losses[1:]))[:6]
    if loss_after == "next_batch":
        # The change over step t is known at step t + 1: one step later, none at first.
        pairs = [None] + pairs[:5]
        np.testing.assert_allclose(logits[0], 0.0)
    expected = _famo_by_hand(pairs, 0.5, 0.1, optimizer == "adam")
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-6)


def test_famo_weights_ignore_absent_tasks():
    weights = famo_weights(tf.zeros([3]), tf.constant([0.5, 0.0, 2.0]),
                           tf.constant([True, False, True])).numpy()
    np.testing.assert_allclose(weights, [0.8, 0.0, 0.2], rtol=1e-6)


def test_famo_same_batch_uses_the_losses_after_the_step():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(32, 5)).astype("float32")
    y = {"a": x[:, :1] * 3, "b": x[:, :1] * 2 + x[:, 1:2]}
    method = weighting.FAMO(
        learning_rate=1.0, weight_decay=0.0, loss_after="same_batch", logits_optimizer="sgd"
    )

    def losses(model):
        pred = model(x, training=False)
        return np.array([np.mean((pred[n].numpy() - y[n]) ** 2) for n in ("a", "b")])

    def before_fit(model):
        return model, losses(model)

    *_, (model, before) = _one_sgd_step(method, x, y, before_fit=before_fit)
    after = losses(model)
    delta = np.log(before + 1e-8) - np.log(after + 1e-8)
    expected = -0.5 * (delta - delta.mean())  # z = (1/2, 1/2)
    logits = [v for v in model.weights if v.path.endswith("logits")][0].numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-6)


# === DB-MTL ===


def test_db_mtl_scaled_gradients_all_have_the_largest_norm():
    g = _conflicting(seed=7)
    alpha = db_mtl_coefficients(_gram(g), ALL_PRESENT).numpy()
    norms = np.linalg.norm(alpha[:, None] * g, axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(g, axis=1).max(), rtol=1e-5)
    absent = db_mtl_coefficients(_gram(g), tf.constant([True, False, True, True])).numpy()
    assert absent[1] == 0


def test_db_mtl_update_equals_hand_computation():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(32, 5)).astype("float32")
    y = {"a": x[:, :1] * 3, "b": x[:, :1] * 2 + x[:, 1:2]}

    def losses(model):
        pred = model(x, training=False)
        return [float(np.mean((pred[n].numpy() - y[n]) ** 2)) for n in ("a", "b")]

    start, after, per_task, paths, before = _one_sgd_step(
        weighting.DBMTL(beta=0.9), x, y, before_fit=losses
    )
    step = [s - a for s, a in zip(start, after)]
    # First step: the moving average is (1 - 0.9) * grad log L = 0.1 * grad L / L.
    h = [0.1 * _flat_shared(per_task[t], paths) / before[t] for t in range(2)]
    norms = [np.linalg.norm(v) for v in h]
    expected = sum(max(norms) / n * v for n, v in zip(norms, h))
    np.testing.assert_allclose(_flat_shared(step, paths), expected, rtol=1e-4, atol=1e-7)
    for i, p in enumerate(paths):
        for t, head in enumerate(("a/", "b/")):
            if p.startswith(head):
                np.testing.assert_allclose(step[i], per_task[t][i] / before[t], rtol=1e-4)


def test_db_mtl_moving_average_of_log_loss_gradients():
    tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "regression")]
    method = weighting.DBMTL(beta=0.5, beta_sigma=1.0)
    model = keras_mtl.build_mtl_model((3,), tasks, shared_units=4, weighting=method)
    state = model._weighting_state
    variable = model.trainable_variables[0]
    rng = np.random.default_rng(9)
    grads = rng.normal(size=(3, 2, int(np.prod(variable.shape)))).astype("float32")
    losses = tf.constant([2.0, 0.5])
    presence = [[True, True], [True, False], [True, True]]
    average, counts = np.zeros((2, grads.shape[2])), np.zeros(2)
    for g, present in zip(grads, presence):
        (result,) = method.task_gradients(
            state, [tf.constant(g)], [variable], losses, tf.constant(present)
        )
        for t in range(2):
            if present[t]:
                counts[t] += 1
                rate = 0.5 / counts[t]
                average[t] = (1 - rate) * g[t] / losses.numpy()[t] + rate * average[t]
        np.testing.assert_allclose(result.numpy(), average, rtol=1e-5)


# === GradVac ===


def test_gradvac_with_zero_targets_is_pcgrad():
    g = _conflicting(num_tasks=3, seed=10)
    orders = tf.constant([[1, 2, 0], [2, 0, 1], [0, 2, 1]])
    alpha, _ = gradvac_coefficients(_gram(g), THREE_PRESENT, orders, tf.zeros([3, 3]), 0.01)
    expected = pcgrad_coefficients(_gram(g), THREE_PRESENT, orders).numpy()
    np.testing.assert_allclose(alpha.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_gradvac_pulls_to_the_target_and_leaves_gradients_above_it():
    g = np.array([[1.0, 0.2, 0.0], [0.3, 1.0, 0.5]])
    cosine = g[0] @ g[1] / np.prod(np.linalg.norm(g, axis=1))
    both = tf.constant([True, True])
    orders = tf.constant([[0, 1], [1, 0]])
    below = tf.fill([2, 2], float(cosine) - 0.1)
    alpha, targets = gradvac_coefficients(_gram(g), both, orders, below, 0.25)
    np.testing.assert_allclose(alpha.numpy(), [1.0, 1.0])  # above its target: left alone
    expected = (0.75 * (cosine - 0.1) + 0.25 * cosine)
    np.testing.assert_allclose(targets.numpy()[[0, 1], [1, 0]], expected, rtol=1e-5)
    np.testing.assert_allclose(np.diag(targets.numpy()), cosine - 0.1, rtol=1e-6)
    target = 0.9
    alpha, _ = gradvac_coefficients(_gram(g), both, orders, tf.fill([2, 2], target), 0.01)
    # Task 0's adjusted gradient g_0 + a g_1 has cosine `target` with g_1, by the paper's
    # closed form; likewise task 1's with g_0. Their sum is the update.
    norms = np.linalg.norm(g, axis=1)
    shift = norms[0] * (target * np.sqrt(1 - cosine**2) - cosine * np.sqrt(1 - target**2)) / (
        norms[1] * np.sqrt(1 - target**2)
    )
    adjusted = g[0] + shift * g[1]
    np.testing.assert_allclose(adjusted @ g[1] / np.linalg.norm(adjusted) / norms[1], target, 1e-5)
    shift_1 = norms[1] * (target * np.sqrt(1 - cosine**2) - cosine * np.sqrt(1 - target**2)) / (
        norms[0] * np.sqrt(1 - target**2)
    )
    np.testing.assert_allclose(alpha.numpy(), [1 + shift_1, 1 + shift], rtol=1e-4)


def test_gradvac_absent_task_takes_no_part_and_keeps_its_targets():
    g = _conflicting(num_tasks=3, seed=11)
    present = tf.constant([True, True, False])
    orders = tf.constant([[1, 2, 0]] * 3)
    targets = tf.fill([3, 3], 0.3)
    alpha, moved = gradvac_coefficients(_gram(g), present, orders, targets, 0.1)
    assert alpha.numpy()[2] == 0
    np.testing.assert_allclose(moved.numpy()[2], 0.3)
    np.testing.assert_allclose(moved.numpy()[:, 2], 0.3)
    assert not np.allclose(moved.numpy()[0, 1], 0.3)


# === Training end to end ===

# Each method trains with a strategy it meets nowhere else in the suite (the registry-wide
# tests train it with Hard sharing and with one other strategy), in exact mode.
END_TO_END = [
    (weighting.FAMO(loss_after="same_batch", logits_optimizer="sgd"), "ple"),
    (weighting.IMTL(loss_scales=True), "soft"),
    (weighting.AlignedMTL(), "ple"),
    (weighting.UPGrad(), "cross_stitch"),
    (weighting.NashMTL(update_every=2), "mmoe"),
    (weighting.DBMTL(), "cross_stitch"),
    (weighting.GradVac(), "mmoe"),
]


def _light_tasks():
    # No metrics: they cost tracing time and are not what these tests are about.
    return [
        keras_mtl.Task("a", "regression", metrics=[]),
        keras_mtl.Task("b", "binary", metrics=[]),
        keras_mtl.Task("c", "multiclass", num_classes=3, head_units=(8,), metrics=[]),
    ]


def _same_weights(a, b, atol):
    assert [w.path for w in a.weights] == [w.path for w in b.weights]
    for u, v in zip(a.weights, b.weights):
        np.testing.assert_allclose(u.numpy(), v.numpy(), atol=atol, err_msg=u.path)


@pytest.mark.parametrize("method, sharing", END_TO_END, ids=[f"{m!r}-{s}" for m, s in END_TO_END])
def test_trains_with_partial_labels_and_reloads(method, sharing, tmp_path):
    x, y = _data()
    y["a"][32:] = np.nan  # the second (last) batch has no label of task "a"
    model = keras_mtl.build_mtl_model(
        (6,), _light_tasks(), shared_units=8, sharing=sharing, weighting=method
    )
    # Eagerly, to save tracing time: every method also trains traced (the registry-wide
    # tests, and with partial labels in tests/test_weighting_distributed.py).
    model.run_eagerly = True
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    logged = {n: history.history[f"weight_{n}"][0] for n in "abc"}
    assert logged["a"] == 0.0 and np.isfinite(logged["b"]) and logged["b"] != 0, logged
    assert np.isfinite(history.history["loss"][0])
    moved = [not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    assert all(moved), [v.path for v, m in zip(model.trainable_variables, moved) if not m]
    state = [w for w in model.weights if w.path.startswith("weighting_state/")]
    assert all(np.all(np.isfinite(w.numpy())) for w in state)
    if state:  # AlignedMTL and UPGrad keep none
        assert any(np.any(w.numpy() != 0) for w in state)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.weighting.get_config() == method.get_config()
    _same_weights(model, loaded, atol=0)
    if isinstance(method, weighting.DBMTL):
        # The reloaded averages belong to the reloaded model's variables: both go on alike.
        loaded.run_eagerly = True
        model.fit(x[:32], {k: v[:32] for k, v in y.items()}, batch_size=32, verbose=0)
        loaded.fit(x[:32], {k: v[:32] for k, v in y.items()}, batch_size=32, verbose=0)
        _same_weights(model, loaded, atol=1e-6)


@pytest.mark.parametrize(
    "method",
    [weighting.IMTL(mode="rep"), weighting.AlignedMTL(mode="rep"), weighting.UPGrad(mode="rep"),
     weighting.NashMTL(mode="rep"), weighting.GradVac(mode="rep")],
    ids=repr,
)
def test_representation_mode_trains_and_is_refused_per_task_representations(method):
    x, y = _data(n=32)
    y["a"][16:] = np.nan
    model = keras_mtl.build_mtl_model((6,), _light_tasks(), shared_units=8, weighting=method)
    model.run_eagerly = True  # as above
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert method.resolved_mode(model) == "rep"
    assert history.history["weight_a"] == [0.0] and np.isfinite(history.history["weight_b"][0])
    assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
    with pytest.raises(errors.ConfigError, match="MMoE.*Use mode=\"exact\""):
        keras_mtl.build_mtl_model(
            (6,), _light_tasks(), shared_units=8, sharing="mmoe", weighting=method
        )
