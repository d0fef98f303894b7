"""A tiny `MTLHyperModel` search, run as a separate process by tests/test_tuning_processes.py.

The same script is the single process of an interruptible search, and the chief or a worker
of a distributed one (KerasTuner reads `KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP` and
`KERASTUNER_ORACLE_PORT`). Every trial this process starts and ends is appended to `--log`
as a JSON line, so the test can tell which process ran which trial.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl  # noqa: E402
from keras_mtl import tuning  # noqa: E402


def _log(path, **event):
    event.update(
        tuner_id=os.environ.get("KERASTUNER_TUNER_ID", "tuner0"), pid=os.getpid(), time=time.time()
    )
    with open(path, "a") as f:
        f.write(json.dumps(event) + "\n")
        f.flush()
        os.fsync(f.fileno())


class LoggingRandomSearch(keras_tuner.RandomSearch):
    def __init__(self, *args, log, pause_after=None, marker=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.log = log
        self.pause_after = pause_after
        self.marker = marker
        self.completed_here = 0

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        _log(self.log, event="begin", trial_id=trial.trial_id)
        if self.pause_after is not None and self.completed_here == self.pause_after:
            # Stand for a long trial: the test kills the process here, mid-trial.
            with open(self.marker, "w") as f:
                f.write(trial.trial_id)
            time.sleep(600)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.completed_here += 1
        _log(self.log, event="end", trial_id=trial.trial_id, status=str(trial.status))


def _wait_for_peers(directory, count, timeout=120):
    """A file barrier: all workers begin the search together, so each gets trials."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"ready_{os.getpid()}"), "w"):
        pass
    deadline = time.time() + timeout
    while len(os.listdir(directory)) < count:
        if time.time() > deadline:
            raise TimeoutError(f"only {len(os.listdir(directory))} of {count} peers ready")
        time.sleep(0.1)


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype("float32")
    y = {
        "reg": (x[:, :1] - x[:, 1:2]).astype("float32"),
        "flag": (x[:, 2:3] > 0).astype("float32"),
    }
    train = (x[:64], {k: v[:64] for k, v in y.items()})
    validation = (x[64:], {k: v[64:] for k, v in y.items()})
    return train, validation


def make_tuner(directory, max_trials, tuner_class=keras_tuner.RandomSearch, **kwargs):
    """The search every process of a test runs (or reloads, with the same directory)."""
    tasks = [keras_mtl.Task("reg", "regression"), keras_mtl.Task("flag", "binary")]
    hypermodel = tuning.MTLHyperModel(
        (6,),
        tasks,
        fixed={"shared_units": 8, "dropout": 0.0, "shared_layers": 1},
        run_eagerly=True,
    )
    return tuner_class(
        hypermodel,
        objective=hypermodel.objective,
        max_trials=max_trials,
        seed=1,
        directory=str(directory),
        project_name="search",
        overwrite=False,
        **kwargs,
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--directory", required=True)
    parser.add_argument("--max-trials", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--pause-after", type=int)
    parser.add_argument("--marker")
    parser.add_argument("--barrier")
    parser.add_argument("--peers", type=int, default=1)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    tuner = make_tuner(
        args.directory,
        args.max_trials,
        tuner_class=LoggingRandomSearch,
        log=args.log,
        pause_after=args.pause_after,
        marker=args.marker,
    )
    if args.barrier:
        _wait_for_peers(args.barrier, args.peers)
    train, validation = data()
    tuner.search(*train, validation_data=validation, epochs=2, batch_size=32, verbose=0)
    _log(args.log, event="done")


if __name__ == "__main__":
    main()
