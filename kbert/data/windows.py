"""Fine-tuning records → packed BERT windows, and the model's outputs on windows → one prediction per record.

A window is one `[CLS] A [SEP] (B [SEP])` row of `seq_len` tokens packed by `kbert.SegmentPacker`. A text longer
than a window spans several, placed as BERT's `run_squad.py` places its document spans: each starts `stride` tokens
after the previous one (at most a window further), and the last reaches the end. An `example` array maps each window
back to its record.
"""

import dataclasses

import numpy as np

from kbert.inputs import IGNORE_LABEL
from kbert.text.packing import pack_ids

LONG_TEXT = ("truncate", "mean", "max")
MAX_QUESTION_TOKENS = 64  # BERT's max_query_length: longer questions are cut


def window_spans(length, window, stride):
    """`(start, size)` of the windows of at most `window` tokens over `length` tokens (BERT's doc spans)."""
    if window < 1 or stride < 1:
        raise ValueError(f"window={window} and stride={stride} must be >= 1; raise seq_len or the stride")
    spans, start = [], 0
    while True:
        size = min(length - start, window)
        spans.append((start, size))
        if start + size >= length:
            return spans
        start += min(size, stride)


def _ids(tokenizer, texts):
    return tokenizer(list(texts)).to_list()


def encode_texts(tokenizer, texts, pairs=None, seq_len=128, long_text="truncate", stride=128):
    """Texts (and optional second texts) as windows for classification or embedding.

    Args:
        texts, pairs: lists of strings (`pairs` None for single texts).
        long_text: "truncate": one window per text, cut to fit (longest-first for pairs); "mean" or "max": a text
            longer than a window is cut into several windows `stride` tokens apart (`pairs` keep at most half a
            window, repeated in each), whose outputs `aggregate` combines.

    Returns:
        `(inputs, example)`: the packed arrays [windows, seq_len] and each window's text index [windows].
    """
    if long_text not in LONG_TEXT:
        raise ValueError(f"long_text={long_text!r}; choose one of {LONG_TEXT}")
    first = _ids(tokenizer, texts)
    second = _ids(tokenizer, [pair or "" for pair in pairs]) if pairs is not None else None
    if long_text == "truncate":
        return pack_ids(tokenizer, first, second, seq_len), np.arange(len(first))
    window_first, window_second, example = [], [], []
    for index, ids in enumerate(first):
        pair_ids = second[index][: (seq_len - 3) // 2] if second is not None else []
        budget = seq_len - 2 - (len(pair_ids) + 1 if second is not None else 0)
        for start, size in window_spans(len(ids), budget, stride):
            window_first.append(ids[start : start + size])
            window_second.append(pair_ids)
            example.append(index)
    packed = pack_ids(tokenizer, window_first, window_second if second is not None else None, seq_len)
    return packed, np.asarray(example)


def aggregate(outputs, example, num_examples, long_text):
    """Combines the windows' outputs [windows, ...] into one per record [num_examples, ...]: their mean or their
    elementwise max ("truncate" has one window per record)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if long_text == "max":
        combined = np.full((num_examples, *outputs.shape[1:]), -np.inf)
        np.maximum.at(combined, example, outputs)
        return combined
    combined = np.zeros((num_examples, *outputs.shape[1:]))
    np.add.at(combined, example, outputs)
    return combined / np.bincount(example, minlength=num_examples).reshape(-1, *[1] * (outputs.ndim - 1))


def encode_tags(tokenizer, sentences, seq_len, tag_ids=None):
    """CoNLL sentences (`{"words", "tags"}`) as one window each, words tokenized one by one into WordPieces.

    A word's tag labels its first piece; the other pieces, [CLS], [SEP] and padding carry the ignored label
    (`kbert.inputs.IGNORE_LABEL`). A sentence longer than the window is cut: its words without a piece
    inside have no position (and are predicted "O" by `word_tags`).

    Returns:
        `(inputs, labels, positions)`: packed arrays [sentences, seq_len]; int32 labels [sentences, seq_len]
        (None without `tag_ids`); per sentence the position of each word's first piece, -1 when it has none.
    """
    pieces = iter(_ids(tokenizer, [word for sentence in sentences for word in sentence["words"]]))
    ignore = IGNORE_LABEL
    first, labels, positions = [], np.full((len(sentences), seq_len), ignore, np.int32), []
    for row, sentence in enumerate(sentences):
        ids, word_positions = [], []
        for tag in sentence["tags"]:
            word_pieces = next(pieces)
            if word_pieces and len(ids) < seq_len - 2:
                word_positions.append(1 + len(ids))  # after [CLS]
                if tag_ids is not None:
                    labels[row, 1 + len(ids)] = tag_ids[tag]
            else:
                word_positions.append(-1)
            ids.extend(word_pieces)
        first.append(ids[: seq_len - 2])
        positions.append(word_positions)
    return pack_ids(tokenizer, first, None, seq_len), (labels if tag_ids is not None else None), positions


def word_tags(logits, positions, tag_names):
    """Each word's tag: the arg-max at its first piece (`logits[sentence]` is [length, tags]), "O" without one."""
    return [
        [tag_names[int(np.argmax(rows[p]))] if p >= 0 else "O" for p in sentence_positions]
        for rows, sentence_positions in zip(logits, positions, strict=True)
    ]


@dataclasses.dataclass
class SquadWindows:
    """SQuAD questions as BERT's windows `[CLS] question [SEP] context span [SEP]`.

    Attributes:
        inputs: packed int32 arrays [windows, seq_len].
        start_positions, end_positions: int32 [windows], the answer's first and last token in the window, both 0
            ([CLS]) when the question has no answer or the window does not hold all of it.
        example: int [windows], the question of each window.
        spans: per window `(first context token, context tokens, position of the first context token)`.
        token_chars: per question, the character `(starts, ends)` of its context tokens in the context.
    """

    inputs: dict
    start_positions: np.ndarray
    end_positions: np.ndarray
    example: np.ndarray
    spans: list
    token_chars: list


def encode_squad(tokenizer, questions, seq_len, doc_stride=128):
    """`kbert.data.read_squad` questions as windows of `seq_len` with contexts split `doc_stride` tokens apart;
    the answer (the first one) maps to tokens through the tokenizer's character offsets."""
    question_ids = _ids(tokenizer, [q["question"] for q in questions])
    contexts = list(dict.fromkeys(q["context"] for q in questions))
    ids, starts, ends = tokenizer.tokenize_with_offsets(contexts, unit="char")
    tokenized = dict(
        zip(contexts, zip(ids.to_list(), starts.to_list(), ends.to_list(), strict=True), strict=True)
    )
    first, second, start_positions, end_positions, example, spans, token_chars = [], [], [], [], [], [], []
    for index, question in enumerate(questions):
        context_ids, char_starts, char_ends = tokenized[question["context"]]
        token_chars.append((np.asarray(char_starts), np.asarray(char_ends)))
        asked = question_ids[index][: min(MAX_QUESTION_TOKENS, seq_len // 2)]
        answer_tokens = None
        if question["answers"]:
            answer = question["answers"][0]
            begin, end = answer["answer_start"], answer["answer_start"] + len(answer["text"])
            inside = [k for k in range(len(context_ids)) if char_ends[k] > begin and char_starts[k] < end]
            answer_tokens = (inside[0], inside[-1]) if inside else None
        offset = len(asked) + 2
        for start, size in window_spans(len(context_ids), seq_len - 3 - len(asked), doc_stride):
            first.append(asked)
            second.append(context_ids[start : start + size])
            example.append(index)
            spans.append((start, size, offset))
            holds = (
                answer_tokens is not None and start <= answer_tokens[0] and answer_tokens[1] < start + size
            )
            start_positions.append(offset + answer_tokens[0] - start if holds else 0)
            end_positions.append(offset + answer_tokens[1] - start if holds else 0)
    return SquadWindows(
        inputs=pack_ids(tokenizer, first, second, seq_len),
        start_positions=np.asarray(start_positions, np.int32),
        end_positions=np.asarray(end_positions, np.int32),
        example=np.asarray(example),
        spans=spans,
        token_chars=token_chars,
    )


def _max_context(spans, window, token):
    """Whether `window` gives `token` its most context (BERT's `_check_is_max_context`): of the windows that hold
    it, the one where min(tokens left, tokens right) + 0.01 x window size is largest."""
    best, best_window = None, None
    for index, (start, size, _) in enumerate(spans):
        if start <= token < start + size:
            score = min(token - start, start + size - 1 - token) + 0.01 * size
            if best is None or score > best:
                best, best_window = score, index
    return best_window == window


def best_answers(
    questions, windows, start_logits, end_logits, max_answer_length=30, n_best=20, allow_no_answer=False
):
    """The answer text of each question: the best-scoring span (start logit + end logit) over its windows.

    As BERT's `write_predictions`: in each window the `n_best` highest start and end logits among the context
    tokens are paired, keeping start <= end, at most `max_answer_length` tokens, and starts in the window that
    gives them most context. With `allow_no_answer` (SQuAD v2.0), "" is predicted when the lowest [CLS] score
    (start + end logit at position 0) over the windows beats the best span.

    Args:
        questions: the records given to `encode_squad`; windows: its result.
        start_logits, end_logits: per window, the model's logits over (at least) its real tokens.

    Returns:
        `{question id: answer text}`.
    """
    per_question = [[] for _ in questions]
    for window, index in enumerate(windows.example):
        per_question[index].append(window)
    answers = {}
    for index, question in enumerate(questions):
        char_starts, char_ends = windows.token_chars[index]
        spans = [windows.spans[w] for w in per_question[index]]
        best_score, best_text, null_score = -np.inf, "", np.inf
        for local, window in enumerate(per_question[index]):
            start_row, end_row = np.asarray(start_logits[window]), np.asarray(end_logits[window])
            first_token, size, offset = spans[local]
            null_score = min(null_score, float(start_row[0] + end_row[0]))
            positions = np.arange(offset, offset + size)
            starts = [p for p in positions if _max_context(spans, local, first_token + p - offset)]
            starts = sorted(starts, key=lambda p: -start_row[p])[:n_best]
            ends = positions[np.argsort(-end_row[positions], kind="stable")[:n_best]]
            for begin in starts:
                for end in ends:
                    if end < begin or end - begin + 1 > max_answer_length:
                        continue
                    score = float(start_row[begin] + end_row[end])
                    if score > best_score:
                        best_score = score
                        best_text = question["context"][
                            char_starts[first_token + begin - offset] : char_ends[first_token + end - offset]
                        ]
        answers[question["id"]] = "" if allow_no_answer and null_score > best_score else best_text
    return answers
