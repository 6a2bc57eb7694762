"""Corpora and pretraining data: readers, the built-in corpus, NSP/SOP instances, tf.data pipelines."""

from kbert.data.corpus import builtin_corpus, read_bert_text, read_jsonl, split_sentences
from kbert.data.instances import Instance, create_instances
from kbert.data.pipeline import (
    build_instance_cache,
    instances_to_dataset,
    load_instances,
    pretraining_dataset,
    tokenize_documents,
)

__all__ = [
    "Instance",
    "build_instance_cache",
    "builtin_corpus",
    "create_instances",
    "instances_to_dataset",
    "load_instances",
    "pretraining_dataset",
    "read_bert_text",
    "read_jsonl",
    "split_sentences",
    "tokenize_documents",
]
