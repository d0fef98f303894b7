"""What keras_mtl costs, measured side by side in one run, interleaved.

(a) Training-step time of a `build_mtl_model` model against the same architecture written by
    hand in plain Keras (same layers, plain Keras losses and metrics). Target: <= 1.05.
(b) Training time of one 4-task hard-shared model against 4 single-task models of the same
    trunk, trained on the same data. Target: <= 0.4.

    python benchmarks/overhead.py [--rounds 7] [--steps 30]

Each round times every contender once, in turn, so drifts in machine load hit all of them;
the ratio of the medians is printed.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl  # noqa: E402

INPUT_DIM, WIDTH, DEPTH, BATCH = 256, 512, 2, 256
TASKS = [
    keras_mtl.Task("digit", "multiclass", num_classes=10),
    keras_mtl.Task("odd", "binary"),
    keras_mtl.Task("ink", "regression"),
    keras_mtl.Task("tags", "multilabel", num_classes=5),
]


def data(steps):
    rng = np.random.default_rng(0)
    n = steps * BATCH
    x = rng.normal(size=(n, INPUT_DIM)).astype("float32")
    y = {
        "digit": rng.integers(0, 10, n).astype("int32"),
        "odd": rng.integers(0, 2, (n, 1)).astype("float32"),
        "ink": rng.normal(size=(n, 1)).astype("float32"),
        "tags": rng.integers(0, 2, (n, 5)).astype("float32"),
    }
    return x, y


def dataset(x, y, names):
    labels = {name: y[name] for name in names}
    return tf.data.Dataset.from_tensor_slices((x, labels)).batch(BATCH).cache()


def keras_mtl_model(tasks):
    return keras_mtl.build_mtl_model(
        (INPUT_DIM,), tasks, shared_layers=DEPTH, shared_units=WIDTH
    )


def hand_written_model():
    """The same architecture as `keras_mtl_model(TASKS)`, in plain Keras."""
    inputs = keras.Input((INPUT_DIM,))
    x = inputs
    for i in range(DEPTH):
        x = keras.layers.Dense(WIDTH, activation="relu", name=f"shared_{i}")(x)
    outputs = {
        "digit": keras.layers.Dense(10, activation="softmax", name="digit")(x),
        "odd": keras.layers.Dense(1, activation="sigmoid", name="odd")(x),
        "ink": keras.layers.Dense(1, name="ink")(x),
        "tags": keras.layers.Dense(5, activation="sigmoid", name="tags")(x),
    }
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss={
            "digit": "sparse_categorical_crossentropy",
            "odd": "binary_crossentropy",
            "ink": "mse",
            "tags": "binary_crossentropy",
        },
        loss_weights={name: 1.0 for name in outputs},
        metrics={
            "digit": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            "odd": [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
            "ink": [keras.metrics.MeanAbsoluteError(name="mae")],
            "tags": [keras.metrics.AUC(name="auc")],
        },
    )
    return model


def timed_fit(model, ds):
    """Seconds of this process's CPU time (all threads) for one epoch over `ds`.

    CPU time rather than wall time: other processes on the machine slow the wall clock of
    whichever contender runs beside them, but not the work each contender does.
    """
    start = time.process_time()
    model.fit(ds, epochs=1, verbose=0)
    return time.process_time() - start


def measure(contenders, rounds):
    """contenders: name -> list of (model, dataset); returns name -> list of seconds."""
    for pairs in contenders.values():
        for model, ds in pairs:
            timed_fit(model, ds)  # trace and warm up
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, pairs in contenders.items():
            times[name].append(sum(timed_fit(model, ds) for model, ds in pairs))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30, help="training steps per timing")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    x, y = data(args.steps)
    names = [t.name for t in TASKS]
    ds_all = dataset(x, y, names)

    print(f"MLP trunk {INPUT_DIM}-{'-'.join([str(WIDTH)] * DEPTH)}, 4 tasks, batch {BATCH}, "
          f"{args.steps} steps per timing, {args.rounds} interleaved rounds; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}\n")

    times = measure(
        {"keras_mtl": [(keras_mtl_model(TASKS), ds_all)],
         "plain Keras": [(hand_written_model(), ds_all)]},
        args.rounds,
    )
    ours, plain = statistics.median(times["keras_mtl"]), statistics.median(times["plain Keras"])
    ratio_a = ours / plain
    print("(a) training step, build_mtl_model vs the same model by hand")
    print(f"    keras_mtl   {1000 * ours / args.steps:7.2f} ms CPU time / step")
    print(f"    plain Keras {1000 * plain / args.steps:7.2f} ms CPU time / step")
    print(f"    ratio {ratio_a:.3f}  (target <= 1.05: {'met' if ratio_a <= 1.05 else 'MISSED'})\n")

    times = measure(
        {"one 4-task model": [(keras_mtl_model(TASKS), ds_all)],
         "4 single-task models": [
             (keras_mtl_model([task]), dataset(x, y, [task.name])) for task in TASKS
         ]},
        args.rounds,
    )
    multi = statistics.median(times["one 4-task model"])
    singles = statistics.median(times["4 single-task models"])
    ratio_b = multi / singles
    print("(b) training the 4 tasks: one hard-shared model vs 4 single-task models")
    print(f"    one 4-task model     {multi:7.3f} s CPU time per {args.steps} steps")
    print(f"    4 single-task models {singles:7.3f} s CPU time per {args.steps} steps each")
    print(f"    ratio {ratio_b:.3f}  (target <= 0.4: {'met' if ratio_b <= 0.4 else 'MISSED'})")


if __name__ == "__main__":
    main()
