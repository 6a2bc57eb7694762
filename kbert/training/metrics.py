"""Fine-tuning metrics, each computed as its field's reference does (pure Python and NumPy).

- classification: accuracy and macro-F1;
- tagging: entity-level precision, recall and F1 over BIO/IOB chunks, as conlleval (and seqeval's default mode);
- extractive QA: exact match and F1 as the official SQuAD v1.1 and v2.0 evaluation scripts;
- embeddings: Spearman's rank correlation (STS) and top-1 retrieval accuracy.
"""

import collections
import re
import string

import numpy as np


def classification_metrics(labels, predictions, num_classes):
    """Accuracy and macro-F1 (the mean of per-class F1 over the classes present in labels or predictions)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    scores = []
    for label in range(num_classes):
        true_positive = np.sum((predictions == label) & (labels == label))
        predicted, actual = np.sum(predictions == label), np.sum(labels == label)
        if predicted == 0 and actual == 0:
            continue
        scores.append(2 * true_positive / (predicted + actual))
    return {"accuracy": float(np.mean(labels == predictions)), "macro_f1": float(np.mean(scores))}


# --- Tagging: conlleval's chunk boundaries (IOB1, IOB2/BIO and IOBES prefixes) -----------------------------


def _split_tag(tag):
    # "B-PER" -> ("B", "PER"); "O" -> ("O", "_") as seqeval.
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _chunk_ends(previous_tag, tag, previous_type, type_):
    return (
        previous_tag in ("E", "S")
        or (previous_tag in ("B", "I") and tag in ("B", "S", "O"))
        or (previous_tag not in ("O", ".") and previous_type != type_)
    )


def _chunk_starts(previous_tag, tag, previous_type, type_):
    return (
        tag in ("B", "S")
        or (previous_tag in ("E", "S", "O") and tag in ("E", "I"))
        or (tag not in ("O", ".") and previous_type != type_)
    )


def entities(tags):
    """The chunks of one sentence's tags as a set of `(type, first word, last word)`, as conlleval finds them:
    a chunk starts at B- (or at I- after O or after another type, IOB1) and ends before O, B- or a new type."""
    found = set()
    previous_tag, previous_type, begin = "O", "", 0
    for index, tag in enumerate([*tags, "O"]):
        prefix, type_ = _split_tag(tag)
        if _chunk_ends(previous_tag, prefix, previous_type, type_):
            found.add((previous_type, begin, index - 1))
        if _chunk_starts(previous_tag, prefix, previous_type, type_):
            begin = index
        previous_tag, previous_type = prefix, type_
    return found


def entity_metrics(true_tags, predicted_tags):
    """Micro-averaged entity precision, recall and F1 over sentences (lists of tag strings): an entity counts
    as correct only with the same type and the same first and last word, as conlleval and seqeval."""
    correct = true_count = predicted_count = 0
    for truth, prediction in zip(true_tags, predicted_tags, strict=True):
        if len(truth) != len(prediction):
            raise ValueError(f"a sentence has {len(truth)} true tags but {len(prediction)} predicted tags")
        true_entities, predicted_entities = entities(truth), entities(prediction)
        correct += len(true_entities & predicted_entities)
        true_count += len(true_entities)
        predicted_count += len(predicted_entities)
    precision = correct / predicted_count if predicted_count else 0.0
    recall = correct / true_count if true_count else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# --- Extractive QA: the official SQuAD evaluation ---------------------------------------------------------


_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text):
    """Lower case, remove punctuation, the articles a/an/the and extra whitespace (SQuAD's evaluate script)."""
    text = "".join(character for character in text.lower() if character not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text, flags=re.UNICODE)
    return " ".join(text.split())


def _f1(prediction, truth, version2):
    prediction_tokens, truth_tokens = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if version2 and (not prediction_tokens or not truth_tokens):
        return float(prediction_tokens == truth_tokens)  # v2.0: no answer matches only no answer
    common = collections.Counter(prediction_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction_tokens), same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions, questions, version2=False):
    """Exact match and F1 in percent, as the official SQuAD evaluate scripts (v1.1, or v2.0 with `version2`).

    Args:
        predictions: `{question id: answer text}` ("" for no answer).
        questions: `kbert.data.read_squad` records (`id`, `answers`).
        version2: score as v2.0: an unanswerable question's truth is "" and answers that normalise to nothing
            are dropped; otherwise as v1.1 (every question is answerable).

    Returns:
        `{"exact_match": ..., "f1": ...}`, each the mean over questions of the best score over the true answers,
        times 100.
    """
    exact = f1 = 0.0
    for question in questions:
        truths = [answer["text"] for answer in question["answers"]]
        if version2:
            truths = [truth for truth in truths if normalize_answer(truth)] or [""]
        elif not truths:
            raise ValueError(
                f"question {question['id']!r} has no answer; score unanswerable questions with version2=True"
            )
        prediction = predictions.get(question["id"], "")
        exact += max(float(normalize_answer(prediction) == normalize_answer(truth)) for truth in truths)
        f1 += max(_f1(prediction, truth, version2) for truth in truths)
    return {"exact_match": 100.0 * exact / len(questions), "f1": 100.0 * f1 / len(questions)}


# --- Embeddings ----------------------------------------------------------------------------------------------


def _ranks(values):
    """1-based ranks with ties given their average rank (as scipy.stats.rankdata)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def spearman(truth, predicted):
    """Spearman's rank correlation (Pearson's on tie-averaged ranks); 0.0 when either side is constant."""
    truth_ranks, predicted_ranks = _ranks(truth), _ranks(predicted)
    truth_ranks -= truth_ranks.mean()
    predicted_ranks -= predicted_ranks.mean()
    scale = np.sqrt(np.sum(truth_ranks**2) * np.sum(predicted_ranks**2))
    return float(np.sum(truth_ranks * predicted_ranks) / scale) if scale > 0 else 0.0


def retrieval_accuracy(query_embeddings, positive_embeddings, positive_texts):
    """Share of queries whose most cosine-similar text among all the positives is their own positive (top-1;
    a different positive with the same text counts as right)."""
    queries = query_embeddings / np.maximum(np.linalg.norm(query_embeddings, axis=-1, keepdims=True), 1e-12)
    positives = positive_embeddings / np.maximum(
        np.linalg.norm(positive_embeddings, axis=-1, keepdims=True), 1e-12
    )
    best = np.argmax(queries @ positives.T, axis=-1)
    return float(np.mean([positive_texts[b] == positive_texts[i] for i, b in enumerate(best)]))
