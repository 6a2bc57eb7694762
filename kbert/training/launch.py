"""Several local processes of one run over several processes (`recipes/launch.py`): on one big host, and the pattern
a cluster launcher follows (TPU pod slices, SLURM, Kubernetes: see the README).

Each process gets Keras' variables (`KERAS_DISTRIBUTION_JOB_ADDRESSES` = the coordinator on 127.0.0.1 and a free
port, `KERAS_DISTRIBUTION_NUM_PROCESSES`, `KERAS_DISTRIBUTION_PROCESS_ID`), which the recipes read as their
`--coordinator`, `--num-processes` and `--process-id`. When one process fails, the others are stopped; the launcher
exits with the first failure's code.
"""

import os
import signal
import socket
import subprocess
import sys
import time

from kbert.backend import PROCESS_VARIABLES

STOP_GRACE_SECONDS = 10  # after SIGTERM, before SIGKILL


def free_port():
    """A TCP port on 127.0.0.1 that is free now (the coordinator binds it moments later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_environment(environ, coordinator, num_processes, process_id, cpu_devices=None):
    """`environ` with Keras' multi-process variables for process `process_id` (and `JAX_NUM_CPU_DEVICES`)."""
    environment = dict(environ)
    environment[PROCESS_VARIABLES["coordinator"]] = coordinator
    environment[PROCESS_VARIABLES["num_processes"]] = str(num_processes)
    environment[PROCESS_VARIABLES["process_id"]] = str(process_id)
    if cpu_devices:
        environment["JAX_NUM_CPU_DEVICES"] = str(cpu_devices)
    return environment


def launch(script_and_args, num_processes, cpu_devices=None, environ=None):
    """Runs `python script args...` as `num_processes` processes of one run on this host; returns the exit code:
    0 when all succeed, else the first failure's (the others are then stopped).

    Args:
        script_and_args: the entry point and its flags, e.g. `["recipes/pretrain.py", "--data-parallel"]`.
        num_processes: how many processes (>= 1).
        cpu_devices: CPU devices per process (`JAX_NUM_CPU_DEVICES`), for runs on CPUs; None leaves it.

    Raises:
        ValueError: no script, or a count below 1.
    """
    if not script_and_args:
        raise ValueError("no command to launch; give it after --, e.g. -- recipes/pretrain.py --data-parallel")
    if num_processes < 1 or (cpu_devices is not None and cpu_devices < 1):
        raise ValueError(f"num_processes={num_processes}, cpu_devices={cpu_devices}: use 1 or more")
    environ = os.environ if environ is None else environ
    coordinator = f"127.0.0.1:{free_port()}"
    processes = [
        subprocess.Popen(
            [sys.executable, *script_and_args],
            env=process_environment(environ, coordinator, num_processes, index, cpu_devices),
        )
        for index in range(num_processes)
    ]

    def forward(number, _frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(number)

    forwarded = {name: signal.getsignal(name) for name in (signal.SIGINT, signal.SIGTERM)}
    for name in forwarded:
        signal.signal(name, forward)
    try:
        return _wait(processes)
    finally:
        for name, handler in forwarded.items():
            signal.signal(name, handler)


def _wait(processes):
    """Waits for every process; on the first failure stops the others (SIGTERM, then SIGKILL) and returns its
    code."""
    while True:
        codes = [process.poll() for process in processes]
        failed = [code for code in codes if code not in (None, 0)]
        if failed:
            _stop(processes)
            return failed[0]
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.2)


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
