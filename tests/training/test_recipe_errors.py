"""recipes/pretrain.py and recipes/finetune.py as a user runs them, with ordinary mistakes: each refusal is one line
`error: ...` with exit code 2 and leaves every folder byte-identical; the documented flows work.

CLI subprocesses on JAX, whatever the backend of the test process: they run in one pass only."""

import json
import os
import re
import shutil

import pytest

from kbert import BertBackbone, WordPieceTokenizer
from kbert.interop import save_huggingface
from tests.harness import (
    REPO,
    folder_digest,
    pretrain_arguments,
    refusal,
    run_command,
    write_pretraining_files,
)

pytestmark = pytest.mark.backend_independent

PRETRAIN = os.path.join(REPO, "recipes", "pretrain.py")
FINETUNE = os.path.join(REPO, "recipes", "finetune.py")


def _env_args(*arguments):
    return ["--backend=jax", *arguments]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small corpus, its vocabulary, a tiny model config, a labelled file, and a finished 8-step run in `run`."""
    folder = tmp_path_factory.mktemp("recipes")
    vocabulary = write_pretraining_files(folder)
    config = json.loads((folder / "tiny.json").read_text(encoding="utf-8"))
    words = vocabulary[200:260]
    with open(folder / "train.jsonl", "w", encoding="utf-8") as file:
        for index in range(32):
            text = " ".join(words[(index * 7 + k) % len(words)] for k in range(6))
            file.write(json.dumps({"text": text, "label": ["no", "yes"][index % 2]}) + "\n")
    # A Hugging Face folder to pretrain "in place" on (refused: it would rewrite its config.json).
    save_huggingface(
        BertBackbone(**config), folder / "hf", tokenizer=WordPieceTokenizer(folder / "vocab.txt")
    )
    result = run_command([PRETRAIN, *_pretrain_args(folder, folder / "run")], cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def _pretrain_args(files, out, *extra):
    return pretrain_arguments(files, out, 8, *extra)[1:]


@pytest.mark.parametrize(
    "change, message",
    [
        (["--steps=12", "--checkpoint-every=4"], r"holds a checkpoint of another run: steps was 8, now 12"),
        (["--seq-len=16"], r"holds a checkpoint of another run: seq_len was 32, now 16"),
        (["--init={run}"], r"--init and --out are the same folder"),
        (["--init={hf}", "--out={hf}"], r"--init and --out are the same folder"),
        (["edited corpus"], r"holds a checkpoint of another run: corpus_sha256 was"),
    ],
)
def test_a_rerun_that_does_not_match_the_finished_run_changes_nothing(files, change, message):
    run = files / "run"
    before = {name: folder_digest(files / name) for name in ("run", "hf")}
    corpus = files / "corpus.txt"
    original = corpus.read_text(encoding="utf-8")
    if change == ["edited corpus"]:
        corpus.write_text(original.replace(".", "!", 1), encoding="utf-8")  # same path, other content
        change = []
    try:
        arguments = _pretrain_args(files, run, *[item.format(run=run, hf=files / "hf") for item in change])
        line = refusal(run_command([PRETRAIN, *arguments], cwd=files))
    finally:
        corpus.write_text(original, encoding="utf-8")
    assert re.search(message, line), line
    assert {name: folder_digest(files / name) for name in ("run", "hf")} == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lr=-0.003"], r"lr=-0.003; the learning rate must be a finite number > 0"),
        (["--lr=nan"], r"lr=nan; the learning rate must be a finite number > 0"),
        (["--warmup-steps=20"], r"warmup_steps=20; use 0 to steps=8"),
        (["--seq-len=64"], r"seq_len=64 > the max_sequence_length 32 of --config"),
        (["--batch-size=4096"], r"fewer than one batch \(batch_size=4096\)"),
        (["--config={files}/broken.json"], r"broken.json:1: not valid JSON"),
        (["--out={files}/tiny.json/run"], r"tiny.json', which is a file"),
        (["--corpus={files}"], r"is a folder; pass its files"),
    ],
)
def test_bad_settings_and_files_are_refused_before_anything_is_written(files, tmp_path, extra, message):
    (files / "broken.json").write_text('{"num_layers": 2,', encoding="utf-8")
    out = tmp_path / "new"
    arguments = _pretrain_args(files, out, *[item.format(files=files) for item in extra])
    line = refusal(run_command([PRETRAIN, *arguments], cwd=files))
    assert re.search(message, line), line
    assert not out.exists() and folder_digest(tmp_path) == {}


def test_debug_shows_the_traceback(files, tmp_path):
    result = run_command([PRETRAIN, *_pretrain_args(files, tmp_path / "x", "--lr=nan", "--debug")], cwd=files)
    assert result.returncode != 0 and "Traceback" in result.stderr and "lr=nan" in result.stderr


def test_a_truncated_last_checkpoint_resumes_from_the_one_before(files, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(files / "run", run)
    last = run / "checkpoints" / "ckpt-000000008.weights.h5"
    last.write_bytes(last.read_bytes()[:500])
    result = run_command([PRETRAIN, *_pretrain_args(files, run)], cwd=files)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ckpt-000000008.weights.h5 cannot be read" in result.stderr
    assert "Resuming from the checkpoint after step 4" in result.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    expected = json.loads((files / "run" / "metrics.json").read_text())
    assert metrics["final_mlm_loss"] == pytest.approx(expected["final_mlm_loss"], abs=1e-4)


def test_finetuning_a_pretraining_run_and_its_refusals(files, tmp_path):
    # The README's flow: recipes/pretrain.py --out A, then recipes/finetune.py --init A.
    tuned = tmp_path / "tuned"
    common = [
        "--task=classify",
        f"--train={files / 'train.jsonl'}",
        "--epochs=1",
        "--batch-size=8",
        "--seq-len=32",
    ]
    result = run_command(
        [FINETUNE, *_env_args(f"--init={files / 'run'}", *common, f"--out={tuned}")], cwd=files
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tuned / "model.keras").is_file() and json.loads((tuned / "labels.json").read_text()) == [
        "no",
        "yes",
    ]

    # A vocab.txt that is not the one the model was trained with (same size, one token changed) is refused.
    other = tmp_path / "other"
    shutil.copytree(files / "run", other)
    tokens = (other / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tokens[300] = "changed"
    (other / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    before = folder_digest(tmp_path)
    line = refusal(
        run_command([FINETUNE, *_env_args(f"--init={other}", *common, f"--out={tmp_path / 'x'}")], cwd=files)
    )
    assert f"{other / 'vocab.txt'} ({len(tokens)} tokens" in line and "is not the vocabulary" in line
    line = refusal(
        run_command([FINETUNE, *_env_args(f"--init={tuned}", *common, f"--out={tuned}")], cwd=files)
    )
    assert "--init and --out are the same folder" in line
    line = refusal(
        run_command(
            [FINETUNE, *_env_args(f"--init={tuned}", *common, "--lr=nan", f"--out={tmp_path / 'x'}")],
            cwd=files,
        )
    )
    assert "lr=nan" in line
    assert folder_digest(tmp_path) == before


def test_help_lists_debug():
    for script in (PRETRAIN, FINETUNE):
        result = run_command([script, "--help"], cwd=REPO)
        assert result.returncode == 0 and "--debug" in result.stdout
