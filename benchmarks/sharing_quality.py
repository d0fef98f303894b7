"""Quality of hard sharing, MMoE and PLE as the correlation between two tasks falls.

On `keras_mtl.datasets.synthetic_tasks` (the MMoE paper's synthetic regression tasks) at task
correlations 1.0, 0.5 and 0.0, with several seeds each (a seed draws both the data set and the
initial weights), three models of about the same number of parameters are trained:

- `hard`: one shared ReLU layer (width chosen to match MMoE's parameter count);
- `mmoe`: the paper's MMoE, 8 experts of one 16-unit ReLU layer, a softmax gate per task;
- `ple`: PLE with 2 levels of 4 shared and 2 task-specific experts per task (expert width
  chosen to match MMoE's parameter count).

Every model has a tower of 8 ReLU units per task, is trained with Adam on the mean squared
error, and keeps its weights of lowest validation loss (early stopping). The script prints the
parameter counts, the measured label correlation of each data set and the test MSE of each
task (mean and standard deviation over seeds), and saves `sharing_quality.csv` (one row per
run), `sharing_quality.md` (the table) and `sharing_quality.png` under `--out`.

Run (about 5 minutes on 2 CPU cores with the defaults):

    python benchmarks/sharing_quality.py [--seeds 3] [--epochs 30] [--correlations 1 0.5 0]
"""

import argparse
import csv
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl  # noqa: E402

MODELS = ("hard", "mmoe", "ple")
TOWER_UNITS = 8


def _strategy(kind, units):
    if kind == "hard":
        return keras_mtl.sharing.Hard(shared_layers=1, units=units)
    if kind == "mmoe":
        return keras_mtl.sharing.MMoE(num_experts=8, expert_layers=1, expert_units=units)
    return keras_mtl.sharing.PLE(
        num_levels=2, shared_experts=4, task_experts=2, expert_layers=1, expert_units=units
    )


def _build(kind, units, data, learning_rate):
    tasks = [
        keras_mtl.Task(task.name, "regression", head_units=[TOWER_UNITS]) for task in data.tasks
    ]
    return keras_mtl.build_mtl_model(
        keras.Input(data.train[0].shape[1:]),
        tasks,
        sharing=_strategy(kind, units),
        learning_rate=learning_rate,
        steps_per_execution=8,
    )


def _count(kind, units, data):
    """Parameters of the strategy plus the towers and outputs of the tasks."""
    names = [task.name for task in data.tasks]
    strategy = _strategy(kind, units)
    strategy.set_task_names(names)
    strategy.build((None, data.train[0].shape[-1]))
    return strategy.count_params() + len(names) * (units * TOWER_UNITS + 2 * TOWER_UNITS + 1)


def _matched_units(kind, target, data):
    """The width whose model has the parameter count closest to `target`."""
    best = None
    for units in range(4, 1000):
        count = _count(kind, units, data)
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (units, count)
        if count > target:
            break
    return best


def _train_and_test(kind, units, data, seed, args):
    keras.utils.set_random_seed(seed)
    model = _build(kind, units, data, args.learning_rate)
    (x, y), validation, (x_test, y_test) = data
    model.fit(
        x,
        y,
        validation_data=validation,
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(patience=args.patience, restore_best_weights=True)
        ],
    )
    predictions = model.predict(x_test, batch_size=1024, verbose=0)
    return {name: float(np.mean((predictions[name] - y_test[name]) ** 2)) for name in y_test}


