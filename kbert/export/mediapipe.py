"""MediaPipe Tasks (`TextClassifier`, `TextEmbedder`) and the TFLite Task Library: the file layout and TFLite Support
metadata they read, MediaPipe's in-runtime BERT tokenizer (to measure where it agrees with kbert's), and a check of
the file in the `mediapipe` runtime when that package is installed.

What the runtimes require (read from their sources; see docs/mediapipe.md):
- one subgraph; three int32 inputs [1, seq_len] found by the *metadata* names `ids`, `mask`, `segment_ids` (the Task
  Library falls back to the positions ids, mask, segment_ids, which is the order kbert writes);
- a `TFLITE_METADATA` entry in the model's metadata table: a `ModelMetadata` flatbuffer (file identifier "M001")
  whose `SubGraphMetadata` has an input process unit `BertTokenizerOptions` naming the vocabulary file;
- the associated files (vocabulary, label names) packed as an uncompressed zip archive appended to the flatbuffer;
- classifiers: one float32 [1, num_classes] output (MediaPipe applies no softmax, so kbert writes probabilities) named
  `probability` (the Task Library's `BertNLClassifier` looks that name up), the label names one a line in a
  `TENSOR_AXIS_LABELS` file; embedders: one float32 [1, dim] output.
The metadata tables are built here with `flatbuffers.Builder` from the published schema's table and field ids.
"""

import importlib.util
import io
import json
import os
import subprocess
import sys
import unicodedata
import zipfile

import flatbuffers
import numpy as np

from kbert.export.loading import ExportError
from kbert.text import normalization

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = (
    "1.1.0"  # input process units and BertTokenizerOptions (1.1.0), a VOCABULARY file (1.0.1)
)
# kbert input → metadata name, in the positional order the Task Library falls back to.
INPUT_NAMES = {"token_ids": "ids", "padding_mask": "mask", "segment_ids": "segment_ids"}
PROBABILITY = "probability"  # a classifier's softmax output (the name the Task Library looks up)
VOCABULARY_FILE = "vocab.txt"
LABELS_FILE = "labels.txt"
CLASSIFIER = "TextClassifier"  # the task that needs label names and reads `PROBABILITY`

# Schema facts (metadata_schema.fbs): AssociatedFileType, ProcessUnitOptions union member.
_VOCABULARY, _TENSOR_AXIS_LABELS = 5, 2
_BERT_TOKENIZER_OPTIONS = 4

# MediaPipe's tokenizer (mediapipe/tasks/cc/text/tokenizers/bert_tokenizer.h, bert_preprocessor_calculator.cc).
_MAX_BYTES_PER_WORD = 100
_MAX_CHARS_PER_PIECE = 100
_SPACE = frozenset("\t\n\f\r ")  # RE2's \s
_MEDIAPIPE_SPECIALS = {"cls": "[CLS]", "sep": "[SEP]", "unk": "[UNK]"}


def unservable_reason(model, tokenizer, with_tokenizer, with_pair, labels, dynamic_length=False):
    """Why MediaPipe Tasks cannot serve this export of `model` (None when it can; see `KbertModel.mediapipe_task`)."""
    if model.mediapipe_task is None:
        return (
            f"a {type(model).__name__} has no MediaPipe Tasks runtime (TextClassifier serves single-text classifiers, "
            "TextEmbedder embedders)"
        )
    if with_tokenizer:
        return (
            "the tokenizer inside the graph needs tensorflow-text's custom ops, which MediaPipe does not link"
        )
    if with_pair:
        return "MediaPipe's text tasks take one text, not a pair"
    if dynamic_length:
        return (
            "MediaPipe's inference calculator does not resize the inputs of a dynamic-length file, which fails on "
            "its first text ('TfLiteTensor and Tensor sizes do not match', "
            "mediapipe/calculators/tensor/inference_calculator_utils.cc); export a fixed length"
        )
    if tokenizer is None:
        return (
            "MediaPipe tokenizes with the model's vocabulary, and this model has none (pass vocabulary=...)"
        )
    names = {role: tokenizer.special_tokens[role] for role in _MEDIAPIPE_SPECIALS}
    if names != _MEDIAPIPE_SPECIALS:
        return f"MediaPipe's tokenizer uses {_MEDIAPIPE_SPECIALS}; this vocabulary names them {names}"
    if model.mediapipe_task == CLASSIFIER and not labels:
        return "MediaPipe's TextClassifier needs the class names (pass labels=[...])"
    return None


