"""BERT models: the backbone and the task models built on it."""

from kbert.models.backbone import BertBackbone
from kbert.models.preprocessor import BertPreprocessor
from kbert.models.pretrainer import BertPretrainer
from kbert.models.tasks import BertClassifier, BertEmbedder, BertQuestionAnswerer, BertTokenClassifier

__all__ = [
    "BertBackbone",
    "BertClassifier",
    "BertEmbedder",
    "BertPreprocessor",
    "BertPretrainer",
    "BertQuestionAnswerer",
    "BertTokenClassifier",
]
