"""Speed of a training step of keras_mtl's MMoE against a hand-written Keras MMoE.

Three models of the same architecture (the MMoE paper's: 8 experts of one 16-unit ReLU layer,
one softmax gate per task on the inputs, towers of 8 units, two regression tasks) are trained
side by side, their epochs interleaved in a shuffled order each round, and the median time of a
step is compared:

- `MTLModel`: `keras_mtl.build_mtl_model(..., sharing=keras_mtl.sharing.MMoE(...))`, an
  `MTLModel` compiled by default: masked per-task losses (missing labels) and metrics;
- `MTLModel, mse only`: the same model compiled with plain MSE losses and no metrics, as the
  hand-written model is;
- `plain + MMoE layer`: a plain `keras.Model` around the same `keras_mtl.sharing.MMoE` layer,
  with plain MSE losses (isolates the layer from the rest of keras_mtl);
- `hand-written`: a plain `keras.Model` written as MMoE usually is in Keras: one `Dense` per
  expert, stacked, a `Dense` softmax gate per task and a weighted sum;
- `hand-written, batched`: the same with the experts batched into one `Dense` layer of
  `experts * units` units and the mixing as one batched matmul: the fastest plain form.

Run:

    python benchmarks/sharing_speed.py [--batch-size 256] [--rounds 7] [--experts 8]

It prints the median step time of each model and the ratios to the hand-written model
(below 1.0 means faster than the hand-written model). The like-for-like comparisons are the
last three rows; the first adds the cost of the default masked losses and metrics.
"""

import argparse
import os
import random
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_mtl  # noqa: E402

TASKS = ("task_a", "task_b")


def _mtl_model(dim, experts, units, tower, plain_compile=False):
    tasks = [keras_mtl.Task(name, "regression", head_units=[tower]) for name in TASKS]
    model = keras_mtl.build_mtl_model(
        keras.Input((dim,)),
        tasks,
        sharing=keras_mtl.sharing.MMoE(num_experts=experts, expert_units=units),
        compile=not plain_compile,
        name="keras_mtl_mmoe",
    )
    if plain_compile:
        model.compile(optimizer="adam", loss={name: "mse" for name in TASKS}, metrics={})
    return model


def _towers(features, tower):
    return {
        name: keras.layers.Dense(1, name=name)(
            keras.layers.Dense(tower, activation="relu", name=f"{name}_tower")(features[name])
        )
        for name in TASKS
    }


def _plain_with_layer(dim, experts, units, tower):
    inputs = keras.Input((dim,))
    layer = keras_mtl.sharing.MMoE(num_experts=experts, expert_units=units, task_names=TASKS)
    model = keras.Model(inputs, _towers(layer(inputs), tower), name="plain_with_layer")
    model.compile(optimizer="adam", loss={name: "mse" for name in TASKS})
    return model


def _hand_written(dim, experts, units, tower):
    inputs = keras.Input((dim,))
    expert_outputs = [
        keras.layers.Dense(units, activation="relu", name=f"expert_{i}")(inputs)
        for i in range(experts)
    ]
    stacked = ops.stack(expert_outputs, axis=1)  # (batch, experts, units)
    features = {}
    for name in TASKS:
        gate = keras.layers.Dense(experts, activation="softmax", name=f"{name}_gate")(inputs)
        features[name] = ops.sum(ops.expand_dims(gate, -1) * stacked, axis=1)
    model = keras.Model(inputs, _towers(features, tower), name="hand_written")
    model.compile(optimizer="adam", loss={name: "mse" for name in TASKS})
    return model


def _hand_written_batched(dim, experts, units, tower):
    """The hand-written MMoE with its experts batched: one Dense of `experts * units`."""
    inputs = keras.Input((dim,))
    stacked = keras.layers.Reshape((experts, units))(
        keras.layers.Dense(experts * units, activation="relu", name="experts")(inputs)
    )
    features = {}
    for name in TASKS:
        gate = keras.layers.Dense(experts, activation="softmax", name=f"{name}_gate")(inputs)
        features[name] = ops.squeeze(ops.matmul(ops.expand_dims(gate, 1), stacked), axis=1)
    model = keras.Model(inputs, _towers(features, tower), name="hand_written_batched")
    model.compile(optimizer="adam", loss={name: "mse" for name in TASKS})
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--tower", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40, help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timed epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    n = args.batch_size * args.steps
    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(n, args.dim)).astype("float32")
    y = {name: rng.normal(size=(n, 1)).astype("float32") for name in TASKS}
    shape = (args.dim, args.experts, args.units, args.tower)
    models = {
        "MTLModel": _mtl_model(*shape),
        "MTLModel, mse only": _mtl_model(*shape, plain_compile=True),
        "plain + MMoE layer": _plain_with_layer(*shape),
        "hand-written": _hand_written(*shape),
        "hand-written, batched": _hand_written_batched(*shape),
    }
    for label, model in models.items():
        print(f"{label:>22}: {model.count_params():,} parameters")
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)  # trace and warm up

    times = {label: [] for label in models}
    order = list(models)
    shuffle = random.Random(args.seed)
    for _ in range(args.rounds):
        shuffle.shuffle(order)
        for label in order:
            # CPU time of this process: other load on the machine does not favour anyone.
            start = time.process_time()
            models[label].fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
            times[label].append((time.process_time() - start) / args.steps)

    baseline = np.median(times["hand-written"])
    batched = np.median(times["hand-written, batched"])
    print(
        f"\nMMoE train step, {args.experts} experts x {args.units} units, input {args.dim}, "
        f"batch {args.batch_size}, median of {args.rounds} interleaved epochs of "
        f"{args.steps} steps:"
    )
    for label in models:
        median = np.median(times[label])
        print(f"{label:>22}: {1e3 * median:7.3f} ms CPU/step   ratio to hand-written "
              f"{median / baseline:5.2f}, to hand-written batched {median / batched:5.2f}")


if __name__ == "__main__":
    main()
