"""Resuming: a pretraining run killed with SIGKILL and rerun ends where an uninterrupted run does; checkpoint
files are written atomically, so a kill during a write never leaves one that fails to load.

These run their own JAX subprocesses, so they run once (backend_independent), not once per backend.
"""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from kbert.files import atomic_write
from tests.harness import pretrain_arguments, write_pretraining_files

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.backend_independent


def _env(files=None):
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", CI="1")
    if files is not None:
        # The runs compile the same steps: JAX's persistent cache saves each later run the compile time.
        env.update(
            JAX_COMPILATION_CACHE_DIR=str(files / "jax-cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0"
        )
    return env


def _h5_arrays(path):
    arrays = {}
    with h5py.File(path, "r") as file:
        file.visititems(
            lambda name, item: arrays.__setitem__(name, item[()]) if hasattr(item, "shape") else None
        )
    return arrays


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """A small corpus, its vocabulary and a tiny model config: a 40-step run trains in seconds."""
    folder = tmp_path_factory.mktemp("resume")
    write_pretraining_files(folder)
    return folder


def _command(files, out, steps=40):
    return [sys.executable, *pretrain_arguments(files, out, steps)]


@pytest.mark.slow  # three JAX subprocesses: about a minute on 2 cores
def test_killed_run_resumes_to_the_same_weights(run_files, tmp_path):
    uninterrupted = subprocess.Popen(
        _command(run_files, tmp_path / "whole"),
        env=_env(run_files),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Kill the second run with SIGKILL at a random moment in its first half (a fixed delay after the first
    # checkpoint could land after the end of a run this short: its 40 steps take about a second).
    target = random.choice(range(4, 24, 4))
    delay = random.uniform(0.0, 0.05)
    interrupted = subprocess.Popen(
        _command(run_files, tmp_path / "killed"),
        env=_env(run_files),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = tmp_path / "killed" / "checkpoints"

    def committed_batches():  # each checkpoint's state file is its commit point, written atomically
        return max((int(path.stem.split("-")[1]) for path in checkpoints.glob("ckpt-*.json")), default=0)

    deadline = time.monotonic() + 240
    while interrupted.poll() is None and time.monotonic() < deadline:
        if committed_batches() >= target:
            break
        time.sleep(0.01)
    time.sleep(delay)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert interrupted.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "killed" / "metrics.json").exists()
    killed_at = committed_batches()

    resumed = subprocess.run(
        _command(run_files, tmp_path / "killed"),
        env=_env(run_files),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Resuming from the checkpoint after step" in resumed.stdout
    output, _ = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, output[-3000:]

    # The last checkpoint holds the whole state: weights, optimizer moments and step.
    whole = _h5_arrays(tmp_path / "whole" / "checkpoints" / "ckpt-000000040.weights.h5")
    again = _h5_arrays(tmp_path / "killed" / "checkpoints" / "ckpt-000000040.weights.h5")
    assert whole.keys() == again.keys() and any("optimizer" in name for name in whole)
    worst = max(float(np.max(np.abs(whole[name] - again[name]), initial=0.0)) for name in whole)
    assert worst <= 1e-5, (
        f"killed after {killed_at} batches (target {target}, delay {delay:.3f} s): max difference {worst}"
    )

    metrics = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    expected = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert metrics["final_mlm_loss"] == pytest.approx(expected["final_mlm_loss"], abs=1e-4)
    assert metrics["initial_mlm_loss"] == expected["initial_mlm_loss"]
    history = json.loads((tmp_path / "killed" / "history.json").read_text())
    assert len(history["mlm_loss"]) == 10  # every checkpoint interval, across the kill


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"step": 1}')

    def write_half(temporary):
        with open(temporary, "w") as file:
            file.write('{"step": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, write_half)
    assert json.loads(path.read_text()) == {"step": 1}
    assert os.listdir(tmp_path) == ["state.json"]


KEEP_SAVING = textwrap.dedent(
    """
    import sys
    import keras
    from kbert.files import atomic_write

    model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(2048), keras.layers.Dense(256)])
    for step in range(100000):
        model.layers[0].kernel.assign(keras.ops.full((256, 2048), float(step)))
        atomic_write(sys.argv[1], model.save_weights)
        if step == 0:
            print("saved", flush=True)
    """
)


def test_a_kill_during_checkpoint_writes_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "model.weights.h5"
    writer = subprocess.Popen(
        [sys.executable, "-c", KEEP_SAVING, str(path)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "saved"
    time.sleep(
        random.uniform(0.2, 1.0)
    )  # a 2 MB file written over and over: the kill lands mid-write or between
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    arrays = _h5_arrays(path)
    kernel = next(value for value in arrays.values() if value.shape == (256, 2048))
    assert np.all(kernel == kernel[0, 0])  # one complete save, not a mix of two
