"""Dense tasks with every sharing strategy and every weighting method."""

import keras
import numpy as np
import pytest

import keras_mtl


def _tasks():
    return [
        keras_mtl.Task("seg", "segmentation", num_classes=3, metrics=[]),
        keras_mtl.Task("depth", "dense_regression", metrics=[]),
        keras_mtl.Task("count", "multiclass", num_classes=3, metrics=[]),
    ]


def _data(n=4):
    rng = np.random.default_rng(0)
    x = rng.random((n, 8, 8, 3)).astype("float32")
    y = {
        "seg": rng.integers(-1, 3, (n, 8, 8)),
        "depth": np.where(rng.random((n, 8, 8, 1)) < 0.2, np.nan, rng.random((n, 8, 8, 1))),
        "count": rng.integers(0, 3, n),
    }
    return x, y


def _backbone():
    return keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(3, 3, strides=2, padding="same"),
    ])


def _one_step_moves_every_head_and_the_trunk(model):
    x, y = _data()
    structure = model.structure
    watched = [structure.shared_variables()[-1]] + [
        variables[0] for variables in structure.head_variables().values()]
    before = [np.array(v) for v in watched]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert all(np.isfinite(logs[f"{name}_loss"]) for name in model.task_names)
    for variable, old in zip(watched, before):
        assert np.any(np.array(variable) != old), variable.path


@pytest.mark.parametrize("method", keras_mtl.weighting.names() + ["mgda_exact"])
def test_every_weighting_method_trains_with_dense_tasks(method):
    # Hard sharing gives every head one map, so methods of mode "auto" take the gradients
    # of that map ("rep"); MGDA in "exact" mode takes those of the shared weights.
    weighting = keras_mtl.weighting.MGDA(mode="exact") if method == "mgda_exact" else method
    model = keras_mtl.build_mtl_model(
        _backbone(), _tasks(), shared_units=3, weighting=weighting, run_eagerly=True
    )
    _one_step_moves_every_head_and_the_trunk(model)


@pytest.mark.parametrize("sharing", ["cross_stitch", "soft", "mmoe", "ple"])
def test_sharing_strategies_work_per_position_on_feature_maps(sharing):
    # Linear layers: no ReLU may hide the change at the perturbed position.
    model = keras_mtl.build_mtl_model(
        _backbone(), _tasks(), shared_units=3, sharing=sharing, activation="linear",
        run_eagerly=True,
    )
    assert {k: tuple(v.shape) for k, v in model.output.items()} == {
        "seg": (None, 8, 8, 3), "depth": (None, 8, 8, 1), "count": (None, 3)}
    # Each position of a task's map depends on the backbone's features there only.
    strategy = model.sharing_layer
    features = np.random.default_rng(1).random((1, 4, 4, 3)).astype("float32")
    changed = features.copy()
    changed[0, 1, 2] += 1.0
    first, second = strategy(features), strategy(changed)
    for name in model.task_names:
        difference = np.abs(np.array(first[name]) - np.array(second[name])).sum(axis=-1)[0]
        assert difference[1, 2] > 0 and np.delete(difference.ravel(), 1 * 4 + 2).max() == 0
    _one_step_moves_every_head_and_the_trunk(model)


def test_token_tagging_beside_a_sentence_label_on_a_shared_sequence():
    backbone = keras.Sequential([
        keras.Input((6,), dtype="int32"), keras.layers.Embedding(10, 4),
        keras.layers.Conv1D(4, 3, padding="same"),
    ])
    tasks = [
        keras_mtl.Task("tags", "token_classification", num_classes=3, metrics=["macro_f1"]),
        keras_mtl.Task("topic", "multiclass", num_classes=2),
    ]
    model = keras_mtl.build_mtl_model(backbone, tasks, shared_units=4, run_eagerly=True)
    assert tuple(model.output["tags"].shape) == (None, 6, 3)
    rng = np.random.default_rng(2)
    x = rng.integers(0, 10, (4, 6))
    tags = rng.integers(0, 3, (4, 6))
    tags[:, 4:] = -1
    logs = model.train_on_batch(x, {"tags": tags, "topic": rng.integers(0, 2, 4)},
                                return_dict=True)
    assert np.isfinite(logs["tags_loss"]) and 0 <= logs["tags_macro_f1"] <= 1
