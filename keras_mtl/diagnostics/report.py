"""report: the diagnostics' tables as CSV and their plots as PNG, in one directory."""

import os

import numpy as np

from keras_mtl import errors


def report(directory, *, conflict=None, affinity=None, baselines=None, grouping=None):
    """Writes the tables of the diagnostics as CSV and their plots as PNG files.

    Matplotlib draws off screen (no display needed). Given:

    - `conflict` (a trained `GradientConflict`): `gradient_conflict.csv` (its `history`),
      `gradient_cosine_matrix.csv` (`matrix()`), and `gradient_cosine.png`, the cosine of
      each pair of tasks over the training steps (below zero: the tasks conflict);
    - `affinity` (a trained `TaskAffinity`): `task_affinity.csv` (`history`),
      `task_affinity_matrix.csv` and `task_affinity.png`, the heatmap of `Z[i -> j]`;
    - `baselines` (the table of `single_task_baselines`): `single_task_baselines.csv` and
      `single_vs_multi.png`, each task's metric for the single-task and multi-task model
      with the relative change;
    - `grouping` (a `TaskGrouping`): `task_groups.csv`.

    Args:
        directory: where to write (created if needed).
        conflict, affinity, baselines, grouping: the results to report (at least one).

    Returns:
        A dict file name -> its path.

    Example:

    >>> z = np.array([[0.1, 0.05], [-0.02, 0.2]])
    >>> grouping = keras_mtl.diagnostics.group_tasks(z, 1, task_names=["a", "b"])
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     sorted(keras_mtl.diagnostics.report(directory, grouping=grouping))
    ['task_groups.csv']
    """
    if all(value is None for value in (conflict, affinity, baselines, grouping)):
        raise errors.ConfigError(
            "`report` needs at least one of `conflict`, `affinity`, `baselines`, `grouping`."
        )
    os.makedirs(directory, exist_ok=True)
    written = {}

    def path(name):
        written[name] = os.path.join(directory, name)
        return written[name]

    if conflict is not None:
        conflict.history.to_csv(path("gradient_conflict.csv"), index=False)
        conflict.matrix().to_csv(path("gradient_cosine_matrix.csv"))
        plot_cosines(conflict, path("gradient_cosine.png"))
    if affinity is not None:
        affinity.history.to_csv(path("task_affinity.csv"), index=False)
        affinity.matrix().to_csv(path("task_affinity_matrix.csv"))
        plot_affinity(affinity, path("task_affinity.png"))
    if baselines is not None:
        baselines.to_csv(path("single_task_baselines.csv"))
        plot_baselines(baselines, path("single_vs_multi.png"))
    if grouping is not None:
        grouping.table().to_csv(path("task_groups.csv"), index=False)
    return written


def plot_cosines(conflict, path=None):
    """The cosine similarity of each pair of tasks' gradients over the training steps."""
    import matplotlib

    figure, axis = _figure(8.0, 4.0)
    history = conflict.history
    # Up to 20 pairs (7 tasks) in distinct colours.
    axis.set_prop_cycle(color=matplotlib.colormaps["tab20"].colors)
    for (i, j), group in history.groupby(["task_i", "task_j"], sort=False):
        axis.plot(group["step"], group["cosine"], marker=".", label=f"{i} / {j}")
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_ylim(-1.05, 1.05)
    axis.set_xlabel("training step")
    axis.set_ylabel("cosine of the task gradients")
    axis.set_title("Gradient agreement on the shared parameters (below 0: conflict)")
    axis.legend(fontsize="small", ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(figure, path)


def plot_affinity(affinity, path=None):
    """The heatmap of the affinity `Z[i -> j]`, averaged over training."""
    matrix = affinity.matrix()
    values = matrix.to_numpy(dtype="float64")
    size = 1.0 + 0.7 * len(matrix)
    figure, axis = _figure(size + 1.5, size)
    limit = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    image = axis.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit)
    axis.set_xticks(range(len(matrix)), matrix.columns, rotation=45, ha="right")
    axis.set_yticks(range(len(matrix)), matrix.index)
    axis.set_xlabel("task j (loss measured)")
    axis.set_ylabel("task i (step taken)")
    axis.set_title("Task affinity Z[i -> j] (blue: i helps j)")
    for i in range(len(matrix)):
        for j in range(len(matrix)):
            if np.isfinite(values[i, j]):
                axis.text(j, i, f"{values[i, j]:.2g}", ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=axis)
    return _save(figure, path)


def plot_baselines(table, path=None):
    """Each task's metric, single-task against multi-task, with the relative change."""
    from keras_mtl.diagnostics.baselines import DELTA_M_ROW

    tasks = table.drop(index=DELTA_M_ROW, errors="ignore")
    figure, axes = _figure(2.6 * len(tasks) + 0.5, 3.6, panels=len(tasks))
    for axis, (name, row) in zip(axes, tasks.iterrows()):
        bars = axis.bar(["single", "multi"], [row["single_task"], row["multi_task"]],
                        color=["#999999", "#3070b0"])
        axis.bar_label(bars, fmt="%.3g", fontsize=8)
        axis.set_title(f"{name}: {row['metric']}\n{row['relative_change']:+.1f} %",
                       fontsize=9)
    delta = table.attrs.get("delta_m")
    if delta is not None:
        figure.suptitle(f"Single-task vs multi-task (Δm = {delta:+.2f} %, higher is better)")
    return _save(figure, path)


def _figure(width, height, panels=None):
    from matplotlib.figure import Figure

    # A Figure without pyplot draws with the Agg canvas: no display, no global state.
    figure = Figure(figsize=(width, height), layout="constrained")
    if panels is None:
        return figure, figure.subplots()
    return figure, figure.subplots(1, panels, squeeze=False)[0]


def _save(figure, path):
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure
