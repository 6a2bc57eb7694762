"""BERT text normalisation as a per-codepoint table that runs inside tensorflow-text's `FastBertNormalizer`.

The reference BERT tokenizer (google-research/bert `tokenization.py`, Hugging Face's `BertTokenizerLegacy`) cleans
and normalises text with Python's `unicodedata` and `str.lower`. tensorflow-text's built-in `FastBertNormalizer`
model uses ICU's NFKC_Casefold instead, which differs on ligatures, full-width forms, private-use and format
characters. But the op itself is only a lookup: a darts-clone trie from each codepoint's UTF-8 bytes to a
replacement string. So this module computes the reference's rules for every codepoint with the *same* Python
functions the reference uses, packs them into that trie, and hands the bytes to `FastBertNormalizer(model_buffer=)`.
The op is registered for TFLite/LiteRT, so a string-in LiteRT model normalises exactly like the tf.data path.

Per codepoint `c` (the order of the reference):
  1. `c` is NUL, U+FFFD or a control character (category C*, except tab/newline/CR) -> removed.
  2. `c` is whitespace (space, tab, newline, CR, Zs, or anything `str.split` splits on) -> " ".
  3. otherwise `strip_accents(NFC(c).lower())` (lowercase mode) or `NFC(c)` (cased mode).
Punctuation and CJK splitting are left to `FastWordpieceTokenizer`, whose definitions are the reference's
(ASCII symbols + Unicode P*, the same CJK blocks); splitting there keeps the byte offsets exact. Characters that
the reference calls punctuation but ICU does not (newer Unicode) are surrounded with spaces here instead.

Where a per-codepoint table cannot follow the reference (listed so users can judge; none occur in ordinary text):
  * Greek capital sigma: `str.lower` gives final `ς` at the end of a word, the table always gives `σ`.
  * Cased mode (`lowercase=False`): the reference composes decomposed sequences with NFC (`e` + U+0301 -> `é`);
    the table maps codepoint by codepoint, so decomposed input stays decomposed.
  * Codepoints U+34000..U+DFFFF and U+E1000..U+10FFFF (unassigned planes and the supplementary private-use
    planes) are left unchanged (normally `[UNK]`), where the reference deletes them; tabulating them would grow
    the table from ~1 MB to ~9 MB.
Invalid UTF-8 is handled like the reference run on `bytes.decode(errors="replace")`: U+FFFD is deleted, so every
invalid byte sequence (as ICU's `U8_FWD_1` delimits it) is mapped to the empty string.
"""

import functools
import unicodedata

import flatbuffers
import numpy as np

# Noncharacters (never used in interchange) that the tokenizer substitutes for literal special tokens such as
# "[CLS]" before normalising; the table surrounds them with spaces so FastWordpieceTokenizer sees whole words.
SENTINEL_BASE = 0xFDD0
MAX_SENTINELS = 32

# Codepoint ranges tabulated in full; outside them only well-formed assigned characters change (see docstring).
_TABULATED_RANGES = ((0x0000, 0x33FFF), (0xE0000, 0xE0FFF))

_IS_DIFFERENT = 0x40000000  # bit 30 of a value: "normalised string differs from the codepoint".
_LENGTH_BITS = 6  # low bits of a value: UTF-8 length of the normalised string (at most 63).


def is_control(char):
    """Returns True for the characters the reference deletes as control characters."""
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def is_whitespace(char):
    """Returns True for the characters the reference turns into a word break."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs" or char.isspace()


def is_punctuation(char):
    """The reference's punctuation: ASCII non-alphanumerics and Unicode category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_cjk(cp):
    """The reference's CJK ideograph blocks (each such character is a word of its own)."""
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def split_words(text, spaces=" "):
    """The words of `text` as BERT's basic tokenizer splits them: runs of the characters in `spaces` separate words,
    and each punctuation or CJK character is a word of its own."""
    words, current = [], []
    for char in text:
        kept = char not in spaces
        if not kept or is_punctuation(char) or is_cjk(ord(char)):
            if current:
                words.append("".join(current))
                current = []
            if kept:
                words.append(char)
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


