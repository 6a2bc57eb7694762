"""Resumable training: Keras' `BackupAndRestore`, extended to a full training state with atomic writes.

Keras 3.15's `BackupAndRestore` restores the weights (optimizer included) and the epoch, and writes both files in
place, so a kill during a write can leave a file that fails to load, or new weights beside an old epoch number.
`TrainingCheckpoint` keeps its protocol (restore in `on_train_begin`, set the initial epoch, save at epoch ends)
and adds what resuming a run exactly needs:

- one commit point: each save writes a new `ckpt-<batches>.weights.h5`, then atomically replaces `checkpoint.json`,
  which names it. A kill at any moment leaves the previous `checkpoint.json` and the file it names intact;
- the data position (batches consumed; the caller's data stream is seeded, so it skips that many batches);
- the random state `save_weights` leaves out: the models' `SeedGenerator` states (dropout), and on PyTorch the
  torch generator's state, which Keras' unseeded dropout draws from there;
- the history so far and whatever the caller adds (`extra`: initial metrics, the run's settings);
- a non-finite loss stops training with a `FloatingPointError` and writes nothing, so the last good checkpoint stays.
"""

import contextlib
import glob
import json
import math
import os

import keras
import numpy as np

from kbert.backend import global_random_state, set_global_random_state

STATE_FILE = "checkpoint.json"
KEEP = 2  # weight files kept: the one `checkpoint.json` names and the one before it


def _fsync_directory(directory):
    # The rename itself must reach the disk; not every platform can open a directory (Windows cannot).
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def atomic_write(path, write):
    """Writes a file so that `path` holds either its old content or the complete new one, never a part.

    `write(temporary_path)` writes the content to a temporary name in the same folder (with the same suffix,
    for writers that check it, like `save_weights`); it is then flushed to disk and renamed over `path`.
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".tmp-{os.getpid()}-{name}")
    try:
        write(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    _fsync_directory(directory)


def save_model(model, path):
    """`model.save(path)` (a `.keras` file), atomically."""
    atomic_write(path, model.save)


def write_json(data, path):
    """Writes `data` as JSON, atomically."""

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2)

    atomic_write(path, write)


def _seed_states(model):
    # Dropout's random state lives in SeedGenerator variables, which `save_weights` does not store.
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


class TrainingCheckpoint(keras.callbacks.BackupAndRestore):
    """Saves the training state at every epoch end, atomically, and restores it when `fit` starts again.

    Args:
        directory: the checkpoint folder (its own: nothing else may write there).
        steps_per_epoch: the `steps_per_epoch` given to `fit`; the data position is epochs x this.
        extra: JSON-serialisable data saved with every checkpoint (e.g. initial metrics); a restored
            checkpoint's is in `restored["extra"]`.
        settings: the run's settings that must not change across a resume (a dict); restoring a checkpoint
            written with other settings raises a `ValueError` naming the first difference.

    After `restore()` (called by `fit` if not before), `restored` is None (a fresh start) or a dict with `epoch`,
    `batches` (batches consumed), `history` (the logs of every epoch so far) and `extra`.

    Example:
        checkpoint = TrainingCheckpoint("run/checkpoints", steps_per_epoch=100)
        state = checkpoint.restore(model)           # before fit: to position the data
        batches = state["batches"] if state else 0
        model.fit(data.skip(batches), steps_per_epoch=100, epochs=10, callbacks=[checkpoint])
    """

    def __init__(self, directory, steps_per_epoch, extra=None, settings=None):
        super().__init__(os.fspath(directory), save_freq="epoch", delete_checkpoint=False)
        self.steps_per_epoch = int(steps_per_epoch)
        self.extra = extra
        self.settings = settings
        self.restored = None
        self._restore_done = False
        self._history = {}

    @property
    def state_path(self):
        return os.path.join(self.backup_dir, STATE_FILE)

    def read_state(self):
        """The state `checkpoint.json` holds, or None if there is no checkpoint."""
        if not os.path.isfile(self.state_path):
            return None
        with open(self.state_path, encoding="utf-8") as file:
            return json.load(file)

    def restore(self, model=None):
        """Loads the last checkpoint into `model` (default: the model `fit` set); returns its state or None."""
        if self._restore_done:
            return self.restored
        model = model or self.model
        self._restore_done = True
        for leftover in glob.glob(os.path.join(self.backup_dir, ".tmp-*")):
            os.remove(leftover)  # a write the last run did not finish
        state = self.read_state()
        if state is None:
            return None
        self._check_settings(state.get("settings"))
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        seed_states = _seed_states(model)
        if len(seed_states) != len(state["seed_states"]):
            raise ValueError(
                f"the checkpoint in {self.backup_dir!r} holds {len(state['seed_states'])} random states, the "
                f"model has {len(seed_states)}: it was written by another model; pass a new output folder"
            )
        for variable, value in zip(seed_states, state["seed_states"], strict=True):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        set_global_random_state(state.get("global_random_state"))
        self._history = {key: list(values) for key, values in state["history"].items()}
        self.restored = state
        return state

    def _check_settings(self, saved):
        if self.settings is None or saved is None:
            return
        for key in sorted(set(saved) | set(self.settings)):
            if saved.get(key) != self.settings.get(key):
                raise ValueError(
                    f"{self.backup_dir!r} holds a checkpoint of another run: {key} was {saved.get(key)!r}, "
                    f"now {self.settings.get(key)!r}; rerun with the same settings to resume, or pass a new "
                    "output folder"
                )

    # --- Keras' BackupAndRestore hooks ---

    def _load_model(self):
        state = self.restore()
        if state is not None:
            self.model._initial_epoch = state["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            last = self.read_state()
            if last:
                kept = f"the last good checkpoint (after {last['batches']} batches) is kept in {self.backup_dir!r}"
                then = "rerun to go on from it"
            else:
                kept, then = "no checkpoint was written yet", "rerun"
            raise FloatingPointError(
                f"the training loss is {float(loss)} in epoch {epoch + 1} (batches {epoch * self.steps_per_epoch}"
                f"-{(epoch + 1) * self.steps_per_epoch}); {kept}. Lower the learning rate or lengthen the warmup "
                f"(or train in float32), then {then}"
            )
        for key, value in logs.items():
            self._history.setdefault(key, []).append(float(value))
        self._current_epoch = epoch + 1
        self._save_model()

    def on_train_end(self, logs=None):
        pass  # keep the checkpoint: rerunning a finished run restores it and trains no further

    def _save_model(self):
        batches = self._current_epoch * self.steps_per_epoch
        name = f"ckpt-{batches:09d}.weights.h5"
        atomic_write(os.path.join(self.backup_dir, name), self.model.save_weights)
        state = {
            "epoch": self._current_epoch,
            "batches": batches,
            "weights": name,
            "seed_states": [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)],
            "global_random_state": global_random_state(),
            "history": self._history,
            "settings": self.settings,
            "extra": self.extra,
        }
        write_json(state, self.state_path)  # the commit point
        weights = sorted(glob.glob(os.path.join(self.backup_dir, "ckpt-*.weights.h5")))
        for old in weights[:-KEEP]:
            os.remove(old)

    @property
    def history(self):
        """Every epoch's logs so far, across resumes: {name: [value per epoch]}."""
        return self._history
