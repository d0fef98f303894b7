"""Running test scripts in separate Python processes: start, wait (with kill), free ports."""

import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env(**extra):
    """This environment, with this checkout first on `PYTHONPATH` and no `KERASTUNER_*`."""
    result = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    result.update(TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    result["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, result.get("PYTHONPATH")]))
    result.update(extra)
    return result


def start(script, args, output_path, cwd, **extra_env):
    """Starts `python script *args`, its stdout and stderr written to `output_path`."""
    with open(output_path, "w") as out:
        process = subprocess.Popen(
            [sys.executable, script, *map(str, args)],
            stdout=out, stderr=subprocess.STDOUT, env=env(**extra_env), cwd=str(cwd),
        )
    process.output_path = output_path
    return process


def output(process, chars=3000):
    """The end of what `process` printed."""
    with open(process.output_path) as f:
        return f.read()[-chars:]


def kill(processes):
    """Kills those of `processes` still running, and reaps them."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_all(processes, timeout):
    """Waits until every process has exited with code 0.

    As soon as one fails, or `timeout` seconds have passed, kills the others (a peer of a
    failed process may wait for it forever) and raises `AssertionError` with every output.
    """
    deadline = time.monotonic() + timeout
    try:
        while True:
            codes = [process.poll() for process in processes]
            if all(code == 0 for code in codes):
                return
            failed = any(code not in (None, 0) for code in codes)
            if failed or time.monotonic() > deadline:
                reason = "a process failed" if failed else f"timed out after {timeout} s"
                raise AssertionError(
                    reason
                    + "".join(
                        f"\n--- {process.output_path} (exit code {code}):\n{output(process)}"
                        for process, code in zip(processes, codes)
                    )
                )
            time.sleep(0.2)
    finally:
        kill(processes)


def free_ports(count):
    """`count` distinct TCP ports free on every interface now (a server may still take one)."""
    sockets = []
    try:
        for _ in range(count):
            sockets.append(socket.socket())
            sockets[-1].bind(("", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
