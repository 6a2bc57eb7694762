"""Shared test harness: tiny configs and inputs, run on every backend."""

import hashlib
import os
import re
import subprocess
import sys

import keras
import numpy as np

TINY = dict(
    vocabulary_size=97,
    num_layers=2,
    num_heads=2,
    hidden_dim=32,
    intermediate_dim=64,
    max_sequence_length=24,
)
BACKENDS = ("tensorflow", "jax", "torch")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_backbone(**overrides):
    import kbert

    return kbert.BertBackbone(**{**TINY, **overrides})


def random_inputs(batch=3, length=10, real_lengths=None, vocabulary_size=TINY["vocabulary_size"], seed=0):
    """A padded batch: token ids in [1, vocab), segment 0 then 1, padding after each row's real length."""
    rng = np.random.default_rng(seed)
    real_lengths = real_lengths or [length - 2 * i for i in range(batch)]
    token_ids = rng.integers(1, vocabulary_size, size=(batch, length)).astype("int32")
    padding_mask = (np.arange(length)[None, :] < np.asarray(real_lengths)[:, None]).astype("int32")
    segment_ids = (np.arange(length)[None, :] >= np.asarray(real_lengths)[:, None] // 2).astype("int32")
    return {
        "token_ids": token_ids * padding_mask,
        "segment_ids": segment_ids * padding_mask,
        "padding_mask": padding_mask,
    }


def to_numpy(tree):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, tree)


def run_in_backend(backend, code, timeout=300):
    """Runs Python `code` in a fresh process with KERAS_BACKEND=backend; returns its stdout."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode:
        raise AssertionError(f"{backend} subprocess failed:\n{result.stderr[-4000:]}")
    return result.stdout


def folder_digest(path):
    """`{relative path: sha256}` of every file under `path`, and `"<folder>"` for every folder: equal digests
    before and after a command mean it created, changed and removed nothing there."""
    digest = {}
    for folder, folders, files in os.walk(path):
        for name in folders:
            digest[os.path.relpath(os.path.join(folder, name), path)] = "<folder>"
        for name in files:
            with open(os.path.join(folder, name), "rb") as file:
                digest[os.path.relpath(os.path.join(folder, name), path)] = hashlib.sha256(
                    file.read()
                ).hexdigest()
    return digest


def run_command(arguments, cwd):
    """Runs `python *arguments` from `cwd` with the repository importable; returns the finished process."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


# What TensorFlow's C++ logging prints on stderr at import, whatever TF_CPP_MIN_LOG_LEVEL says.
_NATIVE_LOG = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl::InitializeLog)")


def refusal(result):
    """The one-line message of a refused command: exit code 2, no traceback, `error: ...` as the whole of
    stderr (TensorFlow's native start-up log lines aside)."""
    assert result.returncode == 2, f"exit code {result.returncode}:\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    lines = [line for line in result.stderr.splitlines() if line.strip() and not _NATIVE_LOG.match(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-4000:]
    return lines[0]


def write_pretraining_files(folder):
    """A small real corpus (20 files of standard-library docstrings), its 400-token vocabulary and a tiny model
    config in `folder`: `corpus.txt`, `vocab.txt`, `tiny.json`; a pretraining run on them takes seconds. Returns
    the vocabulary."""
    import json

    from kbert.data import builtin_corpus
    from kbert.text import learn_vocabulary

    documents = builtin_corpus(max_files=20)
    (folder / "corpus.txt").write_text(
        "\n\n".join("\n".join(document) for document in documents) + "\n", encoding="utf-8"
    )
    vocabulary = learn_vocabulary((s for document in documents for s in document), vocabulary_size=400)
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    config = {**TINY, "vocabulary_size": 400, "max_sequence_length": 32}
    (folder / "tiny.json").write_text(json.dumps(config), encoding="utf-8")
    return vocabulary


def pretrain_arguments(files, out, steps, *extra):
    """`recipes/pretrain.py` arguments for a tiny JAX run on `write_pretraining_files`' files: batches of 8 x 32
    tokens, a checkpoint every 4 steps; `extra` flags come last (a repeated flag: the last wins)."""
    return [
        os.path.join(REPO, "recipes", "pretrain.py"),
        "--backend=jax",
        f"--corpus={files / 'corpus.txt'}",
        f"--vocab={files / 'vocab.txt'}",
        f"--config={files / 'tiny.json'}",
        "--seq-len=32",
        "--batch-size=8",
        "--max-predictions=5",
        f"--steps={steps}",
        "--warmup-steps=4",
        "--checkpoint-every=4",
        "--eval-batches=1",
        f"--out={out}",
        *extra,
    ]
