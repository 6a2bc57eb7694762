"""Corpus readers: documents as lists of sentences.

A *document* is a list of sentence strings. Readers stream (generators), so corpora larger than memory work;
bad input never raises: invalid UTF-8 is decoded with U+FFFD (which the tokenizer deletes, as the reference),
NUL bytes and huge lines pass through, empty files give no documents.
"""

import ast
import functools
import glob
import json
import os
import re
import sysconfig

# A sentence ends at . ! ? (optionally closed by quotes or brackets) followed by space and a capital, digit or
# opening quote/bracket; "e.g."-style abbreviations and initials do not end one.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[])")
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|cf|Mr|Mrs|Dr|No|Fig)|\b[A-Z])\.$")


def split_sentences(text):
    """Splits a paragraph into sentences with a small rule-based splitter (no model, no download)."""
    text = " ".join(text.split())
    if not text:
        return []
    sentences, start = [], 0
    for match in _SENTENCE_BREAK.finditer(text):
        candidate = text[start : match.start()].rstrip()
        if _ABBREVIATION.search(candidate.rstrip("\"')]")):
            continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if sentence]


def _expand(paths):
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    files = []
    for path in paths:
        path = os.fspath(path)
        matches = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
        if not matches:
            raise FileNotFoundError(f"no file matches {path!r}")
        for match in matches:
            if not os.path.isfile(match):
                raise FileNotFoundError(f"corpus file {match!r} does not exist (or is not a file)")
        files += matches
    return files


def read_bert_text(paths):
    """Yields documents from files in BERT's pretraining format: one sentence a line, blank line between documents.

    Args:
        paths: a path, a glob pattern, or a list of them.
    """
    for path in _expand(paths):
        document = []
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                line = line.strip()
                if line:
                    document.append(line)
                elif document:
                    yield document
                    document = []
        if document:
            yield document


def read_jsonl(paths, field="text"):
    """Yields documents from JSON Lines files, one document per line's `field` (split into sentences).

    Lines that are blank, not JSON objects, or lack a string `field` are skipped.

    Args:
        paths: a path, a glob pattern, or a list of them.
        field: the key holding the document's text.
    """
    for path in _expand(paths):
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                text = record.get(field) if isinstance(record, dict) else None
                if isinstance(text, str):
                    document = [s for paragraph in text.split("\n") for s in split_sentences(paragraph)]
                    if document:
                        yield document


def _docstring_sentences(docstring):
    """Prose sentences of a docstring: doctest, code-like and field-list lines are dropped."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", docstring):
        lines = [line.strip() for line in paragraph.splitlines()]
        if any(line.startswith((">>>", "...", "$ ", "::")) for line in lines):
            continue
        prose = [line for line in lines if line and not re.match(r"^[-=~*]{3,}$|^:\w+", line)]
        for sentence in split_sentences(" ".join(prose)):
            words = sentence.split()
            if len(words) >= 3 and sum(c.isalpha() for c in sentence) > 0.6 * len(sentence):
                sentences.append(sentence)
    return sentences


@functools.lru_cache(maxsize=4)
def _builtin_documents(max_files):
    stdlib = sysconfig.get_paths()["stdlib"]
    skipped = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__"}
    files = []
    for root, directories, names in os.walk(stdlib):
        directories[:] = sorted(d for d in directories if d not in skipped)
        files += [os.path.join(root, name) for name in sorted(names) if name.endswith(".py")]
    files = sorted(files)[:max_files]
    documents = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as file:
            source = file.read()
        try:
            tree = ast.parse(source)  # parsed, never imported: some modules act on import
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                docstring = ast.get_docstring(node)
                sentences = _docstring_sentences(docstring) if docstring else []
                if sentences:
                    documents.append(tuple(sentences))
    return tuple(documents)


def builtin_corpus(max_files=None):
    """The default corpus, present on every machine: docstrings of Python's standard library.

    Every module, class and function docstring with prose becomes a document of sentences. Sources are parsed
    with `ast`, never imported. The order is deterministic (sorted paths), so a seed reproduces a run.

    Args:
        max_files: read only the first `max_files` source files (sorted by path); `None` reads all (~600 files,
            ~7,000 documents, a few seconds).

    Returns:
        A list of documents, each a list of sentence strings.
    """
    documents = _builtin_documents(max_files)
    if not documents:
        raise RuntimeError(
            f"no docstrings found under {sysconfig.get_paths()['stdlib']!r}; is the stdlib there?"
        )
    return [list(document) for document in documents]
