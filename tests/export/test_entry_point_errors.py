"""The export entry points refuse bad input in one line, before they write anything.

`export/tflite.py` and `export/distill.py` run as users run them (subprocesses). Each refusal: exit code 2, one
`error: ...` line naming the problem, no traceback, and every file and folder involved byte-identical afterwards.
All of them come before a model loads, so the model folders here hold no loadable model: a check that moved after
the load would fail these tests with another message. (`python -m kbert.convert` is tested in
tests/interop/test_convert.py.)
"""

import json
import os

import pytest

from tests.harness import REPO, folder_digest, refusal, run_command

# Subprocesses that do not depend on the backend of the test process: one pass, and no TensorFlow re-run of it.
pytestmark = [pytest.mark.backend_independent, pytest.mark.every_backend]

TFLITE = os.path.join(REPO, "export", "tflite.py")
DISTILL = os.path.join(REPO, "export", "distill.py")


@pytest.fixture
def workspace(tmp_path):
    """A model folder (never loaded), input files good and bad, and a file where a folder is expected."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.keras").write_bytes(b"not reached")
    (tmp_path / "model" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    (tmp_path / "train.jsonl").write_text(json.dumps({"text": "a cat", "label": "animal"}) + "\n")
    (tmp_path / "eval.jsonl").write_text('{"text": "a cat", "label": "animal"}\n{"text": "a dog", label}\n')
    (tmp_path / "labels.json").write_text('{"0": "animal", "1": "plant"}')
    (tmp_path / "blocker").write_text("a file, not a folder")
    return tmp_path


TFLITE_REFUSALS = {
    "missing representative": (["--representative", "missing.txt"], ["missing.txt", "no such file"]),
    "malformed eval": (["--eval", "eval.jsonl"], ["eval.jsonl:2: not JSON"]),
    "labels not a list": (["--labels", "labels.json"], ["labels.json", "not a JSON list of class names"]),
    "out under a file": (["--out", "blocker/model.tflite"], ["blocker", "is a file, not a folder"]),
}


@pytest.mark.parametrize("case", list(TFLITE_REFUSALS))
def test_tflite_refuses_bad_input_before_writing(case, workspace):
    arguments, fragments = TFLITE_REFUSALS[case]
    command = [TFLITE, "--model", "model", "--out", "out/model.tflite", "--quantization", "int8", *arguments]
    before = folder_digest(workspace)
    message = refusal(run_command(command, workspace))
    assert all(fragment in message for fragment in fragments), message
    assert folder_digest(workspace) == before


def test_tflite_debug_shows_the_traceback(workspace):
    command = [TFLITE, "--model", "model", "--out", "out/model.tflite", "--representative", "missing.txt"]
    result = run_command([*command, "--debug"], workspace)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "FileNotFoundError" in result.stderr


def test_tflite_refuses_a_vocab_that_is_not_the_models(tmp_path):
    # A bare .keras file carries its vocabulary's record: --vocab with another vocabulary of the same size is
    # refused before anything is converted.
    import kbert
    from tests.harness import TINY, tiny_backbone

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
        f"w{i}" for i in range(TINY["vocabulary_size"] - 5)
    ]
    classifier = kbert.BertClassifier(tiny_backbone(), num_classes=2)
    classifier.record_vocabulary(kbert.WordPieceTokenizer(tokens))
    classifier.save(tmp_path / "bare.keras")
    tokens[20] = "other"
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    before = folder_digest(tmp_path)
    command = [TFLITE, "--model", "bare.keras", "--vocab", "vocab.txt", "--out", "out/model.tflite"]
    message = refusal(run_command(command, tmp_path))
    assert (
        "vocab.txt (97 tokens" in message and "is not the vocabulary bare.keras was trained with" in message
    )
    assert folder_digest(tmp_path) == before


DISTILL_REFUSALS = {
    "negative lr": (["--lr", "-1"], "lr=-1.0; it must be a finite number > 0"),
    "nan lr": (["--lr", "nan"], "lr=nan; it must be a finite number > 0"),
    "out is the teacher": (["--out", "model/"], "out='model/' is the teacher's folder"),
}


@pytest.mark.parametrize("case", list(DISTILL_REFUSALS))
def test_distill_refuses_bad_settings_before_writing(case, workspace):
    arguments, expected = DISTILL_REFUSALS[case]
    command = [DISTILL, "--backend", "tensorflow", "--teacher", "model", "--train", "train.jsonl"]
    command += ["--out", "run", *arguments]  # a later --out wins
    before = folder_digest(workspace)
    message = refusal(run_command(command, workspace))
    assert expected in message
    assert folder_digest(workspace) == before


def test_distillation_config_checks_every_value():
    from kbert.training.distillation import DistillationConfig

    for field, value in [
        ("lr", 0.0),
        ("lr", float("inf")),
        ("temperature", 0.0),
        ("alpha", 1.5),
        ("alpha", float("nan")),
        ("epochs", 0),
        ("batch_size", 0),
        ("seq_len", 0),
        ("hidden_loss", -1.0),
    ]:
        with pytest.raises(ValueError, match=f"{field}="):
            DistillationConfig(**{field: value})
    with pytest.raises(ValueError, match="general distillation only"):
        DistillationConfig(unlabeled="texts.txt")


def test_distillation_paths_are_checked_before_anything_is_read(tmp_path):
    from kbert.training.distillation import DistillationConfig, check_paths

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (tmp_path / "blocker").write_text("a file")
    for out, message in [
        (teacher / "nested" / "run", "teacher's folder"),
        (tmp_path / "blocker" / "run", "which is a file; give a folder path"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_paths(DistillationConfig(teacher=str(teacher), out=str(out)))
    with pytest.raises(ValueError, match="teacher=.* lies where this run writes"):
        check_paths(DistillationConfig(teacher=str(tmp_path / "run" / "student"), out=str(tmp_path / "run")))
    check_paths(DistillationConfig(teacher=str(teacher), out=str(tmp_path / "run")))
    assert sorted(os.listdir(tmp_path)) == ["blocker", "teacher"]


def test_export_input_files_are_refused_naming_file_and_line(tmp_path):
    from kbert.data.records import read_records
    from kbert.export import ExportError
    from kbert.export.evaluation import read_calibration_texts, read_labels

    (tmp_path / "latin1.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    (tmp_path / "list.jsonl").write_text('{"text": "ok"}\n["not", "an", "object"]\n')
    (tmp_path / "empty.jsonl").write_text("\n\n")
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    (tmp_path / "windows.txt").write_bytes(b"\xef\xbb\xbfone\r\ntwo\n")
    (tmp_path / "numbers.json").write_text("[0, 1]")
    (tmp_path / "broken.json").write_text('[\n"a",\n')
    for name, message in [
        ("latin1.jsonl", r"latin1.jsonl:2: not UTF-8"),
        ("list.jsonl", r"list.jsonl:2: expected a JSON object"),
        ("empty.jsonl", r"empty.jsonl holds no record"),
    ]:
        with pytest.raises(ValueError, match=message):
            read_records(str(tmp_path / name), require_label=False)
    for reader, name, message in [
        (read_calibration_texts, "blank.txt", r"blank.txt holds no text"),
        (read_labels, "numbers.json", r"numbers.json holds \[0, 1\], not a JSON list of class names"),
        (read_labels, "broken.json", r"broken.json:3: not JSON"),
    ]:
        with pytest.raises(ExportError, match=message):
            reader(str(tmp_path / name))
    with pytest.raises(FileNotFoundError):
        read_labels(str(tmp_path / "missing.json"))
    with pytest.raises(ExportError, match="non-empty and distinct"):
        read_labels("a,,b")
    assert read_labels("neg, pos") == ["neg", "pos"]
    assert read_calibration_texts(str(tmp_path / "windows.txt")) == ["one", "two"]
