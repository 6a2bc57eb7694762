"""Pretraining instances (sentence pairs) as google-research/bert `create_instances_from_document`.

An instance is `[CLS] A [SEP] B [SEP]` with a pair label. A is made of consecutive sentences of a document up to a
random split point of a chunk that fills the target length (`max_seq_length - 3`, or with probability
`short_seq_prob` a random shorter one); B is the rest of the chunk, or:
  * NSP: with probability 1/2 a span of a random other document (label 0; 1 = B follows A);
  * SOP: with probability 1/2 the two segments swapped (label 0; 1 = in order).
One departure keeps the labels balanced on corpora of short documents: the original always draws a random B for
a one-sentence chunk; kbert draws the label first and, for a true continuation, cuts that sentence in two.
Masking is *not* done here: `kbert.data.pretraining_dataset` masks dynamically each epoch.
"""

import dataclasses

import numpy as np

from kbert.text.packing import longest_first_lengths


@dataclasses.dataclass(frozen=True)
class Instance:
    """One pretraining example before masking.

    Attributes:
        token_ids: `[CLS] A [SEP] B [SEP]` ids (no padding).
        first_length: length of `[CLS] A [SEP]`; segment ids are 0 there and 1 after.
        pair_label: 1 when B follows A (NSP) or the order is kept (SOP), else 0.
    """

    token_ids: tuple
    first_length: int
    pair_label: int


def _truncate_pair(first, second, budget, rng):
    """BERT's `truncate_seq_pair`: trim the longer segment, each token from the front or back at random."""
    keep_first, keep_second = longest_first_lengths(len(first), len(second), budget)

    def trim(tokens, keep):
        excess = len(tokens) - keep
        if excess <= 0:
            return tokens
        front = int(rng.binomial(excess, 0.5))  # as many coin flips as tokens removed
        return tokens[front : len(tokens) - (excess - front)]

    return trim(first, keep_first), trim(second, keep_second)


def create_instances(
    documents,
    max_seq_length,
    cls_id,
    sep_id,
    short_seq_prob=0.1,
    pair_task="nsp",
    seed=0,
    random_documents=None,
):
    """Creates instances from tokenized documents.

    Args:
        documents: a list of documents, each a list of sentences, each a list of token ids (without specials).
            Empty sentences are ignored.
        max_seq_length: the packed length (at least 5: [CLS] a [SEP] b [SEP]).
        cls_id, sep_id: special ids.
        short_seq_prob: probability of a shorter random target length.
        pair_task: "nsp" (next-sentence prediction) or "sop" (sentence-order prediction).
        seed: seed of the random choices; the same seed and documents give the same instances.
        random_documents: documents to draw NSP's random B from (default: `documents`). Streaming passes a
            buffer of recent documents.

    Returns:
        A list of `Instance`.
    """
    if pair_task not in ("nsp", "sop"):
        raise ValueError(f"pair_task={pair_task!r}; use 'nsp' or 'sop'")
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length={max_seq_length} is too short for [CLS] A [SEP] B [SEP]; use >= 5")
    rng = np.random.default_rng(seed)
    documents = [[list(s) for s in document if len(s)] for document in documents]
    documents = [document for document in documents if document]
    random_documents = documents if random_documents is None else random_documents
    instances = []
    for index, document in enumerate(documents):
        instances += _instances_from_document(
            document,
            index,
            random_documents,
            max_seq_length,
            cls_id,
            sep_id,
            short_seq_prob,
            pair_task,
            rng,
            same_pool=random_documents is documents,
        )
    return instances


def _instances_from_document(
    document, index, pool, max_seq_length, cls_id, sep_id, short_seq_prob, pair_task, rng, same_pool
):
    max_tokens = max_seq_length - 3
    target = max_tokens if rng.random() >= short_seq_prob else int(rng.integers(2, max_tokens + 1))
    instances, chunk, chunk_length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target:
            if chunk:
                first, second, in_order = [], [], True
                if pair_task == "nsp" and len(pool) > (1 if same_pool else 0) and rng.random() < 0.5:
                    in_order = False
                    split = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
                    first = [t for sentence in chunk[:split] for t in sentence]
                    other = int(rng.integers(len(pool)))
                    while same_pool and other == index:  # a random *other* document
                        other = int(rng.integers(len(pool)))
                    random_document = pool[other]
                    for sentence in random_document[int(rng.integers(len(random_document))) :]:
                        second += sentence
                        if len(second) >= max(1, target - len(first)):
                            break
                    i -= len(chunk) - split  # the unused sentences go back for the next chunk
                else:
                    if len(chunk) >= 2:
                        split = int(rng.integers(1, len(chunk)))
                        first = [t for sentence in chunk[:split] for t in sentence]
                        second = [t for sentence in chunk[split:] for t in sentence]
                    elif len(chunk[0]) >= 2:  # one sentence: its two parts keep the labels balanced
                        cut = int(rng.integers(1, len(chunk[0])))
                        first, second = chunk[0][:cut], chunk[0][cut:]
                    if pair_task == "sop" and rng.random() < 0.5:
                        first, second, in_order = second, first, False
                if first and second:
                    first, second = _truncate_pair(first, second, max_tokens, rng)
                    token_ids = (cls_id, *first, sep_id, *second, sep_id)
                    instances.append(Instance(token_ids, len(first) + 2, int(in_order)))
            chunk, chunk_length = [], 0
            target = max_tokens if rng.random() >= short_seq_prob else int(rng.integers(2, max_tokens + 1))
        i += 1
    return instances
