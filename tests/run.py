"""Runs the test suite once per Keras backend: `python tests/run.py [pytest args...]`.

Model tests run on tensorflow, jax and torch (selected by KERAS_BACKEND, set before Keras is imported);
tests marked `backend_independent` (tokenizer, data, LiteRT files) run in the first pass only. Exits non-zero if
any pass fails, or if no test ran at all; ends with one summary line of the counts.
"""

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")
NO_TESTS_COLLECTED = 5  # pytest's exit code when a selection is empty


def run_pass(backend, first, extra_args, report):
    selection = [] if first else ["-m", "not backend_independent"]
    command = [sys.executable, "-m", "pytest", *selection, f"--junitxml={report}", *extra_args]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    print(f"\n=== KERAS_BACKEND={backend}: {' '.join(command[1:])}", flush=True)
    return subprocess.call(command, env=env, cwd=Path(__file__).resolve().parent.parent)


def counts(report):
    if not report.exists():
        return {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    return {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}


def main(argv):
    backends = [b for b in os.environ.get("KBERT_TEST_BACKENDS", ",".join(BACKENDS)).split(",") if b]
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    failed_backends = []
    with tempfile.TemporaryDirectory() as directory:
        for index, backend in enumerate(backends):
            report = Path(directory) / f"{backend}.xml"
            start = time.monotonic()
            code = run_pass(backend, index == 0, argv, report)
            result = counts(report)
            failed = result["failures"] + result["errors"]
            passed = result["tests"] - failed - result["skipped"]
            print(
                f"=== {backend}: {passed} passed, {failed} failed, {result['skipped']} skipped "
                f"in {time.monotonic() - start:.0f} s (pytest exit code {code})",
                flush=True,
            )
            totals["passed"] += passed
            totals["failed"] += failed
            totals["skipped"] += result["skipped"]
            if code not in (0, NO_TESTS_COLLECTED):
                failed_backends.append(backend)
    print(
        f"\nall backends: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped"
    )
    if failed_backends:
        print(f"FAILED on: {', '.join(failed_backends)}")
        return 1
    if totals["passed"] == 0:
        print("no test ran: the selection is empty or the suite did not collect")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
