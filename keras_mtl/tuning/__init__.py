"""Hyperparameter search for multi-task models with KerasTuner.

`MTLHyperModel` searches per-task loss weights, the shared block and the learning rate with
any KerasTuner tuner. Its default objective, `val_delta_m`, does not depend on the loss
weights: Keras' `val_loss` is the *weighted* sum of the task losses, so tuning loss weights
against it rewards small weights on hard tasks, not better models.

Δm (Maninis et al., CVPR 2019) measures each task against a reference and averages:

    delta_m = (1 / T) * sum_t (B_t - L_t) / B_t

where `L_t` is task t's own (unweighted) loss, as Keras logs it (`val_<task>_loss`), and `B_t`
the same loss of a reference predictor. Higher is better: 0.4 means the task losses are on
average 40 % below the reference. By default `B_t` is the loss of the best *constant*
prediction, fitted to the training labels (class frequencies with add-one smoothing for
classification, the label mean for regression) and scored on the validation labels: it is
fixed for a data set, so every trial, tuner and worker is measured against the same numbers;
each task counts relative to its own scale; and neither the loss weights nor a trial's random
initialisation can move it. Single-task baselines (the usual reference in the literature) can
be given instead with `reference={task: loss}`.
"""

from keras_mtl.tuning.hypermodel import DEFAULT_SEARCH_SPACE, MTLHyperModel
from keras_mtl.tuning.objective import DELTA_M, DeltaM, delta_m, prior_reference
from keras_mtl.tuning.plots import plot_trials
from keras_mtl.tuning.results import pareto_front, results_table

__all__ = [
    "DELTA_M",
    "DEFAULT_SEARCH_SPACE",
    "DeltaM",
    "MTLHyperModel",
    "delta_m",
    "pareto_front",
    "plot_trials",
    "prior_reference",
    "results_table",
]
