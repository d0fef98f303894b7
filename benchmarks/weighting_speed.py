"""Step time of each weighting method relative to `Static` and to PCGrad, side by side.

A hard-shared MLP (input 512, two shared Dense layers of 768 units: about 1M shared
parameters) with 4 tasks, batch 256, then the same with 10 tasks (how cost grows with the
number of tasks). Methods are timed in interleaved rounds (every round runs every method),
and the median over rounds is reported, so machine load affects all methods alike. Also
printed: the plain-loop baseline (one `tape.gradient` per task over all variables, flattened
into one vector per task, PCGrad on the flat vectors, unflattened), and each method's peak
memory during training with 4 tasks: the peak of TensorFlow's CPU allocator over an epoch,
beyond what it held before the epoch (`tf.config.experimental.get_memory_info`).

Targets: loss-based methods <= 1.10 x Static; representation mode <= 1.3 x Static; exact mode
<= 3.3 x Static; the methods added on the Gram-matrix engine within 10 % of PCGrad in the
same mode (their T x T solver must not show), Nash-MTL (solving every step) <= 1.2 x PCGrad.

Run: `python benchmarks/weighting_speed.py [--rounds 7] [--steps 30] [--tasks 4 10]
[--no-memory] [--methods db_mtl upgrad ...]`. `--methods` times only the methods named (by
the first word of their label) beside the references Static and PCGrad, so that a few
methods can be compared over more rounds in the same time.

Step times are CPU seconds per step of the process, taken as the difference between an
epoch of `--steps` batches and one of 2 batches, so the fixed cost of a `fit` call is left out.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow keeps allocator statistics on the CPU only with its BFC allocator; without it
# `reset_memory_stats("CPU:0")` raises.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras_mtl  # noqa: E402
from keras_mtl import weighting  # noqa: E402
from keras_mtl.weighting import gradients  # noqa: E402

INPUT_DIM = 512
SHARED_UNITS = 768
BATCH_SIZE = 256

# (label, factory, kind, target ratio, what the target is relative to)
METHODS = [
    ("static", lambda: weighting.Static(), "loss", None, None),
    ("uncertainty", lambda: weighting.Uncertainty(), "loss", 1.10, "static"),
    ("dwa", lambda: weighting.DWA(), "loss", 1.10, "static"),
    ("rlw", lambda: weighting.RLW(), "loss", 1.10, "static"),
    ("famo", lambda: weighting.FAMO(), "loss", 1.10, "static"),
    ("famo same_batch", lambda: weighting.FAMO(loss_after="same_batch"), "loss", None, None),
    ("gradnorm rep", lambda: weighting.GradNorm(mode="rep"), "rep", 1.3, "static"),
    ("pcgrad rep", lambda: weighting.PCGrad(mode="rep"), "rep", 1.3, "static"),
    ("mgda rep", lambda: weighting.MGDA(mode="rep"), "rep", 1.3, "static"),
    ("cagrad rep", lambda: weighting.CAGrad(mode="rep"), "rep", 1.3, "static"),
    ("imtl rep", lambda: weighting.IMTL(mode="rep"), "rep", 1.10, "pcgrad"),
    ("aligned_mtl rep", lambda: weighting.AlignedMTL(mode="rep"), "rep", 1.10, "pcgrad"),
    ("upgrad rep", lambda: weighting.UPGrad(mode="rep"), "rep", 1.10, "pcgrad"),
    ("nash_mtl rep", lambda: weighting.NashMTL(mode="rep"), "rep", 1.2, "pcgrad"),
    ("gradvac rep", lambda: weighting.GradVac(mode="rep"), "rep", 1.10, "pcgrad"),
    ("gradnorm exact", lambda: weighting.GradNorm(mode="exact"), "exact", 3.3, "static"),
    ("pcgrad exact", lambda: weighting.PCGrad(mode="exact"), "exact", 3.3, "static"),
    ("mgda exact", lambda: weighting.MGDA(mode="exact"), "exact", 3.3, "static"),
    ("cagrad exact", lambda: weighting.CAGrad(mode="exact"), "exact", 3.3, "static"),
    ("imtl exact", lambda: weighting.IMTL(), "exact", 1.10, "pcgrad"),
    ("aligned_mtl exact", lambda: weighting.AlignedMTL(), "exact", 1.10, "pcgrad"),
    ("upgrad exact", lambda: weighting.UPGrad(), "exact", 1.10, "pcgrad"),
    ("nash_mtl exact", lambda: weighting.NashMTL(), "exact", 1.2, "pcgrad"),
    ("db_mtl exact", lambda: weighting.DBMTL(), "exact", 1.10, "pcgrad"),
    ("gradvac exact", lambda: weighting.GradVac(), "exact", 1.10, "pcgrad"),
    ("plain loop pcgrad", lambda: _PlainLoopPCGrad(), "baseline", None, None),
]


class _PlainLoopPCGrad(weighting.PCGrad):
    """The naive exact PCGrad: flat per-task gradient vectors, a further unflatten."""

    def __init__(self):
        super().__init__(mode="exact")

    def train_step(self, model, data, default_train_step):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = model.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            y_pred = model(x, training=True)
            losses = gradients.task_losses(model, y, y_pred, sample_weight)
        flat = []
        for loss in losses:
            grads = tape.gradient(loss, variables)
            flat.append(
                tf.concat(
                    [
                        tf.reshape(g if g is not None else tf.zeros_like(v), [-1])
                        for g, v in zip(grads, variables)
                    ],
                    0,
                )
            )
        del tape
        order = tf.random.shuffle(tf.range(len(flat)))
        projected = []
        for g_i in flat:
            g = g_i
            for k in range(len(flat)):
                g_j = tf.gather(tf.stack(flat), order[k])
                dot = tf.reduce_sum(g * g_j)
                g = g - tf.minimum(dot, 0.0) / (tf.reduce_sum(g_j * g_j) + 1e-12) * g_j
            projected.append(g)
        total = tf.add_n(projected)
        grads, start = [], 0
        for v in variables:
            size = int(np.prod(v.shape))
            grads.append(tf.reshape(total[start : start + size], v.shape))
            start += size
        model.optimizer.apply_gradients(zip(grads, variables))
        logs = dict(model.compute_metrics(x, y, y_pred, sample_weight=sample_weight))
        return logs


def _data(num_batches, num_tasks, seed=0):
    rng = np.random.default_rng(seed)
    n = num_batches * BATCH_SIZE
    x = rng.normal(size=(n, INPUT_DIM)).astype("float32")
    y = {f"task_{t}": rng.normal(size=(n, 1)).astype("float32") for t in range(num_tasks)}
    return x, y


def _model(method, num_tasks):
    tasks = [keras_mtl.Task(f"task_{t}", "regression", head_units=(64,)) for t in range(num_tasks)]
    return keras_mtl.build_mtl_model(
        (INPUT_DIM,), tasks, shared_layers=2, shared_units=SHARED_UNITS, weighting=method,
        optimizer=keras.optimizers.SGD(1e-3),
    )


def _time_epoch(model, x, y):
    """CPU seconds of this process for one epoch of `fit` over `x`."""
    start = time.process_time()
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0, shuffle=False)
    return time.process_time() - start


def _step_time(model, x, y, short=2):
    """CPU seconds per training step, without the fixed cost of a `fit` call.

    The difference between an epoch of every batch and an epoch of `short` batches: `fit`'s
    own set-up (hundreds of ms here) would otherwise dilute every method's ratio towards 1.
    CPU time rather than wall time, so that other load on the machine favours no method.
    """
    steps = len(x) // BATCH_SIZE
    cut = short * BATCH_SIZE
    short_time = _time_epoch(model, x[:cut], {k: v[:cut] for k, v in y.items()})
    return (_time_epoch(model, x, y) - short_time) / (steps - short)


def _step_peak_mb(model, x, y):
    """MB that TensorFlow's CPU allocator holds at its peak during an epoch, beyond what it
    held before (the model's variables, data already in memory)."""
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0, shuffle=False)
    return (tf.config.experimental.get_memory_info("CPU:0")["peak"] - before) / 2**20


