"""Gradient-based weighting under `tf.distribute.MirroredStrategy` on 2 logical CPUs.

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
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras
    import numpy as np
    import keras_mtl
    from keras_mtl import weighting

    def make(method):
        keras.utils.set_random_seed(0)
        tasks = [
            keras_mtl.Task("a", "regression"),
            keras_mtl.Task("b", "regression", head_units=(4,)),
            keras_mtl.Task("c", "regression"),
        ]
        return keras_mtl.build_mtl_model(
            (5,), tasks, shared_layers=2, shared_units=8, weighting=method,
            optimizer=keras.optimizers.SGD(0.1),
        )

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 5)).astype("float32")
    y = {
        "a": x[:, :1] * 3,
        "b": -x[:, 1:2] * 2 + x[:, :1],
        "c": np.sin(x[:, 2:3]) - x[:, :1],
    }
    if sys.argv[2] == "partial":
        # Replica 0 gets no label of task a, replica 1 four of sixteen missing: the global
        # mean must still weigh every present label alike.
        y["a"][:20] = np.nan
    methods = json.loads(sys.argv[1])
    # Batches of 16 (two steps; with partial labels the first has no label of task a).
    batch_size = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {"replicas": strategy.num_replicas_in_sync}
    for config in methods:
        single = make(weighting.get(config))
        single.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        with strategy.scope():
            mirrored = make(weighting.get(config))
        mirrored.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        start = make(weighting.get(config))
        moved = max(
            float(np.max(np.abs(a.numpy() - b.numpy())))
            for a, b in zip(single.trainable_variables, start.trainable_variables)
        )
        difference = max(
            float(np.max(np.abs(a.numpy() - b.numpy())))
            for a, b in zip(single.weights, mirrored.weights)
        )
        result[config["class_name"] + ":" + config["config"].get("mode", "")] = [
            difference, moved
        ]
    print("RESULT " + json.dumps(result))
    """
)

METHODS = [
    {"class_name": "Static", "config": {}},
    {"class_name": "PCGrad", "config": {"mode": "exact"}},
    {"class_name": "MGDA", "config": {"mode": "exact"}},
    {"class_name": "GradNorm", "config": {"mode": "exact", "alpha": 1.5,
                                          "learning_rate": 0.025}},
    {"class_name": "PCGrad", "config": {"mode": "rep"}},
    {"class_name": "Uncertainty", "config": {"learning_rate": 0.01,
                                             "initial_log_variance": 0.0}},
]


# Of the recent methods, those with a training path of their own: a loss evaluation after
# the update, moving averages of the task gradients, weights solved under a `tf.cond`; over
# two steps with partial labels (tasks b and c have all theirs). The others follow the
# patterns checked above: a function of the summed Gram matrix (AlignedMTL, UPGrad, IMTL,
# as MGDA), random orders and state (GradVac, as PCGrad and GradNorm), Adam on their own
# variables (IMTL's loss scales, as Uncertainty).
RECENT_METHODS = [
    {"class_name": "FAMO", "config": {"loss_after": "same_batch", "learning_rate": 0.5}},
    {"class_name": "NashMTL", "config": {"update_every": 2, "mode": "exact"}},
    {"class_name": "DBMTL", "config": {"mode": "exact"}},
]


@pytest.mark.slow
@pytest.mark.parametrize("labels", ["full", "partial"])
def test_mirrored_update_equals_single_device_global_batch(labels):
    _check_mirrored(METHODS, labels)


@pytest.mark.slow
def test_recent_methods_mirrored_update_equals_single_device_global_batch():
    _check_mirrored(RECENT_METHODS, "partial", batch_size=16)


def _check_mirrored(methods, labels, batch_size=32):
    for method in methods:
        method["module"] = "keras_mtl"
        method["registered_name"] = f"keras_mtl>{method['class_name']}"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(methods), labels, str(batch_size)],
        capture_output=True, text=True, env=env, cwd=root, timeout=600,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, completed.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result.pop("replicas") == 2
    assert len(result) == len(methods)
    for name, (difference, moved) in result.items():
        assert moved > 1e-3, name
        assert difference < 1e-5, (name, difference)
