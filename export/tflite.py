"""Export a kbert model (trained on any backend) to a verified LiteRT .tflite file.

    python export/tflite.py --model runs/classifier/ --out classifier.tflite --quantization dynamic --with-tokenizer

Writes the .tflite (only if it passes verification), then `<name>.report.json` and `<name>.report.png`; with
`--format savedmodel` / `--format onnx` also a TF SavedModel (`<name>_savedmodel/`) and an ONNX file (`<name>.onnx`)
for servers, token ids in, each checked against the Keras model in the same report. A failed export writes its report
(with the "error") and no .tflite. Bad input: `error: ...` on stderr, exit code 2 (`--debug`: the traceback).
"""

import os
import sys

# The export runs on the TensorFlow backend whatever backend trained the model; set before Keras is imported.
os.environ["KERAS_BACKEND"] = "tensorflow"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from recipes.flags import add_debug_flag, new_parser, parse, run  # noqa: E402 (Keras-free)


def parse_args(argv=None):
    parser = new_parser(__doc__)
    parser.add_argument(
        "--model", required=True, help="a kbert save folder (model.keras, vocab.txt) or a .keras file"
    )
    parser.add_argument("--out", required=True, help="the .tflite path to write")
    parser.add_argument(
        "--quantization", default="dynamic", choices=("fp32", "fp16", "dynamic", "int8", "16x8", "int8-mixed"),
        help="dynamic = dynamic-range int8 weights; int8 = full integer (over budget: 16x8, then int8-mixed)",
    )  # fmt: skip
    parser.add_argument(
        "--format", action="append", choices=("tflite", "savedmodel", "onnx"), default=[],
        help="also write a server format beside the .tflite (repeatable); the .tflite is always written",
    )  # fmt: skip
    parser.add_argument(
        "--seq-len", type=int, default=128, help="packed sequence length (the maximum, with text in)"
    )
    parser.add_argument(
        "--dynamic-seq-len", action="store_true", help="token-id inputs of any length [1, None]"
    )
    parser.add_argument(
        "--with-tokenizer", action="store_true", help="string in: the tokenizer inside the file"
    )
    parser.add_argument("--text-pair", action="store_true", help="string-in models also take text_pair")
    parser.add_argument(
        "--mediapipe", action="store_true",
        help="fail unless the file can be MediaPipe-ready (single-text classifiers and embedders, token ids in); "
        "without the flag it is MediaPipe-ready wherever it can be",
    )  # fmt: skip
    parser.add_argument(
        "--logits", action="store_true", help="a classifier outputs raw logits instead of probabilities"
    )
    parser.add_argument(
        "--demo", action="store_true",
        help="also write <name>_demo/: a web page running the file with MediaPipe Tasks for Web (npm ci there)",
    )  # fmt: skip
    parser.add_argument("--vocab", help="vocab.txt for a bare .keras file without a preprocessor")
    parser.add_argument("--labels", help="class names: a JSON list file, or names separated by commas")
    parser.add_argument("--representative", help="calibration text for int8/16x8, one text a line")
    parser.add_argument(
        "--eval", help='held-out JSON Lines {"text", "text_pair"?, "label"?}; default built-in corpus'
    )
    parser.add_argument("--num-calibration", type=int, default=100)
    parser.add_argument("--num-eval", type=int, default=64)
    parser.add_argument(
        "--max-accuracy-drop", type=float, default=1.0,
        help="fail (write no .tflite) if the file loses more points than this; negative: no limit",
    )  # fmt: skip
    parser.add_argument("--latency-repeats", type=int, default=30)
    add_debug_flag(parser)
    return parse(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    return run(args, lambda: export(args))


def export(args):
    from kbert.data.records import read_records
    from kbert.export.evaluation import read_calibration_texts, read_labels
    from kbert.export.litert import export_litert

    # Every input file first, so a bad one is refused before the model loads or anything is written.
    labels = read_labels(args.labels) if args.labels else None
    representative = read_calibration_texts(args.representative) if args.representative else None
    eval_records = read_records(args.eval, require_label=False)[: args.num_eval] if args.eval else None
    report = export_litert(
        args.model,
        args.out,
        quantization=args.quantization,
        sequence_length=args.seq_len,
        dynamic_length=args.dynamic_seq_len,
        with_tokenizer=args.with_tokenizer,
        with_pair=args.text_pair,
        representative_texts=representative,
        eval_records=eval_records,
        num_calibration=args.num_calibration,
        num_eval=args.num_eval,
        max_accuracy_drop=None if args.max_accuracy_drop < 0 else args.max_accuracy_drop,
        vocabulary=args.vocab,
        labels=labels,
        latency_repeats=args.latency_repeats,
        server_formats=[name for name in dict.fromkeys(args.format) if name != "tflite"],
        for_mediapipe=True if args.mediapipe else None,
        logits=args.logits,
        demo=args.demo,
    )
    main_output = next(iter(report["outputs"]))
    print(
        f"wrote {args.out}: {report['shipped']}, {report['file_size_bytes'] / 1e6:.2f} MB, "
        f"max |Δ| {report['outputs'][main_output]['max_abs_diff']:.3g}, "
        f"mean cosine {report['outputs'][main_output]['mean_cosine']:.5f}, "
        f"accuracy drop {report['accuracy_drop_points']:.2f} points, latency {report['latency_ms']:.2f} ms"
        + (f" ({report['remedy']})" if report["shipped"] != args.quantization else "")
    )
    print(_mediapipe_line(report["mediapipe"]))
    for warning in (report["mediapipe"].get("tokenizer_agreement") or {}).get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    if report.get("demo"):
        print(f"wrote {report['demo']}/ (cd there, npm ci, then serve the folder: python -m http.server)")
    for name, server in (report["servers"] or {}).items():
        parity = server["outputs"][main_output]
        print(
            f"wrote {os.path.join(os.path.dirname(args.out), server['path'])} ({name}, {server['runtime']}): max |Δ| {parity['max_abs_diff']:.3g}, "
            f"mean cosine {parity['mean_cosine']:.6f}, latency {server['latency_ms']:.2f} ms"
        )
    return 0


def _mediapipe_line(section):
    if not section["ready"]:
        return f"MediaPipe: no ({section['reason']})"
    agreement = section["tokenizer_agreement"]
    line = (
        f"MediaPipe-ready ({', '.join(section['runtimes'][1:])}); its tokenizer agrees with kbert's on "
        f"{agreement['identical']} of {agreement['texts']} eval texts"
    )
    runtime = section.get("runtime")
    if runtime is None:
        return line + " (pip install mediapipe to run the file in it here)"
    measured = runtime["where_tokenizers_agree"]
    figures = ", ".join(f"{key.replace('_', ' ')} {value:.4g}" for key, value in measured.items())
    return line + f"; in MediaPipe there: {figures}, {runtime['median_latency_ms']:.2f} ms a text"


if __name__ == "__main__":
    sys.exit(main())
