"""Two conflicting tasks of different scales trained with several weighting methods.

Two regression tasks read opposed directions of the input (`y_a = sin(2 u.x) + u.x`,
`y_b = 10 * (sin(2 v.x) - u.x)` with `v` orthogonal to `u`) through a narrow shared layer,
so their gradients on the shared layers conflict, and the second task's labels are 10 times
larger, so its loss dominates an equal-weight sum. Each method trains the same hard-shared
network; the script prints each task's test MSE relative to its label variance (lower is
better; 1.0 is the score of predicting the mean), so both tasks count alike, and the task
weights of the last epoch.

Run: `python examples/conflicting_tasks.py [--epochs 15] [--methods static famo ...]` (about
two minutes on a laptop CPU with the seven default methods).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl  # noqa: E402

SCALE = 10.0
# Static, then methods that do not depend on the losses' scales (Uncertainty, FAMO, DB-MTL,
# IMTL-G's direction, Nash-MTL) or that resolve conflicts (PCGrad).
DEFAULT_METHODS = ("static", "uncertainty", "pcgrad", "famo", "imtl", "nash_mtl", "db_mtl")


def load(seed, num_samples=6000, dim=20):
    rng = np.random.default_rng(seed)
    u, v = np.linalg.qr(rng.normal(size=(dim, 2)))[0].T
    x = rng.normal(size=(num_samples, dim)).astype("float32")
    noise = rng.normal(scale=0.1, size=(num_samples, 2))
    y = {
        "task_a": np.sin(2 * x @ u) + x @ u + noise[:, 0],
        "task_b": SCALE * (np.sin(2 * x @ v) - x @ u + noise[:, 1]),
    }
    y = {k: v.reshape(-1, 1).astype("float32") for k, v in y.items()}
    splits = np.split(np.arange(num_samples), [int(0.7 * num_samples), int(0.8 * num_samples)])
    parts = [(x[i], {k: v[i] for k, v in y.items()}) for i in splits]
    tasks = [keras_mtl.Task(name, "regression") for name in y]
    return tasks, list(y), *parts


def relative_mse(model, x, y, names):
    predictions = model.predict(x, verbose=0)
    return {
        name: float(np.mean((predictions[name] - y[name]) ** 2) / np.var(y[name]))
        for name in names
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--methods", nargs="+", default=list(DEFAULT_METHODS),
        help=f"registered names, of {keras_mtl.weighting.names()}",
    )
    args = parser.parse_args()
    tasks, names, train, validation, test = load(args.seed)
    methods = {name: keras_mtl.weighting.get(name) for name in args.methods}
    print(f"test MSE / label variance ({names[1]} labels scaled by {SCALE:g}), "
          f"{args.epochs} epochs, seed {args.seed}")
    columns = " ".join(f"{n:>10}" for n in names)
    print(f"{'method':<12} {columns} {'mean':>8}   final weights")
    for label, method in methods.items():
        keras.utils.set_random_seed(args.seed)
        model = keras_mtl.build_mtl_model(
            keras.Input(train[0].shape[1:]), tasks, shared_layers=2, shared_units=8,
            weighting=method, learning_rate=1e-3,
        )
        history = model.fit(
            *train, validation_data=validation, epochs=args.epochs, batch_size=64, verbose=0
        )
        scores = relative_mse(model, *test, names)
        weights = ", ".join(
            f"{n}={history.history[f'weight_{n}'][-1]:.3g}" for n in names
        )
        print(
            f"{label:<12} " + " ".join(f"{scores[n]:10.3f}" for n in names)
            + f" {np.mean(list(scores.values())):8.3f}   {weights}"
        )


if __name__ == "__main__":
    main()
