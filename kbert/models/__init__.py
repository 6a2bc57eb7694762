"""BERT models: the backbone and the task models built on it."""

from kbert.models.backbone import BertBackbone
from kbert.models.pretrainer import BertPretrainer
from kbert.models.tasks import BertClassifier, BertEmbedder, BertQuestionAnswerer, BertTokenClassifier

__all__ = [
    "BertBackbone",
    "BertClassifier",
    "BertEmbedder",
    "BertPretrainer",
    "BertQuestionAnswerer",
    "BertTokenClassifier",
]