REFERENCES = ("static", "pcgrad")


def _selected(names):
    """The rows of METHODS to time: all, or those named plus the references."""
    if not names:
        return METHODS
    known = sorted({label.split()[0] for label, *_ in METHODS})
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose among {known}")
    wanted = set(names) | set(REFERENCES)
    return [row for row in METHODS if row[0].split()[0] in wanted]


def _measure(num_tasks, args, memory):
    """Median CPU seconds per step of every method (and peak MB if `memory`), interleaved."""
    keras.utils.set_random_seed(0)
    x, y = _data(args.steps, num_tasks)
    models = {}
    for label, factory, *_ in _selected(args.methods):
        models[label] = _model(factory(), num_tasks)
        warmup = 2 * BATCH_SIZE
        _time_epoch(models[label], x[:warmup], {k: v[:warmup] for k, v in y.items()})
    times = {label: [] for label in models}
    for _ in range(args.rounds):
        for label, model in models.items():
            times[label].append(_step_time(model, x, y))
    medians = {label: statistics.median(t) for label, t in times.items()}
    peaks = {label: _step_peak_mb(model, x, y) for label, model in models.items()} if memory else {}
    shared = sum(
        int(np.prod(v.shape)) for v in models["static"].trainable_variables if "hard" in v.path
    )
    return medians, peaks, shared


