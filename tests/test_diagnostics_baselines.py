"""single_task_baselines and report: the table's values against the models it trained, Δm,
constant predictions, the files written, and bad input."""

import keras
import numpy as np
import pandas as pd
import pytest

import keras_mtl
from keras_mtl import errors
from keras_mtl.diagnostics import (
    GradientConflict,
    TaskAffinity,
    group_tasks,
    report,
    single_task_baselines,
)


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    return x, {"a": x[:, :1] * 2.0, "b": (x[:, 1:2] > 0).astype("float32")}


def _tasks():
    return [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]


def test_baselines_table_report_and_plots(tmp_path):
    x, y = _data()
    xe, ye = _data(48, seed=1)
    model = keras_mtl.build_mtl_model((5,), _tasks(), sharing="mmoe", shared_units=6)
    conflict, affinity = GradientConflict(every=2), TaskAffinity(every=2)
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[conflict, affinity], verbose=0)
    table, models = single_task_baselines(
        model, x, y, batch_size=32, evaluation_data=(xe, ye), return_models=True
    )
    assert list(table.index) == ["a", "b", "delta_m"]
    assert list(table["metric"][:2]) == ["mae", "accuracy"]
    assert list(table["higher_is_better"][:2]) == [False, True]
    # Fresh single-task models of the same recipe, trained as long, for one task each.
    assert models["a"].task_names == ["a"] and models["a"].output_names == ["a"]
    assert type(models["a"].sharing_layer).__name__ == "MMoE"
    assert models["a"].sharing_layer.task_names == ["a"]
    assert type(models["a"].optimizer) is type(model.optimizer)
    assert len(models["b"].history.epoch) == 1
    single_b = models["b"].evaluate(xe, {"b": ye["b"]}, verbose=0, return_dict=True)
    multi = model.evaluate(xe, ye, verbose=0, return_dict=True)
    assert table.loc["b", "single_task"] == pytest.approx(single_b["accuracy"])
    assert table.loc["b", "multi_task"] == pytest.approx(multi["b_accuracy"])
    assert table.loc["a", "multi_task_loss"] == pytest.approx(multi["a_loss"])
    a, b = table.loc["a"], table.loc["b"]
    assert a.relative_change == pytest.approx(100 * (a.single_task - a.multi_task) / a.single_task)
    assert b.relative_change == pytest.approx(100 * (b.multi_task - b.single_task) / b.single_task)
    assert table.loc["delta_m", "relative_change"] == pytest.approx(
        (a.relative_change + b.relative_change) / 2
    )
    assert table.attrs["delta_m"] == table.loc["delta_m", "relative_change"]
    # The constant prediction's loss: the variance of a's labels around the training mean.
    assert a.constant_loss == pytest.approx(np.mean((ye["a"] - y["a"].mean()) ** 2), rel=1e-4)

    grouping = group_tasks(affinity, 1)
    written = report(tmp_path / "report", conflict=conflict, affinity=affinity,
                     baselines=table, grouping=grouping)
    assert sorted(written) == sorted([
        "gradient_conflict.csv", "gradient_cosine_matrix.csv", "gradient_cosine.png",
        "task_affinity.csv", "task_affinity_matrix.csv", "task_affinity.png",
        "single_task_baselines.csv", "single_vs_multi.png", "task_groups.csv",
    ])
    for path in written.values():
        with open(path, "rb") as f:
            head = f.read(8)
        assert head.startswith(b"\x89PNG") if path.endswith(".png") else head
    back = pd.read_csv(written["task_affinity_matrix.csv"], index_col=0)
    np.testing.assert_allclose(back.to_numpy(), affinity.matrix().to_numpy(), rtol=1e-6)
    assert len(pd.read_csv(written["gradient_conflict.csv"])) == len(conflict.history)


def test_bad_input():
    x, y = _data(16)
    model = keras_mtl.build_mtl_model((5,), _tasks(), shared_units=4)
    with pytest.raises(errors.ConfigError, match="`epochs` is needed"):
        single_task_baselines(model, x, y)
    with pytest.raises(errors.ConfigError, match="`epochs` must be a positive integer"):
        single_task_baselines(model, x, y, epochs=0)
    with pytest.raises(errors.LabelError, match=r"keyed by the model's tasks \['a', 'b'\]"):
        single_task_baselines(model, x, {"a": y["a"]}, epochs=1)
    with pytest.raises(errors.ConfigError, match="unknown tasks \\['c'\\]"):
        single_task_baselines(model, x, y, epochs=1, metrics={"c": "mae"})
    with pytest.raises(errors.ConfigError, match="keras_mtl.MTLModel"):
        single_task_baselines(keras.Sequential([keras.layers.Dense(1)]), x, y, epochs=1)
    with pytest.raises(errors.ConfigError, match="at least one"):
        report("unused")
