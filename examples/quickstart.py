"""keras_mtl quickstart: one model, three tasks, compared with one model per task.

Builds a multi-task model on `keras_mtl.datasets.multi_digits()` (two overlapping 8x8 digits
on an 11x11 canvas) with a small convolutional backbone and trains it with Keras' progress
bars, watching how the tasks get along (`keras_mtl.diagnostics.GradientConflict` and
`TaskAffinity`). Then `keras_mtl.diagnostics.single_task_baselines` trains one single-task
model per task the same way and prints a table of test metrics, so you see at a glance
whether sharing helped each task, and which tasks pull against each other.

A second run keeps only 5 % of the labels of one task (`sum_even`, the others marked
missing): whether left + right is even depends on both digits, which the fully labelled
`left` and `right` tasks teach the shared layers to read, so sharing should help that task
against a single-task model trained on its few labels (AUC 0.75 against 0.56 with seed 0).

    python examples/quickstart.py [--epochs 8] [--seed 0] [--report quickstart_report]

Runs offline in a few minutes on 2 CPU cores (281 s measured on 2 cores shared with other
jobs).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import keras_mtl  # noqa: E402
from keras_mtl import diagnostics  # noqa: E402

# The metric that sums up each task in the table (higher is better for all three).
HEADLINE = {"left": "accuracy", "right": "accuracy", "sum_even": "auc"}


def conv_backbone():
    inputs = keras.Input((11, 11, 1), name="image")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv_1")(inputs)
    x = keras.layers.Conv2D(64, 3, activation="relu", name="conv_2")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, x, name="conv_backbone")


def run(title, data, y_train, epochs, verbose, report_dir):
    """Trains the multi-task model with the diagnostics, then the single-task baselines."""
    (x, _), (xv, yv), (xt, yt) = data
    print(f"\n== {title}: one multi-task model ==")
    model = keras_mtl.build_mtl_model(
        conv_backbone(), data.tasks, shared_layers=1, shared_units=128, dropout=0.2,
        learning_rate=2e-3,
    )
    conflict = diagnostics.GradientConflict(every=25)
    affinity = diagnostics.TaskAffinity(every=10)
    model.fit(x, y_train, validation_data=(xv, yv), epochs=epochs, batch_size=64,
              verbose=verbose, callbacks=[conflict, affinity])
    print(f"\n== {title}: one single-task model per task (same backbone and training) ==")
    table = diagnostics.single_task_baselines(
        model, x, y_train, validation_data=(xv, yv), evaluation_data=(xt, yt),
        batch_size=64, metrics=HEADLINE,
    )
    with pd.option_context("display.width", 120, "display.precision", 4):
        print(table[["metric", "single_task", "multi_task", "relative_change"]].to_string())
    print(f"Delta_m (mean relative change of the metrics, higher is better): "
          f"{table.attrs['delta_m']:+.2f} %")
    print("\nGradient cosine between tasks on the shared layers (mean over training; "
          "below 0: conflict):")
    print(conflict.matrix().round(3).to_string())
    history = conflict.history
    print(f"share of measured task pairs in conflict: {(history.cosine < 0).mean():.0%}; "
          "largest / smallest task gradient norm: "
          f"{np.nanmean(np.maximum(history.norm_ratio, 1 / history.norm_ratio)):.1f}x on average")
    print("\nTask affinity Z[i -> j] x 100 (a step for row i lowers column j's loss by that "
          "%; negative: it raises it):")
    print((100 * affinity.matrix()).round(3).to_string())
    diagnostics.report(report_dir, conflict=conflict, affinity=affinity, baselines=table)
    return model, table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", default="quickstart_report",
                        help="directory for the CSV tables and PNG plots")
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    data = keras_mtl.datasets.multi_digits(seed=args.seed)
    (x, y), (xv, _), (xt, _) = data
    print(f"multi_digits: {len(x)} train, {len(xv)} validation, {len(xt)} test images "
          f"of shape {x.shape[1:]}; tasks: {[t.name for t in data.tasks]}")

    start = time.time()
    model, _ = run("All labels", data, y, args.epochs, 2, os.path.join(args.report, "all"))
    model.summary(line_length=90)

    # Few labels for `sum_even`: 95 % of its training labels marked missing (-1).
    few = dict(y)
    rng = np.random.default_rng(args.seed)
    kept = rng.random(len(x)) < 0.05
    labels = y["sum_even"]
    few["sum_even"] = np.where(kept.reshape((-1,) + (1,) * (labels.ndim - 1)), labels, -1)
    few["sum_even"] = few["sum_even"].astype(labels.dtype)
    print(f"\n`sum_even` now keeps {kept.sum()} of its {len(x)} training labels.")
    run("5 % of sum_even's labels", data, few, args.epochs, 0,
        os.path.join(args.report, "few"))
    print(f"\nPlots and tables in {args.report}/. Time: {time.time() - start:.0f} s.")


if __name__ == "__main__":
    main()
