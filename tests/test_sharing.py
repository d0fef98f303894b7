import keras
import numpy as np
import pytest

import keras_mtl
from keras_mtl import sharing
from keras_mtl.errors import ConfigError
from layer_checks import run_layer_checks

TASKS = ["a", "b"]
THREE = ["a", "b", "c"]


def _relu(x):
    return np.maximum(x, 0.0)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _np(variable):
    return keras.ops.convert_to_numpy(variable)


def _mtl_tasks(names=TASKS):
    kinds = ["regression", "binary", "multiclass"]
    return [
        keras_mtl.Task(name, kind, num_classes=3 if kind == "multiclass" else None)
        for name, kind in zip(names, kinds)
    ]


def _mtl_data(names=TASKS, n=64, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype("float32")
    labels = {
        "a": x[:, :1] * 2.0,
        "b": (x[:, 1:2] > 0).astype("float32"),
        "c": (x[:, 2] > 0).astype("int32") + (x[:, 3] > 0).astype("int32"),
    }
    return x, {name: labels[name] for name in names}


# === Registry ===


def test_registry_names_and_lookup():
    assert sharing.names() == ["cross_stitch", "hard", "mmoe", "mtan", "ple", "soft"]
    for name, cls in [("soft", sharing.Soft), ("cross_stitch", sharing.CrossStitch),
                      ("mmoe", sharing.MMoE), ("ple", sharing.PLE), ("MMoE", sharing.MMoE)]:
        assert type(sharing.get(name)) is cls
    layer = sharing.MMoE(num_experts=3, expert_units=5, task_names=TASKS)
    config = keras.saving.serialize_keras_object(layer)
    revived = sharing.get(config)
    assert isinstance(revived, sharing.MMoE) and revived.get_config() == layer.get_config()
    assert sharing.get(layer) is layer


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match=r"'moe'.*cross_stitch.*mmoe.*ple.*soft"):
        sharing.get("moe")


# === The common layer checks ===


