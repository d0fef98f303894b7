"""Training speed on a stream of `keras_mtl.data.mix` against one pre-merged data set.

Three single-task sources (a 5-class task of 20 000 examples, a binary task of 10 000, a
regression task of 5 000; 64 float inputs) are mixed with `keras_mtl.data.mix` (proportional
sampling) and `fit` is timed on the stream, against `fit` on the same 35 000 examples merged
by hand into NumPy arrays (each example's other tasks filled with their missing-label
markers) and shuffled by Keras: the same model, batch size and number of steps. Both
`batching="per_task"` and `batching="mixed"` are timed.

Target: steps per second on the stream >= 0.95 x on the pre-merged arrays.

The model: a hard-shared MLP (two shared Dense layers of 256 units), batch 128. Runs are
interleaved in rounds (every round times every variant) and the median over rounds is
reported, so machine load affects all variants alike. A run's speed is measured inside
`fit`, from the end of its 5th step to the end of its last (tracing and the start-up of
the input pipeline left out), as wall-clock steps per second.

Run: `python benchmarks/data_mix.py [--rounds 5] [--steps 300]`
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras_mtl  # noqa: E402

INPUT_DIM = 64
BATCH_SIZE = 128
SIZES = {"kind": 20_000, "flag": 10_000, "level": 5_000}
TARGET = 0.95
SKIPPED_STEPS = 5


def make_tasks():
    return [
        keras_mtl.Task("kind", "multiclass", num_classes=5),
        keras_mtl.Task("flag", "binary"),
        keras_mtl.Task("level", "regression"),
    ]


def make_sources(rng):
    sources = {}
    for name, size in SIZES.items():
        x = rng.normal(size=(size, INPUT_DIM)).astype("float32")
        if name == "kind":
            y = np.argmax(x[:, :5], axis=1).astype("int64")
        elif name == "flag":
            y = (x[:, 5:6] > 0).astype("float32")
        else:
            y = x[:, 6] + 0.5 * x[:, 7]
        sources[name] = (x, y)
    return sources


def merge_by_hand(sources, tasks):
    """The sources as one labelled table: other tasks' labels set to their markers."""
    x = np.concatenate([x for x, _ in sources.values()])
    y = {}
    for task in tasks:
        marker = task.resolved_missing_label
        marker = np.nan if keras_mtl.losses.is_nan_marker(marker) else marker
        parts = []
        for name, (xs, ys) in sources.items():
            if name == task.name:
                parts.append(np.asarray(ys, "float32").reshape(len(xs), -1))
            else:
                parts.append(np.full((len(xs), 1), marker, "float32"))
        y[task.name] = np.concatenate(parts)
    return x, y


class StepTimer(keras.callbacks.Callback):
    """Wall-clock steps per second from the end of step `SKIPPED_STEPS` to the last."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == SKIPPED_STEPS - 1:
            self.start, self.start_batch = time.perf_counter(), batch
        self.end, self.end_batch = time.perf_counter(), batch

    @property
    def steps_per_second(self):
        return (self.end_batch - self.start_batch) / (self.end - self.start)


def build_model(tasks):
    return keras_mtl.build_mtl_model(
        keras.Input((INPUT_DIM,)), tasks, shared_layers=2, shared_units=256
    )


def time_run(variant, model, data, steps):
    timer = StepTimer()
    if variant == "merged":
        x, y = data
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, steps_per_epoch=steps, verbose=0,
                  callbacks=[timer])
    else:
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    return timer.steps_per_second


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=250)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    tasks = make_tasks()
    sources = make_sources(np.random.default_rng(0))
    data = {
        "merged": merge_by_hand(sources, tasks),
        "per_task": keras_mtl.data.mix(sources, tasks, batch_size=BATCH_SIZE, seed=0),
        "mixed": keras_mtl.data.mix(
            sources, tasks, batch_size=BATCH_SIZE, batching="mixed", seed=0
        ),
    }
    models = {variant: build_model(tasks) for variant in data}
    for variant, model in models.items():  # tracing, outside the timed runs
        time_run(variant, model, data[variant], SKIPPED_STEPS + 2)
    speeds = {variant: [] for variant in data}
    for _ in range(args.rounds):
        for variant in data:
            speeds[variant].append(time_run(variant, models[variant], data[variant], args.steps))
    median = {variant: statistics.median(values) for variant, values in speeds.items()}
    print(f"fit steps/s, batch {BATCH_SIZE}, sources {SIZES}, median of {args.rounds} rounds "
          f"of {args.steps} steps")
    print(f"{'data':<34} {'steps/s':>9} {'ratio':>7}  target")
    print(f"{'pre-merged NumPy arrays':<34} {median['merged']:>9.1f} {1.0:>7.3f}")
    for variant in ("per_task", "mixed"):
        ratio = median[variant] / median["merged"]
        verdict = "ok" if ratio >= TARGET else "MISSED"
        print(f"{'mix(batching=' + repr(variant) + ')':<34} {median[variant]:>9.1f} "
              f"{ratio:>7.3f}  >= {TARGET} {verdict}")
    print("rounds (steps/s):", {k: [round(v, 1) for v in vs] for k, vs in speeds.items()})


if __name__ == "__main__":
    main()
