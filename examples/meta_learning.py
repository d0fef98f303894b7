"""Meta-learning with keras_mtl.meta: learn to learn a new task from a few examples.

1. Sinusoids (the MAML paper's regression benchmark): meta-train a small MLP with MAML on
   tasks `y = a sin(x - b)`, then adapt it to new sinusoids from K = 5 points. A network
   trained with plain `fit` on all the tasks pooled is the baseline: it learns the average
   sinusoid (about zero), and a few gradient steps from there barely help.
2. Few-shot digits: 5-way 1-shot classification of classes never seen in meta-training
   (sklearn's 8x8 digits, rotated to make 40 classes).

Prints the query error against the number of adaptation steps, for MAML and the baseline,
and saves a plot of adapted sinusoid fits (PNG) to `--output-dir`. About 2-3 minutes on 2 CPU
cores.

    python examples/meta_learning.py --output-dir /tmp/meta_learning
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl  # noqa: E402


def mlp(input_shape, units, outputs, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input(input_shape), keras.layers.Flatten()]
        + [keras.layers.Dense(units, activation="relu") for _ in range(2)]
        + [keras.layers.Dense(outputs)]
    )


def table(frame, metric):
    rows = frame.pivot(index="model", columns="steps", values=metric)
    cis = frame.pivot(index="model", columns="steps", values=f"{metric}_ci95")
    lines = [f"{'':10s}" + "".join(f"{f'{s} steps':>18s}" for s in rows.columns)]
    for model in rows.index:
        cells = "".join(f"{rows.loc[model, s]:>10.3f} ± {cis.loc[model, s]:<5.3f}"
                        for s in rows.columns)
        lines.append(f"{model:10s}{cells}")
    return "\n".join(lines)


def sinusoids(output_dir, meta_steps):
    tasks = keras_mtl.datasets.sinusoid_tasks()
    learner = keras_mtl.meta.MAML(mlp((1,), 40, 1), inner_lr=0.01, inner_steps=1)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    print(f"Meta-training MAML on sinusoids: {meta_steps} meta-batches of 25 tasks, K = 5")
    learner.fit(
        tasks.episodes(meta_batch_size=25, shots=5, query_size=10, seed=0),
        epochs=4,
        steps_per_epoch=meta_steps // 4,
        validation_data=tasks.split("val").episodes(25, 5, 10, seed=1),
        validation_steps=4,
        verbose=2,
    )
    baseline = keras_mtl.meta.pooled_baseline(mlp((1,), 40, 1), tasks, loss="mse", epochs=20)
    results = keras_mtl.meta.evaluate_adaptation(
        learner, tasks.split("test"), shots=5, steps=(0, 1, 5, 10), num_tasks=100,
        query_size=50, baseline=baseline,
    )
    print("\nQuery MSE on 100 new sinusoids after adapting to K = 5 points (95% CI):")
    print(table(results, "mse"))
    print("(MAML paper, K = 5: about 0.7 after 1 step and 0.3 after several; the pooled "
          "baseline stays around 2.)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = tasks.split("test")
    rng = np.random.default_rng(3)
    grid = np.linspace(-5, 5, 200, dtype="float32")[:, None]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax in axes:
        task = test.draw_task(rng)
        (x, y), _ = test.draw_examples(task, rng, shots=5, query_size=1)
        ax.plot(grid, test.function(task, grid), "k-", label="true function")
        ax.plot(x, y, "k^", markersize=9, label="5 support points")
        ax.plot(grid, learner.predict(grid, verbose=0), ":", label="MAML, 0 steps")
        ax.plot(grid, learner.adapt(x, y, steps=10).predict(grid, verbose=0), "-",
                label="MAML, 10 steps")
        tuned = keras_mtl.meta.MAML(baseline, inner_lr=0.01)
        tuned.compile(loss="mse")
        ax.plot(grid, tuned.adapt(x, y, steps=10).predict(grid, verbose=0), "--",
                label="baseline, 10 steps")
        ax.set_title(f"amplitude {task[0]:.2f}, phase {task[1]:.2f}")
    axes[0].legend(fontsize=8)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "sinusoid_adaptation.png")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    print(f"Saved the adapted fits to {path}")


def digits(meta_steps):
    tasks = keras_mtl.datasets.few_shot_digits(ways=5)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    learner = keras_mtl.meta.MAML(mlp((8, 8, 1), 64, 5), inner_lr=0.4, inner_steps=1)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
    print(f"\nMeta-training MAML on 5-way 1-shot digits ({tasks.num_classes} training "
          f"classes): {meta_steps} meta-batches of 16 tasks")
    learner.fit(tasks.episodes(16, shots=1, query_size=5, seed=0), epochs=2,
                steps_per_epoch=meta_steps // 2, verbose=2)
    baseline = keras_mtl.meta.pooled_baseline(mlp((8, 8, 1), 64, 5), tasks, loss=loss,
                                              epochs=20)
    results = keras_mtl.meta.evaluate_adaptation(
        learner, tasks.split("test"), shots=1, steps=(0, 1, 5, 10), num_tasks=100,
        query_size=5, baseline=baseline, baseline_inner_lr=0.1,
    )
    print("\nQuery accuracy on 100 5-way 1-shot tasks of the 8 test classes (chance 0.2):")
    print(table(results, "accuracy"))

    # Adapting to one new task: a new model, ready to predict or save.
    (x, y), (x_query, y_query) = tasks.split("test").sample_task(1, 5, seed=11)
    adapted = learner.adapt(x, y, steps=5)
    accuracy = np.mean(np.argmax(adapted.predict(x_query, verbose=0), -1) == y_query)
    print(f"One new task, adapted from 5 images (one per class): query accuracy {accuracy:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir",
                        default=os.path.join(tempfile.gettempdir(), "keras_mtl_meta_learning"))
    parser.add_argument("--sinusoid-steps", type=int, default=6000)
    parser.add_argument("--digits-steps", type=int, default=600)
    args = parser.parse_args()
    sinusoids(args.output_dir, args.sinusoid_steps)
    digits(args.digits_steps)


if __name__ == "__main__":
    main()
