"""Fine-tuning files: labelled text records (JSONL/CSV), text pairs for embeddings, CoNLL tagging, SQuAD QA.

Every reader raises `ValueError` naming the file (and the line, where the format has lines) for an empty file or
malformed input, so a bad dataset stops a run before any training.
"""

import csv
import json
import math
import os


def _check_file(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"no such file {path!r}")
    return path


def decode_line(raw, path, number=None):
    """A line (or whole file, `number` None) of bytes as text; a byte-order mark at the start is not text.

    Raises:
        ValueError: naming `path:number` for bytes that are not UTF-8.
    """
    where = f"{path}:{number}" if number is not None else path
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not UTF-8 text; save the file as UTF-8") from None
    return text.removeprefix("\ufeff") if number in (None, 1) else text


def _rows(path):
    """`(line number, row)` of a `.csv` file (a dict per row) or a JSON-lines file (the parsed value)."""
    with open(path, "rb") as file:
        lines = [decode_line(raw, path, number) for number, raw in enumerate(file, start=1)]
    if path.endswith(".csv"):
        return list(enumerate(csv.DictReader(lines), start=2))
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}:{number}: not JSON ({error.msg}, column {error.colno}); expected one JSON object a line, "
                f'such as {{"text": "...", "label": "..."}}'
            ) from None
    return rows


def _string(path, number, record, key):
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, str):
        raise ValueError(
            f"{path}:{number}: expected a JSON object (CSV row) with a string {key!r} field, got {record!r:.200}"
        )
    return value


def read_records(path, require_label=True):
    """Reads `{text, text_pair?, label?}` records from a `.jsonl` or `.csv` file (UTF-8): fine-tuning and
    distillation data, and an export's eval records (`require_label=False`; a label absent is None).

    Raises:
        ValueError: naming the file and line for an empty file, bytes that are not UTF-8, a malformed JSON line,
            or a record without a string `text` (or without `label` when `require_label`).
    """
    path = _check_file(path)
    records = []
    for number, record in _rows(path):
        text = _string(path, number, record, "text")
        if require_label and record.get("label") in (None, ""):
            raise ValueError(f"{path}:{number}: the record has no 'label'")
        records.append(
            {"text": text, "text_pair": record.get("text_pair") or None, "label": record.get("label")}
        )
    if not records:
        raise ValueError(f"{path} holds no record; expected JSON lines or CSV rows with 'text' and 'label'")
    return records


def read_text_pairs(path):
    """Reads sentence pairs for embedding training from a `.jsonl` or `.csv` file, one of two kinds:

    - scored pairs `{text, text_pair, score}` (a similarity in [-1, 1], the target cosine; STS-B's 0-5 scores
      divided by 5, say);
    - retrieval pairs `{query, positive}` (a query and a text that answers it; the other positives of a batch
      are its negatives).

    Returns:
        Records `{text, text_pair, score}`, all of one kind: for retrieval pairs the query is `text`, the positive
        `text_pair` and `score` None.

    Raises:
        ValueError: naming the file and line for an empty file, a malformed line, a missing field, a score
            outside [-1, 1], or a file that mixes the two kinds.
    """
    path = _check_file(path)
    kind, records = None, []
    for number, record in _rows(path):
        this_kind = "retrieval" if isinstance(record, dict) and "query" in record else "score"
        if kind is not None and this_kind != kind:
            raise ValueError(
                f"{path}:{number}: a {this_kind} pair in a file of {kind} pairs; use either "
                f"{{text, text_pair, score}} or {{query, positive}} records throughout"
            )
        kind = this_kind
        if kind == "retrieval":
            text, pair = _string(path, number, record, "query"), _string(path, number, record, "positive")
            records.append({"text": text, "text_pair": pair, "score": None})
            continue
        text, pair = _string(path, number, record, "text"), _string(path, number, record, "text_pair")
        try:
            score = float(record.get("score"))
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}:{number}: the record needs a numeric 'score', got {record!r:.200}"
            ) from None
        if not math.isfinite(score) or not -1 <= score <= 1:
            raise ValueError(
                f"{path}:{number}: score {record.get('score')!r} is outside [-1, 1]; scores are target cosine "
                f"similarities, so rescale them (STS-B's 0-5 scores: divide by 5)"
            )
        records.append({"text": text, "text_pair": pair, "score": score})
    if not records:
        raise ValueError(
            f"{path!r} holds no pair; expected JSON lines or CSV rows with text, text_pair, score "
            f"(or query, positive)"
        )
    return records


