"""Pretrain a BERT (masked-LM + NSP/SOP) from text; with no flag, a small BERT on the built-in corpus.

    python recipes/pretrain.py --backend jax
    python recipes/pretrain.py --backend tensorflow --corpus "books/*.txt" --size mini --steps 10000

Writes to --out: model.keras (the pretrainer), vocab.txt, tokenizer_config.json, config.json, history.json,
loss.png, metrics.json, TensorBoard logs (logs/) and checkpoints (checkpoints/). Rerunning the same command after
an interruption, even SIGKILL, resumes from the last checkpoint. The logic lives in `kbert.training.pretraining`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from recipes.flags import add_run_flags, config_fields, new_parser, parse, run_job  # noqa: E402 (Keras-free)


def parse_args(argv=None):
    parser = new_parser(__doc__)
    add_corpus_and_model_flags(parser)
    add_training_flags(parser)
    add_device_flags(parser)
    add_run_flags(
        parser,
        out="runs/pretrain",
        seed_help="seed of data, masks, dropout and initialisation",
        jit_help="compile the training step: XLA on TensorFlow and JAX, torch.compile on PyTorch (default: XLA on "
        "TensorFlow and JAX, eager on PyTorch, where compiling takes a minute or two and pays back after several "
        "hundred steps).",
        processes=True,
    )
    return parse(parser, argv)


def add_corpus_and_model_flags(parser):
    """--corpus, --vocab, --init, --vocab-size, --cased, --size, --config."""
    parser.add_argument(
        "--corpus",
        nargs="*",
        default=[],
        help="text files or globs: BERT text format (one sentence a line, blank line between "
        "documents) or .jsonl with a 'text' field. Default: the built-in corpus "
        "(Python standard library docstrings).",
    )
    parser.add_argument("--vocab", help="a vocab.txt (one token a line). Default: learn one from the corpus.")
    parser.add_argument(
        "--init",
        help="continue pretraining from a checkpoint folder (kbert save, Hugging Face or KerasHub BERT) on the "
        "corpus before fine-tuning (LM adaptation); its sizes and vocabulary are used.",
    )
    parser.add_argument(
        "--vocab-size", type=int, default=8000, help="size of a learned vocabulary (default 8000)."
    )
    parser.add_argument("--cased", action="store_true", help="keep case and accents (default: uncased BERT).")
    parser.add_argument(
        "--size",
        default="tiny",
        help="a named model size: tiny, mini, small, medium, base, large or L<layers>_H<width> "
        "(default tiny: 2 layers, width 128).",
    )
    parser.add_argument("--config", help="a model config JSON (kbert.BertConfig fields); overrides --size.")


def add_training_flags(parser):
    """The data and the optimisation: --seq-len ... --checkpoint-every."""
    parser.add_argument("--seq-len", type=int, default=128, help="packed sequence length (default 128).")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per step (default 32).")
    parser.add_argument("--steps", type=int, default=500, help="optimizer steps (default 500).")
    parser.add_argument(
        "--max-predictions",
        type=int,
        default=20,
        help="masked-LM targets per sequence (default 20; 15%% of tokens, at most this).",
    )
    parser.add_argument(
        "--eval-batches",
        type=int,
        default=8,
        help="held-out batches (fixed masks) evaluated before, during and after training (default 8).",
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3).")
    parser.add_argument(
        "--warmup-steps",
        type=int,
        help="linear warmup steps, then linear decay to 0 at --steps (default: a tenth of --steps, at most 50).",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=0.01,
        help="decoupled weight decay, not applied to LayerNorm and bias (default 0.01).",
    )
    parser.add_argument("--optimizer", choices=["adamw", "lamb"], default="adamw", help="default adamw.")
    parser.add_argument(
        "--objective",
        choices=["nsp", "sop", "mlm"],
        default="nsp",
        help="masked-LM plus next-sentence (nsp) or sentence-order (sop) prediction, or mlm only.",
    )
    parser.add_argument(
        "--whole-word-masking", action="store_true", help="mask all pieces of a word together."
    )
    parser.add_argument(
        "--grad-accum",
        type=int,
        default=1,
        help="average the gradients of this many batches into one update (Keras' gradient accumulation); "
        "the effective batch is --batch-size x this, --steps and --warmup-steps count updates (default 1).",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        help="steps between checkpoints and held-out evaluations; must divide --steps (default: the largest "
        "divisor of --steps up to 50). Rerunning the same command after an interruption resumes from the "
        "last checkpoint in --out/checkpoints.",
    )


def add_device_flags(parser):
    """--data-parallel, --model-parallel (JAX)."""
    parser.add_argument(
        "--data-parallel",
        action="store_true",
        help="JAX: split each batch over all devices (keras.distribution.DataParallel).",
    )
    parser.add_argument(
        "--model-parallel",
        type=int,
        default=1,
        help="JAX: shard the encoder's weights over this many devices (keras.distribution.ModelParallel); "
        "the batch is split over the device groups left (default 1: off).",
    )


def main(argv=None):
    args = parse_args(argv)
    from kbert.training.pretraining import PretrainingConfig, pretrain

    fields = config_fields(args)
    fields["lowercase"] = not fields.pop("cased")
    config = PretrainingConfig(**fields)
    return run_job(args, lambda: pretrain(config), config.out)


if __name__ == "__main__":
    sys.exit(main())
