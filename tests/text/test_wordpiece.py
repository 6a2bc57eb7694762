"""WordPieceTokenizer against the reference (Hugging Face's pure-Python BERT tokenizer) on the MiniLM vocabulary."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from kbert.data import builtin_corpus
from kbert.text import WordPieceTokenizer

pytestmark = pytest.mark.backend_independent

HARD_CASES = [
    "Café naïve résumé Ångström Œuvre",  # accents
    "e\u0301 a\u0308 n\u0303o combining marks",
    "ﬁne ﬂow ﬃ ligatures ＦＵＬＬ　ｗｉｄｔｈ １２３",
    "你好世界, 日本語のテキスト, 한국어 텍스트",
    "مرحبا بالعالم שלום עולם",
    "emoji 😀 👍🏽 👨‍👩‍👧 🏴󠁧󠁢󠁥󠁮󠁧󠁿 🫠",
    "zero\u200bwidth\u200cjoin\u200dx \ufeffbom soft\u00adhyphen",
    "control \x07bell \x1b[31mansi\x1b[0m tab\there\nnewline\r\n",
    "nul\x00byte and \ufffd replacement",
    "private \ue000\uf8ff use",
    "literal [CLS] and [SEP]x[MASK] but [cls] stays text, [PAD][UNK]",
    "a" * 150 + " then " + "b" * 100 + " " + "ç" * 101,
    "",
    "   \t\n  ",
    "line\u2028separator\u2029paragraph nbsp\u00a0here",
    "$5 <tag> a|b ~x^ `code` 100% #hash @at {brace}",
    "İstanbul ǅemal ß ﬆ Ω K Å",
    "ไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทยไทย",
    "\ufdd0 noncharacter",
]
# Lines where kbert differs from the reference, and why (see kbert/text/normalization.py).
KNOWN_DIFFERENCES = {
    # str.lower() turns a word-final capital sigma into "ς"; a per-codepoint table always gives "σ".
    "ΟΔΟΣ ΣΟΦΟΣ.": "final sigma",
    # Supplementary private use (U+F0000..) is outside the tabulated planes: kept ([UNK]), the reference drops it.
    "icon \U000f0001 here": "supplementary private use",
}


def reference_ids(reference, text):
    return reference.encode(text, add_special_tokens=False)


def test_matches_reference_on_stdlib_docstrings(tokenizer, reference):
    lines = [sentence for document in builtin_corpus() for sentence in document][:4000]
    assert len(lines) >= 3000
    ours = tokenizer(lines).to_list()
    differing = [line for line, ids in zip(lines, ours, strict=True) if ids != reference_ids(reference, line)]
    # Measured: 0 of 4,000 lines differ.
    assert len(differing) <= len(lines) // 1000, differing[:5]


def test_matches_reference_on_hard_cases(tokenizer, reference):
    ours = tokenizer(HARD_CASES).to_list()
    for line, ids in zip(HARD_CASES, ours, strict=True):
        assert ids == reference_ids(reference, line), repr(line)


def test_a_big_call_with_exact_path_rows_scattered_through_it_matches_the_reference(tokenizer, reference):
    """One call over many lines, a few of which (an [UNK], an over-long word, a literal special token) take the
    exact path: those rows are spliced back in place, the others untouched."""
    lines = [sentence for document in builtin_corpus() for sentence in document][:3000]
    for position, hard in zip((0, 1, 1500, 2998, 2999), HARD_CASES[9:14], strict=True):
        lines[position] = hard
    ours = tokenizer(lines).to_list()
    assert ours == [reference_ids(reference, line) for line in lines]


def test_known_differences_are_the_documented_ones(tokenizer, reference):
    for line, reason in KNOWN_DIFFERENCES.items():
        ours = tokenizer(line).numpy().tolist()
        assert ours != reference_ids(reference, line), reason
        assert tokenizer.token_to_id("σ") in ours if reason == "final sigma" else tokenizer.unk_id in ours


def test_random_unicode_matches_reference(tokenizer, reference):
    rng = np.random.default_rng(0)
    codepoints = np.array([cp for cp in range(0x30000) if not 0xD800 <= cp <= 0xDFFF and cp != 0x3A3])  # no Σ
    alphabet = list("abc xyz.,é")
    lines = []
    for _ in range(1000):
        chars = [
            chr(int(codepoints[rng.integers(len(codepoints))]))
            if rng.random() < 0.3
            else str(rng.choice(alphabet))
            for _ in range(int(rng.integers(1, 25)))
        ]
        lines.append("".join(chars))
    ours = tokenizer(lines).to_list()
    assert [
        line for line, ids in zip(lines, ours, strict=True) if ids != reference_ids(reference, line)
    ] == []


def test_invalid_utf8_is_dropped_like_the_reference(tokenizer, reference):
    raw = [
        b"caf\xc3\xa9 \xff\xfeabc d\xe2\x82e \xf0\x9f\x98 x",
        b"\xed\xa0\x80z",
        b"\xc0\xafq",
        b"ab\xe2\x82",
        b"\x80",
    ]
    ours = tokenizer(tf.constant(raw)).to_list()
    assert ours == [reference_ids(reference, text.decode("utf-8", errors="replace")) for text in raw]


def test_huge_line_and_scalar_input(tokenizer):
    ids = tokenizer("word " * 200_000)  # a 1 MB line
    assert ids.shape == (200_000,) and ids.dtype == tf.int32
    assert tokenizer("").shape == (0,)


def test_offsets_match_hugging_face(tokenizer, minilm_dir):
    from transformers import BertTokenizer

    fast = BertTokenizer.from_pretrained(minilm_dir)
    lines = [
        "Hello, world! naïve café",
        "a[SEP]b [MASK]x",
        "İstanbul ﬁne 你好",
        "x" * 150 + " ok",
        "zero\u200bwidth and e\u0301",
        "The `repr()` of 3.14 is '3.14'.",
    ]
    ids, starts, ends = tokenizer.tokenize_with_offsets(lines, unit="char")
    for line, row_ids, row_starts, row_ends in zip(
        lines, ids.to_list(), starts.to_list(), ends.to_list(), strict=True
    ):
        encoded = fast(line, add_special_tokens=False, return_offsets_mapping=True)
        assert row_ids == encoded["input_ids"]
        assert list(zip(row_starts, row_ends, strict=True)) == [
            tuple(span) for span in encoded["offset_mapping"]
        ], line


def test_byte_offsets_slice_the_token_text(tokenizer):
    text = "Naïve café’s [SEP] ﬁne"
    ids, starts, ends = tokenizer.tokenize_with_offsets(text)
    pieces = [text.encode()[s:e].decode() for s, e in zip(starts.numpy(), ends.numpy(), strict=True)]
    assert pieces == ["Naïve", "café", "’", "s", "[SEP]", "ﬁ", "ne"]
    assert tokenizer.id_to_token(ids[4]) == "[SEP]"


def test_detokenize_matches_reference_decode(tokenizer, reference):
    lines = ["Hello, world! It's a naïve test.", "the ##ing of un-affable words", "a [SEP] b"]
    ids = tokenizer(lines)
    assert [t.decode() for t in tokenizer.detokenize(ids).numpy()] == [
        reference.decode(r) for r in ids.to_list()
    ]
    single = tokenizer.detokenize(ids[0])
    assert single.numpy().decode() == "hello, world! it's a naive test."
    packed = [tokenizer.cls_id, *ids[0].numpy(), tokenizer.sep_id, tokenizer.pad_id]
    assert tokenizer.detokenize(packed, skip_special_tokens=True).numpy() == single.numpy()


def test_runs_inside_tf_data(tokenizer, reference):
    # Traced (not eager) code: batches that mix plain rows with rows only the exact path gets right.
    lines = ["Hello world!", *HARD_CASES, "plain text again"]
    dataset = tf.data.Dataset.from_tensor_slices(lines).batch(4).map(tokenizer)
    rows = [row for batch in dataset for row in batch.to_list()]
    assert rows == [reference_ids(reference, line) for line in lines]


def test_litert_graph_equals_tokenize_without_literal_special_tokens(tokenizer):
    lines = [line for line in HARD_CASES if "[" not in line and "\ufdd0" not in line]
    assert tokenizer.tokenize_litert_graph(tf.constant(lines)).to_list() == tokenizer(lines).to_list()


def test_litert_flat_ids_equal_the_litert_graph(tokenizer):
    # The HARD_CASES' long words (150 "a", 101 "ç") exercise the [UNK] rule on flat ids.
    lines = tf.constant([line for line in HARD_CASES if "[" not in line and "\ufdd0" not in line])
    flat_ids, row_ids = tokenizer.tokenize_litert_flat(lines)
    assert flat_ids.dtype == row_ids.dtype == tf.int32
    ragged = tf.RaggedTensor.from_value_rowids(flat_ids, row_ids, nrows=tf.shape(lines, tf.int32)[0])
    assert ragged.to_list() == tokenizer.tokenize_litert_graph(lines).to_list()
    assert tokenizer.unk_id in flat_ids.numpy()


def test_from_preset_reads_config_and_save_round_trips(minilm_dir, tmp_path):
    uncased = WordPieceTokenizer.from_preset(minilm_dir)
    assert uncased.lowercase and uncased.special_tokens["mask"] == "[MASK]"
    uncased.save_to_preset(tmp_path)
    with open(tmp_path / "tokenizer_config.json") as file:
        assert json.load(file)["lowercase"] is True
    cased = WordPieceTokenizer.from_preset(tmp_path, lowercase=False)
    assert not cased.lowercase and cased.vocabulary == uncased.vocabulary
    assert cased("Hello").numpy().tolist() == [uncased.unk_id]  # the uncased vocab has no "Hello"


def test_cased_mode_matches_reference(minilm_dir):
    from transformers import BertTokenizerLegacy

    reference = BertTokenizerLegacy(os.path.join(minilm_dir, "vocab.txt"), do_lower_case=False)
    cased = WordPieceTokenizer(os.path.join(minilm_dir, "vocab.txt"), lowercase=False)
    lines = ["hello world, naïve café", "ﬁne ＡＢＣ abc", "İstanbul x", "[SEP] zero\u200bwidth"]
    assert cased(lines).to_list() == [reference.encode(line, add_special_tokens=False) for line in lines]


@pytest.mark.parametrize("missing", ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "[PAD]"])
def test_vocabulary_without_a_special_token_names_it(missing):
    vocabulary = [
        token for token in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##b"] if token != missing
    ]
    with pytest.raises(ValueError, match=r"lacks the special token.*" + missing.replace("[", r"\[")):
        WordPieceTokenizer(vocabulary)


def test_bad_arguments_raise_clear_errors(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="unit="):
        tokenizer.tokenize_with_offsets("x", unit="word")
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        WordPieceTokenizer.from_preset(tmp_path)
    with pytest.raises(ValueError, match="shape"):
        tokenizer(tf.constant([["a"]]))
