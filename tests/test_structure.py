"""The model owns its structure: backbone output, sharing layer, what each head reads, which
variables are shared and which belong to a head; kept through save/reload and add_task."""

import keras
import keras_tuner
import numpy as np
import pytest

import keras_mtl
from keras_mtl import errors, export


def _tasks():
    return [
        keras_mtl.Task("a", "regression", head_units=(4,)),
        keras_mtl.Task("b", "binary"),
    ]


def _data(n=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, {"a": x[:, :1] * 2.0, "b": (x[:, 1:2] > 0).astype("float32")}


def _paths(variables):
    return sorted(v.path for v in variables)


def test_hard_sharing_structure():
    model = keras_mtl.build_mtl_model((6,), _tasks(), shared_layers=2, shared_units=8)
    structure = model.structure
    assert structure.sharing_layer is model.sharing_layer
    assert structure.backbone_output is model.inputs[0]
    assert tuple(structure.head_inputs["a"].shape) == (None, 8)
    assert structure.one_representation is True
    assert [layer.name for layer in structure.head_layers["a"]] == ["a_head_0", "a"]
    assert [layer.name for layer in structure.head_layers["b"]] == ["b"]
    heads = structure.head_variables()
    assert _paths(heads["a"]) == ["a/bias", "a/kernel", "a_head_0/bias", "a_head_0/kernel"]
    assert _paths(heads["b"]) == ["b/bias", "b/kernel"]
    shared = structure.shared_variables()
    prefix = model.sharing_layer.name + "/"  # "hard", or "hard_1" after other models
    assert all(v.path.startswith(prefix) for v in shared) and len(shared) == 4
    assert _paths(shared + heads["a"] + heads["b"]) == _paths(model.trainable_variables)


def test_per_task_features_structure():
    model = keras_mtl.build_mtl_model((6,), _tasks(), sharing="mmoe", shared_units=8)
    structure = model.structure
    assert structure.head_inputs["a"] is not structure.head_inputs["b"]
    assert structure.one_representation is False
    # The gates are task-specific but live in the strategy: part of the shared trunk.
    assert any("gate" in v.path for v in structure.shared_variables())
    x, _ = _data(4)
    outputs = structure.feature_model(x)
    np.testing.assert_allclose(
        outputs["outputs"]["b"], model.predict(x, verbose=0)["b"], atol=1e-6
    )
    assert outputs["head_inputs"]["a"].shape == (4, 8)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_structure_survives_saving_and_add_task(tmp_path):
    model = keras_mtl.build_mtl_model((6,), _tasks(), shared_units=8)
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    trunk = loaded.structure.trunk_model.predict(x, verbose=0)
    expected = model.structure.trunk_model.predict(x, verbose=0)
    for name in ("a", "b"):
        np.testing.assert_allclose(trunk["head_inputs"][name], expected["head_inputs"][name],
                                   atol=1e-6)
    assert _paths(loaded.structure.head_variables()["a"]) == _paths(
        model.structure.head_variables()["a"]
    )

    bigger = keras_mtl.add_task(loaded, keras_mtl.Task("c", "regression"),
                                features_from="backbone")
    assert bigger.structure.head_inputs["c"] is bigger.structure.backbone_output
    assert bigger.structure.one_representation is False
    assert _paths(bigger.structure.head_variables()["c"]) == ["c/bias", "c/kernel"]
    # Only the new head trains: the copied trunk and heads are frozen.
    assert _paths(bigger.trainable_variables) == ["c/bias", "c/kernel"]
    bigger.save(tmp_path / "bigger.keras")
    again = keras.saving.load_model(tmp_path / "bigger.keras")
    assert again.structure.head_inputs["c"] is again.structure.backbone_output


def test_a_reused_strategy_instance_gives_each_model_its_own_tensors():
    strategy = keras_mtl.sharing.Hard(shared_layers=1, units=8)
    keras_mtl.build_mtl_model((6,), _tasks(), sharing=strategy)
    second = keras_mtl.build_mtl_model(
        (6,), _tasks(), sharing=strategy, weighting=keras_mtl.weighting.PCGrad(mode="rep")
    )
    # The strategy's first call belongs to the first model; the second knows its own.
    assert second.structure.trunk_model.inputs[0] is second.inputs[0]
    assert export._features_model(second) is not None
    x, y = _data()
    history = second.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_a_model_built_by_hand_takes_its_structure_from_its_strategy():
    inputs = keras.Input((6,))
    strategy = keras_mtl.sharing.Hard(shared_layers=1, units=8, task_names=["a", "b"])
    features = strategy(inputs)
    outputs = {name: keras.layers.Dense(1, name=name)(features[name]) for name in ("a", "b")}
    tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "regression")]
    model = keras_mtl.MTLModel(inputs=inputs, outputs=outputs, tasks=tasks)
    assert model.structure.backbone_output is inputs
    assert model.structure.head_inputs["a"] is features["a"]

    plain = keras_mtl.MTLModel(
        inputs=inputs, outputs={"a": keras.layers.Dense(1, name="a")(inputs)},
        tasks=[keras_mtl.Task("a", "regression")],
    )
    assert plain.structure is None
    with pytest.raises(errors.ConfigError, match="does not record"):
        keras_mtl.add_task(plain, keras_mtl.Task("b", "binary"))
    with pytest.raises(errors.TaskSpecError, match="`head_inputs`"):
        keras_mtl.MTLModel(inputs=inputs, outputs=outputs, tasks=tasks,
                           backbone_output=inputs, head_inputs={"a": features["a"]})


def test_tuner_rebuilds_keep_the_structure_of_a_cloned_backbone():
    backbone = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)])
    hypermodel = keras_mtl.MTLHyperModel(backbone, _tasks(), fixed={"shared_layers": 1})
    models = [hypermodel.build(keras_tuner.HyperParameters()) for _ in range(2)]
    for model in models:
        assert model.structure.backbone_output.shape == (None, 5)
        assert model.structure.sharing_layer is model.sharing_layer
    first, second = (m.structure.shared_variables() for m in models)
    assert not {id(v) for v in first} & {id(v) for v in second}


def test_compute_task_losses_are_the_compiled_losses():
    model = keras_mtl.build_mtl_model((6,), _tasks(), shared_units=8)
    x, y = _data(8)
    y["a"][:3] = np.nan
    a, b = model.compute_task_losses(y, model(x))
    predicted = model.predict(x, verbose=0)["a"]
    assert float(a) == pytest.approx(np.mean((predicted[3:] - y["a"][3:]) ** 2), rel=1e-5)
    assert float(b) > 0