def _ratios(medians, label, kind):
    static = medians[label] / medians["static"]
    pcgrad = medians.get(f"pcgrad {kind}")
    return static, (medians[label] / pcgrad if pcgrad and kind in ("rep", "exact") else None)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--tasks", type=int, nargs="+", default=[4, 10])
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="time only these methods (with Static and PCGrad)")
    args = parser.parse_args()
    results = {}
    for i, num_tasks in enumerate(args.tasks):
        results[num_tasks] = _measure(num_tasks, args, memory=i == 0 and not args.no_memory)
    first = args.tasks[0]
    medians, peaks, shared = results[first]
    print(
        f"weighting step time: hard-shared MLP, {shared:,} shared parameters, batch "
        f"{BATCH_SIZE}, CPU time per step, median of {args.rounds} interleaved rounds of "
        f"{args.steps} steps; x static / x pcgrad: ratio to Static / to PCGrad in the same mode"
    )
    header = (
        f"| {'method':<18} | {'mode':<8} | {f'T={first} ms':>8} | {'x static':>8} |"
        f" {'x pcgrad':>8} |"
        f" {'target':<17} | {'':>6} |"
    )
    if peaks:
        header += f" {'peak MB':>7} |"
    for num_tasks in args.tasks[1:]:
        header += f" {f'T={num_tasks} ms':>8} | {'x static':>8} | {'x pcgrad':>8} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for label, _, kind, target, reference in _selected(args.methods):
        by_static, by_pcgrad = _ratios(medians, label, kind)
        measured = by_static if reference == "static" else by_pcgrad
        goal = f"<= {target:.2f} x {reference}" if target else ""
        verdict = ("met" if measured <= target else "MISSED") if target else ""
        row = (
            f"| {label:<18} | {kind:<8} | {medians[label] * 1e3:8.2f} | {by_static:8.2f} | "
            f"{'' if by_pcgrad is None else f'{by_pcgrad:8.2f}':>8} | {goal:<17} | {verdict:>6} |"
        )
        if peaks:
            row += f" {peaks[label]:7.1f} |"
        for num_tasks in args.tasks[1:]:
            more = results[num_tasks][0]
            more_static, more_pcgrad = _ratios(more, label, kind)
            row += (
                f" {more[label] * 1e3:8.2f} | {more_static:8.2f} | "
                f"{'' if more_pcgrad is None else f'{more_pcgrad:8.2f}':>8} |"
            )
        print(row)


if __name__ == "__main__":
    main()
