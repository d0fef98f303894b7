"""Train a multi-task model, export it as a SavedModel, and serve it with plain TensorFlow.

Trains a 3-task model on `keras_mtl.datasets.multi_digits()` for a few epochs, exports it with
`keras_mtl.export_saved_model`, then starts a fresh Python process that loads the export
with TensorFlow alone (no keras_mtl, no Keras model code) and prints the post-processed
outputs for a few test images, reading what each output means from the JSON task
specifications stored in the SavedModel's assets.

    python examples/export_and_serve.py [--epochs 3] [--export-dir DIR]

Runs in under a minute on 2 CPU cores, offline.
"""

import argparse
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

NUM_EXAMPLES = 5


def train_and_export(epochs, export_dir):
    import keras

    import keras_mtl
    from keras_mtl.export import export_saved_model, load_task_specs

    keras.utils.set_random_seed(0)
    data = keras_mtl.datasets.multi_digits(seed=0)
    (x, y), (xv, yv), (xt, yt) = data
    names = [str(d) for d in range(10)]
    tasks = [
        keras_mtl.Task("left", "multiclass", num_classes=10, class_names=names),
        keras_mtl.Task("right", "multiclass", num_classes=10, class_names=names),
        keras_mtl.Task("sum_even", "binary", class_names=["odd", "even"]),
    ]
    inputs = keras.Input((11, 11, 1), name="image")
    h = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
    h = keras.layers.Conv2D(64, 3, activation="relu")(h)
    h = keras.layers.Flatten()(keras.layers.MaxPooling2D()(h))
    backbone = keras.Model(inputs, h, name="conv_backbone")
    model = keras_mtl.build_mtl_model(
        backbone, tasks, shared_layers=1, shared_units=128, learning_rate=2e-3
    )
    model.fit(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=64, verbose=2)

    path = export_saved_model(model, export_dir, overwrite=True)
    print(f"\nExported to {path}: {sorted(os.listdir(path))}")
    print("Task specifications in its assets:", load_task_specs(path))
    return path, xt[:NUM_EXAMPLES], {k: v[:NUM_EXAMPLES] for k, v in yt.items()}


def serve(path, images_file):
    """The serving side: TensorFlow, NumPy and the JSON specs only."""
    import json

    import numpy as np
    import tensorflow as tf

    assert "keras_mtl" not in sys.modules
    with open(os.path.join(path, "assets", "keras_mtl_tasks.json")) as f:
        specs = json.load(f)
    outputs_meaning = specs["signatures"]["serving_default"]

    serving_fn = tf.saved_model.load(path).signatures["serving_default"]
    (input_name,) = specs["inputs"]
    images = np.load(images_file)
    outputs = {k: v.numpy() for k, v in serving_fn(**{input_name: tf.constant(images)}).items()}

    print(f"serving process: modules loaded include keras_mtl? {'keras_mtl' in sys.modules}")
    print(f"signature input {input_name!r} {specs['inputs'][input_name]}; outputs:")
    for name, meaning in outputs_meaning.items():
        print(f"  {name:<20} {meaning['dtype']:<8} {str(meaning['shape']):<10} "
              f"{meaning['meaning']}")
    print()
    for i in range(len(images)):
        parts = []
        for task in specs["tasks"]:
            name = task["name"]
            label = outputs[f"{name}_label"][i].decode()
            probability = outputs[f"{name}_probability"][i]
            parts.append(f"{name}={label!r} (p={probability:.2f})")
        print(f"  image {i}: " + ", ".join(parts))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--export-dir", default=None,
                        help="where to export (default: a temporary directory)")
    parser.add_argument("--serve", nargs=2, metavar=("EXPORT_DIR", "IMAGES_NPY"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return

    import numpy as np

    with tempfile.TemporaryDirectory() as scratch:
        export_dir = args.export_dir or os.path.join(scratch, "digits", "1")
        path, images, labels = train_and_export(args.epochs, export_dir)
        images_file = os.path.join(scratch, "images.npy")
        np.save(images_file, images)
        print("\nTrue labels of the served images:")
        for i in range(len(images)):
            parity = "even" if labels["sum_even"][i, 0] == 1 else "odd"
            print(f"  image {i}: left={labels['left'][i]}, right={labels['right'][i]}, "
                  f"sum_even={parity!r}")
        print("\n== Serving with plain TensorFlow, in a new process ==")
        subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--serve", path, images_file],
            check=True,
        )


if __name__ == "__main__":
    main()