def _plot(rows, correlations, task_names, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(task_names), figsize=(5 * len(task_names), 4))
    for axis, task in zip(np.atleast_1d(axes), task_names):
        for offset, kind in zip((-0.02, 0.0, 0.02), MODELS):
            means, stds = [], []
            for p in correlations:
                values = [r[task] for r in rows if r["model"] == kind and r["correlation"] == p]
                means.append(np.mean(values))
                stds.append(np.std(values))
            axis.errorbar(np.array(correlations) + offset, means, yerr=stds, marker="o",
                          capsize=3, label=kind)
        axis.set_xlabel("task correlation p")
        axis.set_ylabel("test MSE")
        axis.set_title(task)
        axis.invert_xaxis()
        axis.legend()
    figure.suptitle("Hard sharing vs MMoE vs PLE on synthetic_tasks (mean ± std over seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _tables(rows, correlations, task_names):
    """The test-MSE table, and the paired comparison of each model with hard sharing."""
    header = ["p", "label corr."] + [f"{kind} {task}" for task in task_names for kind in MODELS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for p in correlations:
        at_p = [r for r in rows if r["correlation"] == p]
        label_correlation = np.mean([r["label_correlation"] for r in at_p if r["model"] == "hard"])
        cells = [f"{p:.1f}", f"{label_correlation:.2f}"]
        for task in task_names:
            means = {kind: np.mean([r[task] for r in at_p if r["model"] == kind])
                     for kind in MODELS}
            best = min(means, key=means.get)
            for kind in MODELS:
                std = np.std([r[task] for r in at_p if r["model"] == kind])
                cell = f"{means[kind]:.4f} ± {std:.4f}"
                cells.append(f"**{cell}**" if kind == best else cell)
        lines.append("| " + " | ".join(cells) + " |")

    # A seed changes the data set too, so MSEs vary more across seeds than across models;
    # comparing each run with hard sharing on the same seed and task removes that variance.
    paired = ["| p | model | MSE / hard MSE (geometric mean) | runs better than hard | "
              "runs where hard is best of the three |", "| --- | --- | --- | --- | --- |"]
    for p in correlations:
        by_seed = {}
        for r in rows:
            if r["correlation"] == p:
                by_seed.setdefault(r["seed"], {})[r["model"]] = r
        pairs = [(runs, task) for runs in by_seed.values() for task in task_names]
        hard_best = sum(
            min(MODELS, key=lambda kind: runs[kind][task]) == "hard" for runs, task in pairs
        )
        for kind in MODELS[1:]:
            ratios = [runs[kind][task] / runs["hard"][task] for runs, task in pairs]
            better = sum(ratio < 1 for ratio in ratios)
            paired.append(
                f"| {p:.1f} | {kind} | {np.exp(np.mean(np.log(ratios))):.3f} | "
                f"{better}/{len(pairs)} | {hard_best}/{len(pairs)} |"
            )
    return "\n".join(lines), "\n".join(paired)


def _report(rows, args, counts, task_names):
    table, paired = _tables(rows, args.correlations, task_names)
    seeds = len({r["seed"] for r in rows})
    summary = (
        f"Test MSE (mean ± std over {seeds} seeds; best per task in bold), "
        f"{args.epochs} epochs max, early stopping patience {args.patience}, "
        f"{args.num_samples} samples (70% train). Parameters: "
        + ", ".join(f"{kind} {counts[kind]:,}" for kind in MODELS) + "."
    )
    text = f"{summary}\n\n{table}\n\nPaired with hard sharing (same seed, same task):\n\n{paired}\n"
    with open(os.path.join(args.out, "sharing_quality.md"), "w") as f:
        f.write(text)
    _plot(rows, args.correlations, task_names, os.path.join(args.out, "sharing_quality.png"))
    print("\n" + text)


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key, value in r.items():
            if key == "seed":
                r[key] = int(value)
            elif key != "model":
                r[key] = float(value)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per correlation")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--num-samples", type=int, default=12000)
    parser.add_argument("--correlations", type=float, nargs="+", default=[1.0, 0.5, 0.0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild the tables and plot from the CSV in --out, no training")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()

    probe = keras_mtl.datasets.synthetic_tasks(1.0, num_samples=args.num_samples, seed=0)
    task_names = [task.name for task in probe.tasks]
    mmoe_count = _count("mmoe", 16, probe)
    units = {"mmoe": 16}
    counts = {"mmoe": mmoe_count}
    for kind in ("hard", "ple"):
        units[kind], counts[kind] = _matched_units(kind, mmoe_count, probe)
    for kind in MODELS:  # the formula above must agree with the built model
        assert _build(kind, units[kind], probe, 1e-3).count_params() == counts[kind]
    if args.report_only:
        rows = _read_csv(os.path.join(args.out, "sharing_quality.csv"))
        args.correlations = sorted({r["correlation"] for r in rows}, reverse=True)
        _report(rows, args, counts, task_names)
        return
    print("Parameters (with towers of 8 units):")
    for kind in MODELS:
        print(f"  {kind:5s} width {units[kind]:4d}: {counts[kind]:,}")

    rows = []
    for p in args.correlations:
        for seed in range(args.seeds):
            data = keras_mtl.datasets.synthetic_tasks(p, num_samples=args.num_samples, seed=seed)
            label_correlation = data.info["label_correlation"]
            variance = {n: float(np.var(data.test[1][n])) for n in task_names}
            for kind in MODELS:
                losses = _train_and_test(kind, units[kind], data, seed, args)
                rows.append({"model": kind, "correlation": p, "seed": seed,
                             "label_correlation": label_correlation,
                             **losses, **{f"{n}_variance": variance[n] for n in task_names}})
                print(f"  p={p:.1f} seed={seed} {kind:5s} "
                      + " ".join(f"{n}={losses[n]:.4f}" for n in task_names), flush=True)

    with open(os.path.join(args.out, "sharing_quality.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _report(rows, args, counts, task_names)
    print(f"\nSaved to {args.out} in {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
