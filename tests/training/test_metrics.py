"""Fine-tuning metrics on hand-made cases with known answers."""

import numpy as np
import pytest

from kbert.training import metrics

pytestmark = pytest.mark.backend_independent


def test_macro_f1_by_hand():
    # class 0: tp 1, predicted 2, actual 1 -> 2/3; class 1: tp 1, predicted 1, actual 2 -> 2/3; class 2 absent.
    scores = metrics.classification_metrics([0, 1, 1], [0, 0, 1], num_classes=3)
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["macro_f1"] == pytest.approx(2 / 3)


def test_entities_follow_conlleval_chunk_rules():
    assert metrics.entities(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 1), ("LOC", 3, 3)}
    assert metrics.entities(["B-PER", "B-PER", "I-PER"]) == {("PER", 0, 0), ("PER", 1, 2)}
    # IOB1: I- starts a chunk after O or after another type; a type change ends one.
    assert metrics.entities(["I-PER", "I-PER", "I-LOC", "O", "I-ORG"]) == {
        ("PER", 0, 1),
        ("LOC", 2, 2),
        ("ORG", 4, 4),
    }
    assert metrics.entities(["O", "I-MISC", "I-MISC"]) == {("MISC", 1, 2)}
    assert metrics.entities(["B-PER", "I-LOC"]) == {("PER", 0, 0), ("LOC", 1, 1)}
    assert metrics.entities(["O", "O"]) == set()


def test_entity_precision_recall_f1_by_hand():
    truth = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O", "B-MISC"]]
    predicted = [["B-PER", "I-PER", "B-LOC", "B-ORG"], ["B-ORG", "I-ORG", "O", "O", "B-MISC"]]
    # True: PER 0-1, LOC 3, ORG 0-2, MISC 4 (4). Predicted: PER 0-1, LOC 2, ORG 3, ORG 0-1, MISC 4 (5).
    # Right: PER 0-1 and MISC 4 (the ORG ends one word early, the LOC is off by one word).
    scores = metrics.entity_metrics(truth, predicted)
    assert scores["precision"] == pytest.approx(2 / 5)
    assert scores["recall"] == pytest.approx(2 / 4)
    assert scores["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert metrics.entity_metrics([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    with pytest.raises(ValueError, match="2 true tags but 1 predicted"):
        metrics.entity_metrics([["O", "O"]], [["O"]])


def test_squad_normalization_and_scores_as_the_official_script():
    assert metrics.normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert metrics.normalize_answer("an apple a day, (the) end.") == "apple day end"
    assert metrics.normalize_answer("Theatre") == "theatre"  # articles only as whole words
    questions = [
        {"id": "q1", "answers": [{"text": "the Eiffel Tower"}, {"text": "Tower"}]},
        {"id": "q2", "answers": [{"text": "1889"}]},
    ]
    # q1 matches its first answer exactly; q2: tokens [in, 1889] vs [1889]: precision 1/2, recall 1 -> F1 2/3.
    scores = metrics.squad_metrics({"q1": "Eiffel Tower", "q2": "in 1889"}, questions)
    assert scores["exact_match"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert metrics.squad_metrics({}, questions) == {
        "exact_match": 0.0,
        "f1": 0.0,
    }  # a missing answer scores 0


def test_squad_v2_scores_no_answer():
    questions = [
        {"id": "a", "answers": [{"text": "Paris"}]},
        {"id": "b", "answers": []},  # unanswerable
    ]
    scores = metrics.squad_metrics({"a": "", "b": ""}, questions, version2=True)
    assert scores == {"exact_match": 50.0, "f1": 50.0}
    scores = metrics.squad_metrics({"a": "Paris", "b": "London"}, questions, version2=True)
    assert scores == {"exact_match": 50.0, "f1": 50.0}
    with pytest.raises(
        ValueError, match="'b' has no answer; score unanswerable questions with version2=True"
    ):
        metrics.squad_metrics({"a": "Paris"}, questions)


def test_spearman_with_ties_by_hand():
    # Ranks [1, 2.5, 2.5, 4] and [1, 2, 3, 4]: covariance 4.5, variances 4.5 and 5.
    assert metrics.spearman([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(4.5 / np.sqrt(4.5 * 5))
    assert metrics.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert metrics.spearman([1, 2, 3], [5, 5, 5]) == 0.0


def test_retrieval_accuracy_is_top1_over_all_positives():
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 1.0]])
    positives = np.array([[2.0, 0.1], [1.0, 0.1], [0.1, 1.0]])
    # Query 0 -> positive 0 (right); query 1 -> positive 2 (wrong); query 2 -> positive 2 (right).
    assert metrics.retrieval_accuracy(queries, positives, ["a", "b", "c"]) == pytest.approx(2 / 3)
    # Query 1 retrieved a positive with its own positive's text: right.
    assert metrics.retrieval_accuracy(queries, positives, ["a", "c", "c"]) == pytest.approx(1.0)
