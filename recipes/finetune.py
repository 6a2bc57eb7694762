"""Fine-tune a pretrained BERT for text classification (sentences or sentence pairs).

    python recipes/finetune.py --backend jax --init path/to/checkpoint --train train.jsonl --dev dev.jsonl

--init is a kbert save, or a Hugging Face or KerasHub BERT folder. Records are JSONL or CSV with `text`, optional
`text_pair`, and `label`. Writes to --out a kbert save (model.keras, vocab.txt, tokenizer_config.json,
labels.json) of the best dev epoch, and metrics.json (dev/test accuracy and macro-F1, train_seconds).
The logic lives in `kbert.training.finetuning`.
"""

import argparse
import json
import os
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backend",
        choices=["tensorflow", "jax", "torch"],
        default="jax",
        help="Keras backend (set before Keras is imported). Default: jax.",
    )
    parser.add_argument(
        "--task",
        choices=["classify"],
        default="classify",
        help="what to fine-tune for (classify: one label per text or text pair).",
    )
    parser.add_argument(
        "--init",
        required=True,
        help="pretrained checkpoint folder: kbert save, Hugging Face or KerasHub BERT.",
    )
    parser.add_argument(
        "--train", required=True, help="training records (.jsonl or .csv: text, text_pair, label)."
    )
    parser.add_argument("--dev", help="dev records: evaluated each epoch, early stopping on macro-F1.")
    parser.add_argument("--test", help="test records: evaluated once with the best model.")
    parser.add_argument("--seq-len", type=int, default=128, help="longest packed sequence (default 128).")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per step (default 32).")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3).")
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (default 5e-5).")
    parser.add_argument(
        "--warmup-ratio",
        type=float,
        default=0.06,
        help="share of steps for linear warmup, then linear decay to 0 (default 0.06).",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=0.01,
        help="AdamW weight decay, not on LayerNorm and bias (default 0.01).",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=1,
        help="epochs without a better dev macro-F1 before stopping (default 1).",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=["none", "bf16", "fp16"],
        default="none",
        help="Keras mixed precision policy (default none: float32).",
    )
    parser.add_argument(
        "--jit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="XLA-compile the training step on TensorFlow and JAX (default on).",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of shuffling, dropout and the new head.")
    parser.add_argument("--out", default="runs/finetune", help="output folder (default runs/finetune).")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ["KERAS_BACKEND"] = args.backend
    from kbert.training.finetuning import FinetuningConfig, finetune

    fields = {key: value for key, value in vars(args).items() if key not in ("backend", "task")}
    metrics = finetune(FinetuningConfig(**fields))
    print(json.dumps({"out": args.out, **metrics}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
