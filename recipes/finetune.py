"""Fine-tune a pretrained BERT: classification, tagging (NER), extractive QA or sentence embeddings.

    python recipes/finetune.py --task classify --init CKPT --train train.jsonl --dev dev.jsonl
    python recipes/finetune.py --task tag --init CKPT --train train.conll --dev dev.conll
    python recipes/finetune.py --task qa --init CKPT --train train-v2.0.json --dev dev-v2.0.json --seq-len 384
    python recipes/finetune.py --task embed --init CKPT --train pairs.jsonl --dev pairs-dev.jsonl --lora-rank 8

Files: classify: JSONL or CSV with `text`, optional `text_pair`, `label`. tag: CoNLL-2003 (word first, tag last,
BIO/IOB tags, blank line between sentences). qa: SQuAD v1.1 or v2.0 JSON. embed: JSONL or CSV with `text`,
`text_pair`, `score` (a target cosine in [-1, 1]) or with `query`, `positive` (in-batch negatives).
--init is a kbert save, or a Hugging Face or KerasHub BERT folder. Writes to --out a kbert save of the best dev
epoch (model.keras, vocab.txt, tokenizer_config.json, labels.json for classify and tag) and metrics.json
(dev_/test_ metrics, train_seconds). The logic lives in `kbert.training.finetuning`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from recipes.flags import add_run_flags, config_fields, new_parser, parse, run_job  # noqa: E402 (Keras-free)

TASKS = ("classify", "tag", "qa", "embed")


def parse_args(argv=None):
    parser = new_parser(__doc__)
    add = parser.add_argument
    add(
        "--task",
        choices=TASKS,
        default="classify",
        help="classify: a label per text (pair), dev macro-F1; tag: a tag per word, entity F1; qa: answer spans, "
        "SQuAD F1 and exact match; embed: sentence embeddings, Spearman or retrieval accuracy (default classify).",
    )
    add(
        "--init",
        required=True,
        help="pretrained checkpoint folder: kbert save, Hugging Face or KerasHub BERT.",
    )
    add("--train", required=True, help="training file in the task's format (see above).")
    add(
        "--dev",
        help="dev file: scored after each epoch; early stopping and the saved model follow its metric.",
    )
    add("--test", help="test file: scored once with the best model.")
    add(
        "--seq-len", type=int, default=128, help="window length in tokens (default 128; 384 is usual for qa)."
    )
    add(
        "--doc-stride",
        type=int,
        default=128,
        help="tokens between the starts of consecutive windows over a long text: qa contexts, and classify/embed "
        "texts with --long-text mean or max (BERT's doc_stride; default 128).",
    )
    add(
        "--max-answer-length",
        type=int,
        default=30,
        help="qa: the longest answer predicted, in tokens (default 30).",
    )
    add(
        "--long-text",
        choices=["truncate", "mean", "max"],
        default="truncate",
        help="classify/embed texts longer than a window: truncate, or split into windows and average (mean) or max "
        "their logits or embeddings (default truncate).",
    )
    add(
        "--lora-rank",
        type=int,
        default=0,
        help="train rank-N LoRA adapters on the encoder's dense layers and the task head only; the save holds the "
        "merged weights (default 0: train every weight).",
    )
    add("--batch-size", type=int, default=32, help="examples (windows) per step (default 32).")
    add("--epochs", type=int, default=3, help="training epochs (default 3).")
    add("--lr", type=float, default=5e-5, help="peak learning rate (default 5e-5; LoRA usually wants ~1e-3).")
    add(
        "--warmup-ratio",
        type=float,
        default=0.06,
        help="share of steps for linear warmup, then linear decay.",
    )
    add("--weight-decay", type=float, default=0.01, help="AdamW weight decay, not on LayerNorm and bias.")
    add(
        "--patience",
        type=int,
        default=1,
        help="epochs without a better dev metric before stopping (default 1).",
    )
    add(
        "--data-parallel",
        action="store_true",
        help="JAX: split each batch over every device of this host (keras.distribution.DataParallel); classify, "
        "tag and qa.",
    )
    add_run_flags(parser, out="runs/finetune", seed_help="seed of shuffling, dropout and the new head")
    return parse(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    from kbert.training.finetuning import FinetuningConfig, finetune

    config = FinetuningConfig(**config_fields(args))
    return run_job(args, lambda: finetune(config), config.out)


if __name__ == "__main__":
    sys.exit(main())
