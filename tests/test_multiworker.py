"""Training under `tf.distribute.MultiWorkerMirroredStrategy`: two worker processes on loopback.

Each worker runs tests/multiworker_worker.py with its own `TF_CONFIG`; the reference (one
process, no strategy, the same global batches) is trained by the workers afterwards.
"""

import json
import os

import keras
import numpy as np
import pytest

import keras_mtl
import processes

WORKER = os.path.join(os.path.dirname(__file__), "multiworker_worker.py")
METHODS = [
    {"class_name": "Static", "config": {}},
    {"class_name": "PCGrad", "config": {"mode": "exact"}},
]
# float32 sums of the same terms in another order (each worker's half, then the all-reduce)
# differ by ~1e-7 after these 6 steps. Measured: dividing a masked loss by one worker's label
# count instead of the global batch's moved the weights by 0.03; not dividing PCGrad's summed
# gradients by the number of replicas, by 0.12.
TOLERANCE = 1e-5


def _run_workers(tmp_path, methods, timeout=420):
    """Runs the two workers to completion; a second try with new ports if one was taken."""
    for attempt in range(2):
        out = tmp_path / f"attempt{attempt}"
        out.mkdir()
        cluster = {"worker": [f"127.0.0.1:{port}" for port in processes.free_ports(2)]}
        workers = [
            processes.start(
                WORKER, ["--out", out, "--methods", json.dumps(methods)],
                out / f"worker{index}.log", out,
                TF_CONFIG=json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                ),
            )
            for index in range(2)
        ]
        try:
            processes.wait_all(workers, timeout=timeout)
            return out
        except AssertionError as error:
            if attempt or "Could not start gRPC server" not in str(error):
                raise


def _weights(path):
    with np.load(path) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


@pytest.mark.slow
def test_two_workers_train_as_one_process_on_the_same_global_batches(tmp_path):
    out = _run_workers(tmp_path, METHODS)
    reports = [json.loads((out / f"worker_{i}.json").read_text()) for i in range(2)]
    assert [r["replicas"] for r in reports] == [2, 2]
    histories = {**reports[0]["histories"], **reports[1]["histories"]}
    for method in METHODS:
        name = method["class_name"]
        single_process = {**reports[0]["reference"], **reports[1]["reference"]}[name]
        assert single_process["replicas"] == 1
        assert single_process["moved"] > 1e-2  # so that agreeing to TOLERANCE means something
        workers = [_weights(out / f"{name}_{i}.npz") for i in range(2)]
        reference = _weights(out / f"{name}_reference.npz")
        for first, second, single in zip(*workers, reference):
            np.testing.assert_array_equal(first, second)  # mirrored: one copy per worker
            np.testing.assert_allclose(first, single, rtol=0, atol=TOLERANCE, err_msg=name)
        # Interrupted after one epoch, resumed by BackupAndRestore: one entry per epoch, the
        # same losses, task weights and metrics (over all labels, not a replica's) as one process.
        history, expected = histories[name], histories[f"{name}_reference"]
        assert sorted(history) == sorted(expected)
        for key in expected:
            assert len(history[key]) == 2, (name, key)
            np.testing.assert_allclose(
                history[key], expected[key], rtol=TOLERANCE, atol=TOLERANCE, err_msg=key
            )
    evaluation = {**reports[0], **reports[1]}["reference_evaluation"]
    for report in reports:
        assert sorted(report["evaluation"]) == sorted(evaluation)
        for key, value in evaluation.items():
            assert report["evaluation"][key] == pytest.approx(
                value, rel=TOLERANCE, abs=TOLERANCE
            ), key

    # No directory is left: BackupAndRestore removes its backup when a run ends normally, and
    # the worker that is not the chief saved the model to a directory it removed.
    assert [p.name for p in out.iterdir() if p.is_dir()] == []
    name = METHODS[-1]["class_name"]
    assert sorted(p.name for p in out.glob("*.keras")) == [f"{name}.keras"]
    reloaded = keras.models.load_model(out / f"{name}.keras")
    assert isinstance(reloaded.weighting, keras_mtl.weighting.PCGrad)
    for saved, trained in zip(reloaded.get_weights(), _weights(out / f"{name}_0.npz")):
        np.testing.assert_array_equal(saved, trained)

