"""Records → BERT windows and back, with the real MiniLM tokenizer: SQuAD spans through character offsets and
sliding windows, first-piece tag labels, long-text windows and their aggregation."""

import numpy as np
import pytest

from kbert.data import records, windows
from kbert.training import metrics
from tests.training.finetuning_files import write_squad

pytestmark = pytest.mark.backend_independent


def test_window_spans_follow_bert_doc_stride():
    assert windows.window_spans(10, 4, 3) == [(0, 4), (3, 4), (6, 4)]
    assert windows.window_spans(10, 4, 8) == [(0, 4), (4, 4), (8, 2)]  # a step is at most a window
    assert windows.window_spans(3, 4, 2) == [(0, 3)]
    assert windows.window_spans(0, 4, 2) == [(0, 0)]
    with pytest.raises(ValueError, match="window=0 and stride=2 must be >= 1"):
        windows.window_spans(5, 0, 2)


def _oracle_logits(squad, seq_len):
    """Logits that point at the labelled start and end of every window (at [CLS] where it lacks the answer)."""
    starts, ends = [], []
    for start, end in zip(squad.start_positions, squad.end_positions, strict=True):
        starts.append(np.eye(seq_len)[start] * 10)
        ends.append(np.eye(seq_len)[end] * 10)
    return starts, ends


def test_squad_windows_map_answers_through_offsets_and_back(tokenizer, tmp_path):
    questions = records.read_squad(write_squad(tmp_path / "v1.json"))
    squad = windows.encode_squad(tokenizer, questions, seq_len=24, doc_stride=5)
    assert len(squad.example) > 3 * len(questions)  # each context spans several windows
    assert squad.inputs["token_ids"].shape == (len(squad.example), 24)
    for window, (start, end) in enumerate(zip(squad.start_positions, squad.end_positions, strict=True)):
        if start:  # the labelled tokens spell the answer (lower-cased, as the vocabulary)
            answer = questions[squad.example[window]]["answers"][0]["text"]
            text = tokenizer.detokenize(squad.inputs["token_ids"][window, start : end + 1]).numpy().decode()
            assert text.replace(" ", "") == answer.lower().replace(" ", "")
    answered = {squad.example[w] for w in range(len(squad.example)) if squad.start_positions[w]}
    assert answered == set(range(len(questions)))
    # Logits at the labels decode to each answer's exact text in the context, the original casing included.
    starts, ends = _oracle_logits(squad, 24)
    answers = windows.best_answers(questions, squad, starts, ends)
    assert answers == {q["id"]: q["answers"][0]["text"] for q in questions}
    assert metrics.squad_metrics(answers, questions) == {"exact_match": 100.0, "f1": 100.0}
    # An answer longer than max_answer_length tokens is never predicted.
    short = windows.best_answers(questions, squad, starts, ends, max_answer_length=2)
    assert short["q3"] != "from 1887 to 1889"


def _hand_windows():
    context = "zero one two three four five"
    starts = np.array([context.index(word) for word in context.split()])
    ends = starts + np.array([len(word) for word in context.split()])
    # Window 0 holds tokens 0-3, window 1 tokens 2-5, each after "[CLS] q [SEP]" (first context token at 3).
    squad = windows.SquadWindows(
        inputs={},
        start_positions=np.zeros(2, np.int32),
        end_positions=np.zeros(2, np.int32),
        example=np.array([0, 0]),
        spans=[(0, 4, 3), (2, 4, 3)],
        token_chars=[(starts, ends)],
    )
    return [{"id": "q", "context": context, "answers": []}], squad


def test_best_span_takes_starts_from_the_window_with_most_context():
    questions, squad = _hand_windows()
    starts, ends = np.zeros((2, 8)), np.zeros((2, 8))
    # Window 0 scores "three" (token 3, its last token) 10 + 10, but token 3 has more context in window 1,
    # where "three four" scores 5 + 6; window 0's best allowed span ends at "three" with 0 + 10.
    starts[0, 6], ends[0, 6] = 10, 10
    starts[1, 4], ends[1, 5] = 5, 6
    assert windows.best_answers(questions, squad, starts, ends) == {"q": "three four"}


