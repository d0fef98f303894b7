"""Mixed precision: every weighting method and sharing strategy trains under `mixed_float16`
(with loss scaling) and `mixed_bfloat16`, and task outputs stay float32.

The methods come from the registry, so methods added later are covered too.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl import weighting

POLICIES = ["mixed_float16", "mixed_bfloat16"]

# Every registered method with hard sharing (where representation mode applies to all of
# them), the representation mode of the methods whose default is exact, and every other
# strategy with GradNorm, the one method that takes gradients of per-task representations.
CASES = (
    [("hard", name) for name in weighting.names()]
    + [("hard", {"class_name": name, "config": {"mode": "rep"}}) for name in ("pcgrad", "cagrad")]
    + [(sharing, "gradnorm") for sharing in keras_mtl.sharing.names() if sharing != "hard"]
)


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def _data(n=24):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = {
        "a": x[:, :1] * 2.0,
        "b": (x[:, 1:2] > 0).astype("float32"),
        "c": np.digitize(x[:, 2], [-0.5, 0.5]).astype("int32"),
    }
    y["a"][::4] = np.nan  # partial labels take the masked paths too
    return x, y


def _tasks():
    return [
        keras_mtl.Task("a", "regression"),
        keras_mtl.Task("b", "binary", head_units=(4,)),
        keras_mtl.Task("c", "multiclass", num_classes=3),
    ]


# Each case under one policy, the two taken in turn (both policies meet loss-based, exact
# and representation-mode methods); the full product doubles the time and finds nothing the
# alternation does not, since both policies go through the same casts.
# GradNorm and MGDA, which once failed under both, run under both.
POLICY_CASES = [(POLICIES[i % 2], sharing, method) for i, (sharing, method) in enumerate(CASES)]
POLICY_CASES += [
    (policy, "hard", method) for method in ("gradnorm", "mgda") for policy in POLICIES
    if (policy, "hard", method) not in POLICY_CASES
]


@pytest.mark.parametrize("policy, sharing, method", POLICY_CASES, ids=str,
                         indirect=["policy"])
def test_every_method_and_strategy_trains_with_float32_outputs(policy, sharing, method):
    x, y = _data()
    model = keras_mtl.build_mtl_model(
        (6,), _tasks(), shared_units=8, sharing=sharing, weighting=weighting.get(method),
        run_eagerly=True,
    )
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    moved = [not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    assert all(moved), [v.path for v, m in zip(model.trainable_variables, moved) if not m]
    outputs = model(x[:2])
    assert {name: value.dtype for name, value in outputs.items()} == {
        "a": "float32", "b": "float32", "c": "float32"
    }


def test_float16_per_task_gradients_are_unscaled(monkeypatch):
    """The Gram matrix GradNorm sees is that of the true gradients, not the loss-scaled ones."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        x, y = _data(8)
        seen = {}
        method = weighting.GradNorm(mode="rep")
        combine = method.combine

        def spy(state, gram, losses, present):
            seen["gram"] = gram.numpy()
            return combine(state, gram, losses, present)

        monkeypatch.setattr(method, "combine", spy)
        model = keras_mtl.build_mtl_model(
            (6,), _tasks(), shared_units=8, weighting=method, run_eagerly=True
        )
        with tf.GradientTape(persistent=True) as tape:
            outputs = model.structure.feature_model(x, training=True)
            losses = model.compute_task_losses(y, outputs["outputs"])
        expected = [
            float(tf.reduce_sum(tf.square(tf.cast(
                tape.gradient(loss, outputs["head_inputs"][name]), "float32"
            ))))
            for loss, name in zip(losses, model.task_names)
        ]
        model.fit(x, y, batch_size=8, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # Without unscaling the diagonal would be 2**30 times larger.
    np.testing.assert_allclose(np.diag(seen["gram"]), expected, rtol=0.05)


def test_an_overflowing_float16_step_leaves_the_method_state_alone():
    """A step whose scaled gradients overflow is skipped: GradNorm's weights stay finite."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        x, y = _data(8)
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(0.1), initial_scale=2.0**30
        )
        model = keras_mtl.build_mtl_model(
            (6,), _tasks(), shared_units=8, weighting=weighting.GradNorm(mode="rep"),
            optimizer=optimizer, run_eagerly=True,
        )
        before = [v.numpy().copy() for v in model.trainable_variables]
        model.fit(x, y, batch_size=8, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert float(optimizer.dynamic_scale) < 2.0**30  # the step overflowed and was skipped
    for b, v in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(b, v.numpy())
    state = {v.path.split("/")[-1]: v.numpy() for v in model.weights if "weighting" in v.path}
    np.testing.assert_array_equal(state["task_weights"], [1.0, 1.0, 1.0])
