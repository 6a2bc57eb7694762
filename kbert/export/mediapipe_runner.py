"""Runs a `.tflite` in MediaPipe Tasks on raw texts, in a process of its own (run as a script, not imported).

    python kbert/export/mediapipe_runner.py MODEL.tflite TextClassifier|TextEmbedder < texts.json > result.json

Reads a JSON list of texts on stdin; writes `{"outputs": [[float...]...], "labels": [...] | null, "seconds": s}`:
per text the probabilities by class index (classifier) or the embedding, the classifier's category names by index,
and the median seconds of one call. A process of its own keeps MediaPipe's runtime apart from TensorFlow's (in one
process, a MediaPipe task collected by the garbage collector during TensorFlow graph building was seen to hang).
"""

import json
import os
import statistics
import sys
import time


def run(path, task, texts):
    from mediapipe.tasks.python.core import base_options
    from mediapipe.tasks.python.text import text_classifier, text_embedder

    options = base_options.BaseOptions(model_asset_path=path)
    if task == "TextClassifier":
        runner = text_classifier.TextClassifier.create_from_options(
            text_classifier.TextClassifierOptions(base_options=options)
        )
    else:
        runner = text_embedder.TextEmbedder.create_from_options(
            text_embedder.TextEmbedderOptions(base_options=options)
        )
    rows, names, times = [], {}, []
    try:
        for text in texts:
            start = time.perf_counter()
            if task == "TextClassifier":
                categories = runner.classify(text).classifications[0].categories
                times.append(time.perf_counter() - start)
                row = [0.0] * len(categories)
                for category in categories:
                    row[category.index] = float(category.score)
                    names[category.index] = category.category_name
            else:
                row = [float(value) for value in runner.embed(text).embeddings[0].embedding]
                times.append(time.perf_counter() - start)
            rows.append(row)
    finally:
        runner.close()
    labels = [names[index] for index in range(len(names))] if names else None
    return {"outputs": rows, "labels": labels, "seconds": statistics.median(times) if times else 0.0}


if __name__ == "__main__":
    # This folder holds kbert's own mediapipe.py, which must not shadow the package.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    model_path, task_name = sys.argv[1:3]
    json.dump(run(model_path, task_name, json.load(sys.stdin)), sys.stdout)
