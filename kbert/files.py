"""Files written whole or not at all: the one atomic writer every module uses (the lowest floor of kbert).

A kill or a full disk during a write leaves the old file (or none), never a part: the content goes to a temporary
name in the same folder, is flushed to disk, and is renamed over the target; the rename is flushed too.
"""

import contextlib
import json
import os
import tempfile


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
    for writers that check it, like `save_weights` or matplotlib's `savefig`); it is then flushed to disk and
    renamed over `path`.
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


def write_json(data, path, **dump_options):
    """Writes `data` as indented JSON, atomically; `dump_options` go to `json.dump` (`sort_keys`, `default`)."""

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, **dump_options)

    atomic_write(path, write)


def write_bytes(data, path):
    """Writes `data` (bytes), atomically."""

    def write(temporary):
        with open(temporary, "wb") as file:
            file.write(data)

    atomic_write(path, write)


def write_on_one_process(path, write, writer):
    """`atomic_write(path, write)` on the process that writes (`writer`); on the others the same `write` into a
    temporary folder that is thrown away. Saving a model gathers its weights from every process of a run over
    several processes, a collective that each one must join at the same point."""
    if writer:
        atomic_write(path, write)
        return
    with tempfile.TemporaryDirectory() as folder:
        write(os.path.join(folder, os.path.basename(path)))