# -- the flatbuffer ----------------------------------------------------------------------------------------------


def _table(builder, fields):
    """A table of `fields` [(slot, kind, value)]: kind "offset" (a created string/table/vector) or "byte"."""
    builder.StartObject(max(slot for slot, _, _ in fields) + 1)
    for slot, kind, value in fields:
        if kind == "offset":
            builder.PrependUOffsetTRelativeSlot(slot, value, 0)
        else:
            builder.PrependUint8Slot(slot, value, 0)
    return builder.EndObject()


def _vector(builder, offsets):
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _associated_file(builder, name, description, file_type):
    # AssociatedFile: name 0, description 1, type 2.
    name, description = builder.CreateString(name), builder.CreateString(description)
    return _table(builder, [(0, "offset", name), (1, "offset", description), (2, "byte", file_type)])


def _tensor(builder, name, description, associated_files=()):
    # TensorMetadata: name 0, description 1, associated_files 6.
    files = _vector(builder, list(associated_files)) if associated_files else None
    name, description = builder.CreateString(name), builder.CreateString(description)
    fields = [(0, "offset", name), (1, "offset", description)]
    return _table(builder, fields + ([(6, "offset", files)] if files else []))


def model_metadata(name, description, output_name, output_description, labels=None):
    """The `ModelMetadata` flatbuffer (bytes, identifier "M001") of a MediaPipe-ready token-id model.

    Its inputs are described in the order `INPUT_NAMES`, which must be the subgraph's input order.
    """
    builder = flatbuffers.Builder(1024)
    vocabulary = _associated_file(builder, VOCABULARY_FILE, "WordPiece vocabulary", _VOCABULARY)
    options = _table(
        builder, [(0, "offset", _vector(builder, [vocabulary]))]
    )  # BertTokenizerOptions.vocab_file
    tokenizer = _table(builder, [(0, "byte", _BERT_TOKENIZER_OPTIONS), (1, "offset", options)])  # ProcessUnit
    inputs = [
        _tensor(builder, "ids", "WordPiece ids: [CLS] text [SEP], then 0"),
        _tensor(builder, "mask", "1 on real tokens, 0 on padding"),
        _tensor(builder, "segment_ids", "0 for a single text"),
    ]
    label_files = (
        [_associated_file(builder, LABELS_FILE, "class names", _TENSOR_AXIS_LABELS)] if labels else []
    )
    output = _tensor(builder, output_name, output_description, label_files)
    # SubGraphMetadata: name 0, description 1, input_tensor_metadata 2, output_tensor_metadata 3,
    # input_process_units 5.
    subgraph = _table(
        builder,
        [
            (0, "offset", builder.CreateString(name)),
            (2, "offset", _vector(builder, inputs)),
            (3, "offset", _vector(builder, [output])),
            (5, "offset", _vector(builder, [tokenizer])),
        ],
    )
    # ModelMetadata: name 0, description 1, subgraph_metadata 3, author 4, min_parser_version 7.
    root = _table(
        builder,
        [
            (0, "offset", builder.CreateString(name)),
            (1, "offset", builder.CreateString(description)),
            (3, "offset", _vector(builder, [subgraph])),
            (4, "offset", builder.CreateString("kbert")),
            (7, "offset", builder.CreateString(MIN_PARSER_VERSION)),
        ],
    )
    builder.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output())


