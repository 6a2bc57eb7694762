"""The README's promises: its tour runs as written, and every kbert name it mentions can be imported."""

import importlib
import json
import os
import re

import keras
import numpy as np
import pytest

from tests.harness import REPO

README = os.path.join(REPO, "README.md")
TOUR_MARKER = "<!-- tour -->"

# A small labelled file for the tour's "train.jsonl": two labels, words repeated so the vocabulary learner keeps some.
GOOD = ["a warm and funny film", "the actors are wonderful", "a delight from start to end", "funny and warm"]
BAD = ["a dull and slow story", "the plot is a mess", "slow, dull and far too long", "a mess of a film"]


def readme_text():
    with open(README, encoding="utf-8") as file:
        return file.read()


def tour_code():
    """The fenced python block right after the README's `<!-- tour -->` marker."""
    text = readme_text()
    if TOUR_MARKER not in text:
        raise AssertionError(f"README.md has no {TOUR_MARKER} marker before its tour")
    match = re.match(r"\s*```python\n(.*?)\n```", text.split(TOUR_MARKER, 1)[1], re.DOTALL)
    if match is None:
        raise AssertionError(f"the {TOUR_MARKER} marker in README.md is not followed by a ```python block")
    return match[1]


def python_blocks(text):
    return re.findall(r"```python\n(.*?)\n```", text, re.DOTALL)


def mentioned_names(text):
    """Dotted `kbert.…` names in the README's python blocks and inline code, and `from kbert… import …` names."""
    code = python_blocks(text) + re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    names = set()
    for snippet in code:
        names.update(re.findall(r"(?<![\w./])kbert(?:\.[A-Za-z_]\w*)+", snippet))
        for module, imported in re.findall(r"from (kbert[\w.]*) import ([\w, ]+)", snippet):
            names.update(f"{module}.{name.strip()}" for name in imported.split(",") if name.strip())
    return sorted(names)


def resolve(dotted):
    """Imports the longest module prefix of `dotted`, then reads the rest as attributes."""
    parts = dotted.split(".")
    value, position = importlib.import_module(parts[0]), 1
    while position < len(parts):
        try:
            value = importlib.import_module(".".join(parts[: position + 1]))
        except ModuleNotFoundError:
            break
        position += 1
    for part in parts[position:]:
        value = getattr(value, part)
    return value


def test_the_tour_runs_on_a_small_file(tmp_path, monkeypatch):
    records = [{"text": text, "label": "good"} for text in GOOD] + [
        {"text": text, "label": "bad"} for text in BAD
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records * 3))
    monkeypatch.chdir(tmp_path)
    # The tour sets KERAS_BACKEND, which only matters before Keras is imported; keep this process's value after.
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())

    namespace = {"__name__": "readme_tour"}
    exec(compile(tour_code(), "README.md (tour)", "exec"), namespace)

    assert namespace["label_names"] == ["bad", "good"]
    assert np.asarray(namespace["logits"]).shape == (1, 2)
    assert (tmp_path / "my-classifier" / "model.keras").is_file()
    assert (tmp_path / "my-classifier" / "vocab.txt").is_file()
    assert (tmp_path / "my-classifier-hf" / "model.safetensors").is_file()
    # `classifier` is now the model loaded back from the kbert save: it gives the trained model's logits.
    reloaded_logits = namespace["classifier"].predict(["a text the model has not seen"], verbose=0)
    np.testing.assert_allclose(reloaded_logits, namespace["logits"], rtol=1e-5, atol=1e-5)


@pytest.mark.backend_independent
def test_every_kbert_name_in_the_readme_imports():
    names = mentioned_names(readme_text())
    assert "kbert.BertClassifier" in names, "the README's python code is no longer found"
    missing = []
    for name in names:
        try:
            resolve(name)
        except (ImportError, AttributeError) as error:
            missing.append(f"{name} ({type(error).__name__}: {error})")
    assert not missing, "README names that do not import: " + "; ".join(missing)
