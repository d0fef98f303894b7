"""Meta-learning benchmark: MAML, FOMAML, ANIL and Reptile against a pooled-training baseline.

Three tables, side by side in one run:

1. Sinusoid regression (MAML paper, section 5.1), K = 5 and 10: query MSE on new tasks after
   0, 1 and 10 inner steps (SGD, alpha = 0.01), mean over tasks with a 95% interval.
2. Few-shot digits (sklearn digits x 4 rotations, test classes unseen), 5-way 1-shot and
   5-shot: query accuracy after adaptation.
3. Speed: one meta-training step of second-order MAML, first-order MAML and Reptile, relative
   to a plain training step on the same total number of examples.

Run:

    python benchmarks/meta_learning.py            # the README numbers (~40 min on 2 shared cores)
    python benchmarks/meta_learning.py --quick    # a smoke run
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import keras_mtl  # noqa: E402
from keras_mtl import meta  # noqa: E402

# The published curve for K = 5, read off the MAML paper's figure (REFERENCES.md).
PUBLISHED_K5 = {"MAML": {1: 0.7, 10: 0.3}, "baseline": {1: 2.0, 10: 2.0}}


def sinusoid_model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(40, activation="relu"),
            keras.layers.Dense(40, activation="relu"),
            keras.layers.Dense(1),
        ],
        name="sinusoid_mlp",
    )


def digits_model(ways, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(ways),
        ],
        name="digits_mlp",
    )


def learners(make_model, inner_lr, reptile_lr, reptile_steps):
    """The four meta-learners, each with its own fresh model and outer optimizer."""
    return {
        "MAML": (meta.MAML(make_model(), inner_lr=inner_lr), keras.optimizers.Adam(1e-3)),
        "FOMAML": (meta.MAML(make_model(), inner_lr=inner_lr, first_order=True),
                   keras.optimizers.Adam(1e-3)),
        "ANIL": (meta.ANIL(make_model(), inner_lr=inner_lr), keras.optimizers.Adam(1e-3)),
        "Reptile": (meta.Reptile(make_model(), inner_lr=reptile_lr, inner_steps=reptile_steps),
                    keras.optimizers.Adam(1e-3)),
    }


def sinusoid(shots, meta_steps, num_tasks, baseline_epochs):
    tasks = keras_mtl.datasets.sinusoid_tasks()
    test = tasks.split("test")
    rows = []
    seconds = {}
    for name, (learner, optimizer) in learners(
        lambda: sinusoid_model(0), inner_lr=0.01, reptile_lr=0.01, reptile_steps=5
    ).items():
        learner.compile(optimizer=optimizer, loss="mse")
        start = time.perf_counter()
        learner.fit(tasks.episodes(25, shots, 10, seed=1), epochs=1,
                    steps_per_epoch=meta_steps, verbose=0)
        seconds[name] = time.perf_counter() - start
        table = meta.evaluate_adaptation(learner, test, shots=shots, steps=(0, 1, 10),
                                         num_tasks=num_tasks, query_size=50, seed=7)
        table["model"] = name
        rows.append(table)
    baseline = meta.pooled_baseline(sinusoid_model(0), tasks, loss="mse",
                                    epochs=baseline_epochs, num_examples=50000)
    table = meta.evaluate_adaptation(learner, test, shots=shots, steps=(0, 1, 10),
                                     num_tasks=num_tasks, query_size=50, baseline=baseline,
                                     seed=7)
    rows.append(table[table["model"] == "baseline"])
    return pd.concat(rows, ignore_index=True), seconds


def digits(shots, meta_steps, num_tasks, ways=5):
    tasks = keras_mtl.datasets.few_shot_digits(ways=ways)
    test = tasks.split("test")
    rows = []
    for name, (learner, optimizer) in learners(
        lambda: digits_model(ways, 0), inner_lr=0.4, reptile_lr=0.1, reptile_steps=5
    ).items():
        learner.compile(optimizer=optimizer,
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        learner.fit(tasks.episodes(16, shots, 5, seed=1), epochs=1,
                    steps_per_epoch=meta_steps, verbose=0)
        table = meta.evaluate_adaptation(learner, test, shots=shots, steps=(0, 1, 10),
                                         num_tasks=num_tasks, query_size=5, seed=7)
        table["model"] = name
        rows.append(table)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    baseline = meta.pooled_baseline(digits_model(ways, 0), tasks, loss=loss, epochs=20)
    table = meta.evaluate_adaptation(learner, test, shots=shots, steps=(0, 1, 10),
                                     num_tasks=num_tasks, query_size=5, baseline=baseline,
                                     baseline_inner_lr=0.1, seed=7)
    rows.append(table[table["model"] == "baseline"])
    return pd.concat(rows, ignore_index=True)


def speed(repeats):
    """Milliseconds per step, on 25 tasks x (10 support + 10 query) = 500 examples."""
    tasks = keras_mtl.datasets.sinusoid_tasks()
    episodes = tasks.episodes(25, 10, 10, seed=0).cache().repeat()
    (x_s, y_s), (x_q, y_q) = tasks.sample_batch(25, 10, 10, seed=0)
    x = np.concatenate([x_s, x_q], axis=1).reshape(-1, 1)
    y = np.concatenate([y_s, y_q], axis=1).reshape(-1, 1)
    import tensorflow as tf

    plain_data = tf.data.Dataset.from_tensors((x, y)).repeat()
    timed = {
        "plain step (500 examples)": (sinusoid_model(0), plain_data),
        "MAML, second order": (meta.MAML(sinusoid_model(0)), episodes),
        "MAML, first order": (meta.MAML(sinusoid_model(0), first_order=True), episodes),
        "Reptile (5 inner steps)": (meta.Reptile(sinusoid_model(0), inner_steps=5), episodes),
    }
    results = {}
    for name, (model, data) in timed.items():
        model.compile(optimizer="adam", loss="mse")
        model.fit(data, epochs=1, steps_per_epoch=5, verbose=0)  # trace and warm up
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            model.fit(data, epochs=1, steps_per_epoch=repeats, verbose=0)
            best = min(best, (time.perf_counter() - start) / repeats * 1000)
        results[name] = best
    plain = results["plain step (500 examples)"]
    return pd.DataFrame(
        [{"step": k, "ms": round(v, 2), "x plain": round(v / plain, 2)} for k, v in results.items()]
        + [{"step": "second / first order", "ms": float("nan"),
            "x plain": round(results["MAML, second order"] / results["MAML, first order"], 2)}]
    )


def pivot(table, metric):
    """One row per model, `metric` after each number of steps as 'mean ± ci'."""
    table = table.copy()
    table["cell"] = [f"{m:.3f} ± {c:.3f}" for m, c in zip(table[metric], table[f"{metric}_ci95"])]
    out = table.pivot(index="model", columns="steps", values="cell")
    out.columns = [f"{metric} after {s} steps" for s in out.columns]
    order = [m for m in ("MAML", "FOMAML", "ANIL", "Reptile", "baseline") if m in out.index]
    return out.loc[order]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, minutes")
    parser.add_argument("--sinusoid-steps", type=int, default=12000)
    parser.add_argument("--digits-steps", type=int, default=500)
    args = parser.parse_args()
    sin_steps = 100 if args.quick else args.sinusoid_steps
    digit_steps = 50 if args.quick else args.digits_steps
    num_tasks = 20 if args.quick else 100

    print(f"== Sinusoid regression: query MSE on {num_tasks} new tasks (50 query points), "
          f"{sin_steps} meta-steps of 25 tasks ==")
    for shots in (5, 10):
        table, seconds = sinusoid(shots, sin_steps, num_tasks, 5 if args.quick else 30)
        print(f"\nK = {shots}")
        print(pivot(table, "mse").to_string())
        print("meta-training seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
        if shots == 5:
            maml = table[table["model"] == "MAML"].set_index("steps")["mse"]
            base = table[table["model"] == "baseline"].set_index("steps")["mse"]
            print("MAML / published (K=5): "
                  + ", ".join(f"{s} step(s): {maml[s] / PUBLISHED_K5['MAML'][s]:.2f}x"
                              for s in (1, 10)))
            for name in ("MAML", "FOMAML", "ANIL", "Reptile"):
                value = table[(table["model"] == name) & (table["steps"] == 1)]["mse"].iloc[0]
                print(f"{name} / baseline after 1 step: {value / base[1]:.2f}")

    print(f"\n== Few-shot digits, 5-way: query accuracy on {num_tasks} tasks of unseen classes, "
          f"{digit_steps} meta-steps of 16 tasks ==")
    for shots in (1, 5):
        print(f"\n5-way {shots}-shot")
        print(pivot(digits(shots, digit_steps, num_tasks), "accuracy").to_string())

    print("\n== Speed: one meta-training step (25 tasks x 20 examples, 40-40 MLP) ==")
    print(speed(20 if args.quick else 100).to_string(index=False))


if __name__ == "__main__":
    main()
