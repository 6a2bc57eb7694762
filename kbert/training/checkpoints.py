"""Resumable training: Keras' `BackupAndRestore`, extended to a full training state with atomic writes.

Keras 3.15's `BackupAndRestore` restores the weights (optimizer included) and the epoch, and writes both files in
place, so a kill during a write can leave a file that fails to load, or new weights beside an old epoch number.
`TrainingCheckpoint` keeps its protocol (restore in `on_train_begin`, set the initial epoch, save at epoch ends)
and adds what resuming a run exactly needs:

- one commit point per checkpoint: each save writes a new `ckpt-<batches>.weights.h5`, then atomically its state
  `ckpt-<batches>.json`, which names it. A kill at any moment leaves the previous pair intact, and the pair before
  it is kept too: a checkpoint that cannot be read (a truncated file, a disk error) makes `restore` fall back to
  the one before, with a warning that names the bad file;
- the data position (batches consumed; the caller's data stream is seeded, so it skips that many batches);
- the random state `save_weights` leaves out: the models' `SeedGenerator` states (dropout), and on PyTorch the
  torch generator's state, which Keras' unseeded dropout draws from there;
- the history so far and whatever the caller adds (`extra`: initial metrics, the run's settings);
- a non-finite loss stops training with a `FloatingPointError` and writes nothing, so the last good checkpoint stays.
"""

import contextlib
import glob
import json
import logging
import math
import os
import re

import keras
import numpy as np

from kbert.backend import global_random_state, set_global_random_state
from kbert.files import write_json, write_on_one_process

KEEP = 2  # checkpoints kept: the last, and the one before it to fall back to
STATE_PATTERN = re.compile(r"ckpt-(\d+)\.json")
LEGACY_STATE_FILE = "checkpoint.json"  # the one state file of saves before the per-checkpoint states

logger = logging.getLogger("kbert")


def check_output_folder(out, sources=None):
    """Raises `ValueError` unless `out` is a folder that exists or can be made (no file on its path), other than
    every source folder a run reads and must leave unchanged.

    Args:
        out: the output folder.
        sources: `{flag: path}` of the run's inputs (e.g. `{"--init": "runs/pretrain"}`); None paths are skipped.
    """
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--out {os.fspath(out)!r} is a file; give a folder")
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"--out {os.fspath(out)!r} is under {parent!r}, which is a file; give a folder path")
    for flag, source in (sources or {}).items():
        if source and os.path.exists(source) and os.path.realpath(source) == os.path.realpath(path):
            raise ValueError(
                f"{flag} and --out are the same folder ({os.fspath(source)!r}); the run would overwrite what it "
                "reads: pass another --out"
            )


def _read_json(path):
    with open(path, encoding="utf-8") as file:
        state = json.load(file)
    if not isinstance(state, dict) or "weights" not in state:
        raise ValueError("not a checkpoint state (no 'weights' entry)")
    return state


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
        writer: whether this process writes (in a run over several processes, process 0 alone does; the others
            restore the same checkpoint and keep the history).

    After `restore()` (called by `fit` if not before), `restored` is None (a fresh start) or a dict with `epoch`,
    `batches` (batches consumed), `history` (the logs of every epoch so far) and `extra`.

    Example:
        checkpoint = TrainingCheckpoint("run/checkpoints", steps_per_epoch=100)
        state = checkpoint.restore(model)           # before fit: to position the data
        batches = state["batches"] if state else 0
        model.fit(data.skip(batches), steps_per_epoch=100, epochs=10, callbacks=[checkpoint])
    """

    def __init__(self, directory, steps_per_epoch, extra=None, settings=None, writer=True):
        super().__init__(os.fspath(directory), save_freq="epoch", delete_checkpoint=False)
        self.writer = writer
        self.steps_per_epoch = int(steps_per_epoch)
        self.extra = extra
        self.settings = settings
        self.restored = None
        self._restore_done = False
        self._history = {}

    def state_paths(self):
        """The checkpoints' state files, newest first."""
        if not os.path.isdir(self.backup_dir):
            return []
        names = [name for name in os.listdir(self.backup_dir) if STATE_PATTERN.fullmatch(name)]
        names.sort(key=lambda name: int(STATE_PATTERN.fullmatch(name).group(1)), reverse=True)
        if os.path.isfile(os.path.join(self.backup_dir, LEGACY_STATE_FILE)):
            names.append(LEGACY_STATE_FILE)
        return [os.path.join(self.backup_dir, name) for name in names]

    def read_state(self):
        """The newest checkpoint's state that can be read, or None if there is none."""
        for path in self.state_paths():
            with contextlib.suppress(OSError, ValueError):
                return _read_json(path)
        return None

    def restore(self, model=None):
        """Loads the newest readable checkpoint into `model` (default: the model `fit` set); returns its state, or
        None when the folder holds no checkpoint.

        A checkpoint that cannot be read (a truncated weights file, a malformed state) is skipped with a warning
        naming it, for the one before it. Raises `ValueError` when checkpoints exist but none can be read (so a run
        never silently starts over), or when they were written with other `settings`.
        """
        if self._restore_done:
            return self.restored
        model = model or self.model
        self._restore_done = True
        for leftover in glob.glob(os.path.join(self.backup_dir, ".tmp-*")) if self.writer else ():
            os.remove(leftover)  # a write the last run did not finish
        paths = self.state_paths()
        if not paths:
            return None
        problems = []
        for path in paths:
            try:
                state = _read_json(path)
            except (OSError, ValueError) as error:
                problems.append(f"{path}: {error}")
                logger.warning("kbert: skipping the unreadable checkpoint state %s (%s)", path, error)
                continue
            self._check_settings(state.get("settings"))
            try:
                self._load(model, state)
            except (OSError, ValueError, KeyError, TypeError) as error:
                weights = os.path.join(self.backup_dir, str(state.get("weights")))
                problems.append(f"{weights}: {error}")
                logger.warning(
                    "kbert: the checkpoint %s cannot be read (%s); falling back to the one before it",
                    weights,
                    error,
                )
                continue
            self._history = {key: list(values) for key, values in state["history"].items()}
            self.restored = state
            return state
        raise ValueError(
            f"no checkpoint in {self.backup_dir!r} can be read ({'; '.join(problems)}); move that folder away to "
            "start the run over, or pass a new output folder"
        )

    def _load(self, model, state):
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
        name = f"ckpt-{batches:09d}"
        path = os.path.join(self.backup_dir, name + ".weights.h5")
        write_on_one_process(path, self.model.save_weights, self.writer)
        seed_states = [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)]
        if not self.writer:
            return
        state = {
            "epoch": self._current_epoch,
            "batches": batches,
            "weights": name + ".weights.h5",
            "seed_states": seed_states,
            "global_random_state": global_random_state(),
            "history": self._history,
            "settings": self.settings,
            "extra": self.extra,
        }
        write_json(state, os.path.join(self.backup_dir, name + ".json"))  # the commit point
        states = self.state_paths()
        for old in states[KEEP:]:
            os.remove(old)
        named = set()
        for kept in states[:KEEP]:
            with contextlib.suppress(OSError, ValueError):
                named.add(_read_json(kept)["weights"])
        for weights in glob.glob(os.path.join(self.backup_dir, "ckpt-*.weights.h5")):
            if os.path.basename(weights) not in named:
                os.remove(weights)  # an older checkpoint's, or one whose state was never committed

    @property
    def history(self):
        """Every epoch's logs so far, across resumes: {name: [value per epoch]}."""
        return self._history
