"""Tune per-task loss weights and the shared block with KerasTuner and `MTLHyperModel`.

Searches the loss weights of the three MultiDigits tasks (`left`, `right`, `sum_even`), the
depth of the shared block and the learning rate, ranking trials by Δm (`val_delta_m`): each
task's validation loss relative to the loss of a constant prediction, averaged over tasks.
Unlike Keras' `val_loss` it does not depend on the loss weights. Prints the trials, the best
hyperparameters and the Pareto front of the per-task validation losses, evaluates the best
model on the test split, and saves a plot of the trials.

    python examples/tune_loss_weights.py [--tuner bayesian] [--trials 8] [--epochs 4]

A few minutes on 2 CPU cores, offline. Run it again with the same `--directory` to resume an
interrupted search: completed trials are kept.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import pandas as pd  # noqa: E402

import keras_mtl  # noqa: E402
from keras_mtl import tuning  # noqa: E402


def backbone():
    """A small convolutional feature extractor; `MTLHyperModel` clones it for every trial."""
    inputs = keras.Input((11, 11, 1), name="image")
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, x, name="conv_backbone")


def make_tuner(kind, hypermodel, trials, epochs, directory, overwrite):
    common = dict(
        objective=hypermodel.objective,
        directory=directory,
        project_name=f"multi_digits_{kind}",
        overwrite=overwrite,
        seed=0,
    )
    if kind == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=trials, **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(
            hypermodel, max_trials=trials, num_initial_points=min(4, trials), **common
        )
    if kind == "hyperband":
        return keras_tuner.Hyperband(hypermodel, max_epochs=epochs, factor=3, **common)
    return keras_tuner.GridSearch(hypermodel, max_trials=trials, **common)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuner", choices=["random", "bayesian", "hyperband", "grid"],
                        default="bayesian")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--directory", default="tuning_runs")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh instead of resuming the search in --directory")
    parser.add_argument("--plot", default="tune_loss_weights.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    data = keras_mtl.datasets.multi_digits(seed=args.seed)
    (x, y), (xv, yv), (xt, yt) = data
    hypermodel = tuning.MTLHyperModel(
        backbone(),
        data.tasks,
        search_space={
            "loss_weight": (0.2, 5.0),  # log-uniform; normalised to mean 1 in each trial
            "shared_layers": (1, 2),
            "learning_rate": (5e-4, 5e-3),
        },
        fixed={"shared_units": 64, "dropout": 0.1},
    )
    print("Search space:")
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    for item in hp.space:
        print(f"  {item}")
    reference = hypermodel.reference_losses(x, y, validation_data=(xv, yv))
    print("Δm reference (validation loss of the best constant prediction): "
          + ", ".join(f"{k} {v:.3f}" for k, v in reference.items()))

    tuner = make_tuner(args.tuner, hypermodel, args.trials, args.epochs, args.directory,
                       args.overwrite)
    start = time.time()
    tuner.search(x, y, validation_data=(xv, yv), epochs=args.epochs, batch_size=128,
                 verbose=0)
    print(f"\nSearch: {len(tuner.oracle.trials)} trials in {time.time() - start:.0f} s "
          f"({args.tuner}).\n")

    table = tuning.results_table(tuner)
    columns = ["trial_id", "val_delta_m", "shared_layers", "learning_rate"]
    columns += [f"weight/{t.name}" for t in data.tasks]
    columns += ["val_left_accuracy", "val_right_accuracy", "val_sum_even_auc", "val_loss",
                "pareto"]
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.float_format", "{:.4f}".format):
        print(table[[c for c in columns if c in table.columns]].to_string(index=False))

    best = tuner.get_best_hyperparameters(1)[0]
    weights = hypermodel.loss_weights(best)
    print("\nBest hyperparameters (by val_delta_m):")
    for name, value in best.values.items():
        print(f"  {name} = {value:.4g}" if isinstance(value, float) else f"  {name} = {value}")
    print("  loss weights used: " + ", ".join(f"{k} {v:.3f}" for k, v in weights.items()))
    naive = table.sort_values("val_loss").iloc[0]
    if naive.trial_id == tuner.oracle.get_best_trials(1)[0].trial_id:
        print("(Ranking by the weighted val_loss picks the same trial in this run.)")
    else:
        print(f"(Ranking by the weighted val_loss would have picked trial {naive.trial_id}, "
              f"val_delta_m {naive.val_delta_m:.4f}: it favours small weights on tasks with "
              "large losses.)")

    front = tuning.pareto_front(tuner)
    print(f"\nPareto front of the per-task validation losses ({len(front)} of "
          f"{len(table)} trials):")
    for trial in front:
        losses = ", ".join(
            f"{t.name} {trial.metrics.get_last_value(f'val_{t.name}_loss'):.4f}"
            for t in data.tasks
        )
        ratios = hypermodel.loss_weights(trial.hyperparameters)
        print(f"  trial {trial.trial_id}: losses {losses}; weights "
              + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))

    model = tuner.get_best_models(1)[0]
    test = model.evaluate(xt, yt, verbose=0, return_dict=True)
    print("\nBest model on the test split: "
          f"left accuracy {test['left_accuracy']:.4f}, right accuracy "
          f"{test['right_accuracy']:.4f}, sum_even AUC {test['sum_even_auc']:.4f}")

    tuning.plot_trials(tuner, args.plot)
    print(f"Plot of the trials: {args.plot}")


if __name__ == "__main__":
    main()
