"""Small fine-tuning files written by the tests: CoNLL sentences, SQuAD paragraphs, sentence pairs."""

import json

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
to TO B-VP O
boycott VB I-VP O
British JJ B-NP B-MISC
lamb NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O

The DT B-NP O
European NNP I-NP B-ORG
Commission NNP I-NP I-ORG
said VBD B-VP O
on IN B-PP O
Thursday NNP B-NP O
it PRP B-NP O
disagreed VBD B-VP O
with IN B-PP O
German JJ B-NP B-MISC
advice NN I-NP O
. . O O

Germany NNP B-NP B-LOC
's POS B-NP O
representative NN I-NP O
to TO B-PP O
the DT B-NP O
European NNP I-NP B-ORG
Union NNP I-NP I-ORG
's POS B-NP O
veterinary JJ I-NP O
committee NN I-NP O
Werner NNP I-NP B-PER
Zwingmann NNP I-NP I-PER
said VBD B-VP O
. . O O
"""

PARAGRAPHS = [
    (
        "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
        "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.",
        [
            ("Where is the Eiffel Tower?", "Paris, France"),
            ("Who is the tower named after?", "Gustave Eiffel"),
            ("When was the tower built?", "from 1887 to 1889"),
            ("What is the tower made of?", "wrought-iron"),
        ],
    ),
    (
        "Python is a high-level programming language. Its design philosophy emphasizes code readability with "
        "the use of significant indentation. Guido van Rossum began working on Python in the late 1980s.",
        [
            ("Who began working on Python?", "Guido van Rossum"),
            ("What does its design philosophy emphasize?", "code readability"),
            ("When did work on Python begin?", "the late 1980s"),
        ],
    ),
]


def write_conll(path, text=CONLL):
    path.write_text(text, encoding="utf-8")
    return str(path)


def squad_document(paragraphs=PARAGRAPHS, impossible=()):
    """SQuAD JSON: v1.1 without `impossible` questions, v2.0 (with `is_impossible` on every question) with them."""
    version2 = bool(impossible)
    qas, number = [], 0
    for context, questions in paragraphs:
        entries = []
        for question, answer in questions:
            number += 1
            entry = {
                "id": f"q{number}",
                "question": question,
                "answers": [{"text": answer, "answer_start": context.index(answer)}],
            }
            if version2:
                entry["is_impossible"] = False
            entries.append(entry)
        qas.append({"context": context, "qas": entries})
    for index, question in enumerate(impossible):
        qas[0]["qas"].append({"id": f"x{index}", "question": question, "answers": [], "is_impossible": True})
    return {"version": "v2.0" if version2 else "1.1", "data": [{"title": "Test", "paragraphs": qas}]}


def write_squad(path, **kwargs):
    path.write_text(json.dumps(squad_document(**kwargs)), encoding="utf-8")
    return str(path)


SCORED_PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 0.96),
    ("A woman is slicing an onion.", "Someone is cutting an onion.", 0.84),
    ("A cat sits on the mat.", "The stock market fell sharply today.", 0.0),
    ("Two dogs run through a field.", "Dogs are running in the grass.", 0.76),
    ("A child is reading a book.", "The weather is cold and windy.", 0.04),
    ("The train arrives at noon.", "The train comes in at twelve o'clock.", 0.92),
    ("A chef is cooking pasta.", "A person is swimming in the sea.", 0.08),
    ("He bought a new car.", "He purchased a new vehicle.", 0.88),
]

RETRIEVAL_PAIRS = [
    ("how do I reverse a list in python", "Call list.reverse() or slice with [::-1]."),
    ("what is the capital of france", "Paris is the capital and largest city of France."),
    ("how tall is mount everest", "Mount Everest is 8,849 metres above sea level."),
    ("who wrote hamlet", "Hamlet is a tragedy written by William Shakespeare."),
    ("what do pandas eat", "Giant pandas feed almost entirely on bamboo."),
    ("how many legs does a spider have", "Spiders have eight legs."),
]


def write_pairs(path, kind="score"):
    if kind == "score":
        rows = [{"text": a, "text_pair": b, "score": s} for a, b, s in SCORED_PAIRS]
    else:
        rows = [{"query": q, "positive": p} for q, p in RETRIEVAL_PAIRS]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)
