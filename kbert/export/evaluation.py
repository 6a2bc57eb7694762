"""What an export is checked on: real eval and calibration text, hard cases for the tokenizer inside, the files a
user passes (`--labels`, `--representative`), the packed examples and Keras' outputs on them."""

import errno
import functools
import json
import os

import numpy as np

from kbert.data.records import decode_line
from kbert.export import graphs, mediapipe
from kbert.export.loading import ExportError
from kbert.text.packing import pack_texts

# Text a string-in model must tokenize like kbert's tokenizer: accents, CJK, emoji, control and zero-width
# characters, an over-long word, literal special tokens, empty and whitespace-only lines, a text past the length.
HARD_CASES = (
    "Héllo, naïve café résumé — Ünïcödé façade!",
    "北京欢迎你。東京は日本の首都です。",
    "Emoji 🤖🎉 and symbols ±∞ ≠ ≤ $100.00 (50%)",
    "tab\tseparated\r\nlines and\u200bzero\u200dwidth\u00adjoiners",
    "a" * 120 + " supercalifragilisticexpialidocious antidisestablishmentarianism",
    "don't stop-believing: e-mail me@example.com at 10:30am, ok?!",
    "ＦＵＬＬ-ｗｉｄｔｈ ﬁ ligature and Ⅻ roman",
    "",
    "   \t  ",
    "the [CLS] token and [SEP] literally, plus [MASK]",
    "control\x00chars\x07here\x1f",
    " ".join(["repetition"] * 200),
)


def default_texts(count, skip=0):
    """`count` real sentences from the built-in corpus (docstrings of the standard library), after `skip`."""
    sentences = _corpus_sentences()
    return list(sentences[skip : skip + count])


@functools.lru_cache(maxsize=1)
def _corpus_sentences():
    from kbert.data import builtin_corpus

    sentences = [sentence for document in builtin_corpus(max_files=80) for sentence in document]
    sentences = [sentence for sentence in dict.fromkeys(sentences) if len(sentence) > 20]
    order = np.random.default_rng(0).permutation(len(sentences))
    return tuple(sentences[index] for index in order)


def read_calibration_texts(path):
    """The lines of a UTF-8 text file (calibration text, one text a line), without their line ends.

    Raises:
        OSError: the file cannot be opened (the error names the path).
        ExportError: naming `path:line` for a line that is not UTF-8; and for a file with no text.
    """
    with open(path, "rb") as file:
        texts = [_decode(raw, path, number).rstrip("\r\n") for number, raw in enumerate(file, 1)]
    if not any(text.strip() for text in texts):
        raise ExportError(f"{path} holds no text; give calibration text, one text a line")
    return texts


def read_labels(value):
    """Class names from a JSON file holding a list of strings, or from names separated by commas ("neg,pos").

    Raises:
        FileNotFoundError: `value` names a `.json` file that does not exist.
        ExportError: the file is not a JSON list of strings; an empty or repeated name.
    """
    if os.path.isfile(value):
        with open(value, "rb") as file:
            text = _decode(file.read(), value)
        try:
            labels = json.loads(text)
        except json.JSONDecodeError as error:
            raise ExportError(
                f"{value}:{error.lineno}: not JSON ({error.msg}); expected a JSON list of class names such as "
                f'["negative", "positive"]'
            ) from None
        if not isinstance(labels, list) or not all(isinstance(name, str) for name in labels):
            raise ExportError(
                f"{value} holds {json.dumps(labels)[:60]}, not a JSON list of class names (strings) such as "
                f'["negative", "positive"]'
            )
    elif value.endswith(".json"):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), value)
    else:
        labels = [name.strip() for name in value.split(",")]
    if not labels or not all(labels) or len(set(labels)) != len(labels):
        raise ExportError(f"labels {labels}: class names must be non-empty and distinct")
    return labels


def _decode(raw, path, number=None):
    try:
        return decode_line(raw, path, number)
    except ValueError as error:
        raise ExportError(str(error)) from None


def label_ids(records, labels):
    values = [record.get("label") for record in records]
    if not values or any(value is None for value in values):
        return None
    if all(isinstance(value, int) for value in values):
        return np.asarray(values)
    if labels is None:
        raise ExportError("eval records have label names but the model has no labels.json; pass labels=[...]")
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({value for value in values if value not in index})
    if unknown:
        raise ExportError(f"eval labels {unknown[:5]} are not among the model's labels")
    return np.asarray([index[value] for value in values])


