"""One run over several processes (JAX, `keras.distribution` over `jax.distributed`), with real local processes.

Two processes of 2 CPU devices each (CPU collectives: gloo, a coordinator on 127.0.0.1), started by
`recipes/launch.py`, train as one process with 4 CPU devices does on the same global batches. Runs once
(backend_independent), on JAX whatever the pass's backend.
"""

import glob
import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from tests.harness import REPO, pretrain_arguments, write_pretraining_files

pytestmark = pytest.mark.backend_independent


def _run(command, **env):
    environment = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", **env)
    for name in ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID"):
        environment.pop(name, None)
    return subprocess.run(
        [sys.executable, *command], env=environment, cwd=REPO, capture_output=True, text=True, timeout=600
    )


def _final_weights(out):
    """The arrays of the run's last checkpoint, by their path in the weights file."""
    arrays = {}
    with h5py.File(sorted(glob.glob(os.path.join(out, "checkpoints", "*.weights.h5")))[-1]) as file:
        file.visititems(lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.mark.parametrize("parallel", ["--data-parallel", "--model-parallel=2"])
def test_two_processes_train_as_one_process_with_four_devices(parallel, tmp_path):
    write_pretraining_files(tmp_path)
    single = _run(pretrain_arguments(tmp_path, tmp_path / "single", 8, parallel), JAX_NUM_CPU_DEVICES="4")
    assert single.returncode == 0, single.stderr[-3000:]
    launcher = os.path.join(REPO, "recipes", "launch.py")
    multi = _run(
        [launcher, "--num-processes=2", "--cpu-devices=2", "--", *pretrain_arguments(tmp_path, tmp_path / "multi", 8, parallel)]
    )
    assert multi.returncode == 0, multi.stderr[-3000:]

    losses = [json.loads((tmp_path / run / "history.json").read_text())["loss"] for run in ("single", "multi")]
    np.testing.assert_allclose(losses[1], losses[0], atol=1e-5)
    metrics = json.loads((tmp_path / "multi" / "metrics.json").read_text())
    assert (metrics["num_processes"], metrics["global_devices"]) == (2, 4)
    single_weights, multi_weights = _final_weights(tmp_path / "single"), _final_weights(tmp_path / "multi")
    assert single_weights.keys() == multi_weights.keys() and len(single_weights) > 50
    worst = max(float(np.max(np.abs(single_weights[k] - multi_weights[k]))) for k in single_weights)
    assert worst <= 1e-5
    assert not glob.glob(str(tmp_path / "multi" / "**" / ".tmp-*"), recursive=True)


def test_the_launcher_gives_each_process_its_variables_and_fails_with_the_first_failure():
    from kbert.training.launch import launch

    script = (
        "import os, sys; "
        "assert os.environ['KERAS_DISTRIBUTION_NUM_PROCESSES'] == '3'; "
        "assert os.environ['KERAS_DISTRIBUTION_JOB_ADDRESSES'].startswith('127.0.0.1:'); "
        "sys.exit(7 if os.environ['KERAS_DISTRIBUTION_PROCESS_ID'] == '2' else 0)"
    )
    assert launch(["-c", script], 3) == 7
    assert launch(["-c", script.replace("== '2'", "== 'none'")], 3) == 0
    hanging = "import os, sys, time; time.sleep(600 if os.environ['KERAS_DISTRIBUTION_PROCESS_ID'] == '1' else 0); sys.exit(5)"
    started = time.monotonic()
    assert launch(["-c", hanging], 2) == 5
    assert time.monotonic() - started < 60  # the process still running is stopped, not waited for


def test_process_settings_come_from_flags_or_keras_variables_and_bad_ones_are_named():
    from kbert.backend import process_settings

    assert process_settings(environ={}) == (None, 1, 0)
    variables = {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:1234",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "KERAS_DISTRIBUTION_PROCESS_ID": "1",
    }
    assert process_settings(environ=variables) == ("10.0.0.1:1234", 2, 1)
    assert process_settings("host:9", 4, 3, environ=variables) == ("host:9", 4, 3)
    with pytest.raises(ValueError, match=r"process_id=2 is not in 0\.\.1"):
        process_settings("host:9", 2, 2, environ={})
    with pytest.raises(ValueError, match="needs the coordinator's address"):
        process_settings(None, 2, 0, environ={})
    with pytest.raises(ValueError, match="whole numbers"):
        process_settings("host:9", "two", 0, environ={})


def _start(command, process_id, port, log):
    environment = dict(
        os.environ,
        KERAS_BACKEND="jax",
        TF_CPP_MIN_LOG_LEVEL="3",
        JAX_NUM_CPU_DEVICES="2",
        KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
        KERAS_DISTRIBUTION_NUM_PROCESSES="2",
        KERAS_DISTRIBUTION_PROCESS_ID=str(process_id),
    )
    return subprocess.Popen([sys.executable, *command], env=environment, cwd=REPO, stdout=log, stderr=log)


def test_a_dead_process_stops_the_others_and_the_same_commands_resume(tmp_path):
    """One process killed at a seeded moment after the first checkpoint: the other exits non-zero by itself within
    the heartbeat bound, the checkpoints on disk are whole, and rerunning the commands finishes the run with the
    weights of an uninterrupted one."""
    from kbert.training.launch import free_port

    write_pretraining_files(tmp_path)
    command = pretrain_arguments(tmp_path, tmp_path / "run", 12, "--data-parallel")
    with open(tmp_path / "log.txt", "w") as log:
        port = free_port()
        processes = [_start(command, index, port, log) for index in range(2)]
        deadline = time.monotonic() + 300
        while not glob.glob(str(tmp_path / "run" / "checkpoints" / "ckpt-*.json")):
            assert time.monotonic() < deadline and all(p.poll() is None for p in processes), (
                (tmp_path / "log.txt").read_text()[-3000:]
            )
            time.sleep(0.2)
        time.sleep(np.random.default_rng(0).uniform(0, 2))
        processes[1].kill()
        killed = time.monotonic()
        code = processes[0].wait(timeout=120)
        waited = time.monotonic() - killed
    assert code != 0 and waited < 30, (code, waited)
    for state in glob.glob(str(tmp_path / "run" / "checkpoints" / "ckpt-*.json")):
        assert (tmp_path / "run" / "checkpoints" / json.loads(open(state).read())["weights"]).is_file()

    launcher = os.path.join(REPO, "recipes", "launch.py")
    resumed = _run([launcher, "--num-processes=2", "--cpu-devices=2", "--", *command])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from the checkpoint" in resumed.stdout
    reference = _run(pretrain_arguments(tmp_path, tmp_path / "reference", 12, "--data-parallel"), JAX_NUM_CPU_DEVICES="4")
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected, got = _final_weights(tmp_path / "reference"), _final_weights(tmp_path / "run")
    assert max(float(np.max(np.abs(expected[k] - got[k]))) for k in expected) <= 1e-5


def test_an_unreachable_coordinator_is_named():
    from kbert.backend import wait_for_coordinator
    from kbert.training.launch import free_port

    coordinator = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ValueError, match=f"coordinator='{coordinator}' did not answer within 1 s"):
        wait_for_coordinator(coordinator, 1)
    assert time.monotonic() - started < 10
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        wait_for_coordinator("10.0.0.1", 1)


