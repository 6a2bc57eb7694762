"""From documents to batches for `BertPretrainer.fit`: tokenization, an on-disk instance cache, dynamic masking.

    documents --tokenize_documents--> id documents --create_instances--> instances
        --(optional) build_instance_cache--> TFRecord shards --load_instances--> tf.data
        --pretraining_dataset--> ({token_ids, segment_ids, padding_mask, mask_positions},
                                  {mlm_ids, mlm_weights, pair_label})

The masks are drawn in the tf.data graph from a seed that changes every epoch (`Dataset.random` with
`rerandomize_each_iteration`), so each epoch sees new masks, and the same seed reproduces a whole run.
"""

import hashlib
import itertools
import json
import os

import keras
import numpy as np
import tensorflow as tf

from kbert.data.instances import create_instances
from kbert.files import atomic_write, write_json
from kbert.text.masking import mask_tokens

_CACHE_FORMAT = 1


def tokenize_documents(documents, tokenizer, batch_size=4096):
    """Yields each document as a list of sentences of token ids, tokenizing many sentences per call.

    Args:
        documents: an iterable of documents (lists of sentence strings); read lazily.
        tokenizer: a `kbert.text.WordPieceTokenizer`.
        batch_size: sentences per tokenizer call.
    """
    pending, sentences = [], []

    def flush():
        ragged = tokenizer(sentences) if sentences else None
        values = ragged.flat_values.numpy() if sentences else np.zeros([0], np.int32)
        splits = ragged.row_splits.numpy() if sentences else np.zeros([1], np.int64)
        cursor = 0
        for count in pending:
            yield [values[splits[k] : splits[k + 1]].tolist() for k in range(cursor, cursor + count)]
            cursor += count

    for document in documents:
        pending.append(len(document))
        sentences.extend(document)
        if len(sentences) >= batch_size:
            yield from flush()
            pending, sentences = [], []
    yield from flush()