def token_examples(loaded, records, sequence_length):
    """Per-record int32 inputs [1, sequence_length] from the tokenizer (random ids without one)."""
    tokenizer = loaded.tokenizer
    if tokenizer is None:
        backbone = getattr(loaded.model, "backbone", loaded.model)
        rng = np.random.default_rng(0)
        examples = []
        for _ in records:
            length = int(rng.integers(4, sequence_length + 1))
            ids = rng.integers(1, backbone.config.vocabulary_size, (1, sequence_length)).astype("int32")
            mask = (np.arange(sequence_length) < length).astype("int32")[None]
            examples.append({"token_ids": ids * mask, "segment_ids": 0 * ids, "padding_mask": mask})
        return examples
    pairs = [record.get("text_pair") or "" for record in records]
    texts = [record["text"] for record in records]
    packed = pack_texts(tokenizer, texts, pairs if any(pairs) else None, sequence_length)
    return [{key: value[i : i + 1] for key, value in packed.items()} for i in range(len(records))]


def keras_outputs(model, examples, probabilities=False, batch_size=32):
    outputs = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = {key: np.concatenate([example[key] for example in chunk]) for key in chunk[0]}
        result = graphs.named_outputs(model, model(batch, training=False))
        result = {key: np.asarray(value) for key, value in result.items()}
        if probabilities:
            logits = result.pop("logits").astype("float64")
            exp = np.exp(logits - logits.max(-1, keepdims=True))
            result[mediapipe.PROBABILITY] = (exp / exp.sum(-1, keepdims=True)).astype("float32")
        outputs += [{key: value[i : i + 1] for key, value in result.items()} for i in range(len(chunk))]
    return outputs


def string_parity_inputs(loaded, records, sequence_length, with_pair):
    """String examples for the string-in model and the two-step reference (kbert tokenizer, packer, Keras)."""
    texts = [record["text"] for record in records] + list(HARD_CASES)
    all_records = list(records) + [{"text": text} for text in HARD_CASES]
    examples = []
    for record in all_records:
        example = {"text": np.array([record["text"]], dtype=object)}
        if with_pair:
            example["text_pair"] = np.array([record.get("text_pair") or ""], dtype=object)
        examples.append(example)
    packed = token_examples(loaded, all_records, sequence_length)
    reference = keras_outputs(loaded.model, packed)
    for output, example in zip(reference, packed, strict=True):
        output["token_ids"] = example["token_ids"]
    real_lengths = [int(example["padding_mask"].sum()) for example in packed]
    masks = [np.ones((1, length), "int32") for length in real_lengths]
    checks = {"texts": texts, "real_lengths": real_lengths}
    return examples, reference, masks, checks


def trim_to_real_tokens(candidate, reference, checks, records, tokenizer):
    """Cuts per-token outputs of both sides to the real tokens and lists the lines whose ids differ."""
    trimmed, differing = [], []
    for index, (cand, ref) in enumerate(zip(candidate, reference, strict=True)):
        length = checks["real_lengths"][index]
        for outputs in (cand, ref):
            for name, value in list(outputs.items()):
                value = np.asarray(value)
                if (
                    value.ndim >= 2
                    and name in ("token_ids", "start_logits", "end_logits")
                    or (value.ndim == 3)
                ):
                    outputs[name] = value[:, :length]
        cand_ids = np.asarray(cand["token_ids"])
        if cand_ids.shape != ref["token_ids"].shape or not np.array_equal(cand_ids, ref["token_ids"]):
            text = checks["texts"][index]
            differing.append({"line": index, "text": text[:200], "reason": why_ids_differ(text, tokenizer)})
            # Compare outputs only where the ids agree; the reason is listed instead.
            cand.update({name: ref[name] for name in cand})
        trimmed.append(cand)
    result = {
        "lines": len(candidate),
        "hard_cases": len(HARD_CASES),
        "ids_identical": len(candidate) - len(differing),
        "differing_lines": differing,
    }
    return trimmed, result


def why_ids_differ(text, tokenizer):
    literals = [token for token in tokenizer.special_tokens.values() if token in text]
    if literals and tokenizer.special_tokens_in_strings:
        return (
            f"literal special token(s) {literals}: kbert's tokenizer maps them to their ids with regex ops that "
            "LiteRT lacks; the string-in model tokenizes them as text"
        )
    if any(0xFDD0 <= ord(char) <= 0xFDEF for char in text):
        return "noncharacters U+FDD0..U+FDEF: the in-graph normaliser uses them as special-token sentinels"
    return "unexplained: please report it"