def order_inputs(flatbuffer):
    """The flatbuffer with its subgraph inputs in the order of `INPUT_NAMES` (ids, mask, segment_ids).

    The signature keeps its names, so a signature runner is unaffected.
    """
    from kbert.export.converter import schema

    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    if len(model.subgraphs) != 1 or len(model.signatureDefs or []) != 1:
        raise ExportError("MediaPipe needs a model with one subgraph and one signature")
    by_name = {_text(entry.name): entry.tensorIndex for entry in model.signatureDefs[0].inputs}
    if set(by_name) != set(INPUT_NAMES):
        raise ExportError(f"MediaPipe needs the inputs {sorted(INPUT_NAMES)}; the file has {sorted(by_name)}")
    model.subgraphs[0].inputs = np.asarray([by_name[name] for name in INPUT_NAMES], np.int32)
    model.signatureDefs[0].inputs.sort(key=lambda entry: list(INPUT_NAMES).index(_text(entry.name)))
    builder = flatbuffers.Builder(len(flatbuffer) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def pack_files(flatbuffer, files):
    """`flatbuffer` followed by an uncompressed zip archive of `files` ({name: bytes}), as TFLite Support packs
    associated files (MediaPipe reads them from the archive; LiteRT ignores the bytes past the flatbuffer)."""
    stream = io.BytesIO()
    stream.write(flatbuffer)
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return stream.getvalue()


def associated_files(tokenizer, labels):
    files = {VOCABULARY_FILE: ("\n".join(tokenizer.vocabulary) + "\n").encode("utf-8")}
    if labels:
        files[LABELS_FILE] = ("\n".join(labels) + "\n").encode("utf-8")
    return files


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


# -- MediaPipe's tokenizer ---------------------------------------------------------------------------------------


def _wordpiece(word, vocabulary):
    """tensorflow-text's WordpieceTokenize as MediaPipe calls it: a word over 100 bytes, or one that cannot be
    split into vocabulary pieces, is one [UNK]."""
    if len(word.encode("utf-8")) > _MAX_BYTES_PER_WORD:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end = min(len(word), start + _MAX_CHARS_PER_PIECE)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocabulary:
                break
            end -= 1
        if end == start:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def mediapipe_token_ids(texts, vocabulary, sequence_length):
    """The ids MediaPipe's `BertPreprocessorCalculator` feeds the model: int32 [len(texts), sequence_length].

    It lower-cases ASCII letters only, strips no accents, removes no control characters, splits on ASCII white space,
    punctuation and CJK characters, makes a word of over 100 bytes one [UNK], and pads with id 0.
    """
    index = {token: i for i, token in enumerate(vocabulary)}  # a repeated token: its last line, as MediaPipe
    ids = np.zeros((len(texts), sequence_length), np.int32)
    for row, text in enumerate(texts):
        text = text.split("\x00", 1)[0]  # the runtime's text ends at a NUL character (seen in its Python API)
        lowered = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
        words = normalization.split_words(lowered, _SPACE)  # as BERT's, but only on RE2's \s
        pieces = [piece for word in words for piece in _wordpiece(word, index)]
        tokens = ["[CLS]", *pieces[: sequence_length - 2], "[SEP]"]
        ids[row, : len(tokens)] = [index.get(token, 0) for token in tokens]
    return ids


def _divergence_reasons(text, tokenizer):
    """What in `text` makes MediaPipe's tokenizer differ from kbert's (short phrases)."""
    reasons = []
    if any(char.isupper() and not ("A" <= char <= "Z") for char in text) and tokenizer.lowercase:
        reasons.append("non-ASCII capitals (MediaPipe lower-cases ASCII only)")
    if not tokenizer.lowercase and any("A" <= char <= "Z" for char in text):
        reasons.append("ASCII capitals (MediaPipe lower-cases them; the model is cased)")
    strips = tokenizer.strip_accents if tokenizer.strip_accents is not None else tokenizer.lowercase
    if strips and any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", text)):
        reasons.append("accents (MediaPipe strips none)")
    if any(unicodedata.category(c) in ("Cc", "Cf") and c not in "\t\n\r" for c in text):
        reasons.append("control or format characters (MediaPipe keeps them)")
    if any(unicodedata.category(c) == "Zs" and c != " " for c in text):
        reasons.append("non-ASCII spaces (MediaPipe does not split on them)")
    if (
        any(token in text for token in tokenizer.special_tokens.values())
        and tokenizer.special_tokens_in_strings
    ):
        reasons.append("a literal special token (MediaPipe tokenizes it as text)")
    if any(len(word.encode("utf-8")) > _MAX_BYTES_PER_WORD >= len(word) for word in text.split()):
        reasons.append("a word of over 100 bytes (MediaPipe's limit) within kbert's character limit")
    return reasons or ["other"]


def tokenizer_agreement(texts, tokenizer, kbert_ids, sequence_length):
    """On how many `texts` MediaPipe's ids equal kbert's (`kbert_ids`, int [n, sequence_length]), why the others
    differ, and warnings where the tokenizer's settings make them diverge.

    Returns:
        `({"texts", "identical", "share", "differing": [{"text", "reasons"}...]}, agree)`: `agree` is a bool per text.
    """
    theirs = mediapipe_token_ids(texts, tokenizer.vocabulary, sequence_length)
    agree = np.all(theirs == np.asarray(kbert_ids), axis=1)
    differing = [
        {"text": text[:200], "reasons": _divergence_reasons(text, tokenizer)}
        for text, same in zip(texts, agree, strict=True)
        if not same
    ]
    warnings = []
    if not tokenizer.lowercase:
        warnings.append(
            "the model is cased and MediaPipe lower-cases ASCII letters before tokenizing: its ids differ "
            "wherever a text has a capital"
        )
    if not agree.all():
        causes = sorted({reason for item in differing for reason in item["reasons"]})
        warnings.append(
            f"MediaPipe's tokenizer gives other ids than kbert's on {len(differing)} of {len(texts)} texts "
            f"({'; '.join(causes)}); the app's results differ from the model's there"
        )
    report = {
        "texts": len(texts),
        "identical": int(agree.sum()),
        "share": float(agree.mean()) if len(texts) else 1.0,
        "differing": differing[:20],
        "warnings": warnings,
    }
    return report, agree


# -- the runtime -------------------------------------------------------------------------------------------------


RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mediapipe_runner.py")


def runtime_available():
    """Whether the `mediapipe` package is installed (without importing it here)."""
    return importlib.util.find_spec("mediapipe") is not None


def run_file(path, texts, task):
    """Runs the `.tflite` at `path` in MediaPipe's `TextClassifier` ("TextClassifier") or `TextEmbedder` on raw
    `texts`, in a process of its own (`mediapipe_runner.py`): `(outputs, label_names, seconds per text)`. Outputs:
    float [len(texts), N], the probabilities by class index or the embeddings; `label_names` the classifier's
    category names by index (None for an embedder).

    Raises:
        ExportError: MediaPipe rejected the file or failed on a text (its message is quoted).
    """
    environment = dict(os.environ, GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, RUNNER, os.fspath(path), task],
        input=json.dumps(list(texts)), capture_output=True, text=True, env=environment, timeout=1800,
    )  # fmt: skip
    if result.returncode:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("ValueError:", "RuntimeError:"))]
        message = (errors or lines or [f"exit code {result.returncode}"])[0 if errors else -1]
        raise ExportError(f"MediaPipe {task} failed on the file: {message}")
    found = json.loads(result.stdout)
    return np.asarray(found["outputs"], np.float32), found["labels"], found["seconds"]


