"""Latency of the exported SavedModel signature beside calling the Keras model, side by side.

For batches of 1 and 256 images, times one request (inputs in, NumPy outputs in hand) through:

- `signature`: `serving_default` of `keras_mtl.export_saved_model(model, path)` (post-processed
  outputs: class ids, probabilities, labels), reloaded with `tf.saved_model.load`;
- `signature_raw`: the same with `postprocess=False` (raw task outputs only);
- `eager`: `model(x, training=False)` in eager mode;
- `predict`: `model.predict(x)`.

    python benchmarks/serving.py [--rounds 15] [--calls 20]

Each round times every contender once (`--calls` requests each, fewer for batch 256), in
turn, so drifts in machine load hit all of them; medians and their ratio to `signature` are
printed.
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl  # noqa: E402
from keras_mtl.export import export_saved_model  # noqa: E402

BATCHES = (1, 256)


def conv_backbone():
    inputs = keras.Input((11, 11, 1), name="image")
    x = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, x, name="conv_backbone")


def build_model():
    data = keras_mtl.datasets.multi_digits(seed=0)
    tasks = data.tasks[:2] + [keras_mtl.Task("sum_even", "binary", class_names=["odd", "even"])]
    model = keras_mtl.build_mtl_model(conv_backbone(), tasks, shared_layers=1, shared_units=128)
    (x, y), _, _ = data
    model.fit(x[:512], {k: v[:512] for k, v in y.items()}, epochs=1, batch_size=128, verbose=0)
    return model, data.test[0]


def contenders(model, directory):
    export_saved_model(model, os.path.join(directory, "post"))
    export_saved_model(model, os.path.join(directory, "raw"), postprocess=False)
    post = tf.saved_model.load(os.path.join(directory, "post")).signatures["serving_default"]
    raw = tf.saved_model.load(os.path.join(directory, "raw")).signatures["serving_default"]
    (input_name,) = post.structured_input_signature[1]

    def numpy(outputs):
        return {k: keras.ops.convert_to_numpy(v) for k, v in outputs.items()}

    return {
        "signature": lambda x, xt: numpy(post(**{input_name: xt})),
        "signature_raw": lambda x, xt: numpy(raw(**{input_name: xt})),
        "eager": lambda x, xt: numpy(model(xt, training=False)),
        "predict": lambda x, xt: model.predict(x, batch_size=len(x), verbose=0),
    }


def measure(functions, x, rounds, calls):
    xt = tf.constant(x)
    for fn in functions.values():  # warm-up: traces, caches, first allocations
        fn(x, xt)
        fn(x, xt)
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, fn in functions.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn(x, xt)
            times[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(values) for name, values in times.items()}


def check_equal(functions, x):
    """The contenders compute the same raw outputs (a benchmark of different work is void)."""
    xt = tf.constant(x)
    reference = functions["predict"](x, xt)
    for name in ("signature", "signature_raw", "eager"):
        got = functions[name](x, xt)
        for task, value in reference.items():
            np.testing.assert_allclose(got[task], value, atol=1e-5, err_msg=f"{name}/{task}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)

    model, x_test = build_model()
    with tempfile.TemporaryDirectory() as directory:
        functions = contenders(model, directory)
        check_equal(functions, x_test[:256])
        print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
              f"{os.cpu_count()} CPUs; model: conv backbone + hard sharing, 3 tasks; "
              f"{args.rounds} interleaved rounds\n")
        print(f"{'batch':>5}  {'contender':<14} {'median ms':>10} {'ratio to signature':>19}")
        for batch in BATCHES:
            calls = args.calls if batch == 1 else max(1, args.calls // 4)
            medians = measure(functions, x_test[:batch], args.rounds, calls)
            for name, seconds in medians.items():
                ratio = seconds / medians["signature"]
                print(f"{batch:>5}  {name:<14} {seconds * 1e3:>10.3f} {ratio:>19.2f}")
            print()


if __name__ == "__main__":
    main()
