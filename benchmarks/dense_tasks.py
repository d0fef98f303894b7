"""Dense tasks: quality of single-task models, hard sharing and MTAN, and the step time.

(a) Quality, on `keras_mtl.datasets.multi_shapes` (32x32 scenes; segmentation, depth with
    holes, shape count): one single-task model per task, then hard sharing and MTAN, each
    with static (equal) weighting and with one adaptive method (`--adaptive`, default DWA).
    Every model has the same backbone (four 3x3 convolutions down to an 8x8 map), two
    shared stages of `--units` channels and the same heads, and keeps its weights of best
    validation loss. The table has the test metrics (mean IoU and pixel accuracy up, depth
    absolute and relative error down, count accuracy up) and Δm, the mean relative change
    of every metric against the single-task models, signed so that better is positive
    (LibMTL's NYUv2 table, at CPU scale).
(b) Speed: the training step of a `build_mtl_model` segmentation + depth model against the
    same architecture written by hand in plain Keras (same layers, Keras' own losses and
    metrics), in CPU time, interleaved rounds, ratio of the medians. Target: <= 1.05.

    python benchmarks/dense_tasks.py [--epochs 12] [--seeds 2] [--skip-quality] [--skip-speed]

About 20 minutes on 2 CPU cores with the defaults (the speed part alone: 1 minute).
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from overhead import measure  # noqa: E402

import keras_mtl  # noqa: E402

# metric -> (task, higher is better)
METRICS = {
    "segmentation_mean_iou": ("segmentation", True),
    "segmentation_pixel_accuracy": ("segmentation", True),
    "depth_abs_err": ("depth", False),
    "depth_rel_err": ("depth", False),
    "count_accuracy": ("count", True),
}


def backbone(size=32):
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(24, 3, padding="same", activation="relu", name="conv_1")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv_2")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_3")(x)
    x = keras.layers.Conv2D(48, 3, strides=2, padding="same", activation="relu", name="conv_4")(x)
    return keras.Model(inputs, x, name="backbone")


# === (a) Quality ===


def train_and_test(tasks, sharing, weighting, data, args):
    (x, y), (xv, yv), (xt, yt) = data
    names = [t.name for t in tasks]
    model = keras_mtl.build_mtl_model(
        backbone(), tasks, sharing=sharing, weighting=weighting, shared_layers=2,
        shared_units=args.units, learning_rate=3e-3,
    )
    model.fit(
        x, {n: y[n] for n in names}, validation_data=(xv, {n: yv[n] for n in names}),
        epochs=args.epochs, batch_size=32, verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(patience=args.epochs, restore_best_weights=True)],
    )
    return model.evaluate(xt, {n: yt[n] for n in names}, verbose=0, return_dict=True)


def delta_m(scores, single):
    changes = [
        (scores[m] - single[m]) / single[m] * (1 if higher else -1)
        for m, (_, higher) in METRICS.items()
    ]
    return 100.0 * float(np.mean(changes))


def quality(args):
    rows = {}
    for seed in range(args.seeds):
        keras.utils.set_random_seed(seed)
        data = keras_mtl.datasets.multi_shapes(seed=seed, num_train=args.train)
        single = {}
        for task in data.tasks:
            scores = train_and_test([task], "hard", "static", data, args)
            # A single-task model's logs do not prefix the metrics with the task's name.
            single.update({m: scores[m[len(task.name) + 1:]]
                           for m, (t, _) in METRICS.items() if t == task.name})
        rows.setdefault("single-task", []).append(single)
        for sharing in ("hard", "mtan"):
            for weighting in ("static", args.adaptive):
                scores = train_and_test(data.tasks, sharing, weighting, data, args)
                scores = {m: scores[m] for m in METRICS}
                scores["delta_m"] = delta_m(scores, single)
                rows.setdefault(f"{sharing} + {weighting}", []).append(scores)
                print(f"  seed {seed} {sharing} + {weighting}: Δm {scores['delta_m']:+.2f}%",
                      flush=True)
    header = ["model", "mIoU ↑", "pix acc ↑", "abs err ↓", "rel err ↓", "count acc ↑",
              "Δm % ↑ (± sd over seeds)"]
    print(f"\nMean over {args.seeds} seed(s); Δm of each seed against that seed's single-task "
          "models.")
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, runs in rows.items():
        means = {key: np.mean([r[key] for r in runs]) for key in runs[0]}
        cells = [f"{means[m]:.4f}" for m in METRICS]
        if "delta_m" in means:
            spread = np.std([r["delta_m"] for r in runs], ddof=1) if len(runs) > 1 else 0.0
            cells.append(f"{means['delta_m']:+.2f} ± {spread:.2f}")
        else:
            cells.append("0")
        print(f"| {name} | " + " | ".join(cells) + " |")


# === (b) Speed ===

SPEED_SIZE, SPEED_UNITS, SPEED_BATCH = 32, 32, 32


def speed_tasks():
    return [
        keras_mtl.Task("seg", "segmentation", num_classes=4,
                       metrics=["mean_iou", "pixel_accuracy"]),
        keras_mtl.Task("depth", "dense_regression", metrics=["abs_err"]),
    ]


def hand_written_model():
    """The architecture of `build_mtl_model(backbone(), speed_tasks(), shared_layers=1)`."""
    inputs = keras.Input((SPEED_SIZE, SPEED_SIZE, 3))
    features = backbone(SPEED_SIZE)(inputs)
    shared = keras.layers.Dense(SPEED_UNITS, activation="relu")(features)

    def head(units, activation, name):
        x = keras.layers.Conv2D(units, 1)(shared)
        x = keras.layers.Resizing(SPEED_SIZE, SPEED_SIZE, interpolation="bilinear")(x)
        return keras.layers.Activation(activation, name=name)(x)

    outputs = {"seg": head(4, "softmax", "seg"), "depth": head(1, "linear", "depth")}
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss={"seg": keras.losses.SparseCategoricalCrossentropy(ignore_class=-1),
              "depth": "mean_absolute_error"},
        metrics={
            "seg": [keras.metrics.MeanIoU(4, sparse_y_pred=False, ignore_class=-1,
                                          name="mean_iou"),
                    keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy")],
            "depth": [keras.metrics.MeanAbsoluteError(name="abs_err")],
        },
    )
    return model


def speed(args):
    data = keras_mtl.datasets.multi_shapes(seed=0, num_train=args.steps * SPEED_BATCH,
                                           num_validation=0, num_test=1, missing_depth=0.0)
    x, y = data.train
    labels = {"seg": y["segmentation"], "depth": y["depth"]}
    ds = tf.data.Dataset.from_tensor_slices((x, labels)).batch(SPEED_BATCH).cache()
    ours = keras_mtl.build_mtl_model(backbone(SPEED_SIZE), speed_tasks(), shared_layers=1,
                                     shared_units=SPEED_UNITS)
    times = measure({"keras_mtl": [(ours, ds)], "plain Keras": [(hand_written_model(), ds)]},
                    args.rounds)
    mtl, plain = statistics.median(times["keras_mtl"]), statistics.median(times["plain Keras"])
    print(f"\n(b) segmentation + depth, {SPEED_SIZE}x{SPEED_SIZE} inputs, batch {SPEED_BATCH}, "
          f"{args.steps} steps per timing, {args.rounds} rounds (CPU seconds, median)")
    print(f"    keras_mtl {mtl:.3f} s   plain Keras {plain:.3f} s   ratio {mtl / plain:.3f}  "
          f"(target <= 1.05: {'met' if mtl / plain <= 1.05 else 'MISSED'})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--train", type=int, default=1000, help="training scenes")
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--adaptive", default="dwa")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    if not args.skip_quality:
        print(f"(a) multi_shapes, {args.train} training scenes, {args.epochs} epochs, "
              f"{args.seeds} seed(s)")
        quality(args)
    if not args.skip_speed:
        speed(args)


if __name__ == "__main__":
    main()
