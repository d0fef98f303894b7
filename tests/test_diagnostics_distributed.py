"""GradientConflict and TaskAffinity under `tf.distribute.MirroredStrategy` on 2 logical CPUs
measure what one device measures (gradients and losses of the global batch, partial labels
included) and leave training unchanged.

TensorFlow's devices must be configured before it initialises, so the check runs in a fresh
Python process.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_CHILD = textwrap.dedent(
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
    from keras_mtl.diagnostics import GradientConflict, TaskAffinity

    def make():
        keras.utils.set_random_seed(0)
        tasks = [
            keras_mtl.Task("a", "regression"),
            keras_mtl.Task("b", "regression", head_units=(4,)),
            keras_mtl.Task("c", "binary"),
        ]
        return keras_mtl.build_mtl_model(
            (5,), tasks, shared_layers=2, shared_units=8,
            optimizer=keras.optimizers.SGD(0.1),
        )

    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 5)).astype("float32")
    y = {"a": x[:, :1] * 3, "b": -x[:, 1:2] * 2 + x[:, :1],
         "c": (x[:, 2:3] > 0).astype("float32")}
    # No label of task a in the first batch; in the second, none on replica 0 and four on
    # replica 1.
    y["a"][:28] = np.nan

    def train(strategy, callbacks):
        if strategy is None:
            model = make()
        else:
            with strategy.scope():
                model = make()
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
                  callbacks=callbacks)
        return model

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    one = [GradientConflict(every=1), TaskAffinity(every=1)]
    two = [GradientConflict(every=1), TaskAffinity(every=1)]
    single = train(None, one)
    plain = train(strategy, [])
    mirrored = train(strategy, two)
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "cosine": [one[0].history.cosine.fillna(99).tolist(),
                   two[0].history.cosine.fillna(99).tolist()],
        "affinity": [one[1].history.affinity.fillna(99).tolist(),
                     two[1].history.affinity.fillna(99).tolist()],
        "unchanged": max(float(np.max(np.abs(a.numpy() - b.numpy())))
                         for a, b in zip(plain.weights, mirrored.weights)),
    }
    print("RESULT " + json.dumps(result))
    """
)


@pytest.mark.slow
def test_diagnostics_under_mirrored_strategy():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    output = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, timeout=500
    )
    lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, output.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["replicas"] == 2
    one, two = result["cosine"]
    assert len(one) == len(two) == 6 * 3
    assert two == pytest.approx(one, abs=1e-4)
    one, two = result["affinity"]
    assert len(one) == len(two) == 6 * 9
    assert 99 in one  # task a had no label in the first batch: left out, on both
    assert two == pytest.approx(one, rel=1e-3, abs=1e-5)
    assert result["unchanged"] == 0.0
