"""BERT's WordPiece tokenizer on tensorflow-text ops that also run inside LiteRT.

The graph is `FastBertNormalizer` (with kbert's reference-exact table, see `kbert.text.normalization`) followed by
`FastWordpieceTokenizer` in end-to-end mode (whitespace, punctuation and CJK splitting, then greedy longest-match
WordPiece). Both ops are registered in `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`.

Differences from the reference (Hugging Face `BertTokenizerLegacy`, google-research/bert), all outside ordinary text:
  * The per-codepoint limits of `kbert.text.normalization` (final sigma; cased-mode NFC composition; codepoints in
    the unassigned/private-use planes U+34000..U+DFFFF, U+E1000..U+10FFFF are kept, the reference deletes them).
  * Literal special tokens in the text ("[CLS]", "[SEP]", ...) are matched with two `tf.strings.regex_replace` ops,
    which LiteRT lacks: a string-in LiteRT model built from `tokenize_litert_graph` tokenizes "[CLS]" as the text
    "[", "cl", "##s", "]" and maps the noncharacters U+FDD0..U+FDD4 to special tokens. Pass
    `special_tokens_in_strings=False` for that behaviour everywhere (then text can never inject a separator).
"""

import hashlib
import json
import os
import re

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow.experimental import numpy as tnp

from kbert.text import normalization

SPECIAL_TOKEN_ROLES = ("pad", "unk", "cls", "sep", "mask")
DEFAULT_SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}

# Hugging Face's `clean_up_tokenization` (applied by `decode` for BERT): spaces before these are removed.
_CLEANUP_REPLACEMENTS = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
    (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)  # fmt: skip


def load_vocabulary(vocabulary):
    """Returns the vocabulary as a list of tokens from a `vocab.txt` path or a list (one token a line)."""
    if isinstance(vocabulary, str | os.PathLike):
        try:
            with open(vocabulary, encoding="utf-8") as file:
                tokens = [line.rstrip("\r\n") for line in file]
        except UnicodeDecodeError as error:
            raise ValueError(
                f"vocabulary file {os.fspath(vocabulary)!r} is not UTF-8 text (byte {error.start}); expected a "
                "vocab.txt, one token a line"
            ) from None
        while tokens and not tokens[-1]:
            tokens.pop()
        if not tokens:
            raise ValueError(f"vocabulary file {os.fspath(vocabulary)!r} is empty; expected one token a line")
        return tokens
    tokens = [str(token) for token in vocabulary]
    if not tokens:
        raise ValueError("vocabulary is empty; pass a vocab.txt path or a non-empty list of tokens")
    return tokens