def test_no_answer_when_cls_beats_every_span():
    questions, squad = _hand_windows()
    starts, ends = np.zeros((2, 8)), np.zeros((2, 8))
    starts[1, 4], ends[1, 5] = 5, 6  # best span 11
    starts[:, 0], ends[:, 0] = 6, 6  # [CLS] 12 in both windows
    assert windows.best_answers(questions, squad, starts, ends, allow_no_answer=True) == {"q": ""}
    assert windows.best_answers(questions, squad, starts, ends) == {"q": "three four"}  # v1.1: always a span
    starts[0, 0] = 4  # the lowest [CLS] score over the windows (10) no longer beats the span
    assert windows.best_answers(questions, squad, starts, ends, allow_no_answer=True) == {"q": "three four"}


def test_tags_label_the_first_piece_of_each_word(tokenizer):
    sentences = [
        {"words": ["Werner", "Zwingmann", "said", "."], "tags": ["B-PER", "I-PER", "O", "O"]},
        {
            "words": ["Germany", "'s", "own", "farm", "representative", "Zwingmann"],
            "tags": ["B-LOC", "O", "O", "O", "O", "B-PER"],
        },
    ]
    tag_ids = {"B-LOC": 0, "B-PER": 1, "I-PER": 2, "O": 3}
    inputs, labels, positions = windows.encode_tags(tokenizer, sentences, seq_len=8, tag_ids=tag_ids)
    pieces = [tokenizer.id_to_token(int(i)) for i in inputs["token_ids"][0]]
    assert pieces[:7] == ["[CLS]", "werner", "z", "##wing", "##mann", "said", "."]
    assert positions[0] == [1, 2, 5, 6]
    assert labels[0].tolist() == [-100, 1, 2, -100, -100, 3, 3, -100]  # "##wing", "##mann" ignored
    # The second sentence fills its 6 pieces before "Zwingmann": no position for it, and it is predicted "O".
    assert positions[1] == [1, 2, 4, 5, 6, -1] and inputs["padding_mask"][1].sum() == 8
    logits = [np.eye(4)[np.where(row >= 0, row, 0)] for row in labels]
    predicted = windows.word_tags(logits, positions, ["B-LOC", "B-PER", "I-PER", "O"])
    assert predicted == [["B-PER", "I-PER", "O", "O"], ["B-LOC", "O", "O", "O", "O", "O"]]


def test_long_texts_split_into_overlapping_windows_and_aggregate(tokenizer):
    text = "one two three four five six seven eight nine ten"
    ids = tokenizer(text).numpy().tolist()
    inputs, example = windows.encode_texts(tokenizer, [text, "short"], seq_len=6, long_text="mean", stride=3)
    assert example.tolist() == [0, 0, 0, 1]  # windows of 4 ids at 0, 3, 6 (the last reaching the end)
    assert (
        inputs["token_ids"][1, 1:5].tolist() == ids[3:7] and inputs["token_ids"][2, 1:5].tolist() == ids[6:10]
    )
    truncated, example = windows.encode_texts(tokenizer, [text, "short"], seq_len=6)
    assert example.tolist() == [0, 1] and truncated["token_ids"][0, 1:5].tolist() == ids[:4]
    pairs, example = windows.encode_texts(
        tokenizer, [text], ["a b c d"], seq_len=9, long_text="max", stride=4
    )
    # The pair keeps (9 - 3) // 2 = 3 tokens in every window; the text gets the other 3 (steps of at most 3).
    assert example.tolist() == [0, 0, 0, 0] and (pairs["segment_ids"].sum(axis=1) == 4).all()
    outputs = np.array([[1.0, 4.0], [3.0, 0.0], [2.0, 2.0], [5.0, 5.0]])
    example = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(windows.aggregate(outputs, example, 2, "mean"), [[2.0, 2.0], [5.0, 5.0]])
    np.testing.assert_allclose(windows.aggregate(outputs, example, 2, "max"), [[3.0, 4.0], [5.0, 5.0]])
    with pytest.raises(ValueError, match="long_text='all'; choose one of"):
        windows.encode_texts(tokenizer, [text], long_text="all")
