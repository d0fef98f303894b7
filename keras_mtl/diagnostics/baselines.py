"""single_task_baselines: one single-task model per task, compared with the multi-task model."""

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.tuning import objective

# The name of the summary row of the table.
DELTA_M_ROW = "delta_m"


def single_task_baselines(
    model,
    x=None,
    y=None,
    *,
    epochs=None,
    batch_size=None,
    validation_data=None,
    evaluation_data=None,
    metrics=None,
    build_fn=None,
    verbose=0,
    return_models=False,
    **fit_kwargs,
):
    """Trains one single-task model per task and tabulates how the multi-task model compares.

    Each single-task model is the multi-task model's own recipe for one task: the same
    backbone and sharing strategy (rebuilt from the model's config, for that task alone,
    freshly initialised), the task's head, and a fresh copy of the model's optimizer (same
    class and settings), trained on the same data (that task's labels) for the same number
    of epochs. Both are then evaluated on `evaluation_data` (default `validation_data`, else
    the training data).

    The table has one row per task, plus a last row `"delta_m"`:

    - `metric`: the task's headline metric (its first metric, or `metrics[task]`), and
      `higher_is_better`;
    - `single_task`, `multi_task`: its value for each model;
    - `relative_change`: `(multi - single) / single` in percent, signed so that a positive
      value means the multi-task model is better (the per-task term of Δm, computed with
      `keras_mtl.tuning.delta_m`);
    - `single_task_loss`, `multi_task_loss`: the task's loss for each model, and
      `constant_loss`: the loss of the best constant prediction (the task kind's constant,
      fitted to the training labels; `keras_mtl.tuning.prior_reference`), a floor any model
      should beat;

    and on the `"delta_m"` row, `relative_change` holds Δm, the mean of the tasks' relative
    changes (Maninis et al., 2019): positive when sharing helps on average. The table's
    `attrs` hold `delta_m` (the same) and `delta_m_loss` (Δm of the losses).

    Args:
        model: the trained multi-task `keras_mtl.MTLModel` (compiled, as for `fit`).
        x, y: the training data the multi-task model was trained on: inputs and a dict of
            labels keyed by task name (missing labels marked as usual), or a `tf.data`
            dataset of `(inputs, labels)` as `x`.
        epochs: the number of epochs; default: as many as the model's last `fit`.
        batch_size: the batch size for arrays (as for `fit`).
        validation_data: `(inputs, labels)` for each single-task model's `fit`.
        evaluation_data: `(inputs, labels)` both models are scored on (default
            `validation_data`, else the training data).
        metrics: dict task name -> the logged metric to compare (e.g. `"auc"`); default
            each task's first metric (its loss when it has none).
        build_fn: optional `build_fn(task) -> compiled MTLModel` for a single-task model made
            another way (e.g. a backbone with pretrained weights, which rebuilding from the
            config would not restore).
        verbose: passed to `fit`.
        return_models: also return the single-task models, a dict by task name.
        **fit_kwargs: further arguments of `fit` (e.g. `callbacks`, `shuffle`).

    Returns:
        The pandas DataFrame (and the dict of models with `return_models`).

    Example:

    ```python
    model.fit(x, y, validation_data=(xv, yv), epochs=8, batch_size=64)
    table = keras_mtl.diagnostics.single_task_baselines(
        model, x, y, validation_data=(xv, yv), evaluation_data=(xt, yt), batch_size=64)
    print(table)   # one row per task and Δm
    ```

    Reference:
        Maninis, Radosavovic, Kokkinos, "Attentive Single-Tasking of Multiple Tasks",
        CVPR 2019 (Δm).
    """
    from keras_mtl.model import MTLModel

    if not isinstance(model, MTLModel):
        raise errors.ConfigError(
            "`model` must be a keras_mtl.MTLModel. Received an object of type "
            f"{type(model).__name__}"
        )
    if model.optimizer is None:
        raise errors.ConfigError(
            f"The model {model.name!r} must be compiled: its optimizer is reused."
        )
    if epochs is None:
        epochs = (getattr(getattr(model, "history", None), "params", None) or {}).get("epochs")
        if epochs is None:
            raise errors.ConfigError(
                "`epochs` is needed: the model has not been trained with `fit` in this "
                "session. Received: epochs=None"
            )
    _check_epochs(epochs)
    names = model.task_names
    metrics = _headline_metrics(model, metrics)
    if evaluation_data is None:
        evaluation_data = validation_data if validation_data is not None else (x, y)
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise errors.ConfigError(
                "`y` must be None when `x` is a tf.data.Dataset of (inputs, labels)."
            )
    elif not isinstance(y, dict) or sorted(y) != sorted(names):
        raise errors.LabelError(
            f"`y` must be a dict of labels keyed by the model's tasks {names}. Received "
            + (f"keys {sorted(y)}" if isinstance(y, dict) else f"an object of type {type(y).__name__}")
        )
    if callable(build_fn):
        make = build_fn
    elif build_fn is None:
        make = lambda task: _single_task_model(model, task)  # noqa: E731
    else:
        raise errors.ConfigError(
            f"`build_fn` must be callable or None. Received: build_fn={build_fn!r}"
        )

    multi = model.evaluate(*_xy(evaluation_data), verbose=0, return_dict=True)
    rows, models = [], {}
    for task in model.tasks:
        single = make(task)
        single.fit(
            _only(x, task.name),
            None if y is None else y[task.name],
            epochs=epochs,
            batch_size=batch_size,
            validation_data=_only_pair(validation_data, task.name),
            verbose=verbose,
            **fit_kwargs,
        )
        scores = single.evaluate(*_only_pair(evaluation_data, task.name), verbose=0,
                                 return_dict=True)
        models[task.name] = single
        metric = metrics[task.name]
        rows.append(
            {
                "task": task.name,
                "metric": metric,
                "higher_is_better": objective._direction(metric) == "max",
                "single_task": _logged(scores, task.name, metric),
                "multi_task": _logged(multi, task.name, metric),
                "single_task_loss": _logged(scores, task.name, "loss"),
                "multi_task_loss": _logged(multi, task.name, "loss"),
            }
        )
    table = pd.DataFrame(rows).set_index("task")
    table["relative_change"] = [
        _relative_change(r.multi_task, r.single_task, r.higher_is_better)
        for r in table.itertuples()
    ]
    table["constant_loss"] = _constant_losses(model, x, y, evaluation_data)
    delta = float(table["relative_change"].mean())
    delta_loss = 100.0 * objective.delta_m(
        table["multi_task_loss"].to_dict(), table["single_task_loss"].to_dict()
    )
    table.loc[DELTA_M_ROW] = {
        "metric": "mean relative change (%)", "relative_change": delta
    }
    table = table[
        ["metric", "higher_is_better", "single_task", "multi_task", "relative_change",
         "single_task_loss", "multi_task_loss", "constant_loss"]
    ]
    table.attrs["delta_m"] = delta
    table.attrs["delta_m_loss"] = delta_loss
    return (table, models) if return_models else table


