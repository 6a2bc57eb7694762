"""kbert: BERT for Keras 3 on TensorFlow, JAX and PyTorch, with LiteRT edge export."""

from kbert.backend import keep_large_allocations

# First, before any import below starts the backend's threads: they would keep allocating from their own arenas.
keep_large_allocations()

from kbert import data, text, training
from kbert.config import BertConfig
from kbert.models import (
    BertBackbone,
    BertClassifier,
    BertEmbedder,
    BertPreprocessor,
    BertPretrainer,
    BertQuestionAnswerer,
    BertTokenClassifier,
)
from kbert.text import SegmentPacker, WordPieceTokenizer

__all__ = [
    "BertBackbone",
    "BertClassifier",
    "BertConfig",
    "BertEmbedder",
    "BertPreprocessor",
    "BertPretrainer",
    "BertQuestionAnswerer",
    "BertTokenClassifier",
    "SegmentPacker",
    "WordPieceTokenizer",
    "data",
    "text",
    "training",
]
__version__ = "0.1.0"