def normalize_char(char, lowercase=True, strip_accents=None):
    """Maps one character the way the reference's cleaning, NFC, lower-casing and accent stripping do.

    Args:
        char: a one-character string.
        lowercase: lower-case (the uncased BERT models).
        strip_accents: remove combining marks after NFD; `None` follows `lowercase`, like the reference.

    Returns:
        The replacement string ("" deletes the character, " " breaks the word).
    """
    cp = ord(char)
    if cp == 0 or cp == 0xFFFD or is_control(char):
        return ""
    if is_whitespace(char):
        return " "
    text = unicodedata.normalize("NFC", char)
    if lowercase:
        text = text.lower()
    if strip_accents or (strip_accents is None and lowercase):
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return text


def _invalid_utf8_chunks():
    """Every byte string that ICU's U8_FWD_1 returns as one step over *invalid* UTF-8."""
    trail = range(0x80, 0xC0)
    chunks = [bytes([b]) for b in range(0x80, 0x100)]  # lone trail bytes, invalid leads, leads at a break
    for lead in range(0xE0, 0xF0):  # a 3-byte lead and a valid first trail, then no second trail
        low, high = (0xA0, 0xBF) if lead == 0xE0 else (0x80, 0x9F) if lead == 0xED else (0x80, 0xBF)
        chunks += [bytes([lead, t1]) for t1 in range(low, high + 1)]
    for lead in range(0xF0, 0xF5):  # a 4-byte lead cut after one or two trails
        low, high = (0x90, 0xBF) if lead == 0xF0 else (0x80, 0x8F) if lead == 0xF4 else (0x80, 0xBF)
        for t1 in range(low, high + 1):
            chunks.append(bytes([lead, t1]))
            chunks += [bytes([lead, t1, t2]) for t2 in trail]
    return chunks


def build_char_table(lowercase=True, strip_accents=None, num_sentinels=0):
    """Returns `{utf8_key: replacement_bytes}` for every key whose normalised form differs from itself.

    Args:
        lowercase: see `normalize_char`.
        strip_accents: see `normalize_char`.
        num_sentinels: how many special-token sentinels (from U+FDD0) to keep unchanged.
    """
    table = {}
    sentinels = range(SENTINEL_BASE, SENTINEL_BASE + num_sentinels)
    for low, high in _TABULATED_RANGES:
        for cp in range(low, high + 1):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            char = chr(cp)
            text = f" {char} " if cp in sentinels else normalize_char(char, lowercase, strip_accents)
            # ICU may not know punctuation newer than its Unicode version; split those here.
            if len(text) == 1 and text != " " and is_punctuation(text) and cp > 0x2E00 and not is_cjk(cp):
                text = f" {text} "
            if text != char:
                table[char.encode("utf-8")] = text.encode("utf-8")
    for chunk in _invalid_utf8_chunks():
        table[chunk] = b""
    return table


class _Node:
    __slots__ = ("children", "value")

    def __init__(self):
        self.children = {}
        self.value = None


def build_darts_trie(entries):
    """Builds a darts-clone double array (the format tensorflow-text reads) from `{key_bytes: value}`.

    Each node's children sit at `base ^ label` and its value unit at `base`; every base is used by one node
    only, so a label check can never accept a foreign child.

    Args:
        entries: mapping from non-empty byte strings (without NUL bytes) to ints in [0, 2**31).

    Returns:
        A uint32 numpy array.
    """
    double_array = _DoubleArray()
    queue = [(_key_tree(entries), 0)]
    for node, position in queue:  # breadth-first; the list grows while iterating
        queue += double_array.place(node, position)
    return double_array.trimmed()


def _key_tree(entries):
    """The keys of `entries` as a tree of `_Node`s, one edge a byte, each key's value on its last node."""
    root = _Node()
    for key, value in entries.items():
        node = root
        for byte in key:
            node = node.children.setdefault(byte, _Node())
        node.value = value
    return root