LAYER_CASES = {
    "hard": (sharing.Hard, dict(shared_layers=2, units=6, activation="tanh", task_names=THREE)),
    "soft": (sharing.Soft, dict(shared_layers=2, units=6, penalty=0.1, task_names=THREE)),
    "soft_l1_dropout": (
        sharing.Soft,
        dict(shared_layers=1, units=6, distance="l1", dropout=0.2, task_names=TASKS),
    ),
    "cross_stitch": (sharing.CrossStitch, dict(shared_layers=2, units=6, task_names=THREE)),
    "mmoe": (sharing.MMoE, dict(num_experts=4, expert_layers=2, expert_units=6,
                                task_names=THREE)),
    "mmoe_dropout": (sharing.MMoE, dict(num_experts=3, expert_units=5, dropout=0.1,
                                        activation="tanh", task_names=TASKS)),
    "ple": (sharing.PLE, dict(num_levels=2, shared_experts=2, task_experts=1, expert_layers=2,
                              expert_units=6, task_names=THREE)),
    "cgc": (sharing.PLE, dict(num_levels=1, shared_experts=1, task_experts=2, expert_units=6,
                              task_names=TASKS)),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_checks(case, tmp_path):
    cls, kwargs = LAYER_CASES[case]
    units = kwargs.get("units", kwargs.get("expert_units"))
    expected = {name: (4, units) for name in kwargs["task_names"]}
    run_layer_checks(cls, kwargs, (4, 7), tmp_path, expected_output_shape=expected)


@pytest.mark.parametrize("case", ["soft", "cross_stitch", "mmoe", "ple"])
def test_rank_3_features_are_processed_per_position(case):
    cls, kwargs = LAYER_CASES[case]
    layer = cls(**kwargs)
    x = np.random.default_rng(1).normal(size=(2, 3, 7)).astype("float32")
    outputs = layer(x)
    for position in range(3):
        flat = layer(x[:, position])
        for name in kwargs["task_names"]:
            np.testing.assert_allclose(
                _np(outputs[name])[:, position], _np(flat[name]), rtol=1e-5, atol=1e-5
            )


# === Parameter counts ===


def _mmoe_params(d, e, layers, u, t):
    return e * (d * u + u) + (layers - 1) * e * (u * u + u) + t * (d * e + e)


def _ple_params(d, levels, es, et, layers, u, t):
    total = 0
    for level in range(levels):
        fan_in = d if level == 0 else u
        expert = (fan_in * u + u) + (layers - 1) * (u * u + u)
        total += (t * et + es) * expert
        total += t * (fan_in * (et + es) + et + es)
        if level < levels - 1:
            total += fan_in * (t * et + es) + t * et + es
    return total


@pytest.mark.parametrize(
    "layer, expected",
    [
        (sharing.Soft(shared_layers=3, units=5, task_names=THREE),
         3 * (7 * 5 + 5) + 2 * 3 * (5 * 5 + 5)),
        (sharing.Soft(shared_layers=0, task_names=THREE), 0),
        (sharing.CrossStitch(shared_layers=2, units=5, task_names=THREE),
         3 * (7 * 5 + 5) + 3 * (5 * 5 + 5) + 2 * 3 * 3),
        (sharing.MMoE(num_experts=8, expert_layers=1, expert_units=16, task_names=TASKS),
         _mmoe_params(7, 8, 1, 16, 2)),
        (sharing.MMoE(num_experts=3, expert_layers=3, expert_units=4, task_names=THREE),
         _mmoe_params(7, 3, 3, 4, 3)),
        (sharing.PLE(num_levels=1, shared_experts=2, task_experts=1, expert_units=4,
                     task_names=TASKS), _ple_params(7, 1, 2, 1, 1, 4, 2)),
        (sharing.PLE(num_levels=3, shared_experts=1, task_experts=2, expert_layers=2,
                     expert_units=4, task_names=THREE), _ple_params(7, 3, 1, 2, 2, 4, 3)),
    ],
    ids=["soft", "soft_0", "cross_stitch", "mmoe_paper", "mmoe_deep", "cgc", "ple_3_levels"],
)
def test_parameter_count_matches_formula(layer, expected):
    layer.build((None, 7))
    assert layer.count_params() == expected


def test_stacked_kernels_start_like_dense_kernels():
    # Each expert / tower kernel gets Glorot-uniform for its own fan-in and fan-out.
    layers = [
        (sharing.MMoE(num_experts=8, expert_units=16, task_names=TASKS), "expert_kernels"),
        (sharing.Soft(shared_layers=1, units=16, task_names=THREE), "kernels"),
        (sharing.CrossStitch(shared_layers=1, units=16, task_names=THREE), "kernels"),
    ]
    for layer, attribute in layers:
        layer.build((None, 100))
        kernel = _np(getattr(layer, attribute)[0])
        limit = np.sqrt(6.0 / (100 + 16))
        assert np.abs(kernel).max() <= limit
        assert np.std(kernel) == pytest.approx(limit / np.sqrt(3.0), rel=0.05)
    ple = sharing.PLE(num_levels=1, expert_units=16, task_names=TASKS)
    ple.build((None, 100))
    kernel = _np(ple.levels[0]["shared_kernels"][0])
    assert np.std(kernel) == pytest.approx(np.sqrt(6.0 / 116) / np.sqrt(3.0), rel=0.05)


# === Values against NumPy ===


def test_mmoe_matches_numpy():
    layer = sharing.MMoE(num_experts=3, expert_layers=2, expert_units=4, task_names=THREE)
    x = np.random.default_rng(2).normal(size=(5, 6)).astype("float32")
    layer.build(x.shape)
    for w in layer.weights:  # non-zero biases, so they are checked too
        w.assign(np.random.default_rng(3).normal(size=w.shape).astype("float32") * 0.5)
    k0, b0, k1, b1 = (_np(w) for w in (layer.expert_kernels[0], layer.expert_biases[0],
                                       layer.expert_kernels[1], layer.expert_biases[1]))
    gk, gb = _np(layer.gate_kernel), _np(layer.gate_bias)
    outputs = layer(x)
    gates = layer.gate_weights(x)
    for t, name in enumerate(THREE):
        experts = [_relu(_relu(x @ k0[:, e] + b0[e]) @ k1[e] + b1[e]) for e in range(3)]
        gate = _softmax(x @ gk[:, t, :] + gb[t])
        expected = sum(gate[:, e:e + 1] * experts[e] for e in range(3))
        np.testing.assert_allclose(_np(outputs[name]), expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(_np(gates[name]), gate, rtol=1e-5, atol=1e-6)


def _ple_numpy(layer, x):
    """PLE forward pass written expert by expert, task by task."""
    t_count, et, es = len(layer.task_names), layer.task_experts, layer.shared_experts
    task_in = [x] * t_count
    shared_in = x
    for level, w in enumerate(layer.levels):
        def expert(inp, kernels, biases, index):
            h = inp
            for k, b in zip(kernels, biases):
                h = _relu(h @ _np(k)[index] + _np(b)[index])
            return h

        shared = [expert(shared_in, w["shared_kernels"], w["shared_biases"], e)
                  for e in range(es)]
        own = [[expert(task_in[t], w["task_kernels"], w["task_biases"], (t, e))
                for e in range(et)] for t in range(t_count)]
        new_task_in = []
        for t in range(t_count):
            gate = _softmax(task_in[t] @ _np(w["task_gate_kernel"])[t]
                            + _np(w["task_gate_bias"])[t])
            choices = own[t] + shared
            new_task_in.append(sum(gate[:, i:i + 1] * c for i, c in enumerate(choices)))
        if "shared_gate_kernel" in w:
            gate = _softmax(shared_in @ _np(w["shared_gate_kernel"]) + _np(w["shared_gate_bias"]))
            choices = [h for t in range(t_count) for h in own[t]] + shared
            shared_in = sum(gate[:, i:i + 1] * c for i, c in enumerate(choices))
        task_in = new_task_in
    return dict(zip(layer.task_names, task_in))


def test_ple_matches_numpy():
    layer = sharing.PLE(num_levels=3, shared_experts=2, task_experts=2, expert_layers=2,
                        expert_units=4, task_names=THREE)
    x = np.random.default_rng(4).normal(size=(5, 6)).astype("float32")
    layer.build(x.shape)
    rng = np.random.default_rng(5)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32") * 0.5)
    outputs = layer(x)
    expected = _ple_numpy(layer, x)
    for name in THREE:
        np.testing.assert_allclose(_np(outputs[name]), expected[name], rtol=1e-4, atol=1e-5)


def test_cross_stitch_matches_numpy():
    layer = sharing.CrossStitch(shared_layers=2, units=4, task_names=THREE)
    x = np.random.default_rng(6).normal(size=(5, 6)).astype("float32")
    layer.build(x.shape)
    rng = np.random.default_rng(7)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32") * 0.5)
    towers = [x] * 3
    for k, b, a in zip(layer.kernels, layer.biases, layer.stitches):
        towers = [_relu(towers[t] @ _np(k)[t] + _np(b)[t]) for t in range(3)]
        towers = [sum(_np(a)[s, t] * towers[t] for t in range(3)) for s in range(3)]
    outputs = layer(x)
    for t, name in enumerate(THREE):
        np.testing.assert_allclose(_np(outputs[name]), towers[t], rtol=1e-4, atol=1e-5)


def test_soft_towers_and_distance_match_numpy():
    layer = sharing.Soft(shared_layers=2, units=4, penalty=0.5, task_names=THREE)
    x = np.random.default_rng(8).normal(size=(5, 6)).astype("float32")
    outputs = layer(x)
    kernels = [_np(k) for k in layer.kernels]
    distance = sum(
        np.sum((k[i] - k[j]) ** 2) for k in kernels for i in range(3) for j in range(i + 1, 3)
    )
    np.testing.assert_allclose(float(layer.tower_distance()), distance, rtol=1e-5)
    np.testing.assert_allclose(float(_np(layer.losses[0])), 0.5 * distance, rtol=1e-5)
    for t, name in enumerate(THREE):
        h = _relu(_relu(x @ kernels[0][t] + _np(layer.biases[0])[t]) @ kernels[1][t]
                  + _np(layer.biases[1])[t])
        np.testing.assert_allclose(_np(outputs[name]), h, rtol=1e-4, atol=1e-5)
    l1 = sharing.Soft(shared_layers=1, units=4, distance="l1", task_names=TASKS)
    l1.build((None, 6))
    k = _np(l1.kernels[0])
    np.testing.assert_allclose(float(l1.tower_distance()), np.abs(k[0] - k[1]).sum(), rtol=1e-5)


# === Behaviour ===


def test_soft_penalty_is_part_of_the_training_loss():
    x, y = _mtl_data()
    model = keras_mtl.build_mtl_model(
        (8,), _mtl_tasks(), sharing=sharing.Soft(shared_layers=2, units=6, penalty=3.0)
    )
    free = keras_mtl.build_mtl_model(
        (8,), _mtl_tasks(), sharing=sharing.Soft(shared_layers=2, units=6, penalty=0.0)
    )
    free.set_weights(model.get_weights())
    with_penalty = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    without = free.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    distance = sharing.soft_sharing_distance(model)
    assert distance > 0
    np.testing.assert_allclose(with_penalty - without, 3.0 * distance, rtol=1e-4)
    model(x[:4])
    assert len(model.losses) == 1


def test_larger_soft_penalty_leaves_towers_closer():
    x, y = _mtl_data(n=128)
    distances = {}
    initial = {}
    for penalty in (0.0, 0.3):
        keras.utils.set_random_seed(0)
        model = keras_mtl.build_mtl_model(
            (8,), _mtl_tasks(),
            sharing=sharing.Soft(shared_layers=2, units=8, penalty=penalty),
            learning_rate=1e-2,
        )
        initial[penalty] = sharing.soft_sharing_distance(model)
        model.fit(x, y, epochs=3, batch_size=8, verbose=0)
        distances[penalty] = sharing.soft_sharing_distance(model)
    assert distances[0.3] < 0.5 * distances[0.0]
    assert initial[0.0] == pytest.approx(initial[0.3])  # same start, different ends
    assert distances[0.3] < 0.5 * initial[0.3]


def test_cross_stitch_starts_near_identity_and_learns():
    two = sharing.CrossStitch(shared_layers=2, units=4, task_names=TASKS)
    two.build((None, 5))
    for matrix in two.cross_stitch_matrices():
        np.testing.assert_allclose(matrix, [[0.9, 0.1], [0.1, 0.9]], atol=1e-6)
    three = sharing.CrossStitch(shared_layers=1, units=4, self_weight=0.8, task_names=THREE)
    three.build((None, 5))
    (matrix,) = three.cross_stitch_matrices()
    np.testing.assert_allclose(np.diag(matrix), 0.8, atol=1e-6)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(matrix[~np.eye(3, dtype=bool)] == pytest.approx(0.1))

    x, y = _mtl_data()
    model = keras_mtl.build_mtl_model((8,), _mtl_tasks(), sharing="cross_stitch",
                                      shared_layers=2, shared_units=6, learning_rate=1e-2)
    before = sharing.cross_stitch_matrices(model)
    model.fit(x, y, epochs=2, verbose=0)
    after = sharing.cross_stitch_matrices(model)
    assert len(after) == 2
    assert not np.allclose(before[0], after[0])


@pytest.mark.parametrize("name", ["mmoe", "ple"])
def test_gates_are_distributions_on_model_and_layer(name):
    x, y = _mtl_data(THREE)
    model = keras_mtl.build_mtl_model((8,), _mtl_tasks(THREE), sharing=name, shared_units=6)
    # Gates start uniform; random weights make the distributions worth checking.
    rng = np.random.default_rng(3)
    for weight in sharing.find_strategy(model).weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    gates = sharing.gate_weights(model, x, batch_size=24)
    layer = sharing.find_strategy(model)
    width = 8 if name == "mmoe" else layer.task_experts + layer.shared_experts
    assert sorted(gates) == sorted(THREE)
    for name_, gate in gates.items():
        assert gate.shape == (64, width)
        assert np.all(gate >= 0)
        np.testing.assert_allclose(gate.sum(axis=1), 1.0, atol=1e-5)
    # The model's gates are the layer's gates on the features it receives (here, x itself).
    direct = sharing.gate_weights(layer, x)
    for task in THREE:
        np.testing.assert_allclose(gates[task], direct[task], rtol=1e-5, atol=1e-6)
    usage = sharing.gate_usage(model, x)
    for task in THREE:
        assert list(usage[task]) == layer.expert_names()[task]
        assert sum(usage[task].values()) == pytest.approx(1.0, abs=1e-5)
        assert usage[task][layer.expert_names()[task][0]] == pytest.approx(
            gates[task][:, 0].mean(), abs=1e-6)


def test_ple_gate_levels():
    layer = sharing.PLE(num_levels=2, shared_experts=2, task_experts=1, expert_units=4,
                        task_names=TASKS)
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    assert np.allclose(sharing.gate_weights(layer, x)["a"], 1.0 / 3.0)  # gates start uniform
    rng = np.random.default_rng(1)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    first = sharing.gate_weights(layer, x, level=0)
    last = sharing.gate_weights(layer, x)
    assert first["a"].shape == last["a"].shape == (6, 3)
    assert not np.allclose(first["a"], last["a"])
    np.testing.assert_allclose(sharing.gate_weights(layer, x, level=1)["b"], last["b"])
    assert layer.expert_names()["b"] == ["b/expert_0", "shared/expert_0", "shared/expert_1"]
    with pytest.raises(ConfigError, match=r"`level` must be an integer in \[-2, 2\)"):
        layer.gate_weights(x, level=2)


def test_gate_weights_through_a_backbone():
    inputs = keras.Input((8,))
    backbone = keras.Model(inputs, keras.layers.Dense(5, name="trunk")(inputs))
    model = keras_mtl.build_mtl_model(backbone, _mtl_tasks(), sharing="mmoe", shared_units=4)
    x, _ = _mtl_data()
    features = backbone.predict(x, verbose=0)
    gates = sharing.gate_weights(model, x)
    expected = sharing.find_strategy(model).gate_weights(features)
    np.testing.assert_allclose(gates["a"], _np(expected["a"]), rtol=1e-5, atol=1e-6)


def test_inspection_helpers_check_the_strategy_kind():
    hard = keras_mtl.build_mtl_model((8,), _mtl_tasks(), shared_units=4)
    with pytest.raises(ConfigError, match="MMoE or PLE; the model uses Hard"):
        sharing.gate_weights(hard, np.ones((2, 8), "float32"))
    with pytest.raises(ConfigError, match="CrossStitch; the model uses Hard"):
        sharing.cross_stitch_matrices(hard)
    with pytest.raises(ConfigError, match="exactly one sharing strategy"):
        sharing.find_strategy(keras.Sequential([keras.layers.Dense(2)]))


@pytest.mark.parametrize(
    "name, depth_attr, width_attr",
    [
        ("hard", "shared_layers", "units"),
        ("soft", "shared_layers", "units"),
        ("cross_stitch", "shared_layers", "units"),
        ("mmoe", "expert_layers", "expert_units"),
        ("ple", "expert_layers", "expert_units"),
    ],
)
def test_builder_maps_shared_layers_to_depth(name, depth_attr, width_attr):
    model = keras_mtl.build_mtl_model((8,), _mtl_tasks(), sharing=name, shared_layers=2,
                                      shared_units=16, dropout=0.1, activation="tanh",
                                      compile=False)
    layer = sharing.find_strategy(model)
    assert type(layer) is sharing.get_class(name)
    assert getattr(layer, depth_attr) == 2 and getattr(layer, width_attr) == 16
    assert layer.dropout == 0.1 and layer.activation == "tanh"
    assert layer.task_names == TASKS
    assert {k: tuple(v.shape) for k, v in model.output.items()} == {"a": (None, 1),
                                                                    "b": (None, 1)}


@pytest.mark.parametrize("name", ["soft", "cross_stitch", "mmoe", "ple"])
def test_strategy_instance_in_builder_trains_and_reloads(name, tmp_path):
    x, y = _mtl_data(THREE)
    strategy = sharing.get(name)
    model = keras_mtl.build_mtl_model((8,), _mtl_tasks(THREE), sharing=strategy)
    assert sharing.find_strategy(model) is strategy
    history = model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    expected = model.predict(x, verbose=0)
    for task, values in loaded.predict(x, verbose=0).items():
        np.testing.assert_allclose(values, expected[task], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("method", keras_mtl.weighting.names())
def test_strategies_train_with_every_weighting_method(method):
    # One model per method keeps the suite short; the strategies are taken in turn, so each
    # is trained with some method and gradient-based methods meet strategies whose task
    # features differ (and Soft's added loss).
    strategies = sharing.names()
    name = strategies[keras_mtl.weighting.names().index(method) % len(strategies)]
    x, y = _mtl_data(THREE, n=32)
    # Eagerly: tracing a gradient method's step costs seconds, two eager epochs do not.
    model = keras_mtl.build_mtl_model((8,), _mtl_tasks(THREE), sharing=name, shared_units=6,
                                      weighting=method, run_eagerly=True)
    before = [w.numpy().copy() for w in sharing.find_strategy(model).trainable_weights]
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"])), (method, name)
    after = sharing.find_strategy(model).trainable_weights
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, after)), (method, name)


# === Argument checks ===


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: sharing.MMoE(num_experts=0),
         "`num_experts` must be a positive integer. Received: num_experts=0"),
        (lambda: sharing.MMoE(expert_layers=0),
         "`expert_layers` must be a positive integer. Received: expert_layers=0"),
        (lambda: sharing.MMoE(expert_units=2.5),
         "`expert_units` must be a positive integer. Received: expert_units=2.5"),
        (lambda: sharing.MMoE(dropout=1.0), "`dropout` must be in [0, 1). Received: dropout=1.0"),
        (lambda: sharing.PLE(num_levels=0),
         "`num_levels` must be a positive integer. Received: num_levels=0"),
        (lambda: sharing.PLE(shared_experts=True),
         "`shared_experts` must be a positive integer. Received: shared_experts=True"),
        (lambda: sharing.PLE(task_experts=-1),
         "`task_experts` must be a positive integer. Received: task_experts=-1"),
        (lambda: sharing.Soft(penalty=-1.0),
         "`penalty` must be a non-negative number. Received: penalty=-1.0"),
        (lambda: sharing.Soft(distance="cosine"),
         "`distance` must be one of ['l2', 'l1']. Received: distance='cosine'"),
        (lambda: sharing.Soft(shared_layers=-1),
         "`shared_layers` must be an integer >= 0. Received: shared_layers=-1"),
        (lambda: sharing.CrossStitch(self_weight=0.0),
         "`self_weight` must be in (0, 1]. Received: self_weight=0.0"),
        (lambda: sharing.CrossStitch(units=0),
         "`units` must be a positive integer. Received: units=0"),
    ],
)
def test_bad_arguments_name_themselves(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert str(info.value) == message


def test_strategy_without_task_names_says_so():
    with pytest.raises(ConfigError, match="needs `task_names`"):
        sharing.MMoE()(np.ones((2, 3), "float32"))


@pytest.mark.parametrize("name", ["hard", "soft", "cross_stitch", "mmoe", "ple"])
def test_strategies_train_under_mixed_precision(name):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        x, y = _mtl_data(THREE)
        model = keras_mtl.build_mtl_model(
            (8,), _mtl_tasks(THREE), sharing=name, shared_units=6
        )
        history = model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("name", ["mmoe", "ple"])
def test_expert_strategies_refuse_depth_zero_naming_shared_layers(name):
    with pytest.raises(ConfigError, match=r"`shared_layers` is the depth of the experts.*=0"):
        keras_mtl.build_mtl_model((8,), _mtl_tasks(), sharing=name, shared_layers=0)


def test_inspection_before_the_layer_is_built_says_so():
    with pytest.raises(ConfigError, match="not built yet"):
        sharing.Soft(task_names=TASKS).tower_distance()
    with pytest.raises(ConfigError, match="not built yet"):
        sharing.CrossStitch(task_names=TASKS).cross_stitch_matrices()


def test_gate_usage_on_sequence_features_is_one_number_per_expert():
    layer = sharing.MMoE(num_experts=3, expert_units=4, task_names=TASKS)
    x = np.random.default_rng(0).normal(size=(5, 7, 6)).astype("float32")
    usage = sharing.gate_usage(layer, x)
    assert all(isinstance(v, float) for v in usage["a"].values())
    assert sum(usage["a"].values()) == pytest.approx(1.0, abs=1e-5)


def _backbones():
    inputs = keras.Input((8,), name="features")
    model = keras.Model(inputs, keras.layers.Dense(6, activation="relu")(inputs))
    return {
        "model": (model, {}),
        "layer": (keras.layers.Dense(6), {"input_shape": (8,)}),
        "dict": ({"left": keras.Input((5,), name="left"),
                  "right": keras.Input((3,), name="right")}, {}),
        "shape": ((8,), {}),
    }


def _all_kind_tasks():
    return [
        keras_mtl.Task("reg", "regression", units=2),
        keras_mtl.Task("flag", "binary"),
        keras_mtl.Task("digit", "multiclass", num_classes=3),
        keras_mtl.Task("tags", "multilabel", num_classes=4),
        keras_mtl.Task("emb", "custom", loss="mae", units=2),
    ]


# Every backbone kind with hard sharing, and every other strategy with one backbone kind in
# turn (each kind met by a second strategy): the full product costs minutes and finds nothing
# the pairs do not, since a strategy reads only the backbone's output tensor.
BACKBONE_CASES = [("hard", kind) for kind in ("model", "layer", "dict", "shape")] + [
    ("soft", "dict"), ("cross_stitch", "layer"), ("mmoe", "model"), ("ple", "shape"),
    ("mtan", "dict"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, backbone", BACKBONE_CASES)
def test_every_strategy_with_every_backbone_kind_and_task_kind(name, backbone):
    made, kwargs = _backbones()[backbone]
    model = keras_mtl.build_mtl_model(made, _all_kind_tasks(), sharing=name, shared_units=6,
                                      **kwargs)
    rng = np.random.default_rng(0)
    n = 32
    x = ({"left": rng.normal(size=(n, 5)), "right": rng.normal(size=(n, 3))}
         if backbone == "dict" else rng.normal(size=(n, 8)))
    y = {
        "reg": rng.normal(size=(n, 2)), "flag": rng.integers(0, 2, (n, 1)),
        "digit": rng.integers(0, 3, n), "tags": rng.integers(0, 2, (n, 4)),
        "emb": rng.normal(size=(n, 2)),
    }
    strategy = sharing.find_strategy(model)
    before = [w.numpy().copy() for w in strategy.trainable_weights]
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(b, a.numpy()) for b, a in zip(before, strategy.trainable_weights))
    out = model.predict(x, verbose=0)
    assert {k: v.shape for k, v in out.items()} == {
        "reg": (n, 2), "flag": (n, 1), "digit": (n, 3), "tags": (n, 4), "emb": (n, 2)
    }