def runtime_report(path, texts, task, reference, agree, labels=None):
    """The report's `mediapipe.runtime` section: the file run in MediaPipe on raw `texts` against the Keras model's
    `reference` outputs (probabilities or embeddings, [len(texts), N]), overall and on the texts where the two
    tokenizers agree (`agree`). None when the `mediapipe` package is not installed.
    """
    if not runtime_available():
        return None
    outputs, names, seconds = run_file(path, texts, task)
    reference = np.asarray(reference, np.float32)
    agree = np.asarray(agree, bool)

    def compare(rows):
        ours, theirs = outputs[rows], reference[rows]
        if not len(ours):
            return {}
        if task == "TextClassifier":
            return {
                "top1_agreement": float(np.mean(ours.argmax(-1) == theirs.argmax(-1))),
                "max_abs_diff_probability": float(np.max(np.abs(ours - theirs))),
            }
        cosine = np.sum(ours * theirs, -1) / (
            np.linalg.norm(ours, axis=-1) * np.linalg.norm(theirs, axis=-1) + 1e-12
        )
        return {"mean_cosine": float(cosine.mean()), "min_cosine": float(cosine.min())}

    report = {
        "task": task,
        "texts": len(texts),
        "all_texts": compare(np.ones(len(texts), bool)),
        "where_tokenizers_agree": compare(agree),
        "median_latency_ms": 1000.0 * seconds,
    }
    if task == "TextClassifier":
        report["label_names"] = names
        report["label_names_match"] = names == list(labels or [])
    return report
