"""Reading a finished search: per-trial tables and the Pareto front over tasks."""

import math

import keras_tuner

from keras_mtl import errors
from keras_mtl.tuning.hypermodel import MTLHyperModel
from keras_mtl.tuning.objective import _direction


def _trials(tuner):
    oracle = tuner.oracle if hasattr(tuner, "oracle") else tuner
    trials = getattr(oracle, "trials", None)
    if isinstance(trials, dict):
        return list(trials.values())
    # A worker's `OracleClient` only proxies requests: ask the chief.
    return oracle.get_best_trials(10**6)


def _completed(trials):
    return [t for t in trials if str(t.status).upper().endswith("COMPLETED")]


def _metric(trial, name):
    if not trial.metrics.exists(name):
        return None
    # KerasTuner records each metric once, at the trial's best epoch.
    value = trial.metrics.get_last_value(name)
    return None if value is None else float(value)


def _objectives(tuner, objectives):
    if objectives is not None:
        items = objectives if isinstance(objectives, (list, tuple)) else [objectives]
    else:
        oracle_objective = getattr(tuner.oracle, "objective", None)
        # KerasTuner's `MultiObjective` (not public) keeps its parts in `objectives`.
        if getattr(oracle_objective, "objectives", None):
            items = list(oracle_objective.objectives)
        elif isinstance(getattr(tuner, "hypermodel", None), MTLHyperModel):
            items = tuner.hypermodel.task_objectives("loss")
        else:
            raise errors.ConfigError(
                "`objectives` is needed: the tuner has a single objective and its hypermodel "
                "is not an `MTLHyperModel` whose tasks could name per-task objectives."
            )
    result = []
    for item in items:
        if isinstance(item, str):
            item = keras_tuner.Objective(item, _direction(item))
        result.append(item)
    return result


def _dominates(a, b, directions):
    better = False
    for x, y, direction in zip(a, b, directions):
        if direction == "max":
            x, y = -x, -y
        if x > y:
            return False
        if x < y:
            better = True
    return better


def pareto_front(tuner, objectives=None):
    """The completed trials that no other trial beats on every objective.

    A trial dominates another when it is at least as good on every objective and strictly
    better on one; the front is the trials nobody dominates. Metric values are those of
    each trial's best epoch, as KerasTuner records them.

    Args:
        tuner: a KerasTuner tuner (or its oracle) after `search`.
        objectives: a list of `keras_tuner.Objective` (or metric names, direction
            inferred). Default: the tuner's objectives when it has several, else each
            task's validation loss (`val_<task>_loss`, min) of its `MTLHyperModel`.

    Returns:
        A list of `keras_tuner` trials, ordered by trial id. Trials lacking a value for
        one of the objectives are left out.

    Example:

    ```python
    for trial in keras_mtl.tuning.pareto_front(tuner):
        print(trial.trial_id, trial.hyperparameters.values)
    ```
    """
    objectives = _objectives(tuner, objectives)
    directions = [o.direction for o in objectives]
    points = []
    for trial in _completed(_trials(tuner)):
        values = [_metric(trial, o.name) for o in objectives]
        if all(v is not None and math.isfinite(v) for v in values):
            points.append((trial, values))
    front = [
        trial
        for trial, values in points
        if not any(_dominates(other, values, directions) for _, other in points)
    ]
    return sorted(front, key=lambda t: t.trial_id)


def results_table(tuner, objectives=None, metrics="validation"):
    """A pandas DataFrame with one row per trial: hyperparameters and per-task metrics.

    Columns: `trial_id`, `status`, `score` (the tuner's objective), every hyperparameter
    (e.g. `loss_weight/<task>`, `shared_layers`), `weight/<task>` (the normalised loss
    weights the model was trained with, when the hypermodel is an `MTLHyperModel`), the
    metrics of the trial's best epoch, and `pareto` (whether the trial is on the Pareto
    front of `objectives`, see `pareto_front`). Rows are sorted best score first.

    Args:
        tuner: a KerasTuner tuner (or its oracle) after `search`.
        objectives: for the `pareto` column, as in `pareto_front`.
        metrics: `"validation"` (the `val_` metrics only) or `"all"`.

    Example:

    ```python
    table = keras_mtl.tuning.results_table(tuner)
    print(table.to_string(index=False))
    ```
    """
    import pandas as pd

    if metrics not in ("validation", "all"):
        raise errors.ConfigError(
            f"`metrics` must be 'validation' or 'all'. Received: metrics={metrics!r}"
        )
    trials = sorted(_trials(tuner), key=lambda t: t.trial_id)
    hypermodel = getattr(tuner, "hypermodel", None)
    try:
        front = {t.trial_id for t in pareto_front(tuner, objectives)}
    except errors.ConfigError:
        front = None
    rows = []
    for trial in trials:
        row = {
            "trial_id": trial.trial_id,
            "status": str(trial.status),
            "score": trial.score,
        }
        row.update(trial.hyperparameters.values)
        if isinstance(hypermodel, MTLHyperModel):
            for name, value in hypermodel.loss_weights(trial.hyperparameters).items():
                row[f"weight/{name}"] = value
        for name in sorted(trial.metrics.metrics):
            if metrics == "all" or name.startswith("val_"):
                row[name] = _metric(trial, name)
        if front is not None:
            row["pareto"] = trial.trial_id in front
        rows.append(row)
    table = pd.DataFrame(rows)
    if rows:
        oracle_objective = getattr(getattr(tuner, "oracle", tuner), "objective", None)
        ascending = getattr(oracle_objective, "direction", "min") != "max"
        table = table.sort_values("score", ascending=ascending, na_position="last")
        table = table.reset_index(drop=True)
    return table
