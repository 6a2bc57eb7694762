"""Convert a BERT checkpoint between kbert, Hugging Face and KerasHub formats.

    python -m kbert.convert SRC DST --to {kbert,huggingface,kerashub}

SRC is a local folder: a kbert save (model.keras), a Hugging Face BERT checkpoint (config.json + model.safetensors)
or a KerasHub BERT preset. Task heads convert with the model (pretraining, classification, tagging, QA); KerasHub
presets hold the backbone only. DST must not be SRC. Bad input: `error: ...` on stderr, exit code 2 (`--debug`: the
traceback). A thin command over `kbert.models.presets.convert_checkpoint`.
"""

import argparse
import sys

FORMATS = ("kbert", "huggingface", "kerashub")


def main(argv=None):
    from kbert.cli import add_debug_flag, run_reporting_errors

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="the checkpoint folder to read")
    parser.add_argument("destination", help="the folder to write (not the source)")
    parser.add_argument("--to", required=True, choices=FORMATS, help="output format")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    return run_reporting_errors(lambda: convert(args), debug=args.debug)


def convert(args):
    from kbert.models.presets import convert_checkpoint

    loaded = convert_checkpoint(args.source, args.destination, args.to)
    print(f"{type(loaded.model).__name__} from {args.source} written as {args.to} to {args.destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
