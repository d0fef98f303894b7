"""keras_mtl.data.mix under tf.distribute.MirroredStrategy on 2 logical CPU devices.

As in test_distributed.py, logical devices must be set before TensorFlow initialises, so
the check runs in a fresh Python process.
"""

import json
import subprocess
import sys
import textwrap

import processes
import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras
    import numpy as np
    import keras_mtl

    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    tasks = [
        keras_mtl.Task("topic", "multiclass", num_classes=3),
        keras_mtl.Task("score", "regression"),
    ]
    rng = np.random.default_rng(0)
    x_topic = rng.normal(size=(96, 4)).astype("float32")
    x_score = rng.normal(size=(64, 4)).astype("float32")
    sources = {
        "topic": (x_topic, (x_topic[:, 0] > 0).astype("int64")),
        "score": (x_score, x_score[:, 1]),
    }
    report = {"replicas": strategy.num_replicas_in_sync}
    # Per-task batches under a gradient method: each replica's half of a batch holds one
    # task only, the other task's loss is zero on both replicas.
    for batching, weighting in (("per_task", "pcgrad"),):
        with strategy.scope():
            model = keras_mtl.build_mtl_model(
                (4,), tasks, shared_units=8, weighting=weighting
            )
        before = [w.copy() for w in model.get_weights()]
        stream = keras_mtl.data.mix(sources, tasks, batch_size=16, batching=batching, seed=0)
        history = model.fit(stream, epochs=2, verbose=0)
        frame = keras_mtl.data.evaluate_per_task(model, sources, batch_size=10)
        p = model.predict(x_score, verbose=0)["score"][:, 0]
        report[batching] = {
            "history": history.history,
            "iterations": int(model.optimizer.iterations.numpy()),
            "moved": any(not np.allclose(b, a) for b, a in zip(before, model.get_weights())),
            "score_mae": float(frame.loc["score", "mae"]),
            "score_mae_numpy": float(np.mean(np.abs(p - x_score[:, 1]))),
        }
    print(json.dumps(report))
    """
)


@pytest.mark.slow
def test_mix_trains_and_evaluates_under_mirrored_strategy():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
        env=processes.env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    for batching in ("per_task",):
        run = report[batching]
        assert run["moved"]
        assert run["iterations"] == 20  # 2 epochs of ceil(160 / 16) steps
        for name, values in run["history"].items():
            assert all(v == v and abs(v) < 1e6 for v in values), (batching, name, values)
        # Per-task evaluation across replicas equals NumPy on the task's own data.
        assert run["score_mae"] == pytest.approx(run["score_mae_numpy"], rel=1e-4)
