"""Text processing: BERT WordPiece tokenization, segment packing, masked-LM masking, vocabulary learning."""

from kbert.text.masking import mask_tokens
from kbert.text.packing import SegmentPacker, pack_ids, pack_texts, truncate_longest_first
from kbert.text.vocabulary import learn_vocabulary
from kbert.text.wordpiece import WordPieceTokenizer, load_vocabulary

__all__ = [
    "SegmentPacker",
    "pack_ids",
    "pack_texts",
    "WordPieceTokenizer",
    "learn_vocabulary",
    "load_vocabulary",
    "mask_tokens",
    "truncate_longest_first",
]