def _saved_weights(path):
    """The arrays of a `.keras` file, by their path in its weights file."""
    import io
    import zipfile

    arrays = {}
    with h5py.File(io.BytesIO(zipfile.ZipFile(path).read("model.weights.h5"))) as file:
        file.visititems(lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return arrays


def test_data_parallel_fine_tuning_equals_one_device(tmp_path, minilm_dir):
    from tests.training.test_finetuning import _hf_checkpoint, _records, _write

    (tmp_path / "init").mkdir()
    init = _hf_checkpoint(tmp_path / "init", minilm_dir)
    dev = _write(tmp_path / "dev.jsonl", _records(16, 1))
    arguments = [os.path.join(REPO, "recipes", "finetune.py"), "--backend=jax", "--task=classify", f"--init={init}"]
    arguments += [f"--dev={dev}", "--batch-size=8", "--seq-len=16", "--epochs=1", "--lr=1e-3"]
    train = _write(tmp_path / "train.jsonl", _records(40, 0))  # 5 whole batches
    one = _run([*arguments, f"--train={train}", f"--out={tmp_path / 'one'}"], JAX_NUM_CPU_DEVICES="1")
    four = _run([*arguments, f"--train={train}", f"--out={tmp_path / 'four'}", "--data-parallel"], JAX_NUM_CPU_DEVICES="4")
    assert one.returncode == 0 and four.returncode == 0, (one.stderr + four.stderr)[-3000:]
    expected, got = _saved_weights(tmp_path / "one" / "model.keras"), _saved_weights(tmp_path / "four" / "model.keras")
    assert max(float(np.max(np.abs(expected[k] - got[k]))) for k in expected) <= 1e-5

    short = _write(tmp_path / "short.jsonl", _records(42, 0))  # a last batch of 2 rows, padded to the 4 devices
    padded = _run([*arguments, f"--train={short}", f"--out={tmp_path / 'short'}", "--data-parallel"], JAX_NUM_CPU_DEVICES="4")
    assert padded.returncode == 0, padded.stderr[-3000:]
    assert json.loads((tmp_path / "short" / "metrics.json").read_text())["train_examples"] == 42


def test_data_parallel_batches_give_every_device_its_share():
    from kbert.data.batching import batches

    lengths = np.random.default_rng(0).integers(3, 16, 10)
    mask = (np.arange(16)[None, :] < lengths[:, None]).astype("int32")
    packed = {"token_ids": mask * 5, "segment_ids": 0 * mask, "padding_mask": mask}
    labels = np.arange(10)
    seen = []
    for x, y, weight in batches(packed, labels, 4, True, 0, devices=4).as_numpy_iterator():
        assert len(x["token_ids"]) % 4 == 0 and len(y) == len(weight) == len(x["token_ids"])
        seen += list(y[weight > 0])
        assert (weight == 0).sum() == len(y) - len(set(y[weight > 0]))  # the repeats weigh nothing
    assert sorted(seen) == list(range(10))
    with pytest.raises(ValueError, match="batch_size divisible by the 4 devices"):
        batches(packed, labels, 6, True, 0, devices=4)
