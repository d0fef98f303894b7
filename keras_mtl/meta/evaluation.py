"""Measuring adaptation: query error after 0, 1, ... steps on new tasks, with 95% intervals,
for a meta-learner and for a baseline trained on the pooled tasks."""

import keras
import numpy as np

from keras_mtl import errors
from keras_mtl.meta.base import MetaLearner, check_steps, copy_model
from keras_mtl.meta.distributions import TaskDistribution


def evaluate_adaptation(learner, distribution, shots, steps=(0, 1, 5, 10), num_tasks=100,
                        query_size=None, baseline=None, baseline_inner_lr=None, metric="auto",
                        seed=0):
    """Query loss and metric after each number of adaptation steps, over new tasks.

    Draws `num_tasks` tasks from `distribution` (the same tasks for every model), adapts to
    each task's support set with the learner's inner loop and records the query loss and
    metric after each number of `steps`. With a `baseline` (a model trained with plain
    `fit`, e.g. by `keras_mtl.meta.pooled_baseline`), runs the same protocol for it:
    fine-tuning all its weights with SGD at `baseline_inner_lr` (default: the learner's).

    Args:
        learner: a compiled `keras_mtl.meta` learner (MAML, ANIL, Reptile, ...).
        distribution: a `keras_mtl.meta.TaskDistribution`, usually a `split("test")`.
        shots: positive integer, support examples per task (per class for N-way tasks).
        steps: the numbers of inner steps to report.
        num_tasks: positive integer, the number of tasks to average over.
        query_size: query examples per task (per class); default 10 (2 per class).
        baseline: an optional `keras.Model` with the learner's inputs and outputs.
        baseline_inner_lr: the baseline's fine-tuning learning rate.
        metric: "auto" (accuracy for integer labels, else mean squared error), "accuracy"
            or "mse".
        seed: integer seed of the tasks.

    Returns:
        A pandas DataFrame, one row per model and number of steps, with columns `model`,
        `steps`, `loss`, `loss_ci95`, the metric and `<metric>_ci95` (half-widths of the
        95% confidence interval of the mean over tasks).

    Example:

    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> learner = keras_mtl.meta.MAML(model)
    >>> learner.compile(loss="mse")
    >>> table = keras_mtl.meta.evaluate_adaptation(
    ...     learner, keras_mtl.datasets.sinusoid_tasks().split("test"), shots=5,
    ...     steps=(0, 1), num_tasks=4)
    >>> list(table.columns)
    ['model', 'steps', 'loss', 'loss_ci95', 'mse', 'mse_ci95']
    """
    import pandas as pd

    if not isinstance(learner, MetaLearner):
        raise errors.ConfigError(
            "`learner` must be a keras_mtl.meta learner (MAML, ANIL, Reptile, ...). "
            f"Received an object of type {type(learner).__name__}"
        )
    if not isinstance(distribution, TaskDistribution):
        raise errors.ConfigError(
            "`distribution` must be a keras_mtl.meta.TaskDistribution. Received an object of "
            f"type {type(distribution).__name__}"
        )
    learner._require_compiled("evaluate_adaptation")
    check_steps("shots", shots, 1)
    check_steps("num_tasks", num_tasks, 1)
    steps = tuple(steps) if isinstance(steps, (tuple, list)) else (steps,)
    if not steps:
        raise errors.ConfigError(f"`steps` must not be empty. Received: steps={steps!r}")
    for value in steps:
        check_steps("steps", value, 0)
    if metric not in ("auto", "accuracy", "mse"):
        raise errors.ConfigError(
            f"`metric` must be 'auto', 'accuracy' or 'mse'. Received: metric={metric!r}"
        )
    query_size = (2 if distribution.support_size(1) > 1 else 10) if query_size is None \
        else query_size
    models = {type(learner).__name__: learner}
    if baseline is not None:
        models["baseline"] = _fine_tuner(learner, baseline, baseline_inner_lr)

    tasks = [
        distribution.sample_task(shots, query_size, seed=seed * 100003 + i)
        for i in range(num_tasks)
    ]
    rows = []
    for label, model in models.items():
        losses = {s: [] for s in steps}
        scores = {s: [] for s in steps}
        name = metric
        for (x_s, y_s), (x_q, y_q) in tasks:
            curve = model.adaptation_curve(x_s, y_s, x_q, y_q, steps)
            for s, (loss, y_pred) in zip(sorted(set(steps)), curve):
                name, score = _score(metric, y_q, y_pred)
                losses[s].append(loss)
                scores[s].append(score)
        for s in steps:
            loss, loss_ci = _mean_ci(losses[s])
            score, score_ci = _mean_ci(scores[s])
            rows.append({"model": label, "steps": s, "loss": loss, "loss_ci95": loss_ci,
                         name: score, f"{name}_ci95": score_ci})
    return pd.DataFrame(rows)