class WordPieceTokenizer:
    """BERT WordPiece tokenizer (uncased or cased) that runs in tf.data and in LiteRT.

    Calling it on a string returns a 1-D int32 tensor of ids; on a list or 1-D tensor of strings, a ragged
    `[batch, None]` int32 tensor. Special tokens are *not* added (see `kbert.text.SegmentPacker`).

    Args:
        vocabulary: path of a `vocab.txt` (one token a line, id = line number) or a list of tokens.
        lowercase: lower-case and strip accents (uncased models) as the reference BERT tokenizer.
        strip_accents: strip combining marks; `None` follows `lowercase` (the reference's default).
        special_tokens_in_strings: treat literal special tokens in the text ("[CLS]", "[SEP]"...) as those
            tokens, like the reference. See the module docstring for the LiteRT graph.
        max_chars_per_word: longer words become `[UNK]`, like the reference's `max_input_chars_per_word`.
        special_tokens: override of the special tokens' spellings, e.g. `{"unk": "<unk>"}`; keys among
            "pad", "unk", "cls", "sep", "mask".

    Example:
    ```python
    tokenizer = WordPieceTokenizer(vocabulary="vocab.txt")
    tokenizer(["Hello world!", "naïve"])  # <tf.RaggedTensor [[7592, 2088, 999], [15743]]>
    ids, starts, ends = tokenizer.tokenize_with_offsets("Hello world!")
    tokenizer.detokenize(ids)  # b"hello world!"
    ```
    """

    def __init__(
        self,
        vocabulary,
        lowercase=True,
        strip_accents=None,
        special_tokens_in_strings=True,
        max_chars_per_word=100,
        special_tokens=None,
    ):
        self.vocabulary = load_vocabulary(vocabulary)
        self.lowercase = bool(lowercase)
        self.strip_accents = strip_accents
        self.special_tokens_in_strings = bool(special_tokens_in_strings)
        self.max_chars_per_word = int(max_chars_per_word)
        self.special_tokens = _special_token_spellings(special_tokens)
        self._build_id_maps()
        sentinels = self._build_sentinels()
        self._build_wordpiece_ops(sentinels)
        self._build_piece_tables(len(sentinels))
        self._build_tokenize_functions()

    def _build_id_maps(self):
        """Sets `_token_to_id` (a token's first id) and `special_token_ids`; raises for a missing special token."""
        self._token_to_id = {}
        for index, token in enumerate(self.vocabulary):
            self._token_to_id.setdefault(token, index)
        missing = [token for token in self.special_tokens.values() if token not in self._token_to_id]
        if missing:
            raise ValueError(
                f"vocabulary lacks the special token(s) {missing}; add them to vocab.txt "
                f"or name the vocabulary's spelling with special_tokens={{'unk': ...}}"
            )
        self.special_token_ids = {
            role: self._token_to_id[token] for role, token in self.special_tokens.items()
        }

    def _build_sentinels(self):
        """Sets the tables of the literal special tokens matched in text; returns their sentinel characters."""
        # Literal special tokens become sentinel noncharacters of the same UTF-8 length (so byte offsets stay
        # valid), appended to the WordPiece vocabulary and mapped back to the special ids afterwards.
        matched = [t for t in dict.fromkeys(self.special_tokens.values()) if len(t.encode("utf-8")) >= 3]
        self._matched_special_tokens = matched if self.special_tokens_in_strings else []
        num_sentinels = len(self._matched_special_tokens)
        sentinels = [chr(normalization.SENTINEL_BASE + k) for k in range(num_sentinels)]
        self._sentinel_ids = tf.constant([self._token_to_id[t] for t in self._matched_special_tokens] or [0])
        self._sentinel_lengths = tf.constant(
            [len(t.encode("utf-8")) for t in self._matched_special_tokens] or [0]
        )
        return sentinels

    def _build_wordpiece_ops(self, sentinels):
        """Sets the tensorflow-text ops: `_normalizer`, `_wordpiece` and the byte-capped `_wordpiece_capped`."""
        self._normalizer = tf_text.FastBertNormalizer(
            model_buffer=normalization.build_normalizer_model(
                self.lowercase, self.strip_accents, len(sentinels)
            )
        )
        # A word of max_chars_per_word characters has at most 4 bytes a character; longer words in characters
        # are turned into [UNK] afterwards (the op only counts bytes).
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=self.vocabulary + sentinels,
            suffix_indicator="##",
            max_bytes_per_word=4 * self.max_chars_per_word,
            token_out_type=tf.int32,
            unknown_token=self.special_tokens["unk"],
            no_pretokenization=False,
        )
        # The common case runs only the two ops: with words capped at max_chars_per_word *bytes*, a word that may
        # be too long in characters becomes [UNK], and `_tokenize_fast` falls back to the exact path on such batches.
        self._wordpiece_capped = tf_text.FastWordpieceTokenizer(
            vocab=self.vocabulary + sentinels,
            suffix_indicator="##",
            max_bytes_per_word=self.max_chars_per_word,
            token_out_type=tf.int32,
            unknown_token=self.special_tokens["unk"],
            no_pretokenization=False,
        )

    def _build_piece_tables(self, num_sentinels):
        """Sets the per-id tables: `is_suffix_table` ("##" pieces), `_char_lengths` and `_vocabulary_tensor`."""
        is_suffix = [token.startswith("##") and token != "##" for token in self.vocabulary]
        char_lengths = [
            len(token) - 2 if suffix else len(token)
            for token, suffix in zip(self.vocabulary, is_suffix, strict=True)
        ]
        for special_id in self.special_token_ids.values():  # a special token is one character of a word
            char_lengths[special_id] = 1
        self.is_suffix_table = tf.constant(is_suffix + [False] * num_sentinels)
        self._char_lengths = tf.constant(char_lengths + [1] * num_sentinels, tf.int32)
        self._vocabulary_tensor = tf.constant(self.vocabulary)

    def _build_tokenize_functions(self):
        """Sets the traced batch tokenizers: `_tokenize_exact`, `_tokenize_batch` and `_tokenize_batch_with_offsets`."""
        # Eager calls run one traced graph per rank (inside tf.data the ops are traced anyway).
        signature = [tf.TensorSpec([None], tf.string)]
        self._literal_starts = self._literal_start_tables() if self._matched_special_tokens else None
        always_exact = bool(self._matched_special_tokens) and self._literal_starts is None
        self._tokenize_exact = tf.function(
            lambda text: self._tokenize_graph(text, False)[0], input_signature=signature
        )
        self._tokenize_batch = self._tokenize_exact if always_exact else self._tokenize_fast
        self._tokenize_batch_with_offsets = tf.function(
            lambda text: self._tokenize_graph(text, True), input_signature=signature
        )

    # ----------------------------------------------------------------------------------------------------------
    # Vocabulary and configuration.

    @property
    def vocabulary_size(self):
        """Number of tokens in the vocabulary."""
        return len(self.vocabulary)

    @property
    def vocabulary_sha256(self):
        """A fingerprint of the vocabulary (SHA-256 of its tokens, one a line): two tokenizers with the same
        fingerprint map text to the same ids (casing and the other options aside)."""
        return hashlib.sha256("\n".join(self.vocabulary).encode("utf-8")).hexdigest()

    @property
    def pad_id(self):
        return self.special_token_ids["pad"]

    @property
    def unk_id(self):
        return self.special_token_ids["unk"]

    @property
    def cls_id(self):
        return self.special_token_ids["cls"]

    @property
    def sep_id(self):
        return self.special_token_ids["sep"]

    @property
    def mask_id(self):
        return self.special_token_ids["mask"]

    def token_to_id(self, token):
        """Returns the id of `token`; raises `KeyError` naming the token when it is not in the vocabulary."""
        if token not in self._token_to_id:
            raise KeyError(f"token {token!r} is not in the vocabulary of {self.vocabulary_size} tokens")
        return self._token_to_id[token]

    def id_to_token(self, token_id):
        """Returns the token of `token_id`."""
        if not 0 <= int(token_id) < self.vocabulary_size:
            raise ValueError(f"token id {token_id} is outside the vocabulary [0, {self.vocabulary_size})")
        return self.vocabulary[int(token_id)]

    def get_config(self):
        """The constructor arguments other than the vocabulary (what `tokenizer_config.json` holds)."""
        return {
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "special_tokens_in_strings": self.special_tokens_in_strings,
            "max_chars_per_word": self.max_chars_per_word,
            "special_tokens": dict(self.special_tokens),
        }

    def save_to_preset(self, directory):
        """Writes `vocab.txt` and `tokenizer_config.json` into `directory` (created if needed)."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as file:
            file.write("\n".join(self.vocabulary) + "\n")
        with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as file:
            json.dump(self.get_config(), file, indent=2)

    @classmethod
    def from_preset(cls, directory, **overrides):
        """Builds the tokenizer of a saved model folder: `vocab.txt` and, when present, `tokenizer_config.json`.

        Both kbert's config and Hugging Face's (`do_lower_case`, `strip_accents`, `unk_token`...) are read.

        Args:
            directory: the folder.
            **overrides: constructor arguments that win over the config file.
        """
        vocab_path = os.path.join(directory, "vocab.txt")
        if not os.path.isfile(vocab_path):
            raise FileNotFoundError(
                f"no vocab.txt in {os.fspath(directory)!r}; is it a kbert or BERT model folder?"
            )
        config = {}
        config_path = os.path.join(directory, "tokenizer_config.json")
        if os.path.isfile(config_path):
            with open(config_path, encoding="utf-8") as file:
                raw = json.load(file)
            config["lowercase"] = raw.get("lowercase", raw.get("do_lower_case", True))
            config["strip_accents"] = raw.get("strip_accents")
            for key in ("special_tokens_in_strings", "max_chars_per_word"):
                if key in raw:
                    config[key] = raw[key]
            special = dict(raw.get("special_tokens") or {})
            for role in SPECIAL_TOKEN_ROLES:
                value = raw.get(f"{role}_token")
                if isinstance(value, dict):  # Hugging Face's serialised AddedToken
                    value = value.get("content")
                if isinstance(value, str):
                    special.setdefault(role, value)
            if special:
                config["special_tokens"] = special
        config.update(overrides)
        return cls(vocabulary=vocab_path, **config)

    # ----------------------------------------------------------------------------------------------------------
    # Tokenization.

    def __call__(self, inputs):
        return self.tokenize(inputs)

    def tokenize(self, inputs):
        """Tokenizes strings into WordPiece ids (int32), without special tokens.

        Args:
            inputs: a string, a list of strings, or a string tensor of rank 0 or 1 (bytes are UTF-8; invalid
                sequences are deleted, like the reference on the text decoded with `errors="replace"`).

        Returns:
            A 1-D `tf.Tensor` for a scalar input, else a `tf.RaggedTensor` of shape `[batch, None]`.
        """
        ids, _, _ = self._tokenize(inputs, with_offsets=False)
        return ids

    def tokenize_with_offsets(self, inputs, unit="byte"):
        """Tokenizes and returns each token's span in the input.

        Args:
            inputs: as in `tokenize`.
            unit: "byte" for offsets into the UTF-8 bytes (what tf.strings.substr takes), or "char" for Python
                string indices (what Hugging Face's `offset_mapping` gives).

        Returns:
            `(ids, starts, ends)`, int32 tensors of the same (ragged) shape; a special token matched in the text
            spans its literal text.
        """
        if unit not in ("byte", "char"):
            raise ValueError(f"unit={unit!r}; use 'byte' or 'char'")
        ids, starts, ends = self._tokenize(inputs, with_offsets=True)
        if unit == "char":
            text = _string_tensor(inputs)
            starts, ends = _bytes_to_chars(text, starts), _bytes_to_chars(text, ends)
        return ids, starts, ends

    def _tokenize(self, inputs, with_offsets):
        text = _string_tensor(inputs)
        scalar = text.shape.rank == 0
        if scalar:
            text = text[tf.newaxis]
        elif text.shape.rank != 1:
            raise ValueError(
                f"expected a string or a 1-D batch of strings, got a tensor of shape {text.shape}"
            )
        if with_offsets:
            ids, starts, ends = self._tokenize_batch_with_offsets(text)
        else:
            ids, starts, ends = self._tokenize_batch(text), None, None
        if scalar:
            return ids[0], (starts[0] if with_offsets else None), (ends[0] if with_offsets else None)
        return ids, starts, ends

    def _tokenize_graph(self, text, with_offsets):
        text = self._mark_special_tokens(text)
        if with_offsets:
            normalized, offset_map = self._normalizer.normalize_with_offsets(text)
            ids, starts, ends = self._wordpiece.tokenize_with_offsets(normalized)
            starts = tf.cast(tf.gather(offset_map, tf.cast(starts, tf.int64), batch_dims=1), tf.int32)
            ends = _end_offsets(text, offset_map, ends)
        else:
            ids = self._wordpiece.tokenize(self._normalizer.normalize(text))
            starts = ends = None
        ids, starts, ends = self._limit_word_length(ids, starts, ends)
        ids, ends = self._unmark_special_tokens(ids, starts, ends)
        return ids, starts, ends

    def _literal_start_tables(self):
        """Two boolean tables over the ids: the first and the second piece that each matched special token's
        literal text gets when tokenized as plain text. A batch with no id of the first table followed by one of
        the second holds no literal. `None` when that test does not hold: a literal that does not begin and end
        with punctuation tokenizes differently next to other characters."""
        size = self.vocabulary_size + len(self._matched_special_tokens)
        first, second = np.zeros(size, bool), np.zeros(size, bool)
        for token in self._matched_special_tokens:
            if not (normalization.is_punctuation(token[0]) and normalization.is_punctuation(token[-1])):
                return None
            pieces = self._wordpiece.tokenize(self._normalizer.normalize(tf.constant([token])))[0].numpy()
            first[pieces[0]] = True
            if len(pieces) > 1:
                second[pieces[1]] = True
            else:
                second[:] = True
        return first, second

    def _tokenize_fast(self, text):
        """`_tokenize_graph(text, False)` that skips the regex scan and the long-word fix-up for the rows where a
        cheap test on the ids shows that neither can change them (`_suspicious_pieces`). Only the other rows
        (about one in ten thousand of real text) take the exact path.

        Eager calls run the two ops eagerly and the test in NumPy (here a `tf.function` call, or one eager op,
        costs more than the test itself); the rare fix-up runs as a traced graph. Inside a graph (tf.data) the
        same test runs as TensorFlow ops."""
        ids = self._wordpiece_capped.tokenize(self._normalizer.normalize(text))
        if tf.executing_eagerly():
            flat = ids.flat_values.numpy()
            suspicious = self._suspicious_pieces(flat, np)
            if not suspicious.any():
                return ids
            return self._splice_exact_rows(text, ids.row_splits.numpy(), flat, suspicious)
        suspicious = self._suspicious_pieces(ids.flat_values, tnp)
        return tf.cond(
            tf.reduce_any(suspicious),
            lambda: self._retokenize_suspicious_rows(text, ids, suspicious),
            lambda: ids,
        )

    def _suspicious_pieces(self, flat, xp):
        """Marks the pieces after which the fast path may differ from the exact one: [UNK] (the capped op makes
        [UNK] of every word that may be too long), a sentinel id (a real noncharacter in the text) and the first
        piece of a pair that begins a literal special token (such a pair may straddle two rows: that only sends
        one more row to the exact path). `xp` is NumPy or `tf.experimental.numpy`."""
        suspicious = (flat == self.unk_id) | (flat >= self.vocabulary_size)
        if self._literal_starts is not None:
            first, second = self._literal_starts
            following = xp.concatenate([flat[1:], xp.zeros([1], flat.dtype)])
            suspicious = suspicious | (xp.take(first, flat) & xp.take(second, following))
        return suspicious

    def _splice_exact_rows(self, text, splits, flat, suspicious):
        """Eager `_retokenize_suspicious_rows`: the flagged rows, tokenized again by the exact path, spliced into
        the flat ids in NumPy. Gathering every row, as the graph version does, costs more than tokenizing on a
        whole-corpus call. Measured in docs/performance.md, 'Tokenizer'."""
        rows = np.unique(np.searchsorted(splits, np.flatnonzero(suspicious), side="right") - 1)
        exact = self._tokenize_exact(tf.gather(text, rows))
        exact_splits, exact_flat = exact.row_splits.numpy(), exact.flat_values.numpy()
        lengths = np.diff(splits)
        lengths[rows] = np.diff(exact_splits)
        pieces, kept_from = [], 0
        for index, row in enumerate(rows):
            pieces += [
                flat[splits[kept_from] : splits[row]],
                exact_flat[exact_splits[index] : exact_splits[index + 1]],
            ]
            kept_from = row + 1
        pieces.append(flat[splits[kept_from] :])
        new_splits = np.concatenate([[0], np.cumsum(lengths)])
        return tf.RaggedTensor.from_row_splits(np.concatenate(pieces), new_splits, validate=False)

    def _retokenize_suspicious_rows(self, text, ids, suspicious):
        """The rows of `ids` holding a suspicious piece, retokenized by the exact path; the others kept."""
        row_suspicious = tf.reduce_any(ids.with_flat_values(suspicious), axis=1)
        exact_rows = tf.where(row_suspicious)[:, 0]
        fast_rows = tf.where(~row_suspicious)[:, 0]
        exact = self._tokenize_graph(tf.gather(text, exact_rows), False)[0]
        merged = tf.concat([tf.gather(ids, fast_rows), exact], axis=0)
        return tf.gather(merged, tf.argsort(tf.concat([fast_rows, exact_rows], axis=0)))

    def _mark_special_tokens(self, text):
        if not self._matched_special_tokens:
            return text
        # Real U+FDD0.. noncharacters are deleted by the reference; NULs of the same length are deleted here too.
        sentinel_range = f"[{chr(normalization.SENTINEL_BASE)}-{chr(normalization.SENTINEL_BASE + 31)}]"
        literals = "|".join(re.escape(token) for token in self._matched_special_tokens)

        def replace():
            marked = tf.strings.regex_replace(text, sentinel_range, "\0\0\0")
            for index, token in enumerate(self._matched_special_tokens):
                sentinel = chr(normalization.SENTINEL_BASE + index) + "\0" * (len(token.encode("utf-8")) - 3)
                marked = tf.strings.regex_replace(marked, re.escape(token), sentinel)
            return marked

        # One scan decides; most batches hold no literal special token and skip the replacements.
        found = tf.strings.regex_full_match(text, f"(?s).*(?:{literals}|{sentinel_range}).*")
        return tf.cond(tf.reduce_any(found), replace, lambda: text)

    def _unmark_special_tokens(self, ids, starts, ends):
        if not self._matched_special_tokens:
            return ids, ends
        flat = ids.flat_values
        sentinel_index = flat - self.vocabulary_size
        is_sentinel = sentinel_index >= 0
        safe_index = tf.maximum(sentinel_index, 0)
        new_flat = tf.where(is_sentinel, tf.gather(self._sentinel_ids, safe_index), flat)
        if ends is not None:
            # The sentinel is padded to the literal's length; its span is the literal.
            literal_end = starts.flat_values + tf.gather(self._sentinel_lengths, safe_index)
            ends = ends.with_flat_values(tf.where(is_sentinel, literal_end, ends.flat_values))
        return ids.with_flat_values(new_flat), ends

    def _limit_word_length(self, ids, starts, ends):
        """Turns every word longer than `max_chars_per_word` characters into one `[UNK]`, as the reference."""
        flat = ids.flat_values
        word_start, word_index, num_words, too_long = self._long_words(flat)

        def drop_pieces_of_long_words():
            keep = ids.with_flat_values(word_start | ~too_long)
            new_ids = tf.ragged.boolean_mask(
                ids.with_flat_values(tf.where(too_long, self.unk_id, flat)), keep
            )
            if ends is None:
                return new_ids, starts, ends
            word_end = tf.math.unsorted_segment_max(ends.flat_values, word_index, num_words)
            new_ends = ends.with_flat_values(
                tf.where(too_long, tf.gather(word_end, word_index), ends.flat_values)
            )
            return new_ids, tf.ragged.boolean_mask(starts, keep), tf.ragged.boolean_mask(new_ends, keep)

        # Long words are rare: skip the (costly) ragged masks when there are none.
        return tf.cond(tf.reduce_any(too_long), drop_pieces_of_long_words, lambda: (ids, starts, ends))

    def _long_words(self, flat):
        """For flat piece ids: `(word_start, word_index, num_words, too_long)`, per piece but `num_words`."""
        word_start = ~tf.gather(self.is_suffix_table, flat)
        word_index = tf.cumsum(tf.cast(word_start, tf.int32)) - 1
        num_words = tf.reduce_sum(tf.cast(word_start, tf.int32))
        word_chars = tf.math.unsorted_segment_sum(tf.gather(self._char_lengths, flat), word_index, num_words)
        too_long = tf.gather(word_chars > self.max_chars_per_word, word_index)
        return word_start, word_index, num_words, too_long

    # ----------------------------------------------------------------------------------------------------------
    # Detokenization.

    def detokenize(self, ids, skip_special_tokens=False, clean_up_spaces=True):
        """Maps ids back to text as the reference's `decode`: pieces joined by spaces, "##" pieces glued on.

        Args:
            ids: a 1-D id sequence (list, array or tensor), or a batch (ragged or dense `[batch, length]`).
            skip_special_tokens: drop [PAD], [CLS], [SEP], [MASK] and [UNK] first.
            clean_up_spaces: remove the space before punctuation such as " ." and " 's" (Hugging Face's
                `clean_up_tokenization_spaces`, on for BERT).

        Returns:
            A scalar string tensor for a 1-D input, else a 1-D string tensor.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
        ids = tf.cast(ids, tf.int32)
        scalar = ids.shape.rank == 1
        if scalar:
            ids = ids[tf.newaxis]
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        bad = tf.logical_or(ids.flat_values < 0, ids.flat_values >= self.vocabulary_size)
        tf.debugging.assert_equal(
            tf.reduce_any(bad),
            False,
            message=f"token ids must be in [0, {self.vocabulary_size}) for this vocabulary",
        )
        if skip_special_tokens:
            special = tf.constant(sorted(set(self.special_token_ids.values())), tf.int32)
            is_special = tf.reduce_any(ids.flat_values[:, None] == special[None, :], axis=-1)
            ids = tf.ragged.boolean_mask(ids, ids.with_flat_values(~is_special))
        tokens = tf.gather(self._vocabulary_tensor, ids)
        text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        text = tf.strings.regex_replace(text, " ##", "")
        text = tf.strings.strip(text)
        if clean_up_spaces:
            for old, new in _CLEANUP_REPLACEMENTS:
                text = tf.strings.regex_replace(text, re.escape(old), new)
        return text[0] if scalar else text

    def tokenize_litert_graph(self, text):
        """The tokenization using only LiteRT-registered ops (no literal special-token matching).

        For the edge export: `text` is a 1-D string tensor; returns ragged int32 ids. It equals `tokenize` except
        for literal special tokens in the text (module docstring). Besides the two tensorflow-text ops it uses
        only gather, cumsum, unsorted segment sum, where and boolean masks.
        """
        ids = self._wordpiece.tokenize(self._normalizer.normalize(text))
        ids, _, _ = self._limit_word_length(ids, None, None)
        return ids

    def tokenize_litert_flat(self, text):
        """`tokenize_litert_graph` as flat tensors, with no ragged op: what a LiteRT string-in model runs.

        LiteRT has no ragged ops (`RaggedGather`, `RaggedRange`, int64 `UnsortedSegmentSum`), so the pieces of a
        word longer than `max_chars_per_word` characters are dropped with a plain boolean mask, leaving its first
        piece as the one `[UNK]`. It uses only the two tensorflow-text ops (in `SELECT_TFTEXT_OPS`) and LiteRT
        builtins.

        Args:
            text: a 1-D string tensor.

        Returns:
            `(flat_ids, row_ids)`, int32 `[num_tokens]`: the ids of all rows one after the other, and the row of
            each. `tf.RaggedTensor.from_value_rowids(flat_ids, row_ids, nrows)` equals `tokenize_litert_graph`.
        """
        ids = self._wordpiece.tokenize(self._normalizer.normalize(text))
        flat = ids.flat_values
        row_ids = tf.cast(ids.value_rowids(), tf.int32)
        word_start, _, _, too_long = self._long_words(flat)
        keep = word_start | ~too_long
        flat = tf.boolean_mask(tf.where(too_long, self.unk_id, flat), keep)
        return flat, tf.boolean_mask(row_ids, keep)


def _special_token_spellings(special_tokens):
    """The default special tokens updated with `special_tokens`; raises for a role outside `SPECIAL_TOKEN_ROLES`."""
    unknown_roles = set(special_tokens or {}) - set(SPECIAL_TOKEN_ROLES)
    if unknown_roles:
        raise ValueError(f"unknown special token roles {sorted(unknown_roles)}; use {SPECIAL_TOKEN_ROLES}")
    return {**DEFAULT_SPECIAL_TOKENS, **(special_tokens or {})}


def _string_tensor(inputs):
    """`tf.convert_to_tensor(inputs, tf.string)`; a list of Python strings goes the direct way (the general
    conversion first scans the list for tensors). Measured in docs/performance.md, 'Tokenizer'."""
    if isinstance(inputs, (list, tuple)) and tf.executing_eagerly():
        try:
            return tf.constant(inputs, tf.string)
        except (TypeError, ValueError):
            pass
    return tf.convert_to_tensor(inputs, tf.string)


def _end_offsets(text, offset_map, normalized_ends):
    """Maps token ends in the normalised text to the input: just past the input character of the token's last byte.

    (Mapping the end position itself would swallow characters deleted after the token, e.g. a zero-width
    space inside a word; Hugging Face's offsets exclude them.)
    """
    last = tf.gather(offset_map, tf.cast(normalized_ends, tf.int64) - 1, batch_dims=1)
    text_of_token = tf.gather(text, last.value_rowids())
    byte = tf.cast(
        tf.io.decode_raw(
            tf.strings.substr(text_of_token, last.flat_values, tf.ones_like(last.flat_values)), tf.uint8
        )[:, 0],
        tf.int64,
    )
    # An unchanged multi-byte character maps byte by byte (the last byte is a trail byte: +1); a changed one maps
    # every byte to its first byte, whose value gives the character's length.
    length = tf.where(byte < 0xC0, 1, tf.where(byte < 0xE0, 2, tf.where(byte < 0xF0, 3, 4)))
    return tf.cast(last.with_flat_values(last.flat_values + tf.cast(length, last.dtype)), tf.int32)


def _bytes_to_chars(text, byte_offsets):
    """Converts byte offsets into `text` (1-D or scalar) to character offsets (ragged or 1-D like the offsets)."""
    scalar = text.shape.rank == 0
    if scalar:
        text, byte_offsets = text[tf.newaxis], tf.RaggedTensor.from_tensor(byte_offsets[tf.newaxis])
    # Character k starts at byte char_starts[k]; an offset's character index counts the starts before it.
    _, char_starts = tf.strings.unicode_decode_with_offsets(text, "UTF-8", errors="replace")
    dense_starts = char_starts.to_tensor(default_value=np.iinfo(np.int64).max)
    dense_offsets = byte_offsets.to_tensor()
    chars = tf.searchsorted(dense_starts, tf.cast(dense_offsets, tf.int64), side="left")
    chars = tf.RaggedTensor.from_tensor(tf.cast(chars, tf.int32), lengths=byte_offsets.row_lengths())
    return chars[0] if scalar else chars
