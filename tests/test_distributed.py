"""build_mtl_model under tf.distribute.MirroredStrategy on 2 logical CPU devices.

Logical devices must be configured before TensorFlow initialises, so the check runs in a
fresh Python process.
"""

import json
import subprocess
import sys
import textwrap

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
        keras_mtl.Task("digit", "multiclass", num_classes=4),
        keras_mtl.Task("odd", "binary"),
        keras_mtl.Task("ink", "regression"),
    ]
    with strategy.scope():
        model = keras_mtl.build_mtl_model((10,), tasks, shared_layers=2, shared_units=16)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10)).astype("float32")
    y = {
        "digit": rng.integers(-1, 4, 64).astype("int32"),
        "odd": rng.integers(0, 2, (64, 1)).astype("float32"),
        "ink": rng.normal(size=(64, 1)).astype("float32"),
    }
    y["ink"][::3] = np.nan
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    moved = any(not np.allclose(b, a) for b, a in zip(before, model.get_weights()))
    # Batches of 6 split 3 + 3 over the replicas, which then hold different label counts.
    p = model.predict(x, batch_size=64, verbose=0)
    ink = ~np.isnan(y["ink"])
    evaluated = {
        size: model.evaluate(x, y, batch_size=size, verbose=0, return_dict=True)["ink_loss"]
        for size in (6, 64)
    }
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "history": history.history,
        "moved": moved,
        "ink_loss": evaluated,
        "ink_numpy": float(np.mean((p["ink"][ink] - y["ink"][ink]) ** 2)),
    }))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_trains_with_finite_losses():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["moved"]
    for name, values in report["history"].items():
        assert all(v == v and abs(v) < 1e6 for v in values), (name, values)
    assert report["history"]["loss"][1] < report["history"]["loss"][0]
    # A task's loss is the mean over its labels, however the batches split over replicas.
    for value in report["ink_loss"].values():
        assert value == pytest.approx(report["ink_numpy"], rel=1e-4)
