"""Fine-tuning file readers: the formats, and errors that name the file and line."""

import json

import pytest

from kbert.data import records
from tests.training.finetuning_files import CONLL, write_conll, write_pairs, write_squad

pytestmark = pytest.mark.backend_independent


def test_records_from_jsonl_and_csv(tmp_path):
    (tmp_path / "a.csv").write_text(
        'text,text_pair,label\n"Hi, there",,greeting\nA,B,pair\n', encoding="utf-8"
    )
    assert records.read_records(tmp_path / "a.csv") == [
        {"text": "Hi, there", "text_pair": None, "label": "greeting"},
        {"text": "A", "text_pair": "B", "label": "pair"},
    ]
    (tmp_path / "a.jsonl").write_text('{"text": "x", "label": 1}\n\n{"text": "y"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"a.jsonl:3: the record has no 'label'"):
        records.read_records(tmp_path / "a.jsonl")
    assert len(records.read_records(tmp_path / "a.jsonl", require_label=False)) == 2


def test_conll_sentences_skip_docstart_and_take_the_last_column(tmp_path):
    sentences = records.read_conll(write_conll(tmp_path / "a.conll"))
    assert len(sentences) == 5
    assert sentences[0]["words"][:3] == ["EU", "rejects", "German"]
    assert sentences[0]["tags"][:3] == ["B-ORG", "O", "B-MISC"]
    assert sentences[1] == {"words": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]}
    # Two columns, no trailing blank line, several blank lines between sentences.
    (tmp_path / "b.conll").write_text("Paris B-LOC\n\n\n\nis O\nnice O", encoding="utf-8")
    assert records.read_conll(tmp_path / "b.conll") == [
        {"words": ["Paris"], "tags": ["B-LOC"]},
        {"words": ["is", "nice"], "tags": ["O", "O"]},
    ]


def test_conll_errors_name_the_line(tmp_path):
    lines = CONLL.splitlines()
    lines[4] = "rejects"  # a word without its tag on line 5
    (tmp_path / "bad.conll").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.conll:5: expected a word and a tag .* got 'rejects'"):
        records.read_conll(tmp_path / "bad.conll")
    (tmp_path / "empty.conll").write_text("-DOCSTART- -X- O O\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no sentence"):
        records.read_conll(tmp_path / "empty.conll")
    with pytest.raises(ValueError, match="no such file"):
        records.read_conll(tmp_path / "missing.conll")


def test_squad_v1_and_v2(tmp_path):
    questions = records.read_squad(write_squad(tmp_path / "v1.json"))
    assert len(questions) == 7 and not any(q["is_impossible"] for q in questions)
    first = questions[0]
    assert first["question"] == "Where is the Eiffel Tower?"
    assert first["context"][first["answers"][0]["answer_start"] :].startswith("Paris, France")
    questions = records.read_squad(write_squad(tmp_path / "v2.json", impossible=("Why?",)))
    assert [q["id"] for q in questions if q["is_impossible"]] == ["x0"]
    assert [q["answers"] for q in questions if q["is_impossible"]] == [[]]


def test_squad_errors(tmp_path):
    (tmp_path / "bad.json").write_text('{"data": [\n  {"paragraphs": [}\n]}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.json:2: not valid JSON"):
        records.read_squad(tmp_path / "bad.json")
    (tmp_path / "none.json").write_text('{"data": [{"paragraphs": []}]}', encoding="utf-8")
    with pytest.raises(ValueError, match="holds no question"):
        records.read_squad(tmp_path / "none.json")
    (tmp_path / "empty.json").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        records.read_squad(tmp_path / "empty.json")
    shifted = json.loads(open(write_squad(tmp_path / "v1.json"), encoding="utf-8").read())
    shifted["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] += 1
    (tmp_path / "shifted.json").write_text(json.dumps(shifted), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"question 'q2': answer 'Gustave Eiffel' is not at answer_start \d+"
    ):
        records.read_squad(tmp_path / "shifted.json")
    shifted["data"][0]["paragraphs"][0]["qas"][1]["answers"] = []
    (tmp_path / "unanswered.json").write_text(json.dumps(shifted), encoding="utf-8")
    with pytest.raises(ValueError, match="question 'q2' has no answers; SQuAD v2.0 marks"):
        records.read_squad(tmp_path / "unanswered.json")


def test_text_pairs_of_both_kinds(tmp_path):
    scored = records.read_text_pairs(write_pairs(tmp_path / "s.jsonl"))
    assert scored[0] == {
        "text": "A man is playing a guitar.",
        "text_pair": "A man plays the guitar.",
        "score": 0.96,
    }
    retrieval = records.read_text_pairs(write_pairs(tmp_path / "r.jsonl", "retrieval"))
    assert retrieval[1]["text"] == "what is the capital of france" and retrieval[1]["score"] is None


def test_text_pair_errors_name_the_line(tmp_path):
    (tmp_path / "mixed.jsonl").write_text(
        '{"text": "a", "text_pair": "b", "score": 0.5}\n{"query": "q", "positive": "p"}\n', encoding="utf-8"
    )
    with pytest.raises(ValueError, match="mixed.jsonl:2: a retrieval pair in a file of score pairs"):
        records.read_text_pairs(tmp_path / "mixed.jsonl")
    (tmp_path / "sts.jsonl").write_text('{"text": "a", "text_pair": "b", "score": 4.2}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"sts.jsonl:1: score 4.2 is outside \[-1, 1\].*divide by 5"):
        records.read_text_pairs(tmp_path / "sts.jsonl")
    (tmp_path / "half.jsonl").write_text('{"query": "q"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"half.jsonl:1: expected a JSON object \(CSV row\) with a string 'positive' field"):
        records.read_text_pairs(tmp_path / "half.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="holds no pair"):
        records.read_text_pairs(tmp_path / "empty.jsonl")


def test_an_empty_squad_answer_is_refused_not_trained_as_no_answer(tmp_path):
    squad = json.loads(open(write_squad(tmp_path / "v1.json"), encoding="utf-8").read())
    squad["data"][0]["paragraphs"][0]["qas"][1]["answers"] = [{"text": "", "answer_start": 3}]
    (tmp_path / "blank.json").write_text(json.dumps(squad), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"question 'q2': an answer's text is empty.*\"is_impossible\": true"
    ):
        records.read_squad(tmp_path / "blank.json")