def read_conll(path):
    """Reads CoNLL-2003 style tagged sentences: a token per line, its first column the word and its last column
    the tag (columns separated by whitespace), a blank line between sentences; `-DOCSTART-` lines are skipped.

    Returns:
        A list of `{"words": [...], "tags": [...]}`, one per sentence.

    Raises:
        ValueError: naming the file and line for a line with fewer than two columns, or a file with no sentence.
    """
    path = _check_file(path)
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            columns = line.split()
            if not columns or columns[0] == "-DOCSTART-":
                if words:
                    sentences.append({"words": words, "tags": tags})
                words, tags = [], []
                continue
            if len(columns) < 2:
                raise ValueError(
                    f"{path}:{number}: expected a word and a tag separated by whitespace, got {line.strip()!r:.100}"
                )
            words.append(columns[0])
            tags.append(columns[-1])
    if words:
        sentences.append({"words": words, "tags": tags})
    if not sentences:
        raise ValueError(
            f"{path!r} holds no sentence; expected CoNLL lines 'word ... tag', blank between sentences"
        )
    return sentences


def read_squad(path):
    """Reads a SQuAD v1.1 or v2.0 JSON file (`{"data": [{"paragraphs": [{"context", "qas": [...]}]}]}`).

    Returns:
        A list of questions `{id, question, context, answers: [{text, answer_start}], is_impossible}`; a v2.0
        unanswerable question has `is_impossible` True and no answers.

    Raises:
        ValueError: naming the file (and line, for malformed JSON) for an empty file, a missing field, or an
            answer whose text is not in the context at its `answer_start`.
    """
    path = _check_file(path)
    document = _squad_document(path)
    questions = [
        _squad_question(path, paragraph.get("context"), qa)
        for article in document["data"]
        for paragraph in article.get("paragraphs", [])
        for qa in paragraph.get("qas", [])
    ]
    if not questions:
        raise ValueError(f"{path!r} holds no question; expected SQuAD JSON (data → paragraphs → qas)")
    return questions


def _squad_document(path):
    """The parsed SQuAD JSON of `path`; raises for an empty file, malformed JSON or no 'data' list."""
    with open(path, encoding="utf-8") as file:
        content = file.read()
    if not content.strip():
        raise ValueError(f"{path!r} is empty; expected SQuAD JSON (data → paragraphs → qas)")
    try:
        document = json.loads(content)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise ValueError(
            f"{path!r} is not a SQuAD file: expected a JSON object with a 'data' list of articles"
        )
    return document


def _squad_question(path, context, qa):
    """One question of `read_squad`'s list from a SQuAD `qa` entry and its paragraph's context, checked."""
    where = f"{path}: question {qa.get('id')!r}"
    if not isinstance(context, str) or not isinstance(qa.get("question"), str):
        raise ValueError(f"{where} needs a string 'question' and its paragraph a string 'context'")
    impossible = bool(qa.get("is_impossible", False))
    answers = qa.get("answers")
    if not isinstance(answers, list) or (not answers and not impossible):
        raise ValueError(
            f'{where} has no answers; SQuAD v2.0 marks unanswerable questions with "is_impossible": true'
        )
    for answer in answers:
        _check_squad_answer(where, context, answer, impossible)
    return {
        "id": str(qa.get("id")),
        "question": qa["question"],
        "context": context,
        "answers": [] if impossible else [dict(a) for a in answers],
        "is_impossible": impossible,
    }


def _check_squad_answer(where, context, answer, impossible):
    """Raises unless `answer` is a non-empty text found in `context` at its `answer_start`."""
    answer = answer if isinstance(answer, dict) else {}
    start, text = answer.get("answer_start"), answer.get("text")
    if not impossible and isinstance(text, str) and not text.strip():
        raise ValueError(
            f"{where}: an answer's text is empty; give the answer's words, or mark a question "
            f'without an answer (SQuAD v2.0) with "is_impossible": true and no answers'
        )
    if (
        not isinstance(start, int)
        or not isinstance(text, str)
        or (context[start : start + len(text)] != text)
    ):
        raise ValueError(f"{where}: answer {text!r:.80} is not at answer_start {start!r} of its context")
