"""The web demo: a static page beside a MediaPipe-ready `.tflite` that runs it with MediaPipe Tasks for Web.

`<stem>_demo/` holds `index.html`, `demo.js`, a pinned `package.json` with its lock file, a copy of the file as
`model.tflite` and `demo.json` (the task and title). `npm ci` in the folder brings `@mediapipe/tasks-text` (its JS and
WASM files), and any static server of the folder serves the page: nothing is fetched from a CDN at run time.
"""

import json
import os
import shutil

from kbert.export.loading import ExportError
from kbert.files import atomic_write, write_bytes

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
TEMPLATE_FILES = ("index.html", "demo.js", "package.json", "package-lock.json")
CONFIG = "demo.json"
MODEL = "model.tflite"


def demo_folder(output):
    """The demo folder of the `.tflite` at `output`: `<stem>_demo` beside it."""
    return os.path.splitext(os.fspath(output))[0] + "_demo"


def check_demo_folder(folder):
    """Refuses a demo folder that would overwrite something that is not an earlier kbert demo."""
    if not os.path.exists(folder):
        return
    if not os.path.isdir(folder):
        raise ExportError(f"the demo folder {folder!r} is a file; move it, or export without the demo")
    config = os.path.join(folder, CONFIG)
    if os.listdir(folder) and not _is_demo_config(config):
        raise ExportError(
            f"the demo folder {folder!r} holds other files (no kbert {CONFIG}); empty it, or export elsewhere"
        )


def _is_demo_config(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file).get("generator") == "kbert"
    except (OSError, ValueError, AttributeError):
        return False


def write_demo(folder, data, task, title):
    """Writes the demo into `folder` (created; an earlier kbert demo's files replaced, its `node_modules` kept).

    Args:
        folder: from `demo_folder`, checked by `check_demo_folder`.
        data: the `.tflite` bytes (MediaPipe-ready).
        task: "TextClassifier" or "TextEmbedder".
        title: the page's heading.
    """
    os.makedirs(folder, exist_ok=True)
    for name in TEMPLATE_FILES:
        atomic_write(
            os.path.join(folder, name), lambda path, name=name: shutil.copyfile(_template(name), path)
        )
    write_bytes(data, os.path.join(folder, MODEL))
    config = json.dumps({"generator": "kbert", "task": task, "title": title}, indent=1).encode("utf-8")
    write_bytes(config, os.path.join(folder, CONFIG))
    return folder


def _template(name):
    return os.path.join(TEMPLATE, name)
