"""group_tasks: the partition of the tasks into groups of the highest within-group affinity."""

import dataclasses
import numbers

import numpy as np
import pandas as pd

from keras_mtl import errors

# Up to this many tasks every partition is scored (Stirling numbers: at most 42,525
# partitions of 10 tasks into a given number of groups).
MAX_EXHAUSTIVE_TASKS = 10


@dataclasses.dataclass
class TaskGrouping:
    """The result of `keras_mtl.diagnostics.group_tasks`.

    Attributes:
        groups: the groups, each a list of task names (in the order of the affinity matrix;
            groups ordered by their first task).
        scores: each group's score: the sum over its tasks of the mean affinity the task
            receives from the other members (0 for a task alone).
        total: the sum of the scores, the quantity maximised.
        exhaustive: True when every partition was scored (the optimum), False when the
            local search of many tasks found it.
    """

    groups: list
    scores: list
    total: float
    exhaustive: bool

    def table(self):
        """A DataFrame with one row per group: `group`, `tasks`, `score`."""
        return pd.DataFrame(
            {
                "group": range(len(self.groups)),
                "tasks": [", ".join(g) for g in self.groups],
                "score": self.scores,
            }
        )


def group_tasks(affinity, num_groups, task_names=None, restarts=20, seed=0):
    """Splits the tasks into `num_groups` groups that maximise the total within-group affinity.

    The score is Task Affinity Grouping's network-selection score: each task `j` is scored
    by the mean affinity `Z[i -> j]` it receives from the other tasks `i` of its group (0
    when it is alone), and a partition by the sum over all tasks. Up to
    `MAX_EXHAUSTIVE_TASKS` (10) tasks every partition into `num_groups` non-empty groups is
    scored, so the result is the optimum. Beyond, a local search: from `restarts` random
    partitions, move one task to another group or swap two tasks of different groups while
    that raises the score; the best partition found is returned (`exhaustive=False`).

    Args:
        affinity: the `T x T` matrix `Z[i -> j]` (row: the task stepped, column: the task
            affected): a pandas DataFrame indexed by task name on both axes (as
            `TaskAffinity.matrix()` returns), a `keras_mtl.diagnostics.TaskAffinity` that has
            measured, or a square array (with `task_names`).
        num_groups: the number of groups, between 1 and the number of tasks.
        task_names: the names of the rows of an array (default `task_0`, `task_1`, ...).
        restarts: the number of random starts of the local search (more than 10 tasks).
        seed: the seed of those starts.

    Returns:
        A `keras_mtl.diagnostics.TaskGrouping` (`groups`, `scores`, `total`, `exhaustive`).

    Example:

    >>> z = np.array([[0.0, 0.5, -0.2], [0.4, 0.0, -0.1], [-0.3, -0.2, 0.0]])
    >>> result = keras_mtl.diagnostics.group_tasks(z, 2, task_names=["a", "b", "c"])
    >>> result.groups, round(result.total, 2)
    ([['a', 'b'], ['c']], 0.9)

    Reference:
        Fifty, Amid, Zhao, Yu, Anil and Finn, "Efficiently Identifying Task Groupings for
        Multi-Task Learning", NeurIPS 2021.
    """
    matrix, names = _as_matrix(affinity, task_names)
    num_tasks = len(names)
    if (
        isinstance(num_groups, bool)
        or not isinstance(num_groups, numbers.Integral)
        or not 1 <= num_groups <= num_tasks
    ):
        raise errors.ConfigError(
            f"`num_groups` must be an integer between 1 and the number of tasks ({num_tasks}: "
            f"{names}). Received: num_groups={num_groups!r}"
        )
    if num_tasks <= MAX_EXHAUSTIVE_TASKS:
        best = max(_partitions(num_tasks, num_groups), key=lambda p: _score(matrix, p))
        exhaustive = True
    else:
        best = _local_search(matrix, num_groups, restarts, np.random.default_rng(seed))
        exhaustive = False
    groups = sorted((sorted(g) for g in best), key=lambda g: g[0])
    scores = [_group_score(matrix, g) for g in groups]
    return TaskGrouping(
        groups=[[names[t] for t in g] for g in groups],
        scores=scores,
        total=float(sum(scores)),
        exhaustive=exhaustive,
    )


def partition_score(affinity, groups, task_names=None):
    """The score `group_tasks` maximises, of a given partition (lists of task names).

    Example:

    >>> z = np.array([[0.0, 0.5, -0.2], [0.4, 0.0, -0.1], [-0.3, -0.2, 0.0]])
    >>> keras_mtl.diagnostics.partition_score(z, [["a", "c"], ["b"]], ["a", "b", "c"])
    -0.5
    """
    matrix, names = _as_matrix(affinity, task_names)
    flat = [name for group in groups for name in group]
    if sorted(flat) != sorted(names):
        raise errors.ConfigError(
            f"`groups` must hold every task once: {names}. Received: groups={groups!r}"
        )
    index = {name: k for k, name in enumerate(names)}
    return float(sum(_group_score(matrix, [index[n] for n in g]) for g in groups))


