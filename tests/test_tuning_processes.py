"""An `MTLHyperModel` search in real processes: killed and resumed, and distributed.

Both run tests/tuning_worker.py in subprocesses.
"""

import glob
import json
import os
import signal
import time

import pytest

import processes

WORKER = os.path.join(os.path.dirname(__file__), "tuning_worker.py")


def _start(tmp_path, name, args, **env):
    return processes.start(WORKER, args, tmp_path / f"{name}.out", tmp_path, **env)


def _events(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _trial_files(project):
    trials = {}
    for fname in glob.glob(os.path.join(project, "trial_*", "trial.json")):
        with open(fname) as f:
            trial = json.load(f)
        trials[trial["trial_id"]] = trial
    return trials


@pytest.mark.slow
def test_a_killed_search_resumes_without_losing_or_rerunning_trials(tmp_path):
    directory, log, marker = tmp_path / "search", tmp_path / "log.jsonl", tmp_path / "paused"
    common = ["--directory", directory, "--max-trials", 3, "--log", log]
    first = _start(tmp_path, "first", [*common, "--pause-after", 1, "--marker", marker])
    deadline = time.time() + 120
    while not marker.exists():
        if first.poll() is not None or time.time() > deadline:
            first.kill()
            raise AssertionError(first.output_path.read_text()[-3000:])
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)  # mid-way through the second trial
    first.wait()

    project = str(directory / "search")
    before = _trial_files(project)
    completed = {k: t for k, t in before.items() if t["status"] == "COMPLETED"}
    assert len(completed) == 1
    interrupted = marker.read_text()
    assert before[interrupted]["status"] == "RUNNING"
    first_run = {e["trial_id"] for e in _events(log) if e["event"] == "end"}
    assert first_run == set(completed)

    second = _start(tmp_path, "second", common)
    processes.wait_all([second], timeout=180)
    after = _trial_files(project)
    assert sorted(after) == ["0", "1", "2"]
    assert all(t["status"] == "COMPLETED" for t in after.values())
    for trial_id, trial in completed.items():  # kept as they were
        assert after[trial_id]["score"] == trial["score"]
        assert after[trial_id]["hyperparameters"]["values"] == (
            trial["hyperparameters"]["values"]
        )
    second_pid = second.pid
    resumed = [e for e in _events(log) if e["pid"] == second_pid and e["event"] == "begin"]
    # Only the interrupted trial and the ones never started ran again.
    assert sorted(e["trial_id"] for e in resumed) == sorted(
        {"0", "1", "2"} - set(completed)
    )
    assert interrupted in {e["trial_id"] for e in resumed}


@pytest.mark.slow
def test_distributed_search_splits_trials_between_workers(tmp_path):
    (port,) = processes.free_ports(1)
    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port)}
    max_trials = 4
    chief_dir = tmp_path / "chief"
    chief = _start(
        tmp_path, "chief",
        ["--directory", chief_dir, "--max-trials", max_trials, "--log", tmp_path / "chief.jsonl"],
        KERASTUNER_TUNER_ID="chief", **oracle,
    )
    workers = [
        _start(
            tmp_path, f"worker{i}",
            ["--directory", tmp_path / f"worker{i}", "--max-trials", max_trials,
             "--log", tmp_path / f"worker{i}.jsonl", "--barrier", tmp_path / "barrier",
             "--peers", 2],
            KERASTUNER_TUNER_ID=f"tuner{i}", **oracle,
        )
        for i in range(2)
    ]
    try:
        processes.wait_all(workers, timeout=240)
        assert chief.poll() in (None, 0), processes.output(chief)
    finally:
        # The chief exits by itself once every worker has been told to stop, but KerasTuner
        # checks for that only every 20 s: once the workers are done, nothing is left to do.
        processes.kill([chief, *workers])

    ran = {
        i: [e["trial_id"] for e in _events(tmp_path / f"worker{i}.jsonl") if e["event"] == "end"]
        for i in range(2)
    }
    expected = [str(i) for i in range(max_trials)]
    assert all(ran[i] for i in range(2)), f"a worker ran no trial: {ran}"
    assert sorted(ran[0] + ran[1]) == expected  # each trial run once, none lost
    trials = _trial_files(str(chief_dir / "search"))
    assert sorted(trials) == expected
    assert all(t["status"] == "COMPLETED" for t in trials.values())

    # Anyone can read the chief's directory, during or after the search.
    import tuning_worker

    from keras_mtl import tuning

    reader = tuning_worker.make_tuner(chief_dir, max_trials)
    reader.oracle.reload()
    table = tuning.results_table(reader)
    assert sorted(table["trial_id"]) == expected
    assert table["val_delta_m"].notna().all()
    assert table["val_delta_m"].tolist() == sorted(table["val_delta_m"], reverse=True)
