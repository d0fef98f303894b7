"""Which tasks should train together? Task Affinity Grouping on tasks with planted groups.

Six regression tasks in the style of `keras_mtl.datasets.synthetic_tasks`: tasks a1-a3 are
scaled, noisy copies of a non-linear function of (nearly) one direction of the input, b1-b3
of another, orthogonal one (the planted groups; the example does not tell the model). The script

1. trains one model on all six tasks with `keras_mtl.diagnostics.TaskAffinity`, which
   measures how a step for each task changes every other task's loss (and
   `GradientConflict` for the gradients' cosines);
2. splits the tasks into two groups with `keras_mtl.diagnostics.group_tasks`;
3. trains one model per suggested group, and one per group of a random split, with the
   same architecture and training as the all-tasks model;
4. prints the test loss of every task under the three set-ups, and the affinity report
   (CSV and PNG files) in `--output`.

    python examples/task_grouping.py [--epochs 12] [--seed 0] [--output task_grouping_report]

Runs offline in a few minutes on 2 CPU cores (5 minutes measured on 2 cores shared with
other jobs).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl  # noqa: E402
from keras_mtl import diagnostics  # noqa: E402

GROUPS = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"]}


def planted_tasks(seed, num_samples=4000, dim=16):
    """x ~ N(0, I); task k of group g: y = s_k (z + sin(2 z)) + noise with z = w_k . x,
    where the w_k of one group are close (cosine about 0.99) and the groups' orthogonal."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    x = rng.normal(size=(num_samples, dim)).astype("float32")
    y = {}
    for g, names in enumerate(GROUPS.values()):
        for k, (name, scale) in enumerate(zip(names, (1.0, 1.5, 0.7))):
            # The group's direction, tilted a little towards a direction of the task's own.
            w = basis[:, g] + 0.1 * basis[:, 2 + 3 * g + k]
            z = x @ (w / np.linalg.norm(w))
            y[name] = (scale * (z + np.sin(2.0 * z)) + 0.1 * rng.normal(size=z.shape))[:, None]
    split = [int(0.7 * num_samples), int(0.8 * num_samples)]
    parts = [slice(0, split[0]), slice(split[0], split[1]), slice(split[1], None)]
    return [(x[p], {n: v[p].astype("float32") for n, v in y.items()}) for p in parts]


def train(names, data, epochs, seed, callbacks=()):
    (x, y), (xv, yv), (xt, yt) = data
    keras.utils.set_random_seed(seed)
    model = keras_mtl.build_mtl_model(
        (x.shape[1],), [keras_mtl.Task(n, "regression") for n in names],
        shared_layers=1, shared_units=4, learning_rate=3e-3,
    )
    model.fit(x, {n: y[n] for n in names}, validation_data=(xv, {n: yv[n] for n in names}),
              epochs=epochs, batch_size=64, verbose=0, callbacks=list(callbacks))
    scores = model.evaluate(xt, {n: yt[n] for n in names}, verbose=0, return_dict=True)
    return {n: scores[f"{n}_loss"] for n in names}


def train_groups(groups, data, epochs, seed):
    losses = {}
    for group in groups:
        losses.update(train(group, data, epochs, seed))
    return losses


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="task_grouping_report")
    args = parser.parse_args()
    start = time.time()
    data = planted_tasks(args.seed)
    names = [n for group in GROUPS.values() for n in group]

    print("== 1. All six tasks in one model, measuring affinity and gradient conflict ==")
    affinity = diagnostics.TaskAffinity(every=10)
    conflict = diagnostics.GradientConflict(every=50)
    together = train(names, data, args.epochs, args.seed, callbacks=[affinity, conflict])
    print("Mean affinity Z[i -> j] (row i steps, column j's loss; x100):")
    print((100 * affinity.matrix()).round(2).to_string())
    print("\nMean cosine of the task gradients on the shared layers:")
    print(conflict.matrix().round(2).to_string())

    print("\n== 2. Grouping the tasks ==")
    grouping = diagnostics.group_tasks(affinity, 2)
    print(f"suggested groups: {grouping.groups} (score {grouping.total:.4f}, "
          f"{'exhaustive' if grouping.exhaustive else 'heuristic'} search)")
    rng = np.random.default_rng(args.seed)
    while True:
        order = [str(n) for n in rng.permutation(names)]
        random_groups = [sorted(order[:3]), sorted(order[3:])]
        if sorted(map(sorted, random_groups)) != sorted(map(sorted, grouping.groups)):
            break
    print(f"random groups:    {random_groups} (score "
          f"{diagnostics.partition_score(affinity, random_groups):.4f})")

    print("\n== 3. One model per group ==")
    suggested = train_groups(grouping.groups, data, args.epochs, args.seed)
    random = train_groups(random_groups, data, args.epochs, args.seed)

    print(f"\nTest MSE per task after {args.epochs} epochs (lower is better):\n")
    print(f"{'task':<6} {'all together':>13} {'TAG groups':>11} {'random groups':>14}")
    for name in names:
        print(f"{name:<6} {together[name]:>13.4f} {suggested[name]:>11.4f} {random[name]:>14.4f}")
    means = [np.mean(list(d.values())) for d in (together, suggested, random)]
    print(f"{'mean':<6} {means[0]:>13.4f} {means[1]:>11.4f} {means[2]:>14.4f}")
    print(f"\nTAG groups vs all together: {100 * (means[1] - means[0]) / means[0]:+.1f} % "
          f"test MSE; vs random groups: {100 * (means[1] - means[2]) / means[2]:+.1f} %.")
    written = diagnostics.report(args.output, conflict=conflict, affinity=affinity,
                                 grouping=grouping)
    print(f"Report: {', '.join(sorted(written))} in {args.output}/. "
          f"Time: {time.time() - start:.0f} s.")


if __name__ == "__main__":
    main()