def _check_epochs(epochs):
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise errors.ConfigError(f"`epochs` must be a positive integer. Received: epochs={epochs!r}")


def _headline_metrics(model, metrics):
    metrics = dict(metrics or {})
    unknown = sorted(set(metrics) - set(model.task_names))
    if unknown:
        raise errors.ConfigError(
            f"`metrics` names unknown tasks {unknown}; the model's tasks are "
            f"{model.task_names}. Received: metrics={metrics!r}"
        )
    result = {}
    for task in model.tasks:
        if task.name in metrics:
            result[task.name] = metrics[task.name]
            continue
        specs = task.metrics if task.metrics is not None else task.kind_object.default_metrics(task)
        first = specs[0] if specs else "loss"
        result[task.name] = first if isinstance(first, str) else first.name
    return result


def _logged(logs, task_name, metric):
    """A task's metric from `evaluate`'s logs (a single-output model drops the task name)."""
    for key in (f"{task_name}_{metric}", metric):
        if key in logs:
            return float(logs[key])
    raise errors.ConfigError(
        f"No logged metric {metric!r} for task {task_name!r}; the logs hold {sorted(logs)}. "
        "Choose one with `metrics={task_name: name}`."
    )


def _relative_change(multi, single, higher_is_better):
    """The task's Δm term in percent: positive when the multi-task model is better."""
    if single == 0:
        return np.nan
    # `delta_m` measures losses, (reference - value) / reference: lower is better.
    term = 100.0 * objective.delta_m({"t": multi}, {"t": single})
    return -term if higher_is_better else term


def _constant_losses(model, x, y, evaluation_data):
    if isinstance(x, tf.data.Dataset) or isinstance(evaluation_data, tf.data.Dataset):
        return np.nan
    try:
        reference = objective.prior_reference(model.tasks, y, evaluation_data[1])
    except errors.KerasMTLError:
        return np.nan
    return [reference[name] for name in model.task_names]


def _xy(data):
    if isinstance(data, tf.data.Dataset):
        return data, None
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise errors.ConfigError(
            "`evaluation_data` and `validation_data` must be (inputs, labels) tuples or a "
            f"tf.data.Dataset. Received an object of type {type(data).__name__}"
        )
    return data[0], data[1]


def _only(x, task_name):
    """Inputs, or a dataset of (inputs, labels) reduced to one task's labels."""
    if isinstance(x, tf.data.Dataset):
        return x.map(lambda inputs, labels: (inputs, {task_name: labels[task_name]}))
    return x


def _only_pair(data, task_name):
    if data is None:
        return None
    inputs, labels = _xy(data)
    if labels is None:
        return (_only(inputs, task_name), None)
    return (inputs, {task_name: labels[task_name]})


def _single_task_model(model, task):
    """The multi-task model's recipe for `task` alone, freshly initialised and compiled."""
    from keras_mtl.model import MTLModel

    copy = type(model).from_config(model.get_config())
    structure = copy.structure
    strategy = None if structure is None else structure.sharing_layer
    if strategy is not None and task.name in (strategy.task_names or ()):
        config = strategy.get_config()
        config["task_names"] = [task.name]
        single_strategy = type(strategy).from_config(config)
        features = structure.backbone_output
        head_input = single_strategy(features)[task.name]
        output = task.build_head(head_input)
    elif structure is not None:
        features = structure.backbone_output
        head_input = structure.head_inputs[task.name]
        output = copy.output[task.name]
    else:
        raise errors.ConfigError(
            f"single_task_baselines cannot tell the trunk of the model {model.name!r} from "
            "its heads (it does not record its structure); pass `build_fn`."
        )
    single = MTLModel(
        inputs=copy.input,
        outputs={task.name: output},
        tasks=[task],
        backbone_output=features,
        head_inputs={task.name: head_input},
        name=f"{model.name}_{task.name}",
    )
    optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer))
    single.compile(optimizer=optimizer)
    return single
