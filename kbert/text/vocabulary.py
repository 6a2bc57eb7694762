"""Learning a WordPiece `vocab.txt` from a corpus with tensorflow-text's vocabulary learner.

Words are split exactly as `WordPieceTokenizer` splits them (kbert's reference normalisation, then whitespace,
punctuation and CJK characters), so every learned piece can be reached at tokenization time.
"""

import collections

import keras
import tensorflow_text as tf_text
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib

from kbert.text import normalization

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def count_words(sentences, lowercase=True, batch_size=2048):
    """Counts the words of `sentences` (an iterable of strings) as the tokenizer will see them."""
    normalizer = tf_text.FastBertNormalizer(
        model_buffer=normalization.build_normalizer_model(lowercase, None, 0)
    )
    counts = collections.Counter()
    progress = keras.utils.Progbar(None, unit_name="sentence")
    batch, seen = [], 0

    def flush():
        for text in normalizer.normalize(batch).numpy():
            counts.update(normalization.split_words(text.decode("utf-8", errors="replace")))

    for sentence in sentences:
        batch.append(sentence)
        if len(batch) == batch_size:
            flush()
            seen += len(batch)
            batch = []
            progress.update(seen)
    if batch:
        flush()
        progress.update(seen + len(batch), finalize=True)
    return counts


def learn_vocabulary(
    sentences,
    vocabulary_size,
    lowercase=True,
    reserved_tokens=RESERVED_TOKENS,
    output_path=None,
    min_count=2,
    max_unique_chars=1000,
):
    """Learns a WordPiece vocabulary of at most `vocabulary_size` tokens, the reserved tokens first.

    Args:
        sentences: an iterable of strings (e.g. the sentences of `kbert.data.builtin_corpus()`).
        vocabulary_size: the maximum size, reserved tokens included (the learner may stop up to 5 % below).
        lowercase: learn for an uncased tokenizer.
        reserved_tokens: tokens placed first, in order ([PAD] gets id 0).
        output_path: where to write `vocab.txt` (one token a line), if given.
        min_count: the learner's lowest frequency threshold.
        max_unique_chars: the alphabet size; words with rarer characters are ignored.

    Returns:
        The vocabulary as a list of tokens.
    """
    if vocabulary_size <= len(reserved_tokens):
        raise ValueError(
            f"vocabulary_size={vocabulary_size} leaves no room after {len(reserved_tokens)} reserved "
            "tokens; use a larger size"
        )
    counts = count_words(sentences, lowercase)
    if not counts:
        raise ValueError("no words in the sentences; cannot learn a vocabulary from an empty corpus")
    vocabulary = wordpiece_tokenizer_learner_lib.learn(
        counts.items(),
        vocab_size=vocabulary_size,
        reserved_tokens=list(reserved_tokens),
        lower_thresh=min_count,
        max_unique_chars=max_unique_chars,
    )
    vocabulary = list(vocabulary)[:vocabulary_size]
    if output_path is not None:
        with open(output_path, "w", encoding="utf-8") as file:
            file.write("\n".join(vocabulary) + "\n")
    return vocabulary
