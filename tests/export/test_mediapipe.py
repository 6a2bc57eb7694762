"""kbert's .tflite in MediaPipe Tasks on raw text: the real `mediapipe` runtime (TextEmbedder, TextClassifier), the
metadata read back with the schema module its wheel bundles, MediaPipe's tokenizer against kbert's port of it, and
the web demo in headless Chromium.

Runs in a TensorFlow-backend process (see conftest.py); real weights (all-MiniLM-L6-v2) and real text.
"""

import json
import os
import shutil
import subprocess
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytestmark = pytest.mark.backend_independent

from tests.export.conftest import LABELS, labelled_texts, train_classifier  # noqa: E402

EVAL_TEXTS = 240


def read_model_metadata(data):
    """The file's TFLite Support metadata, read with the schema module the `mediapipe` wheel bundles."""
    from ai_edge_litert import schema_py_generated as schema
    from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_schema

    model = schema.Model.GetRootAs(data, 0)
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
    buffer = model.Buffers(entries["TFLITE_METADATA"]).DataAsNumpy().tobytes()
    assert metadata_schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
    return metadata_schema.ModelMetadataT.InitFromPackedBuf(buffer, 0), model


def check_mediapipe_layout(data, output_name, labels=None):
    from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_schema

    metadata, model = read_model_metadata(data)
    assert metadata.minParserVersion == b"1.1.0"
    (subgraph,) = metadata.subgraphMetadata
    assert [tensor.name for tensor in subgraph.inputTensorMetadata] == [b"ids", b"mask", b"segment_ids"]
    # The Task Library's fallback is by position: the subgraph's inputs are ids, mask, segment_ids in that order.
    graph = model.Subgraphs(0)
    signature = model.SignatureDefs(0)
    names = {signature.Inputs(i).TensorIndex(): signature.Inputs(i).Name() for i in range(signature.InputsLength())}
    assert [names[graph.Inputs(i)] for i in range(3)] == [b"token_ids", b"padding_mask", b"segment_ids"]
    (tokenizer,) = subgraph.inputProcessUnits
    assert tokenizer.optionsType == metadata_schema.ProcessUnitOptions.BertTokenizerOptions
    assert tokenizer.options.vocabFile[0].name == b"vocab.txt"
    (output,) = subgraph.outputTensorMetadata
    assert output.name == output_name.encode()
    archive = zipfile.ZipFile(__import__("io").BytesIO(data))
    assert archive.read("vocab.txt").decode().splitlines()[101:103] == ["[CLS]", "[SEP]"]
    if labels is not None:
        (label_file,) = output.associatedFiles
        assert label_file.type == metadata_schema.AssociatedFileType.TENSOR_AXIS_LABELS
        assert archive.read(label_file.name.decode()).decode().splitlines() == labels


def test_minilm_embedder_in_mediapipe_text_embedder_fp32_and_int8(minilm_dir, tmp_path):
    """The real all-MiniLM-L6-v2 embedder in MediaPipe's TextEmbedder on raw text, against Keras."""
    import kbert
    from kbert.export import export_litert
    from kbert.export.evaluation import HARD_CASES, default_texts

    embedder = kbert.BertEmbedder.from_preset(minilm_dir, pooling="mean", normalize=True)
    records = [{"text": text} for text in default_texts(EVAL_TEXTS - len(HARD_CASES)) + list(HARD_CASES)]
    reports = {}
    for quantization in ("fp32", "dynamic"):
        output = tmp_path / f"minilm_{quantization}.tflite"
        reports[quantization] = export_litert(
            embedder, output, quantization, 128, eval_records=records, latency_repeats=3
        )
        check_mediapipe_layout(output.read_bytes(), "embedding")
    assert reports["dynamic"]["file_size_bytes"] <= 0.26 * reports["fp32"]["file_size_bytes"]
    assert reports["dynamic"]["outputs"]["embedding"]["mean_cosine"] >= 0.99
    for quantization, least in (("fp32", 0.999), ("dynamic", 0.99)):
        section = reports[quantization]["mediapipe"]
        assert section["ready"] and "MediaPipe Tasks TextEmbedder" in section["runtimes"]
        agreement = section["tokenizer_agreement"]
        assert agreement["texts"] == EVAL_TEXTS and agreement["share"] >= 0.9, agreement
        runtime = section["runtime"]
        assert runtime["texts"] == EVAL_TEXTS
        assert runtime["where_tokenizers_agree"]["mean_cosine"] >= least, (quantization, runtime)
    # The hard cases (accents, capitals beyond ASCII, control characters, literal [CLS]) are where they differ,
    # and the report says why.
    reasons = {reason for item in agreement["differing"] for reason in item["reasons"]}
    assert any("accents" in reason for reason in reasons), agreement
    assert agreement["warnings"]


