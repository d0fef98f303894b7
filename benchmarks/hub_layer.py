"""Forward-pass cost of `keras_mtl.HubLayer` against calling the restored SavedModel directly.

Writes a TF Hub-format SavedModel (a 3-layer MLP, `__call__` with an input signature) to a
temporary directory, loads it through a trainable `HubLayer` and times the same forward pass
through the layer and through the restored module it wraps (`layer.resolved_object`):

- eager: `module(x)` against `layer(x)`. The difference is a fixed cost per call, that of
  Keras' `Layer.__call__` (about 0.15 ms on a laptop CPU, the same for any Keras layer), so
  the ratio depends on the size of the module: small for real TF Hub modules;
- graph: both calls wrapped in a `tf.function`, as inside `fit` / `predict`. The traced
  graphs are identical (one call of the restored function), so the ratio is 1 up to noise.

    python benchmarks/hub_layer.py [--rounds 20] [--calls 20] [--batch 256]

Single calls of the two contenders alternate (the order of each pair alternating too), so
drifts in machine load hit both alike; the ratio of the median call times is printed, and
that of the fastest 10% of calls (steadier on a busy machine). Target: <= 1.05.
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_mtl.hub import HubLayer  # noqa: E402

INPUT_DIM, WIDTH = 256, 1024


def write_module(path):
    rng = np.random.default_rng(0)
    root = tf.train.Checkpoint()
    shapes = [(INPUT_DIM, WIDTH), (WIDTH, WIDTH), (WIDTH, WIDTH)]
    kernels = [
        tf.Variable(rng.normal(0, 0.05, shape).astype("float32"), name=f"dense_{i}/kernel")
        for i, shape in enumerate(shapes)
    ]

    @tf.function(input_signature=[tf.TensorSpec([None, INPUT_DIM], tf.float32)])
    def call(x):
        for kernel in kernels:
            x = tf.nn.relu(tf.matmul(x, kernel))
        return x

    root.kernels = kernels
    root.variables = list(kernels)
    root.trainable_variables = list(kernels)
    root.__call__ = call
    tf.saved_model.save(root, path)
    return path


def compare(name, direct, hub_layer, x, rounds, calls):
    """Times single calls, alternating the two contenders call by call; returns the ratio."""
    for fn in (direct, hub_layer):  # warm up: trace, allocate
        for _ in range(5):
            fn(x).numpy()
    times = {"direct": [], "hub_layer": []}
    pair = [("direct", direct), ("hub_layer", hub_layer)]
    for index in range(rounds * calls):
        for label, fn in pair if index % 2 == 0 else reversed(pair):
            start = time.perf_counter()
            fn(x).numpy()
            times[label].append(time.perf_counter() - start)
    direct_ms = statistics.median(times["direct"]) * 1e3
    hub_ms = statistics.median(times["hub_layer"]) * 1e3
    ratio = hub_ms / direct_ms
    # The fastest tenth of the calls are the least disturbed by other processes: their ratio
    # is the steadier figure on a busy machine.
    fast_ratio = _decile(times["hub_layer"]) / _decile(times["direct"])
    print(f"{name:<8} {direct_ms:>12.3f} {hub_ms:>14.3f} {hub_ms - direct_ms:>+14.3f} "
          f"{ratio:>7.3f} {fast_ratio:>9.3f}  {'ok' if ratio <= 1.05 else 'ABOVE TARGET'}")
    return ratio


def _decile(values):
    return statistics.quantiles(values, n=10)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()

    path = write_module(os.path.join(tempfile.mkdtemp(prefix="keras_mtl_bench_"), "mlp"))
    layer = HubLayer(path, trainable=True)
    # The very object the layer calls: both contenders read the same variables in memory.
    module = layer.resolved_object
    x = tf.constant(np.random.default_rng(1).normal(size=(args.batch, INPUT_DIM)), tf.float32)
    np.testing.assert_allclose(module(x), layer(x), rtol=1e-5)

    print(f"MLP {INPUT_DIM}->{WIDTH}x3, batch {args.batch}, {args.rounds * args.calls} "
          f"interleaved calls each, median ms per forward pass")
    print(f"{'mode':<8} {'direct (ms)':>12} {'HubLayer (ms)':>14} {'overhead (ms)':>14} "
          f"{'ratio':>7} {'ratio p10':>9}")
    @tf.function(autograph=False)
    def module_graph(t):
        return module(t)

    @tf.function(autograph=False)
    def layer_graph(t):
        return layer(t)

    compare("eager", module, layer, x, args.rounds, args.calls)
    compare("graph", module_graph, layer_graph, x, args.rounds, args.calls)


if __name__ == "__main__":
    main()
