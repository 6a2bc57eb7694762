"""One way for kbert's command-line entry points to fail: `error: <what, where, the fix>` on stderr, exit code 2.

`recipes/pretrain.py`, `recipes/finetune.py`, `export/tflite.py`, `export/distill.py` and `python -m kbert.convert`
run their work through `run_reporting_errors`. kbert's own errors (bad settings, files, checkpoints: `ValueError`
and its subclasses, a non-finite loss: `FloatingPointError`) and `OSError`s about a path become one line; `--debug`
shows the traceback instead. Anything else is a bug and keeps its traceback.
"""

import sys

EXIT_ERROR = 2  # argparse's exit code for bad arguments: every refusal of an entry point uses it


def add_debug_flag(parser):
    """Adds `--debug` (show the traceback of an error instead of the one-line message)."""
    parser.add_argument(
        "--debug", action="store_true", help="on an error, show the Python traceback, not just its message."
    )


def describe(error):
    """The one-line message of a user-facing error; for an `OSError` it names the path and what is wrong."""
    if isinstance(error, OSError) and error.filename is not None:
        reason = error.strerror or type(error).__name__
        if isinstance(error, NotADirectoryError):
            reason = "a part of this path is a file, not a folder; choose another path"
        elif isinstance(error, FileNotFoundError):
            reason = "no such file or folder; check the path"
        elif isinstance(error, PermissionError):
            reason = "permission denied; choose a path you may write to"
        return f"{error.filename}: {reason}"
    return " ".join(str(error).splitlines())


# OSErrors that are about a path by their nature, even when raised with a message instead of a file name.
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def is_user_error(error):
    """True for the errors an entry point reports in one line: kbert's refusals and OSErrors about a path."""
    if isinstance(error, OSError):
        return error.filename is not None or isinstance(error, PATH_ERRORS)
    return isinstance(error, ValueError | FloatingPointError)


def run_reporting_errors(work, debug=False):
    """Returns `work()`; on a user-facing error prints `error: ...` to stderr and returns `EXIT_ERROR` (with
    `debug`, re-raises it for the traceback)."""
    try:
        return work()
    except Exception as error:
        if debug or not is_user_error(error):
            raise
        print(f"error: {describe(error)}", file=sys.stderr, flush=True)
        return EXIT_ERROR
