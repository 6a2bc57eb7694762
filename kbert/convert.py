"""Convert a BERT checkpoint between kbert, Hugging Face and KerasHub formats.

    python -m kbert.convert SRC DST --to {kbert,huggingface,kerashub}

SRC is a local folder: a kbert save (model.keras), a Hugging Face BERT checkpoint (config.json + model.safetensors)
or a KerasHub BERT preset. Task heads convert with the model (pretraining, classification, tagging, QA); KerasHub
presets hold the backbone only. DST must not be SRC. Bad input: `error: ...` on stderr, exit code 2 (`--debug`: the
traceback).
"""

import argparse
import json
import os
import sys

# Hugging Face architecture → kbert class name.
TASKS = {
    "BertModel": "BertBackbone",
    "BertForPreTraining": "BertPretrainer",
    "BertForMaskedLM": "BertPretrainer",
    "BertForSequenceClassification": "BertClassifier",
    "BertForTokenClassification": "BertTokenClassifier",
    "BertForQuestionAnswering": "BertQuestionAnswerer",
}


def load_any(source):
    """The model in `source` as the kbert class that matches its format and heads."""
    import kbert
    from kbert.interop import load_keras_file, preset_format

    kind = preset_format(source)
    if kind == "kbert":
        path = source if source.endswith(".keras") else os.path.join(source, "model.keras")
        model = load_keras_file(path)
        return (
            kbert.models.BertBackbone.from_preset(source)
            if model is None
            else type(model).from_preset(source)
        )
    if kind == "kerashub":
        return kbert.BertBackbone.from_preset(source)
    with open(os.path.join(source, "config.json"), encoding="utf-8") as file:
        architectures = json.load(file).get("architectures") or ["BertModel"]
    name = TASKS.get(architectures[0], "BertBackbone")
    kwargs = {"objective": "mlm"} if architectures[0] == "BertForMaskedLM" else {}
    return getattr(kbert, name).from_preset(source, **kwargs)


# Files of a kbert, Hugging Face or KerasHub checkpoint: a destination holding one is refused.
CHECKPOINT_FILES = (
    "model.keras",
    "model.safetensors",
    "pytorch_model.bin",
    "model.weights.h5",
    "config.json",
)


def check_destination(source, destination):
    """Refuses, before anything is written, a destination that is the source folder or the folder of a source
    `.keras` file (the save would overwrite what it converts; `samefile` sees through links)."""
    if not (os.path.exists(source) and os.path.exists(destination)):
        return  # a missing source is load_any's to report; a destination yet to be made is not the source
    folder = source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
    if os.path.samefile(folder, destination):
        what = "the source" if folder == source else "the folder of the source"
        raise ValueError(
            f"destination {destination!r} is {what} {source!r}; converting in place would overwrite the "
            f"checkpoint it reads: give another destination folder"
        )
    held = [name for name in CHECKPOINT_FILES if os.path.isfile(os.path.join(destination, name))]
    if held:
        raise ValueError(
            f"destination {destination!r} already holds a checkpoint ({', '.join(held)}); converting there would "
            "overwrite it: give a new or empty folder"
        )


def convert(args):
    from kbert.interop import save_huggingface, save_kerashub
    from kbert.interop.presets import preset_tokenizer
    from kbert.interop.saving import save_kbert

    check_destination(args.source, args.destination)
    model = load_any(args.source)
    tokenizer = getattr(getattr(model, "preprocessor", None), "tokenizer", None)
    if tokenizer is None and os.path.isdir(args.source):
        tokenizer = preset_tokenizer(args.source)
    save = {"kbert": save_kbert, "huggingface": save_huggingface, "kerashub": save_kerashub}[args.to]
    save(model, args.destination, tokenizer=tokenizer)
    print(f"{type(model).__name__} from {args.source} written as {args.to} to {args.destination}")
    return 0


def main(argv=None):
    from kbert.cli import add_debug_flag, run_reporting_errors

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", help="the checkpoint folder to read")
    parser.add_argument("destination", help="the folder to write (not the source)")
    parser.add_argument(
        "--to", required=True, choices=["kbert", "huggingface", "kerashub"], help="output format"
    )
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    return run_reporting_errors(lambda: convert(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
