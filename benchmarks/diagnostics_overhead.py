"""What the diagnostic callbacks cost: training time with each, against training without.

On the 4-task benchmark MLP of `benchmarks/overhead.py` (trunk 256-512-512, batch 256), side
by side in one run, interleaved:

- `GradientConflict(every=50)`: 4 task gradients of the shared parameters every 50 steps.
  Target: <= 1.05x.
- `TaskAffinity(every=10)`: 4 task gradients and 4 lookahead forward passes every 10 steps.
  Target: <= 1.3x.

    python benchmarks/diagnostics_overhead.py [--rounds 5] [--steps 100]

Each round times every contender once, in turn (CPU time of this process, so other load on
the machine hits all of them alike); the ratio of the medians is printed. Tracing happens
in a warm-up epoch first and is not timed.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl  # noqa: E402
from overhead import BATCH, TASKS, data, dataset, keras_mtl_model  # noqa: E402


def timed_fit(model, ds, callbacks):
    start = time.process_time()
    model.fit(ds, epochs=1, verbose=0, callbacks=callbacks)
    return time.process_time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help="training steps per timing")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    x, y = data(args.steps)
    ds = dataset(x, y, [t.name for t in TASKS])
    contenders = {
        "no diagnostics": (keras_mtl_model(TASKS), []),
        "GradientConflict(every=50)": (
            keras_mtl_model(TASKS), [keras_mtl.diagnostics.GradientConflict(every=50)]
        ),
        "TaskAffinity(every=10)": (
            keras_mtl_model(TASKS), [keras_mtl.diagnostics.TaskAffinity(every=10)]
        ),
    }
    targets = {"GradientConflict(every=50)": 1.05, "TaskAffinity(every=10)": 1.3}
    print(f"MLP trunk 256-512-512, 4 tasks, batch {BATCH}, {args.steps} steps per timing, "
          f"{args.rounds} interleaved rounds; TensorFlow {tf.__version__}, "
          f"Keras {keras.__version__}\n")
    for model, callbacks in contenders.values():
        timed_fit(model, ds, callbacks)  # trace and warm up
    times = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (model, callbacks) in contenders.items():
            times[name].append(timed_fit(model, ds, callbacks))
    base = statistics.median(times["no diagnostics"])
    print(f"{'training with':<28} {'ms CPU / step':>13} {'ratio':>7} {'target':>7}")
    for name in contenders:
        median = statistics.median(times[name])
        line = f"{name:<28} {1000 * median / args.steps:>13.2f} {median / base:>7.3f}"
        if name in targets:
            met = "met" if median / base <= targets[name] else "MISSED"
            line += f" {'<= ' + str(targets[name]):>7} {met}"
        print(line)
    conflict = contenders["GradientConflict(every=50)"][1][0]
    affinity = contenders["TaskAffinity(every=10)"][1][0]
    print(f"\nmeasurements: GradientConflict {conflict.history.step.nunique()}, "
          f"TaskAffinity {affinity.history.step.nunique()}")


if __name__ == "__main__":
    main()
