"""Two tasks from two separate data sets, trained together with `keras_mtl.data.mix`.

In practice a multi-task model's tasks rarely come from one labelled table. Here the
training images of `keras_mtl.datasets.multi_digits()` (two overlapping digits) are split
into two disjoint data sets of very different sizes, as if labelled by different teams:

- `left`: 4,800 images labelled only with the top-left digit;
- `right`: the other ~600 images, labelled only with the bottom-right digit.

`mix` turns them into one stream for `fit` (each batch from one data set; the other task's
labels set to its missing-label marker, -1), with temperature sampling at two temperatures:
T=1 samples in proportion to the data sets' sizes (the small task gets ~11 % of the batches),
T=4 draws the small data set more often (~37 %). Each task is then evaluated on its own test
data with `keras_mtl.data.evaluate_per_task`, and `PerTaskEvaluation` logs each task's
validation accuracy per epoch.

    python examples/separate_datasets.py [--epochs 6] [--seed 0]

Runs in a few minutes on 2 CPU cores, offline.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl  # noqa: E402

TEMPERATURES = (1.0, 4.0)
SMALL = 600  # images of the `right` data set


def conv_backbone():
    inputs = keras.Input((11, 11, 1), name="image")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv_1")(inputs)
    x = keras.layers.Conv2D(64, 3, activation="relu", name="conv_2")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, x, name="conv_backbone")


def separate(x, y, small):
    """Two disjoint data sets: `left` labels on most images, `right` on `small` others."""
    return {
        "left": (x[small:], y["left"][small:]),
        "right": (x[:small], y["right"][:small]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = keras_mtl.datasets.multi_digits(seed=args.seed)
    (x, y), (xv, yv), (xt, yt) = data
    tasks = [t for t in data.tasks if t.name in ("left", "right")]
    train = separate(x, y, SMALL)
    validation = separate(xv, yv, len(xv) // 2)
    # Test each task on every test image: its own test set.
    test = {"left": (xt, yt["left"]), "right": (xt, yt["right"])}
    sizes = {name: len(source[0]) for name, source in train.items()}
    print(f"training data sets: {sizes}; validation {len(xv)} images, test {len(xt)}")

    results = {}
    for temperature in TEMPERATURES:
        keras.utils.set_random_seed(args.seed)
        stream = keras_mtl.data.mix(
            train, tasks, sampling="temperature", temperature=temperature, batch_size=64,
            seed=args.seed,
        )
        shares = keras_mtl.data.sampling_weights(
            list(sizes.values()), "temperature", temperature=temperature
        )
        print(f"\n== temperature {temperature}: batches drawn from "
              + ", ".join(f"{n} {s:.0%}" for n, s in zip(sizes, shares))
              + f"; {stream.steps_per_epoch} steps per epoch ==")
        model = keras_mtl.build_mtl_model(
            conv_backbone(), tasks, shared_layers=1, shared_units=128, dropout=0.2,
            learning_rate=2e-3,
        )
        start = time.time()
        history = model.fit(
            stream, epochs=args.epochs, verbose=2,
            callbacks=[keras_mtl.data.PerTaskEvaluation(validation, batch_size=256)],
        )
        print("validation accuracy per epoch: " + ", ".join(
            f"{n} {[round(v, 3) for v in history.history[f'val_{n}_accuracy']]}"
            for n in sizes
        ))
        frame = keras_mtl.data.evaluate_per_task(model, test, batch_size=256)
        frame["share"] = shares
        frame["seconds"] = round(time.time() - start)
        results[temperature] = frame
        print(frame.to_string(float_format=lambda v: f"{v:.3f}"))

    print(f"\nTest metrics per task (each on its own test data, {args.epochs} epochs, "
          f"seed {args.seed}):\n")
    print(f"{'task':<7} {'examples':>8} " + " ".join(
        f"{'T=' + str(t) + ' share':>12} {'accuracy':>9} {'loss':>7}" for t in TEMPERATURES
    ))
    for name in sizes:
        row = f"{name:<7} {sizes[name]:>8} "
        for temperature in TEMPERATURES:
            frame = results[temperature]
            row += (f"{frame.loc[name, 'share']:>12.0%} {frame.loc[name, 'accuracy']:>9.3f} "
                    f"{frame.loc[name, 'loss']:>7.3f} ")
        print(row)
    low, high = TEMPERATURES
    change = {
        name: results[high].loc[name, "accuracy"] - results[low].loc[name, "accuracy"]
        for name in sizes
    }
    print("\nRaising the temperature from "
          f"{low} to {high} changed test accuracy by "
          + ", ".join(f"{n} {c:+.3f}" for n, c in change.items())
          + f" (chance: 0.100). Mean accuracy: T={low} "
          f"{np.mean(results[low]['accuracy']):.3f}, T={high} "
          f"{np.mean(results[high]['accuracy']):.3f}.")


if __name__ == "__main__":
    main()
