"""Distil a fine-tuned BERT classifier into a smaller student, then export the student to LiteRT.

    python export/distill.py --teacher runs/teacher --train train.jsonl --dev dev.jsonl --student-size tiny \\
        --out runs/distill

--teacher is a kbert save folder (model.keras, vocab.txt, labels.json) or a .keras file (then --vocab). Writes to
--out: student/ (a kbert save), metrics.json (teacher and student dev accuracy, parameter counts, the shares
retained) and student.tflite with its report (dynamic-range int8 by default; --quantize none skips the export).
Every setting and path is checked before a file is written; a refusal prints `error: ...` and exits with code 2
(`--debug`: the traceback); the export's exit code is the script's. The logic lives in `kbert.training.distillation`
and `kbert.export.litert`.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from recipes.flags import add_run_flags, config_fields, new_parser, parse, run  # noqa: E402 (Keras-free)

QUANTIZATIONS = ("none", "fp32", "fp16", "dynamic", "int8", "16x8")


def parse_args(argv=None):
    parser = new_parser(__doc__)
    parser.add_argument(
        "--teacher", required=True, help="fine-tuned classifier: kbert save folder or .keras."
    )
    parser.add_argument("--vocab", help="vocab.txt for a bare .keras teacher without a preprocessor.")
    parser.add_argument(
        "--train", required=True, help="training records (.jsonl or .csv: text, text_pair, label)."
    )
    parser.add_argument("--dev", help="dev records: teacher and student accuracy, and the export's check.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--student-size",
        default="tiny",
        help="a named size: tiny, mini, small, medium, L4_H256... (default tiny).",
    )
    size.add_argument(
        "--student-layers",
        type=int,
        help="instead: the teacher's width with this many of its blocks (every k-th, copied).",
    )
    parser.add_argument(
        "--general-epochs",
        type=int,
        default=0,
        help="epochs of general distillation first: hidden states and attentions, no labels (default 0: none).",
    )
    parser.add_argument(
        "--unlabeled", help="text for general distillation: .txt (a text a line) or records; default --train."
    )
    parser.add_argument(
        "--student-vocab-size",
        dest="student_vocabulary_size",
        type=int,
        help="a smaller student vocabulary learned on the training texts (output losses only).",
    )
    parser.add_argument("--temperature", type=float, default=2.0, help="softmax temperature (default 2).")
    parser.add_argument(
        "--alpha",
        type=float,
        default=0.5,
        help="share of the soft loss; the rest is the hard-label loss (default 0.5).",
    )
    parser.add_argument(
        "--hidden-loss",
        type=float,
        default=0.0,
        help="weight of the hidden-state MSE (TinyBERT; default 0: off).",
    )
    parser.add_argument(
        "--attention-loss",
        type=float,
        default=0.0,
        help="weight of the attention KL (TinyBERT/MiniLM; default 0: off).",
    )
    parser.add_argument("--seq-len", type=int, default=128, help="longest packed sequence (default 128).")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per step (default 32).")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3).")
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4).")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default="dynamic",
        help="LiteRT quantization of the student (default dynamic: int8 weights; none: no export).",
    )
    add_run_flags(
        parser,
        out="runs/distill",
        seed_help="seed of shuffling, dropout and a fresh student",
        backend_help="Keras backend for training (default jax); the export always runs on tensorflow.",
        mixed_precision=False,
    )
    return parse(parser, argv)


def export_student(args):
    """Exports DIR/student to DIR/student.tflite with export/tflite.py (a TensorFlow-backend process)."""
    command = [
        sys.executable, os.path.join(HERE, "tflite.py"),
        "--model", os.path.join(args.out, "student"),
        "--out", os.path.join(args.out, "student.tflite"),
        "--quantization", args.quantize,
        "--seq-len", str(args.seq_len),
    ]  # fmt: skip
    if args.dev:
        command += ["--eval", args.dev]
    return subprocess.call(command)


def main(argv=None):
    args = parse_args(argv)
    return run(args, lambda: distill_and_export(args))


def distill_and_export(args):
    """Distils (the config checks every setting before a file is written), then exports the student."""
    from kbert.training.distillation import DistillationConfig, distill

    metrics = distill(DistillationConfig(**config_fields(args, "quantize")))
    print(json.dumps({"out": args.out, **metrics}, indent=2))
    if args.quantize == "none":
        return 0
    return export_student(args)


if __name__ == "__main__":
    sys.exit(main())
