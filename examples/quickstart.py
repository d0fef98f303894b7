"""keras_mtl quickstart: one model, three tasks, compared with one model per task.

Builds a multi-task model on `keras_mtl.datasets.multi_digits()` (two overlapping 8x8 digits
on an 11x11 canvas) with a small convolutional backbone, trains it with Keras' progress bars,
then trains one single-task model per task the same way and prints a table of test metrics,
so you see at a glance whether sharing helped each task.

    python examples/quickstart.py [--epochs 8] [--seed 0]

Runs in about a minute on 2 CPU cores, offline.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_mtl  # noqa: E402

# The metric that sums up each task in the table (higher is better for all three).
HEADLINE = {"left": "accuracy", "right": "accuracy", "sum_even": "auc"}


def conv_backbone():
    inputs = keras.Input((11, 11, 1), name="image")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv_1")(inputs)
    x = keras.layers.Conv2D(64, 3, activation="relu", name="conv_2")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, x, name="conv_backbone")


def train(tasks, data, epochs, verbose):
    (x, y), (xv, yv), (xt, yt) = data
    names = [t.name for t in tasks]
    model = keras_mtl.build_mtl_model(
        conv_backbone(), tasks, shared_layers=1, shared_units=128, dropout=0.2,
        learning_rate=2e-3,
    )
    model.fit(
        x, {n: y[n] for n in names},
        validation_data=(xv, {n: yv[n] for n in names}),
        epochs=epochs, batch_size=64, verbose=verbose,
    )
    return model, model.evaluate(xt, {n: yt[n] for n in names}, verbose=0, return_dict=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    data = keras_mtl.datasets.multi_digits(seed=args.seed)
    (x, _), (xv, _), (xt, _) = data
    print(f"multi_digits: {len(x)} train, {len(xv)} validation, {len(xt)} test images "
          f"of shape {x.shape[1:]}; tasks: {[t.name for t in data.tasks]}")

    start = time.time()
    print("\n== One multi-task model ==")
    model, multi = train(data.tasks, data, args.epochs, verbose=2)
    model.summary(line_length=90)
    print("\n== One single-task model per task (same backbone and training) ==")
    single = {}
    for task in data.tasks:
        print(f"-- {task.name}")
        _, single[task.name] = train([task], data, args.epochs, verbose=0)

    print(f"\nTest metrics after {args.epochs} epochs (seed {args.seed}):\n")
    print(f"{'task':<10} {'metric':<9} {'single-task':>11} {'multi-task':>11} {'change':>8}")
    relative = []
    for task in data.tasks:
        metric = HEADLINE[task.name]
        # Keras drops the output's name from the logs of a single-output model.
        single_value = single[task.name][metric]
        multi_value = multi[f"{task.name}_{metric}"]
        relative.append((multi_value - single_value) / single_value)
        print(f"{task.name:<10} {metric:<9} {single_value:>11.4f} {multi_value:>11.4f} "
              f"{multi_value - single_value:>+8.4f}")
    delta_m = 100 * sum(relative) / len(relative)
    print(f"\nDelta_m (mean relative change, higher is better): {delta_m:+.2f} %")
    print(f"The multi-task model has {model.count_params():,} parameters. "
          f"Time: {time.time() - start:.0f} s.")


if __name__ == "__main__":
    main()