def _as_matrix(affinity, task_names):
    if hasattr(affinity, "matrix") and callable(affinity.matrix):
        affinity = affinity.matrix()
    if isinstance(affinity, pd.DataFrame):
        if list(affinity.index) != list(affinity.columns):
            raise errors.ConfigError(
                "`affinity` must be indexed by the same task names on both axes. Received "
                f"index {list(affinity.index)} and columns {list(affinity.columns)}"
            )
        names = [str(n) for n in affinity.index]
        matrix = affinity.to_numpy(dtype="float64")
    else:
        try:
            matrix = np.asarray(affinity, dtype="float64")
        except (TypeError, ValueError):
            raise errors.ConfigError(
                "`affinity` must be a square matrix (DataFrame or array) or a TaskAffinity. "
                f"Received an object of type {type(affinity).__name__}"
            ) from None
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise errors.ConfigError(
                f"`affinity` must be a square matrix. Received shape {matrix.shape}"
            )
        names = (
            [f"task_{k}" for k in range(len(matrix))] if task_names is None
            else [str(n) for n in task_names]
        )
        if len(names) != len(matrix):
            raise errors.ConfigError(
                f"`task_names` must name the {len(matrix)} rows of `affinity`. Received "
                f"{len(names)} names: {names}"
            )
    missing = [
        (names[i], names[j])
        for i, j in zip(*np.nonzero(~np.isfinite(matrix)))
        if i != j
    ]
    if missing:
        raise errors.ConfigError(
            "`affinity` has no finite value for the task pairs (source, target) "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}; measure longer or leave "
            "those tasks out."
        )
    return matrix, names


def _group_score(matrix, group):
    if len(group) < 2:
        return 0.0
    total = 0.0
    for j in group:
        total += np.mean([matrix[i, j] for i in group if i != j])
    return float(total)


def _score(matrix, partition):
    return sum(_group_score(matrix, g) for g in partition)


def _partitions(num_items, num_groups):
    """Every partition of `range(num_items)` into exactly `num_groups` non-empty groups."""

    def extend(item, groups):
        remaining = num_items - item
        if remaining == 0:
            if len(groups) == num_groups:
                yield [list(g) for g in groups]
            return
        if len(groups) + remaining < num_groups:
            return
        for group in groups:
            group.append(item)
            yield from extend(item + 1, groups)
            group.pop()
        if len(groups) < num_groups:
            groups.append([item])
            yield from extend(item + 1, groups)
            groups.pop()

    yield from extend(0, [])


def _local_search(matrix, num_groups, restarts, rng):
    """Steepest ascent over moves and swaps, from `restarts` random partitions."""
    num_tasks = len(matrix)
    best, best_score = None, -np.inf
    for _ in range(restarts):
        labels = np.concatenate(
            [np.arange(num_groups), rng.integers(0, num_groups, num_tasks - num_groups)]
        )
        rng.shuffle(labels)
        score = _labels_scores(matrix, labels[None])[0]
        while True:
            candidates = _neighbours(labels, num_groups)
            if not len(candidates):
                break
            scores = _labels_scores(matrix, candidates)
            k = int(np.argmax(scores))
            if scores[k] <= score + 1e-12:
                break
            labels, score = candidates[k], scores[k]
        if score > best_score:
            best, best_score = labels, score
    return [list(np.flatnonzero(best == g)) for g in range(num_groups)]


def _neighbours(labels, num_groups):
    """Every partition one move (that empties no group) or one swap away, as label rows."""
    sizes = np.bincount(labels, minlength=num_groups)
    rows = []
    for t in range(len(labels)):
        if sizes[labels[t]] > 1:
            for g in range(num_groups):
                if g != labels[t]:
                    moved = labels.copy()
                    moved[t] = g
                    rows.append(moved)
    for s in range(len(labels)):
        for t in range(s + 1, len(labels)):
            if labels[s] != labels[t]:
                swapped = labels.copy()
                swapped[s], swapped[t] = labels[t], labels[s]
                rows.append(swapped)
    return np.array(rows)


def _labels_scores(matrix, labels):
    """The score of each row of group labels `(N, T)`, all at once."""
    same = labels[:, :, None] == labels[:, None, :]
    same &= ~np.eye(labels.shape[1], dtype=bool)[None]
    received = np.einsum("nij,ij->nj", same, matrix)
    counts = same.sum(axis=1)
    return np.where(counts > 0, received / np.maximum(counts, 1), 0.0).sum(axis=1)