def test_mediapipe_tokenizer_port_equals_the_runtime(tokenizer, tmp_path):
    """kbert's port of MediaPipe's tokenizer (used for the report's agreement) gives the ids the runtime feeds the
    model: a probe model whose 'embedding' is its input ids, run in MediaPipe's TextEmbedder."""
    import tensorflow as tf

    from kbert.export import converter, mediapipe
    from kbert.export.evaluation import HARD_CASES, default_texts
    from kbert.inputs import INPUT_KEYS

    length = 48
    spec = {key: tf.TensorSpec([1, length], tf.int32, name=key) for key in INPUT_KEYS}

    @tf.function(input_signature=[spec], autograph=False)
    def ids(inputs):
        unused = tf.cast(inputs["padding_mask"] + inputs["segment_ids"], tf.float32)
        return {"embedding": tf.cast(inputs["token_ids"], tf.float32) + 0.0 * unused}

    data = mediapipe.order_inputs(converter.convert_function(ids, [], "fp32"))
    metadata = mediapipe.model_metadata("probe", "its input ids", "embedding", "ids")
    data = converter.add_metadata(data, {mediapipe.METADATA_NAME: metadata})
    path = tmp_path / "probe.tflite"
    path.write_bytes(mediapipe.pack_files(data, mediapipe.associated_files(tokenizer, None)))
    texts = list(HARD_CASES) + default_texts(150) + [
        "Ünïcödé ÀÉÎ straße İstanbul ǅ", "non\u00a0breaking\u3000spaces", "form\x0cfeed\x0bvertical",
        "ＦＵＬＬ width", "日本語のテキスト", "e\u0301cole", "😀" * 30, "é" * 60, "ab" * 60, "[UNK] [PAD]",
    ]  # fmt: skip
    runtime, _, _ = mediapipe.run_file(path, texts, "TextEmbedder")
    port = mediapipe.mediapipe_token_ids(texts, tokenizer.vocabulary, length)
    np.testing.assert_array_equal(np.rint(runtime).astype(np.int32), port)
    # And where kbert's own tokenizer differs, the port says so.
    from kbert.text import SegmentPacker

    packer = SegmentPacker(length, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    ours = np.asarray(packer(tokenizer(texts))["token_ids"])
    report, agree = mediapipe.tokenizer_agreement(texts, tokenizer, ours, length)
    assert not agree[: len(HARD_CASES)].all() and agree[len(HARD_CASES) : -10].mean() > 0.95
    assert report["identical"] == int(agree.sum())
    # A cased model: MediaPipe lower-cases its text anyway, and the export warns.
    from kbert.text import WordPieceTokenizer

    cased = WordPieceTokenizer(tokenizer.vocabulary, lowercase=False)
    titles = ["The Python Standard Library", "no capitals here"]
    ours = np.asarray(packer(cased(titles))["token_ids"])
    report, agree = mediapipe.tokenizer_agreement(titles, cased, ours, length)
    assert list(agree) == [False, True] and any("cased" in warning for warning in report["warnings"])


@pytest.fixture(scope="module")
def classifier_export(vocab_path, tmp_path_factory):
    """A tiny classifier fine-tuned here (TensorFlow) on real sentences, exported fp32 with the web demo."""
    from kbert.export import export_litert

    model = train_classifier(vocab_path)
    folder = tmp_path_factory.mktemp("classifier")
    texts = labelled_texts(EVAL_TEXTS, skip=2000)
    records = [{"text": text, "label": LABELS[label]} for text, label in texts]
    report = export_litert(
        model, folder / "classifier.tflite", "fp32", 64, eval_records=records, labels=LABELS,
        latency_repeats=3, demo=True,
    )  # fmt: skip
    return model, report, folder, [text for text, _ in texts]


def test_finetuned_classifier_in_mediapipe_text_classifier(classifier_export):
    model, report, folder, _ = classifier_export
    assert report["outputs"]["probability"]["max_abs_diff"] <= 1e-5
    check_mediapipe_layout((folder / "classifier.tflite").read_bytes(), "probability", LABELS)
    section = report["mediapipe"]
    assert "TFLite Task Library BertNLClassifier" in section["runtimes"]
    runtime = section["runtime"]
    assert runtime["label_names"] == LABELS and runtime["label_names_match"]
    agreeing = runtime["where_tokenizers_agree"]
    assert agreeing["top1_agreement"] >= 0.995 and agreeing["max_abs_diff_probability"] <= 1e-3, runtime
    assert section["tokenizer_agreement"]["share"] >= 0.95


def test_mediapipe_refuses_models_it_cannot_serve_and_logits_stay_available(vocab_path, tmp_path):
    from kbert.export import ExportError, export_litert, read_metadata
    from tests.export.conftest import tiny_task

    for kind in ("token_classifier", "question_answerer"):
        model, _ = tiny_task(kind, vocab_path)
        with pytest.raises(ExportError, match="cannot export for MediaPipe: a Bert"):
            export_litert(model, tmp_path / f"{kind}.tflite", "fp32", 32, for_mediapipe=True)
        with pytest.raises(ExportError, match="web demo runs the file in MediaPipe"):
            export_litert(model, tmp_path / f"{kind}.tflite", "fp32", 32, demo=True)
    assert not list(tmp_path.iterdir())
    model, _ = tiny_task("classifier", vocab_path)
    with pytest.raises(ExportError, match="needs the class names"):
        export_litert(model, tmp_path / "c.tflite", "fp32", 32, for_mediapipe=True)
    report = export_litert(
        model, tmp_path / "c.tflite", "fp32", 32, labels=["a", "b", "c"], logits=True, num_eval=8,
        latency_repeats=2,
    )  # fmt: skip
    assert list(report["outputs"]) == ["logits"]
    assert report["mediapipe"]["ready"] and "TFLite Task Library BertNLClassifier" not in report["mediapipe"]["runtimes"]
    assert report["mediapipe"]["scores"] == "logits"
    assert json.loads(read_metadata((tmp_path / "c.tflite").read_bytes())["kbert_config.json"])["outputs"] == [
        "logits"
    ]


class _DemoServer(SimpleHTTPRequestHandler):
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
    }

    def do_POST(self):  # the page's self-check posts what it shows
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posted.append(json.loads(body))
        self.send_response(204)
        self.end_headers()
        self.server.done.set()

    def log_message(self, *args):
        pass


