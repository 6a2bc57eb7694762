"""The flags every entry point shares (`recipes/*.py`, `export/*.py`), without importing Keras.

The backend must be chosen before anything imports Keras, so this module imports nothing of kbert: `parse` sets
`KERAS_BACKEND` from `--backend`, and only then does the entry point import the library. The run settings map one
to one onto `kbert.training.runs.RunSettings`.
"""

import argparse
import json
import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")
PRECISIONS = ("none", "bf16", "fp16")
JIT_VARYING_SHAPES = (
    "XLA-compile the training step (default: on for JAX, and for TensorFlow with a GPU or TPU; off for "
    "TensorFlow on CPU, where XLA is slower on batches of varying length; PyTorch: no effect)."
)


def new_parser(doc):
    """An argument parser whose help starts with the entry point's docstring."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_debug_flag(parser):
    """Adds `--debug` (show the traceback of an error instead of the one-line message)."""
    parser.add_argument(
        "--debug", action="store_true", help="on an error, show the Python traceback, not just its message."
    )


def add_run_flags(
    parser, out, seed_help, jit_help=JIT_VARYING_SHAPES, backend_help=None, mixed_precision=True, processes=False
):
    """Adds --backend, --seed, --mixed-precision (unless `mixed_precision` is False), --jit, --out, the flags of a
    run over several processes (with `processes`) and --debug."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="jax",
        help=backend_help or "Keras backend (set before Keras is imported). Default: jax.",
    )
    parser.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default 0).")
    if mixed_precision:
        parser.add_argument(
            "--mixed-precision",
            choices=PRECISIONS,
            default="none",
            help="Keras mixed precision policy (default none: float32).",
        )
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=None, help=jit_help)
    parser.add_argument("--out", default=out, help=f"output folder (default {out}).")
    if processes:
        add_process_flags(parser)
    add_debug_flag(parser)


def add_process_flags(parser):
    """Adds --coordinator, --num-processes, --process-id: one run over several processes (hosts), JAX only."""
    parser.add_argument(
        "--coordinator",
        help="HOST:PORT of process 0, the same for every process of a run over several processes (JAX; default: "
        "KERAS_DISTRIBUTION_JOB_ADDRESSES, else one process). recipes/launch.py sets it for local processes.",
    )
    parser.add_argument(
        "--num-processes", type=int, help="processes of the run (default: KERAS_DISTRIBUTION_NUM_PROCESSES, else 1)."
    )
    parser.add_argument(
        "--process-id", type=int, help="this process's index, 0 to N-1 (default: KERAS_DISTRIBUTION_PROCESS_ID)."
    )


def parse(parser, argv=None):
    """Parses `argv` (default: the command line) and sets `KERAS_BACKEND` from `--backend`, before Keras loads."""
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if getattr(args, "backend", None):
        os.environ["KERAS_BACKEND"] = args.backend
    return args


def config_fields(args, *skip):
    """The parsed flags as config fields: all but --backend, --debug and `skip`."""
    return {key: value for key, value in vars(args).items() if key not in ("backend", "debug", *skip)}


def run(args, work):
    """Runs `work()` with kbert's one way to fail (`error: ...`, exit code 2; `--debug`: the traceback)."""
    from kbert.cli import run_reporting_errors

    return run_reporting_errors(work, debug=args.debug)


def run_job(args, job, out):
    """Runs `job()` as `run` does and prints the metrics it returns, with the output folder, as JSON."""

    def work():
        print(json.dumps({"out": out, **job()}, indent=2))
        return 0

    return run(args, work)
