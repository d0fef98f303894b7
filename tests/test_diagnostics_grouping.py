"""group_tasks: the optimum against brute force, the heuristic beyond 10 tasks, planted
clusters recovered from measured affinities, and bad input."""

import itertools

import keras
import numpy as np
import pandas as pd
import pytest

import keras_mtl
from keras_mtl import errors
from keras_mtl.diagnostics import TaskAffinity, group_tasks, partition_score


def _brute_force(matrix, num_groups):
    """Every assignment of tasks to group labels, scored from the definition."""
    num_tasks = len(matrix)
    best = -np.inf
    for labels in itertools.product(range(num_groups), repeat=num_tasks):
        if len(set(labels)) != num_groups:
            continue
        score = 0.0
        for g in range(num_groups):
            members = [t for t in range(num_tasks) if labels[t] == g]
            for j in members:
                others = [matrix[i, j] for i in members if i != j]
                score += np.mean(others) if others else 0.0
        best = max(best, score)
    return best


@pytest.mark.parametrize("num_tasks,num_groups", [(4, 2), (5, 3), (6, 2), (7, 3), (6, 6)])
def test_exhaustive_search_finds_the_brute_force_optimum(num_tasks, num_groups):
    rng = np.random.default_rng(num_tasks * 10 + num_groups)
    matrix = rng.normal(size=(num_tasks, num_tasks))
    result = group_tasks(matrix, num_groups)
    assert result.exhaustive
    assert len(result.groups) == num_groups and all(result.groups)
    assert sorted(n for g in result.groups for n in g) == sorted(
        f"task_{k}" for k in range(num_tasks)
    )
    assert result.total == pytest.approx(_brute_force(matrix, num_groups))
    assert result.total == pytest.approx(sum(result.scores))
    assert result.total == pytest.approx(partition_score(matrix, result.groups))


def test_heuristic_beyond_ten_tasks_finds_planted_blocks():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 4)  # 12 tasks, three blocks
    matrix = np.where(labels[:, None] == labels[None, :], 1.0, -0.5)
    matrix += rng.normal(scale=0.2, size=matrix.shape)
    names = [f"t{k}" for k in range(12)]
    result = group_tasks(pd.DataFrame(matrix, index=names, columns=names), 3)
    assert not result.exhaustive
    assert result.groups == [names[0:4], names[4:8], names[8:12]]
    table = result.table()
    assert list(table.columns) == ["group", "tasks", "score"] and len(table) == 3


def test_bad_input():
    matrix = np.zeros((3, 3))
    for num_groups in (0, 4, 1.5, True):
        with pytest.raises(errors.ConfigError, match="`num_groups` must be an integer between"):
            group_tasks(matrix, num_groups)
    with pytest.raises(errors.ConfigError, match="square"):
        group_tasks(np.zeros((2, 3)), 1)
    with pytest.raises(errors.ConfigError, match="`task_names`"):
        group_tasks(matrix, 2, task_names=["a", "b"])
    nan = matrix.copy()
    nan[0, 2] = np.nan
    with pytest.raises(errors.ConfigError, match=r"\('task_0', 'task_2'\)"):
        group_tasks(nan, 2)
    with pytest.raises(errors.ConfigError, match="every task once"):
        partition_score(matrix, [["task_0"], ["task_1"]])


@pytest.mark.slow
def test_six_tasks_of_two_planted_clusters_are_split_back():
    """Tasks a* are scaled copies of one function of half the inputs, b* of the other half:
    TAG's affinity, measured while training one model, splits them back."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    u = x[:, :4] @ rng.normal(size=(4, 1))
    v = x[:, 4:] @ rng.normal(size=(4, 1))
    y = {f"a{k}": (u * s).astype("float32") for k, s in enumerate((1.0, 1.5, 0.7))}
    y.update({f"b{k}": (v * s).astype("float32") for k, s in enumerate((1.0, 1.5, 0.7))})
    tasks = [keras_mtl.Task(name, "regression") for name in y]
    model = keras_mtl.build_mtl_model(
        (8,), tasks, shared_layers=1, shared_units=8, learning_rate=0.01
    )
    affinity = TaskAffinity(every=2)
    model.fit(x, y, batch_size=32, epochs=3, callbacks=[affinity], verbose=0)
    result = group_tasks(affinity, 2)
    assert result.groups == [["a0", "a1", "a2"], ["b0", "b1", "b2"]]
    matrix = affinity.matrix().to_numpy()
    within = np.mean([matrix[i, j] for i in range(6) for j in range(6)
                      if i != j and (i < 3) == (j < 3)])
    across = np.mean([matrix[i, j] for i in range(6) for j in range(6) if (i < 3) != (j < 3)])
    assert within > across