class _DoubleArray:
    """A darts-clone double array being filled: its units, which slots are taken, and where free ones begin."""

    _WINDOW = 1 << 12

    def __init__(self):
        self.units = np.zeros(1 << 16, np.uint32)
        self.used = np.zeros(1 << 16, bool)
        self.used[0] = True
        self.is_base = np.zeros(1 << 16, bool)
        self.is_base[0] = True
        self.search_from = 1
        self.crowded_below = 0

    def _grow(self):
        """Doubles the arrays (the new slots free)."""
        self.units, self.used, self.is_base = (
            np.concatenate([array, np.zeros_like(array)]) for array in (self.units, self.used, self.is_base)
        )

    def place(self, node, position):
        """Writes the node at `position` and its value unit; returns `(child, child_position)` for its children."""
        labels = sorted(node.children)
        slots = np.array(labels + [0] if node.value is not None else labels, dtype=np.int64)
        base = self._find_base(slots)
        self.is_base[base] = True
        self.used[base ^ slots] = True
        offset = position ^ base
        if offset >= 1 << 21:
            raise ValueError(f"darts trie offset {offset} too large; the table has too many keys")
        self.units[position] |= np.uint32((offset << 10) | (0x100 if node.value is not None else 0))
        if node.value is not None:
            self.units[base] = np.uint32(node.value | 0x80000000)
        children = []
        for label in labels:
            child = base ^ label
            self.units[child] |= np.uint32(label)
            children.append((node.children[label], child))
        # Most nodes are leaves needing one slot: start at the first free one.
        while self.used[self.search_from] or self.is_base[self.search_from]:
            self.search_from += 1
        return children

    def _find_base(self, slots):
        """A base not used by another node whose slots `base ^ slots` are all free."""
        if len(slots) == 1:  # a leaf's value slot, or a single child: the first free slot will do
            return self._find_single_slot_base(int(slots[0]))
        return self._find_multi_slot_base(slots)

    def _find_single_slot_base(self, slot):
        """The base that puts `slot` on the first free position from `search_from`."""
        position = self.search_from
        while True:
            while position >= len(self.used) - 512:
                self._grow()
            base = position ^ slot
            if not self.used[position] and not self.is_base[base]:
                return base
            position += 1

    def _find_multi_slot_base(self, slots):
        """The first fitting base at or after `crowded_below`, searched a window of free positions at a time."""
        # Nodes with several slots search forward from where the previous one fitted (never back: that
        # would make the build quadratic); leaves later fill the holes they leave.
        start = self.crowded_below
        while True:
            while len(self.used) < start + self._WINDOW + 256:
                self._grow()
            bases = (np.flatnonzero(~self.used[start : start + self._WINDOW]) + start) ^ slots[0]
            fits = ~self.is_base[bases] & ~self.used[bases[:, None] ^ slots[None, :]].any(axis=1)
            if fits.any():
                self.crowded_below = start
                return int(bases[np.argmax(fits)])
            start += self._WINDOW

    def trimmed(self):
        """The units up to the last used one (a copy)."""
        last = int(np.flatnonzero(self.used).max())
        return self.units[: last + 1].copy()


@functools.lru_cache(maxsize=8)
def build_normalizer_model(lowercase=True, strip_accents=None, num_sentinels=0):
    """Returns the `FastBertNormalizer` flatbuffer (bytes) for the reference's normalisation.

    Args:
        lowercase: see `normalize_char`.
        strip_accents: see `normalize_char`.
        num_sentinels: how many special-token sentinels (from U+FDD0) to keep unchanged.
    """
    if not 0 <= num_sentinels <= MAX_SENTINELS:
        raise ValueError(f"num_sentinels={num_sentinels} must be in [0, {MAX_SENTINELS}]")
    table = build_char_table(lowercase, strip_accents, num_sentinels)
    pool = bytearray()
    pool_offsets = {}
    values = {}
    for key, text in table.items():
        if text not in pool_offsets:
            pool_offsets[text] = len(pool)
            pool += text
        values[key] = _IS_DIFFERENT | (pool_offsets[text] << _LENGTH_BITS) | len(text)
    data_for_codepoint_zero = _IS_DIFFERENT  # NUL: deleted (an empty replacement string)
    trie = build_darts_trie(values)

    builder = flatbuffers.Builder(len(pool) + 4 * len(trie) + 1024)
    pool_vector = builder.CreateByteVector(bytes(pool) or b"\0")
    trie_vector = builder.CreateNumpyVector(trie)
    builder.StartObject(4)  # tensorflow_text FastBertNormalizerModel
    builder.PrependBoolSlot(0, bool(lowercase), False)  # lower_case_nfd_strip_accents (informational)
    builder.PrependUOffsetTRelativeSlot(1, trie_vector, 0)  # trie_array: [uint32]
    builder.PrependInt32Slot(2, data_for_codepoint_zero, 0)  # data_for_codepoint_zero: int
    builder.PrependUOffsetTRelativeSlot(3, pool_vector, 0)  # normalized_string_pool: [ubyte]
    builder.Finish(builder.EndObject())
    return bytes(builder.Output())