def pooled_baseline(model, distribution, *, loss, epochs=10, num_examples=None, batch_size=64,
                    optimizer="adam", seed=0, verbose=0):
    """A baseline for meta-learning: `model` trained with plain `fit` on the pooled tasks.

    The model is copied (the argument is unchanged). For regression tasks (sinusoids) the
    copy is trained on examples of many tasks pooled, which is the MAML paper's
    "pretrained" baseline. For N-way classification the labels of one task mean nothing
    to another, so the copy's body is trained on every class of the split with a head over
    all classes (the usual transfer-learning baseline), and then gets a fresh head of the
    model's own size.

    Args:
        model: the Keras model the learner wraps (its architecture is reused; for
            classification its last layer is the head).
        distribution: the training `keras_mtl.meta.TaskDistribution`.
        loss: the loss for `fit` (as for the learner).
        epochs: positive integer.
        num_examples: pooled examples (default: 20,000 for regression, every example of
            the split's classes for classification).
        batch_size: positive integer.
        optimizer: the optimizer of `fit`.
        seed: integer seed of the pooled examples.
        verbose: `fit`'s verbosity.

    Returns:
        A trained `keras.Model` with the inputs and outputs of `model`.
    """
    check_steps("epochs", epochs, 1)
    check_steps("batch_size", batch_size, 1)
    num_classes = getattr(distribution, "num_classes", None)
    if num_classes is None:
        x, y = distribution.pooled(num_examples or 20000, seed=seed)
        baseline = copy_model(model)
        baseline.compile(optimizer=optimizer, loss=loss)
        baseline.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=verbose)
        return baseline
    x, y = distribution.pooled(num_examples, seed=seed)
    copy = copy_model(model)
    head = copy.layers[-1]
    body = keras.Model(copy.inputs, head.input)
    wide = head.__class__.from_config(dict(head.get_config(), units=num_classes,
                                           name=f"{head.name}_pooled"))
    pretrain = keras.Model(copy.inputs, wide(body.output))
    pretrain.compile(optimizer=optimizer, loss=loss)
    pretrain.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=verbose)
    fresh = head.__class__.from_config(dict(head.get_config(), name=f"{head.name}_new"))
    return keras.Model(copy.inputs, fresh(body.output), name=f"{model.name}_baseline")


def _fine_tuner(learner, baseline, inner_lr):
    from keras_mtl.meta.maml import MAML

    tuner = MAML(baseline, inner_lr=learner.inner_lr if inner_lr is None else inner_lr,
                 inner_steps=learner.inner_steps)
    tuner.compile(loss=learner._compile_arguments.get("loss"))
    return tuner


def _score(metric, y_true, y_pred):
    if isinstance(y_pred, dict):
        name = next(iter(y_pred))
        y_true = y_true[name] if isinstance(y_true, dict) else y_true
        y_pred = y_pred[name]
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if metric == "auto":
        metric = "accuracy" if np.issubdtype(y_true.dtype, np.integer) else "mse"
    if metric == "accuracy":
        return metric, float(np.mean(np.argmax(y_pred, axis=-1) == y_true.reshape(len(y_true))))
    return metric, float(np.mean((y_pred.reshape(y_true.shape) - y_true) ** 2))


def _mean_ci(values):
    values = np.asarray(values, dtype="float64")
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))
