"""Plots of a finished search: each task's metric against its loss weight."""

from keras_mtl.tuning.hypermodel import _LOSS_WEIGHT, MTLHyperModel
from keras_mtl.tuning.results import (
    _completed,
    _dominates,
    _metric,
    _objectives,
    _trials,
    pareto_front,
)


def plot_trials(tuner, path=None, objectives=None):
    """Plots each task's metric against its loss-weight ratio, Pareto front marked.

    One panel per objective (default: each task's validation loss): the metric of every
    completed trial against the task's normalised loss weight (its ratio to the mean
    weight, log scale; the trial number when loss weights were not searched). With two
    or more objectives, a last panel plots the first two against each other, with a line
    through the trials that no other beats on those two. Trials on the Pareto front of all
    the objectives are drawn as red stars in every panel.

    Args:
        tuner: a KerasTuner tuner after `search`, whose hypermodel is an `MTLHyperModel`
            (for the loss weights).
        path: where to save the figure as PNG; None only returns it.
        objectives: as in `pareto_front`.

    Returns:
        The `matplotlib.figure.Figure`.

    Example:

    ```python
    keras_mtl.tuning.plot_trials(tuner, "trials.png")
    ```
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    objectives = _objectives(tuner, objectives)
    hypermodel = getattr(tuner, "hypermodel", None)
    trials = [
        t
        for t in _completed(_trials(tuner))
        if all(_metric(t, o.name) is not None for o in objectives)
    ]
    trials.sort(key=lambda t: t.trial_id)
    front = {t.trial_id for t in pareto_front(tuner, objectives)}
    panels = len(objectives) + (1 if len(objectives) >= 2 else 0)
    figure = Figure(figsize=(4.2 * panels, 3.8))
    axes = figure.subplots(1, panels, squeeze=False)[0]

    weights = {}
    if isinstance(hypermodel, MTLHyperModel):
        weights = {t.trial_id: hypermodel.loss_weights(t.hyperparameters) for t in trials}
    searched = isinstance(hypermodel, MTLHyperModel) and any(
        k.startswith(f"{_LOSS_WEIGHT}/") for k in hypermodel._space
        if hypermodel._space[k][0] == "search"
    )

    def task_of(objective_name):
        for name in getattr(hypermodel, "task_names", []):
            if objective_name.startswith(f"val_{name}_"):
                return name
        return None

    for ax, objective in zip(axes, objectives):
        task_name = task_of(objective.name)
        if searched and task_name is not None:
            xs = [weights[t.trial_id][task_name] for t in trials]
            ax.set_xscale("log")
            ax.set_xlabel(f"loss weight of {task_name} / mean weight")
        else:
            xs = list(range(len(trials)))
            ax.set_xlabel("trial")
        ys = [_metric(t, objective.name) for t in trials]
        on = [i for i, t in enumerate(trials) if t.trial_id in front]
        off = [i for i in range(len(trials)) if i not in on]
        ax.scatter([xs[i] for i in off], [ys[i] for i in off], color="tab:blue",
                   label="trial")
        ax.scatter([xs[i] for i in on], [ys[i] for i in on], color="tab:red", marker="*",
                   s=140, label="Pareto front")
        ax.set_ylabel(f"{objective.name} ({objective.direction})")
        ax.grid(alpha=0.3)
        if ax.get_xscale() == "log":
            # Ratios rarely span a decade: label 0.1, 0.2, 0.5, 1, 2, 5 ... plainly.
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
    if len(objectives) >= 2:
        ax = axes[-1]
        first, second = objectives[0], objectives[1]
        xs = [_metric(t, first.name) for t in trials]
        ys = [_metric(t, second.name) for t in trials]
        on = [i for i, t in enumerate(trials) if t.trial_id in front]
        off = [i for i in range(len(trials)) if i not in on]
        # The line joins the trials no other beats on these two objectives alone.
        pair = [(xs[i], ys[i]) for i in range(len(trials))]
        pair_front = sorted(
            p for p in pair
            if not any(_dominates(q, p, [first.direction, second.direction]) for q in pair)
        )
        ax.plot([p[0] for p in pair_front], [p[1] for p in pair_front], color="tab:red",
                alpha=0.5, label="front of these two")
        ax.scatter([xs[i] for i in off], [ys[i] for i in off], color="tab:blue")
        ax.scatter([xs[i] for i in on], [ys[i] for i in on], color="tab:red", marker="*",
                   s=140)
        ax.legend(loc="best")
        ax.set_xlabel(f"{first.name} ({first.direction})")
        ax.set_ylabel(f"{second.name} ({second.direction})")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best")
    figure.suptitle(f"{len(trials)} trials, {len(front)} on the Pareto front")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, format="png", dpi=110)
    return figure