def _example(instance):
    feature = {
        "token_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=instance.token_ids)),
        "first_length": tf.train.Feature(int64_list=tf.train.Int64List(value=[instance.first_length])),
        "pair_label": tf.train.Feature(int64_list=tf.train.Int64List(value=[instance.pair_label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def corpus_digest(documents):
    """A SHA-256 of documents (lists of sentence strings): it changes whenever a sentence does."""
    digest = hashlib.sha256()
    for document in documents:
        digest.update(json.dumps(list(document), ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def _cache_settings(
    documents,
    tokenizer,
    max_seq_length=128,
    short_seq_prob=0.1,
    pair_task="nsp",
    seed=0,
    documents_per_shard=5000,
    corpus_key=None,
):
    """What a cache is built from: reused only when all of it matches."""
    return {
        "format": _CACHE_FORMAT,
        "max_seq_length": int(max_seq_length),
        "short_seq_prob": float(short_seq_prob),
        "pair_task": pair_task,
        "seed": int(seed),
        "documents_per_shard": int(documents_per_shard),
        "vocabulary": _vocabulary_digest(tokenizer),
        "corpus": corpus_key or (corpus_digest(documents) if isinstance(documents, list | tuple) else None),
    }


def _vocabulary_digest(tokenizer):
    text = "\n".join(tokenizer.vocabulary) + json.dumps(tokenizer.get_config(), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def build_instance_cache(
    documents,
    tokenizer,
    directory,
    max_seq_length=128,
    short_seq_prob=0.1,
    pair_task="nsp",
    seed=0,
    documents_per_shard=5000,
    corpus_key=None,
):
    """Tokenizes documents and writes their instances as TFRecord shards, streaming (larger than memory is fine).

    Each shard holds the instances of `documents_per_shard` consecutive documents; NSP draws its random B from
    the same shard's documents. `meta.json` is written last, so a killed build leaves no valid cache; when the
    folder already holds a cache built from the same corpus with the same settings and vocabulary, nothing is
    redone. The corpus is known by `corpus_key`, or, for a list of documents, by `corpus_digest(documents)`; an
    iterator without a key cannot be known before it is read, so its cache is built anew every time.

    Args:
        documents: an iterable of documents (lists of sentence strings), e.g. `read_bert_text(...)`.
        tokenizer: a `kbert.text.WordPieceTokenizer`.
        directory: the cache folder.
        max_seq_length, short_seq_prob, pair_task, seed: see `kbert.data.create_instances`.
        documents_per_shard: documents per shard.
        corpus_key: a string that changes whenever the corpus does (e.g. `corpus_digest`).

    Returns:
        The cache's metadata dict (`num_instances`, `shards`, ...).
    """
    settings = _cache_settings(
        documents, tokenizer, max_seq_length, short_seq_prob, pair_task, seed, documents_per_shard, corpus_key
    )
    meta = _matching_cache(directory, settings)
    if meta is not None:
        return meta
    meta_path = os.path.join(directory, "meta.json")
    os.makedirs(directory, exist_ok=True)
    if os.path.exists(meta_path):
        os.remove(meta_path)
    written = _write_shards(
        tokenize_documents(documents, tokenizer),
        tokenizer,
        directory,
        max_seq_length,
        short_seq_prob,
        pair_task,
        seed,
        documents_per_shard,
    )
    meta = {**settings, **written}
    write_json(meta, meta_path)
    return meta


def _write_shards(
    id_documents, tokenizer, directory, max_seq_length, short_seq_prob, pair_task, seed, documents_per_shard
):
    """Writes the instances of each `documents_per_shard` id documents as a shard; returns `shards`, the counts."""
    progress = keras.utils.Progbar(None, unit_name="document")
    shards, num_instances, num_documents = [], 0, 0
    for shard_index in itertools.count():
        chunk = list(itertools.islice(id_documents, documents_per_shard))
        if not chunk:
            break
        instances = create_instances(
            chunk,
            max_seq_length,
            tokenizer.cls_id,
            tokenizer.sep_id,
            short_seq_prob,
            pair_task,
            seed=[seed, shard_index],
        )
        shards.append(_write_shard(directory, shard_index, instances))
        num_instances += len(instances)
        num_documents += len(chunk)
        progress.update(num_documents)
    progress.update(num_documents, finalize=True)
    return {"shards": shards, "num_instances": num_instances, "num_documents": num_documents}


def _write_shard(directory, shard_index, instances):
    """Writes `instances` as the TFRecord shard `shard_index` (atomically); returns its name."""
    name = f"instances-{shard_index:05d}.tfrecord"

    def write(temporary):
        with tf.io.TFRecordWriter(temporary) as writer:
            for instance in instances:
                writer.write(_example(instance))

    atomic_write(os.path.join(directory, name), write)
    return name


def cached_instances(documents, tokenizer, directory, **settings):
    """The metadata of the cache in `directory` when `build_instance_cache` with these arguments would reuse it
    as it is, else None. Only the cache's `meta.json` is read (and the documents, for their digest)."""
    return _matching_cache(directory, _cache_settings(documents, tokenizer, **settings))


def _matching_cache(directory, settings):
    meta_path = os.path.join(directory, "meta.json")
    if settings["corpus"] is None or not os.path.isfile(meta_path):
        return None
    with open(meta_path, encoding="utf-8") as file:
        meta = json.load(file)
    return meta if {key: meta.get(key) for key in settings} == settings else None


def load_instances(directory):
    """Reads a cache written by `build_instance_cache` as a dataset of `{token_ids, first_length, pair_label}`."""
    meta_path = os.path.join(directory, "meta.json")
    if not os.path.isfile(meta_path):
        raise FileNotFoundError(
            f"no complete instance cache in {os.fspath(directory)!r} (meta.json missing); "
            "build it with kbert.data.build_instance_cache"
        )
    with open(meta_path, encoding="utf-8") as file:
        meta = json.load(file)
    files = [os.path.join(directory, name) for name in meta["shards"]]
    features = {
        "token_ids": tf.io.RaggedFeature(tf.int64),
        "first_length": tf.io.FixedLenFeature([], tf.int64),
        "pair_label": tf.io.FixedLenFeature([], tf.int64),
    }
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string))
    dataset = dataset.interleave(
        tf.data.TFRecordDataset, cycle_length=4, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    dataset = dataset.map(lambda record: tf.io.parse_single_example(record, features))
    dataset = dataset.map(lambda example: {key: tf.cast(value, tf.int32) for key, value in example.items()})
    return dataset.apply(tf.data.experimental.assert_cardinality(meta["num_instances"]))


def instances_to_dataset(instances):
    """An in-memory list of `Instance` as a dataset of `{token_ids, first_length, pair_label}`."""
    if not instances:
        raise ValueError("no instances: the documents were empty or too short for any sentence pair")
    return tf.data.Dataset.from_tensor_slices(
        {
            "token_ids": tf.ragged.constant([instance.token_ids for instance in instances], dtype=tf.int32),
            "first_length": tf.constant([instance.first_length for instance in instances], tf.int32),
            "pair_label": tf.constant([instance.pair_label for instance in instances], tf.int32),
        }
    )


def random_token_ids(tokenizer):
    """Ids the 10 % "random token" replacement draws from: all but special and `[unused…]` tokens."""
    special = set(tokenizer.special_token_ids.values())
    ids = [
        i
        for i, token in enumerate(tokenizer.vocabulary)
        if i not in special and not token.startswith("[unused")
    ]
    return np.array(ids, np.int32)


def pretraining_dataset(
    instances,
    tokenizer,
    batch_size,
    sequence_length=128,
    max_predictions_per_seq=20,
    masked_lm_prob=0.15,
    whole_word_masking=False,
    seed=0,
    shuffle_buffer=10000,
    drop_remainder=True,
):
    """Batches instances and masks them dynamically: new masks every epoch, the same for the same seed.

    Args:
        instances: a dataset from `load_instances`/`instances_to_dataset`, a cache folder, or a list of `Instance`.
        tokenizer: the `WordPieceTokenizer` the instances were made with (special ids, "##" pieces).
        batch_size: examples per batch.
        sequence_length: the packed length; instances must not be longer.
        max_predictions_per_seq: masked-LM target slots per example.
        masked_lm_prob: share of real tokens masked.
        whole_word_masking: mask all pieces of a word together.
        seed: seed of shuffling and masking.
        shuffle_buffer: shuffle buffer size (0: keep the order).
        drop_remainder: drop a last smaller batch (fixed shapes for XLA).

    Returns:
        A `tf.data.Dataset` of `(x, y)`: x = {token_ids, segment_ids, padding_mask, mask_positions} and y =
        {mlm_ids, mlm_weights, pair_label}; int32 except `mlm_weights` (float32); shapes `[batch,
        sequence_length]` and `[batch, max_predictions_per_seq]`, `pair_label` `[batch]`.
    """
    instances = _instance_dataset(instances)
    if shuffle_buffer:
        instances = instances.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    batches = instances.ragged_batch(batch_size, drop_remainder=drop_remainder)
    # One int64 per batch, different every epoch and reproducible from `seed`.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    to_model_inputs = _model_inputs_function(
        tokenizer, sequence_length, max_predictions_per_seq, masked_lm_prob, whole_word_masking, seed
    )
    dataset = tf.data.Dataset.zip(batches, seeds).map(
        to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _instance_dataset(instances):
    """`instances` as a dataset: a dataset as it is, a cache folder through `load_instances`, a list of `Instance`."""
    if isinstance(instances, str | os.PathLike):
        return load_instances(instances)
    if isinstance(instances, list):
        return instances_to_dataset(instances)
    return instances


def _model_inputs_function(
    tokenizer, sequence_length, max_predictions_per_seq, masked_lm_prob, whole_word_masking, seed
):
    """The tf.data map from `(ragged batch of instances, batch seed)` to the pretrainer's masked `(x, y)`."""
    special_ids = tf.constant(sorted(set(tokenizer.special_token_ids.values())), tf.int32)
    replacement_ids = tf.constant(random_token_ids(tokenizer))
    is_suffix = tokenizer.is_suffix_table

    def to_model_inputs(batch, batch_seed):
        token_ids, segment_ids, padding_mask = _padded_batch(batch, tokenizer.pad_id, sequence_length)
        word_starts = ~tf.gather(is_suffix, token_ids) if whole_word_masking else None
        masked = mask_tokens(
            token_ids,
            tf.stack([batch_seed, tf.constant(seed, tf.int64)]),
            mask_id=tokenizer.mask_id,
            special_ids=special_ids,
            random_token_ids=replacement_ids,
            max_predictions=max_predictions_per_seq,
            masked_lm_prob=masked_lm_prob,
            word_starts=word_starts,
        )
        x = {
            "token_ids": masked["token_ids"],
            "segment_ids": segment_ids,
            "padding_mask": padding_mask,
            "mask_positions": masked["mask_positions"],
        }
        y = {
            "mlm_ids": masked["mlm_ids"],
            "mlm_weights": masked["mlm_weights"],
            "pair_label": batch["pair_label"],
        }
        return x, y

    return to_model_inputs


def _padded_batch(batch, pad_id, sequence_length):
    """A ragged batch of instances as int32 `(token_ids, segment_ids, padding_mask)`, `[batch, sequence_length]`."""
    ids = batch["token_ids"]
    tf.debugging.assert_less_equal(
        tf.cast(tf.reduce_max(ids.row_lengths()), tf.int32),
        sequence_length,
        message=f"an instance is longer than sequence_length={sequence_length}; rebuild the instances",
    )
    token_ids = ids.to_tensor(default_value=pad_id, shape=[None, sequence_length])
    position = tf.range(sequence_length)[tf.newaxis]
    lengths = tf.cast(ids.row_lengths(), tf.int32)[:, tf.newaxis]
    padding_mask = tf.cast(position < lengths, tf.int32)
    segment_ids = tf.cast(position >= batch["first_length"][:, tf.newaxis], tf.int32) * padding_mask
    return token_ids, segment_ids, padding_mask