def test_web_demo_in_headless_chromium_shows_the_keras_probabilities(classifier_export, tmp_path):
    """The demo folder, `npm ci`'d and served from 127.0.0.1, in headless Chromium: for real sentences where the
    tokenizers agree, the bars show the Keras model's top-1 and probabilities within 1e-3."""
    model, report, folder, texts = classifier_export
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    npm = shutil.which("npm")
    if not (chromium and npm):
        if os.environ.get("KBERT_REQUIRE_BROWSER"):
            pytest.fail("KBERT_REQUIRE_BROWSER is set but chromium or npm is missing (.ci/run installs them)")
        pytest.skip("the browser test needs chromium and npm (Debian packages chromium, npm)")
    demo = folder / "classifier_demo"
    assert report["demo"] == str(demo)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=demo, check=True, timeout=300, capture_output=True)
    from kbert.export import mediapipe
    from kbert.text import SegmentPacker

    tokenizer = model.preprocessor.tokenizer
    packer = SegmentPacker(64, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    packed = {key: np.asarray(value) for key, value in packer(tokenizer(texts)).items()}
    _, agree = mediapipe.tokenizer_agreement(texts, tokenizer, packed["token_ids"], 64)
    chosen = [i for i in np.flatnonzero(agree)[:12]]
    (demo / "check.json").write_text(json.dumps([texts[i] for i in chosen]))

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_DemoServer, directory=str(demo)))
    server.posted, server.done = [], threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html?check=check.json"
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert server.done.wait(120), "the page posted nothing within 120 s"
    finally:
        browser.kill()
        browser.wait()
        server.shutdown()
    (posted,) = server.posted
    assert "error" not in posted, posted.get("error")
    assert posted["texts"] == [texts[i] for i in chosen] and len(chosen) >= 8
    keras_logits = np.asarray(model.predict({key: value[chosen] for key, value in packed.items()}, verbose=0))
    keras = np.exp(keras_logits - keras_logits.max(-1, keepdims=True))
    keras /= keras.sum(-1, keepdims=True)
    shown = np.array([[bars[name] for name in LABELS] for bars in posted["shown"]])
    np.testing.assert_array_equal(shown.argmax(-1), keras.argmax(-1))
    np.testing.assert_allclose(shown, keras, atol=1e-3)
    assert shown.max(-1).mean() > 0.6  # a fine-tuned model's confident probabilities, not a uniform guess
