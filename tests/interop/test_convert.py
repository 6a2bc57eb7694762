"""`python -m kbert.convert` between the three formats, on a small random Hugging Face classifier."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers

import kbert
from tests.harness import to_numpy

SMALL = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=40,
    num_labels=3,
)
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(94)]


def _convert(source, destination, to):
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "kbert.convert", str(source), str(destination), "--to", to],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# Three CLI subprocesses: run once (from_preset and the savers are tested in-process on every backend).
@pytest.mark.backend_independent
def test_convert_huggingface_to_kbert_to_huggingface(tmp_path):
    torch.manual_seed(0)
    reference = transformers.BertForSequenceClassification(transformers.BertConfig(**SMALL)).eval()
    reference.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n")

    assert "BertClassifier" in _convert(tmp_path / "hf", tmp_path / "kbert", "kbert")
    assert {"model.keras", "vocab.txt", "tokenizer_config.json"} <= set(os.listdir(tmp_path / "kbert"))
    classifier = kbert.BertClassifier.from_preset(tmp_path / "kbert")
    assert classifier.preprocessor is not None and classifier.num_classes == 3

    _convert(tmp_path / "kbert", tmp_path / "back", "huggingface")
    again = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "back").eval()
    ids = torch.tensor([[2, 7, 8, 9, 3]])
    with torch.no_grad():
        np.testing.assert_allclose(
            again(input_ids=ids).logits.numpy(), reference(input_ids=ids).logits.numpy(), atol=1e-5
        )

    _convert(tmp_path / "kbert", tmp_path / "kerashub", "kerashub")
    backbone = kbert.BertBackbone.from_preset(tmp_path / "kerashub")
    inputs = {
        "token_ids": ids.numpy().astype("int32"),
        "segment_ids": np.zeros((1, 5), "int32"),
        "padding_mask": np.ones((1, 5), "int32"),
    }
    np.testing.assert_allclose(
        to_numpy(backbone(inputs))["sequence_output"],
        to_numpy(classifier.backbone(inputs))["sequence_output"],
        atol=1e-6,
    )


@pytest.mark.backend_independent
def test_convert_refuses_to_write_over_its_source(tmp_path):
    """DST == SRC (by real path: another spelling, or the folder of a source .keras file) is refused before
    the model loads or anything is written."""
    from tests.harness import folder_digest, refusal, run_command

    source = tmp_path / "hf"
    source.mkdir()
    (source / "config.json").write_text('{"architectures": ["BertModel"]}')
    (source / "model.keras").write_bytes(b"never read")
    before = folder_digest(tmp_path)
    convert = ["-m", "kbert.convert", str(source), str(source / ".." / "hf"), "--to", "huggingface"]
    message = refusal(run_command(convert, tmp_path))
    assert "is the source" in message and "give another destination folder" in message
    assert folder_digest(tmp_path) == before

    from kbert.models.presets import check_destination

    with pytest.raises(ValueError, match="is the folder of the source"):
        check_destination(str(source / "model.keras"), str(source))
    check_destination(str(source), str(tmp_path / "elsewhere"))
    check_destination(str(source), str(source / "converted"))
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "model.safetensors").write_bytes(b"another model")
    with pytest.raises(ValueError, match=r"already holds a checkpoint \(model.safetensors\)"):
        check_destination(str(source), str(tmp_path / "occupied"))
