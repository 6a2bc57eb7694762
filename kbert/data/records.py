"""Labelled text records for fine-tuning: JSONL or CSV files with `text`, optional `text_pair`, and `label`."""

import csv
import json
import os


def read_records(path, require_label=True):
    """Reads `{text, text_pair?, label?}` records from a `.jsonl` or `.csv` file.

    Raises:
        ValueError: naming the file and line for an empty file, a malformed JSON line, or a record without a
            string `text` (or without `label` when `require_label`).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"no such file {path!r}")
    records = []
    if path.endswith(".csv"):
        with open(path, encoding="utf-8", newline="") as file:
            rows = list(enumerate(csv.DictReader(file), start=2))
    else:
        rows = []
        with open(path, encoding="utf-8") as file:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise ValueError(
                        f"{path}:{number}: not a JSON object ({error.msg}); fix or remove that line"
                    ) from None
    for number, record in rows:
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f"{path}:{number}: a record needs a string 'text' field, got {record!r:.200}")
        if require_label and record.get("label") in (None, ""):
            raise ValueError(f"{path}:{number}: the record has no 'label'")
        records.append(
            {
                "text": record["text"],
                "text_pair": record.get("text_pair") or None,
                "label": record.get("label"),
            }
        )
    if not records:
        raise ValueError(f"{path!r} holds no record; expected JSON lines or CSV rows with 'text' and 'label'")
    return records
