"""Test quality of every weighting method on MultiDigits, against single-task models.

On `keras_mtl.datasets.multi_digits()` (two overlapping 8x8 digits: tasks `left` and
`right`, 10 classes each, and `sum_even`, binary), flattened to 121 inputs, every registered
weighting method (in its default mode) trains the same hard-shared MLP (two shared ReLU layers
of 128 units, one head per task) with Adam, for a fixed number of epochs, once per seed (the
seed draws the initial weights and the batch order; the data set is the same). One
single-task model per task and seed, the same network with one head, is the reference:

    Delta_m = 100 * mean over tasks of (M_t - S_t) / S_t

with `M_t` the method's test metric of task `t` (accuracy for `left` and `right`, AUC for
`sum_even`: higher is better for all) and `S_t` the single-task model's, averaged over seeds.
Also printed, paired by seed: how the method's Delta_m compares with Static's. Saves
`weighting_quality.csv` (one row per run) and `weighting_quality.md` (the table) under `--out`.

Run (about 25 minutes of CPU time with the defaults; the gradient methods cost 2-3 times a
loss-based one per step):

    python benchmarks/weighting_quality.py [--seeds 3] [--epochs 12] [--methods famo pcgrad ...]
"""

import argparse
import csv
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl  # noqa: E402

METRICS = {"left": "accuracy", "right": "accuracy", "sum_even": "auc"}
BATCH_SIZE = 64


def _flat(split):
    x, y = split
    return x.reshape(len(x), -1), y


def _train(tasks, weighting, seed, data, epochs, learning_rate):
    """Test metrics (`{task: value}`) and CPU seconds of one training run."""
    (x, y), (x_test, y_test) = _flat(data.train), _flat(data.test)
    names = [task.name for task in tasks]
    keras.utils.set_random_seed(seed)
    model = keras_mtl.build_mtl_model(
        keras.Input(x.shape[1:]), tasks, shared_layers=2, shared_units=128,
        weighting=weighting, learning_rate=learning_rate, steps_per_execution=8,
    )
    start = time.process_time()
    model.fit(x, {n: y[n] for n in names}, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
    seconds = time.process_time() - start
    results = model.evaluate(
        x_test, {n: y_test[n] for n in names}, verbose=0, return_dict=True
    )
    # Keras drops the output's name from the logs of a single-output model.
    prefix = (lambda n: "") if len(names) == 1 else (lambda n: f"{n}_")
    return {n: float(results[f"{prefix(n)}{METRICS[n]}"]) for n in names}, seconds


def _delta_m(metrics, single):
    return 100 * float(np.mean([(metrics[t] - single[t]) / single[t] for t in METRICS]))


def _mean_sd(values):
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--methods", nargs="+", default=keras_mtl.weighting.names())
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    data = keras_mtl.datasets.multi_digits(seed=0)
    methods = ["static"] + [m for m in args.methods if m != "static"]
    seeds = list(range(args.seeds))
    rows = []

    single = {t: [] for t in METRICS}
    for seed in seeds:
        for task in data.tasks:
            metrics, seconds = _train(
                [task], "static", seed, data, args.epochs, args.learning_rate
            )
            single[task.name].append(metrics[task.name])
            rows.append({"method": "single_task", "seed": seed, "task": task.name,
                         "metric": metrics[task.name], "cpu_seconds": seconds})
    reference = {t: float(np.mean(v)) for t, v in single.items()}
    print(f"single-task reference (mean of {len(seeds)} seeds): {reference}", flush=True)

    results = {}
    for seed in seeds:
        for method in methods:
            metrics, seconds = _train(
                data.tasks, method, seed, data, args.epochs, args.learning_rate
            )
            results.setdefault(method, []).append((metrics, seconds))
            for task, value in metrics.items():
                rows.append({"method": method, "seed": seed, "task": task, "metric": value,
                             "cpu_seconds": seconds})
            print(f"seed {seed} {method:<12} {metrics} Delta_m "
                  f"{_delta_m(metrics, reference):+.2f} % ({seconds:.0f} s)", flush=True)

    static_deltas = [_delta_m(m, reference) for m, _ in results["static"]]
    header = (
        "| method | left accuracy | right accuracy | sum_even AUC | Delta_m % | "
        "Delta_m - static (paired) | seeds better than static | CPU s/run |"
    )
    lines = [header, "|" + "---|" * 8]
    lines.append(
        f"| single-task | {_mean_sd(single['left'])} | {_mean_sd(single['right'])} | "
        f"{_mean_sd(single['sum_even'])} | 0 (reference) | | | |"
    )
    for method in methods:
        runs = results[method]
        deltas = [_delta_m(m, reference) for m, _ in runs]
        paired = [d - s for d, s in zip(deltas, static_deltas)]
        better = sum(p > 0 for p in paired)
        lines.append(
            f"| {method} | " + " | ".join(_mean_sd([m[t] for m, _ in runs]) for t in METRICS)
            + f" | {np.mean(deltas):+.2f} ± {np.std(deltas):.2f} | "
            + ("-" if method == "static" else f"{np.mean(paired):+.2f}")
            + f" | {'-' if method == 'static' else f'{better} / {len(paired)}'} | "
            f"{statistics.median(s for _, s in runs):.0f} |"
        )
    table = "\n".join(lines)
    print(
        f"\nMultiDigits test metrics, {args.epochs} epochs, mean ± sd over {len(seeds)} seeds; "
        "Delta_m against single-task models (higher is better)\n"
    )
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "weighting_quality.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(args.out, "weighting_quality.md"), "w") as f:
        f.write(
            f"`python benchmarks/weighting_quality.py --seeds {args.seeds} --epochs "
            f"{args.epochs}`: MultiDigits test metrics, mean ± sd over {len(seeds)} seeds; "
            "Delta_m against single-task models.\n\n" + table + "\n"
        )


if __name__ == "__main__":
    main()
