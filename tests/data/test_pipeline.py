"""Pretraining data on the built-in corpus: instance statistics, dynamic masking, the shard cache."""

import numpy as np
import pytest
import tensorflow as tf

from kbert import data

pytestmark = pytest.mark.backend_independent

SEQ, PREDICTIONS, BATCH = 128, 20, 64


@pytest.fixture(scope="module")
def id_documents(tokenizer):
    return list(data.tokenize_documents(data.builtin_corpus(max_files=250), tokenizer))


@pytest.fixture(scope="module")
def instances(tokenizer, id_documents):
    return data.create_instances(id_documents, SEQ, tokenizer.cls_id, tokenizer.sep_id, seed=0)


def batches(instances, tokenizer, count=40, **kwargs):
    dataset = data.pretraining_dataset(instances, tokenizer, BATCH, SEQ, PREDICTIONS, **kwargs)
    return [
        (dict((k, v.numpy()) for k, v in x.items()), dict((k, v.numpy()) for k, v in y.items()))
        for x, y in dataset.take(count)
    ]


def stack(pairs, part, key):
    return np.concatenate([pair["xy".index(part)][key] for pair in pairs])


def test_nsp_instances_are_balanced_and_within_limits(instances, tokenizer):
    assert len(instances) > 2000
    labels = np.array([instance.pair_label for instance in instances])
    assert abs(labels.mean() - 0.5) <= 0.03
    for instance in instances:
        ids = instance.token_ids
        assert len(ids) <= SEQ and ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id
        assert ids[instance.first_length - 1] == tokenizer.sep_id and instance.first_length >= 3
        assert len(ids) - instance.first_length >= 2  # B and its [SEP]
    lengths = np.array([len(instance.token_ids) for instance in instances])
    assert lengths.max() == SEQ and (lengths < SEQ // 2).mean() > 0.05  # short_seq_prob and short documents


def test_sop_swaps_half_the_pairs(id_documents, tokenizer):
    instances = data.create_instances(
        id_documents, SEQ, tokenizer.cls_id, tokenizer.sep_id, pair_task="sop", seed=1
    )
    assert abs(np.mean([instance.pair_label for instance in instances]) - 0.5) <= 0.03
    in_order = [i for i in instances if i.pair_label == 1]
    swapped = [i for i in instances if i.pair_label == 0]
    assert in_order and swapped


def test_same_seed_same_instances_other_seed_different(id_documents, tokenizer):
    def make(seed):
        return data.create_instances(id_documents[:300], SEQ, tokenizer.cls_id, tokenizer.sep_id, seed=seed)

    assert make(3) == make(3) and make(3) != make(4)


def test_masking_statistics(instances, tokenizer):
    pairs = batches(instances, tokenizer)
    original = stack(pairs, "y", "mlm_ids")
    weights = stack(pairs, "y", "mlm_weights")
    positions = stack(pairs, "x", "mask_positions")
    masked_ids = stack(pairs, "x", "token_ids")
    padding = stack(pairs, "x", "padding_mask")
    special = list(tokenizer.special_token_ids.values())
    # The masked share of the real (non-special) tokens.
    num_real = padding.sum() - 3 * len(padding)  # [CLS] and two [SEP] per row
    assert abs(weights.sum() / num_real - 0.15) <= 0.01, weights.sum() / num_real
    used = weights > 0
    assert not np.isin(original[used], special).any()  # never a special token
    at_positions = np.take_along_axis(masked_ids, positions, axis=1)[used]
    mask_share = (at_positions == tokenizer.mask_id).mean()
    kept_share = (at_positions == original[used]).mean()
    assert abs(mask_share - 0.8) <= 0.02 and abs(kept_share - 0.1) <= 0.02
    assert abs(1 - mask_share - kept_share - 0.1) <= 0.02
    # Positions are increasing on used slots, and unused slots are zero everywhere.
    assert (positions[~used] == 0).all() and (original[~used] == 0).all()
    assert all((np.diff(row[w > 0]) > 0).all() for row, w in zip(positions, weights, strict=True))


def test_whole_word_masking_never_splits_a_word(instances, tokenizer):
    pairs = batches(instances, tokenizer, count=20, whole_word_masking=True)
    is_suffix = tokenizer.is_suffix_table.numpy()
    for x, y in pairs:
        for row in range(BATCH):
            chosen = set(x["mask_positions"][row][y["mlm_weights"][row] > 0].tolist())
            original = dict(zip(x["mask_positions"][row].tolist(), y["mlm_ids"][row].tolist(), strict=True))
            ids = x["token_ids"][row].copy()
            for position, token in original.items():
                ids[position] = token
            special = set(tokenizer.special_token_ids.values())
            for position in range(1, SEQ):
                # A "##" piece is masked exactly when the piece before it is (unless truncation cut the word).
                if is_suffix[ids[position]] and ids[position - 1] not in special:
                    assert (position in chosen) == (position - 1 in chosen)
    weights = stack(pairs, "y", "mlm_weights")
    num_real = stack(pairs, "x", "padding_mask").sum() - 3 * len(weights)
    assert abs(weights.sum() / num_real - 0.15) <= 0.01


def test_masks_are_reproducible_and_change_every_epoch(instances, tokenizer):
    dataset = data.pretraining_dataset(instances[:256], tokenizer, BATCH, SEQ, PREDICTIONS, seed=7)
    epoch_one = [x["mask_positions"].numpy() for x, _ in dataset]
    epoch_two = [x["mask_positions"].numpy() for x, _ in dataset]
    again = [
        x["mask_positions"].numpy()
        for x, _ in data.pretraining_dataset(instances[:256], tokenizer, BATCH, SEQ, PREDICTIONS, seed=7)
    ]
    other = [
        x["mask_positions"].numpy()
        for x, _ in data.pretraining_dataset(instances[:256], tokenizer, BATCH, SEQ, PREDICTIONS, seed=8)
    ]
    assert all((a == b).all() for a, b in zip(epoch_one, again, strict=True))
    assert not all((a == b).all() for a, b in zip(epoch_one, epoch_two, strict=True))
    assert not all((a == b).all() for a, b in zip(epoch_one, other, strict=True))


def test_batches_have_the_contract_shapes_and_dtypes(instances, tokenizer):
    ((x, y),) = batches(instances, tokenizer, count=1)
    assert {k: (v.shape, v.dtype) for k, v in x.items()} == {
        "token_ids": ((BATCH, SEQ), np.int32),
        "segment_ids": ((BATCH, SEQ), np.int32),
        "padding_mask": ((BATCH, SEQ), np.int32),
        "mask_positions": ((BATCH, PREDICTIONS), np.int32),
    }
    assert {k: (v.shape, v.dtype) for k, v in y.items()} == {
        "mlm_ids": ((BATCH, PREDICTIONS), np.int32),
        "mlm_weights": ((BATCH, PREDICTIONS), np.float32),
        "pair_label": ((BATCH,), np.int32),
    }
    # Segment 1 starts right after the first [SEP] and ends at the last real token.
    for _tokens, segments, mask in zip(x["token_ids"], x["segment_ids"], x["padding_mask"], strict=True):
        length = mask.sum()
        assert (mask[:length] == 1).all() and (segments[length:] == 0).all() and segments[length - 1] == 1


def test_shard_cache_round_trips_and_is_reused(tmp_path, tokenizer):
    documents = data.builtin_corpus(max_files=40)
    meta = data.build_instance_cache(documents, tokenizer, tmp_path, SEQ, documents_per_shard=100)
    assert len(meta["shards"]) > 1 and meta["num_instances"] > 0
    stamp = (tmp_path / meta["shards"][0]).stat().st_mtime_ns
    assert data.build_instance_cache(documents, tokenizer, tmp_path, SEQ, documents_per_shard=100) == meta
    assert (tmp_path / meta["shards"][0]).stat().st_mtime_ns == stamp
    loaded = list(data.load_instances(tmp_path).as_numpy_iterator())
    assert len(loaded) == meta["num_instances"]
    first = data.create_instances(
        list(data.tokenize_documents(documents[:100], tokenizer)),
        SEQ,
        tokenizer.cls_id,
        tokenizer.sep_id,
        seed=[0, 0],
    )
    assert {i.token_ids for i in first} <= {tuple(e["token_ids"].tolist()) for e in loaded}
    x, _ = next(iter(data.pretraining_dataset(str(tmp_path), tokenizer, 8, SEQ, PREDICTIONS)))
    assert x["token_ids"].shape == (8, SEQ)

    # An edited corpus (one sentence changed) is not the cached one: the cache is built again.
    edited = [list(document) for document in documents]
    edited[3][0] = "An edited sentence that was not in the corpus before."
    rebuilt = data.build_instance_cache(edited, tokenizer, tmp_path, SEQ, documents_per_shard=100)
    assert rebuilt["corpus"] != meta["corpus"] == data.corpus_digest(documents)
    assert (tmp_path / meta["shards"][0]).stat().st_mtime_ns != stamp


def test_missing_cache_and_too_long_instances_raise(tmp_path, instances, tokenizer):
    with pytest.raises(FileNotFoundError, match="meta.json"):
        data.load_instances(tmp_path)
    with pytest.raises(tf.errors.InvalidArgumentError, match="sequence_length=64"):
        next(iter(data.pretraining_dataset(instances, tokenizer, 8, 64, PREDICTIONS, shuffle_buffer=0)))
