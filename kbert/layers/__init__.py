"""BERT's layers: embeddings, self-attention, dropout, the encoder block, pooler and pretraining heads."""

from kbert.layers.activations import gelu_approximate
from kbert.layers.attention import MultiHeadSelfAttention
from kbert.layers.dropout import Dropout
from kbert.layers.embeddings import BertEmbeddings
from kbert.layers.encoder import BertEncoderBlock
from kbert.layers.heads import BertPooler, MaskedLMHead
from kbert.layers.initializers import bert_initializer

__all__ = [
    "BertEmbeddings",
    "BertEncoderBlock",
    "BertPooler",
    "Dropout",
    "MaskedLMHead",
    "MultiHeadSelfAttention",
    "bert_initializer",
    "gelu_approximate",
]
