"""Corpora and pretraining data (readers, the built-in corpus, NSP/SOP instances, tf.data pipelines) and
fine-tuning files (`records`: labelled texts, text pairs, CoNLL, SQuAD; `windows`: their packed BERT windows)."""

from kbert.data.corpus import builtin_corpus, read_bert_text, read_jsonl, split_sentences
from kbert.data.instances import Instance, create_instances
from kbert.data.pipeline import (
    build_instance_cache,
    cached_instances,
    corpus_digest,
    instances_to_dataset,
    load_instances,
    pretraining_dataset,
    tokenize_documents,
)
from kbert.data.records import read_conll, read_records, read_squad, read_text_pairs

__all__ = [
    "Instance",
    "build_instance_cache",
    "builtin_corpus",
    "cached_instances",
    "corpus_digest",
    "create_instances",
    "instances_to_dataset",
    "load_instances",
    "pretraining_dataset",
    "read_bert_text",
    "read_conll",
    "read_jsonl",
    "read_records",
    "read_squad",
    "read_text_pairs",
    "split_sentences",
    "tokenize_documents",
]
