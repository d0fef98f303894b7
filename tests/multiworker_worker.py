"""One worker of a two-process MultiWorkerMirroredStrategy run, started by tests/test_multiworker.py.

`TF_CONFIG` names the cluster and this worker. For each weighting method in `--methods`, the
worker trains a hard-shared model under the strategy on one `tf.data` pipeline whose global
batches are split between the workers (DATA sharding). Each run is interrupted after its first
epoch and resumed by `keras.callbacks.BackupAndRestore`, as a restarted cluster would be,
after the weights were overwritten. The chief saves the last model as `.keras`; the other
worker saves it to a temporary directory that it removes; both evaluate it. Then, with no
strategy, this process trains its share of the methods (every second one) on the same global
batches, and evaluates the last method's model: the reference.

Everything is written to `--out`: `<method>_<index>.npz` (weights trained by the workers),
`<method>_reference.npz`, and `worker_<index>.json` (histories, evaluations, replica counts).
"""

import argparse
import json
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Keras and keras_mtl are imported where they are used: after `main` creates the strategy,
# which must exist before TensorFlow runs any op.

GLOBAL_BATCH_SIZE = 16


def data():
    """48 examples with partial labels that differ between the two workers' halves.

    Batch 0: worker 0's half has no `digit` label, worker 1's half has all of them. Batch 1:
    four of worker 1's eight `size` labels are missing. Batch 2: no `size` label at all.
    A mean over a worker's own labels instead of over the global batch's would differ.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 6)).astype("float32")
    y = {
        "digit": np.digitize(x[:, 0] + x[:, 4], [-0.5, 0.5]).astype("int32"),
        "flag": (x[:, 1:2] > 0).astype("float32"),
        "size": (x[:, 2:3] - x[:, 3:4]).astype("float32"),
    }
    y["digit"][0:8] = -1
    y["size"][24:28] = np.nan
    y["size"][32:48] = np.nan
    return x, y


def dataset():
    """The global batches, in order; each worker reads its half of every batch."""
    x, y = data()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH_SIZE).with_options(
        options
    )


def make_model(method):
    """The same initial model in every process (Keras' random state is seeded first)."""
    import keras

    import keras_mtl

    keras.utils.set_random_seed(0)
    tasks = [
        keras_mtl.Task("digit", "multiclass", num_classes=3),
        keras_mtl.Task("flag", "binary"),
        keras_mtl.Task("size", "regression"),
    ]
    return keras_mtl.build_mtl_model(
        (6,), tasks, shared_layers=2, shared_units=8, sharing="hard", weighting=method,
        optimizer=keras.optimizers.SGD(0.1),
    )


def _is_chief(resolver):
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )


class _Failure(Exception):
    """Stands for a worker lost mid-training."""


def _fail_at_second_epoch():
    import keras

    def fail(epoch, logs):
        if epoch == 1:
            raise _Failure

    return keras.callbacks.LambdaCallback(on_epoch_begin=fail)


def train_resumed(strategy, config, backup, epochs):
    """Trains under `strategy`, fails after one epoch, and resumes from the backup.

    Before resuming, the weights are overwritten with zeros: the resumed run must read them
    back from the backup, as a restarted worker would. Returns the model and the history of
    both runs (one entry per epoch).
    """
    import keras

    from keras_mtl import weighting

    with strategy.scope():
        model = make_model(weighting.get(config))
    first = keras.callbacks.History()
    try:
        model.fit(
            dataset(), epochs=epochs, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup), _fail_at_second_epoch(), first],
        )
    except _Failure:
        pass
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    resumed = model.fit(
        dataset(), epochs=epochs, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(backup)]
    )
    return model, {k: first.history[k] + resumed.history[k] for k in resumed.history}


def save(model, directory, name, chief):
    """Every worker saves (saving may run collective ops); only the chief's file is kept."""
    if chief:
        model.save(os.path.join(directory, f"{name}.keras"))
    else:
        scratch = tempfile.mkdtemp(dir=directory)
        model.save(os.path.join(scratch, f"{name}.keras"))
        shutil.rmtree(scratch)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--methods", required=True, help="a JSON list of weighting configs")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

    from keras_mtl import weighting

    index = strategy.cluster_resolver.task_id
    methods = json.loads(args.methods)
    report = {"replicas": strategy.num_replicas_in_sync, "histories": {}, "reference": {}}
    for config in methods:
        name = config["class_name"]
        backup = os.path.join(args.out, f"backup_{name}_{index}")
        model, report["histories"][name] = train_resumed(strategy, config, backup, args.epochs)
        np.savez(os.path.join(args.out, f"{name}_{index}.npz"), *model.get_weights())
    report["evaluation"] = model.evaluate(dataset(), verbose=0, return_dict=True)
    save(model, args.out, name, _is_chief(strategy.cluster_resolver))

    for config in methods[index::2]:
        name = config["class_name"]
        model = make_model(weighting.get(config))
        initial = model.get_weights()
        history = model.fit(dataset(), epochs=args.epochs, verbose=0)
        report["histories"][f"{name}_reference"] = history.history
        trained = model.get_weights()
        report["reference"][name] = {
            "replicas": model.distribute_strategy.num_replicas_in_sync,
            "moved": max(float(np.max(np.abs(a - b))) for a, b in zip(initial, trained)),
        }
        np.savez(os.path.join(args.out, f"{name}_reference.npz"), *trained)
        if config is methods[-1]:
            report["reference_evaluation"] = model.evaluate(dataset(), verbose=0, return_dict=True)
    with open(os.path.join(args.out, f"worker_{index}.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
