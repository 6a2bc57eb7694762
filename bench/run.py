"""kbert against its peers, side by side in one run on this machine: `python bench/run.py [--quick] [--only GROUP] [--out bench/results]`.

Groups (each writes GROUP.json, and charts, to --out, default bench/results):
  train      figure 1: pretraining-step tokens/s and MFU, L4/H256/A4/I1024, vocabulary 30522, batch 16, for kbert
             and KerasHub on each Keras backend and Hugging Face transformers (PyTorch, with and without
             torch.compile); seq 128 and 512, fp32 and bf16 (--quick: seq 128, fp32, each backend once).
  inference  figure 2: latency of the real MiniLM encoder at batch 1 and 32, seq 128: kbert and KerasHub on each
             Keras backend (compiled predict_on_batch), Hugging Face eager and torch.compile; and the corpus job,
             4,096 real lines embedded and classified from raw strings against sentence-transformers and Hugging
             Face (bench/inference.py, --job corpus).
  finetune   figure 2: the real MiniLM fine-tuned on WordNet glosses, kbert on each backend vs Hugging Face
             (bench/finetune.py; --quick: the first 3,200 training examples).
  tokenizer  figure 3: tokenizer lines/s (bench/tokenizer.py).
  edge       figure 3: LiteRT sizes, agreement and latency of the real MiniLM embedder against onnxruntime fp32
             and int8 on the Hugging Face model (bench/edge.py).
Every measurement runs in its own process (the Keras backend is chosen before Keras starts), one at a time. These
machines are noisy: medians over repeats and ratios within this run are the figures to read; absolute times are
context. MFU = model FLOPs per step (bench/common.py, `training_flops_per_step`) x steps/s / the measured matmul
peak of the row's dtype (fp32; bf16 for bf16 rows).
"""

import argparse
import os
import platform
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RESULTS, matmul_peak_gflops, median, ratio, run_json, training_flops_per_step, write_json  # noqa: E402
from train_step import CONFIG  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")


def train_configurations(quick, only_seq_len=None):
    sequence_lengths = (only_seq_len,) if only_seq_len else (128,) if quick else (128, 512)
    dtypes = ("fp32",) if quick else ("fp32", "bf16")
    for seq_len in sequence_lengths:
        for dtype in dtypes:
            for backend in BACKENDS:
                for framework in ("kbert", "kerashub"):
                    yield {"framework": framework, "backend": backend, "seq_len": seq_len, "dtype": dtype}
            yield {"framework": "hf", "backend": "torch", "seq_len": seq_len, "dtype": dtype}
            if not quick:
                yield {
                    "framework": "hf",
                    "backend": "torch",
                    "seq_len": seq_len,
                    "dtype": dtype,
                    "compile": True,
                }


def label(row):
    name = {"kbert": "kbert", "kerashub": "KerasHub", "hf": "HF transformers"}[row["framework"]]
    return f"{name} ({row['backend']}{', torch.compile' if row.get('compile') else ''})"


def run_train(quick, repeats, peaks, only_seq_len=None):
    """`peaks`: the matmul peak (GFLOP/s) of each dtype, the MFU's denominator for that dtype's rows."""
    rows = []
    configurations = list(train_configurations(quick, only_seq_len))
    for repeat in range(repeats):  # interleaved, so drift hits every configuration alike
        for index, config in enumerate(configurations):
            args = [
                "--framework",
                config["framework"],
                "--seq-len",
                config["seq_len"],
                "--dtype",
                config["dtype"],
                "--steps",
                12 if quick else 20,
            ]
            if config.get("compile"):
                args.append("--compile")
            result = run_json("train_step.py", args, env={"KERAS_BACKEND": config["backend"]})
            if repeat == 0:
                rows.append({**config, "step_seconds": [], "error": None})
            if "error" in result:
                rows[index]["error"] = result["error"][-500:]
                print(f"  {label(config)} seq {config['seq_len']} {config['dtype']}: failed", flush=True)
                continue
            rows[index]["step_seconds"] += result["step_seconds"]
            rows[index]["predictions"] = result["predictions"]
            print(
                f"  {label(config)} seq {config['seq_len']} {config['dtype']}: "
                f"{median(result['step_seconds']) * 1000:.0f} ms/step",
                flush=True,
            )
    for row in rows:
        if not row["step_seconds"]:
            row.update(tokens_per_second=None, mfu=None)
            continue
        step = median(row["step_seconds"])
        flops = training_flops_per_step(
            CONFIG["num_layers"],
            CONFIG["hidden_dim"],
            CONFIG["intermediate_dim"],
            CONFIG["vocabulary_size"],
            16,
            row["seq_len"],
            row["predictions"],
            pair_head=row["framework"] != "kerashub",
        )
        row.update(
            median_step_seconds=step,
            tokens_per_second=16 * row["seq_len"] / step,
            mfu=flops / step / (peaks[row["dtype"]] * 1e9),
        )
    return rows


def train_table(rows):
    lines = [
        "| seq | dtype | framework (backend) | tokens/s | MFU | kbert / KerasHub, same backend |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for row in rows:
        peer = next(
            (
                r
                for r in rows
                if r["framework"] == "kerashub"
                and r["backend"] == row["backend"]
                and r["seq_len"] == row["seq_len"]
                and r["dtype"] == row["dtype"]
            ),
            None,
        )
        speedup = (
            ratio(row["tokens_per_second"], peer and peer["tokens_per_second"])
            if row["framework"] == "kbert"
            else None
        )
        tokens = f"{row['tokens_per_second']:,.0f}" if row["tokens_per_second"] else "failed"
        mfu = f"{100 * row['mfu']:.0f} %" if row["mfu"] else ""
        lines.append(
            f"| {row['seq_len']} | {row['dtype']} | {label(row)} | {tokens} | {mfu} | "
            f"{f'{speedup:.2f}x' if speedup else ''} |"
        )
    for seq_len in sorted({r["seq_len"] for r in rows}):
        same = [r for r in rows if r["seq_len"] == seq_len and r["tokens_per_second"]]
        best_kbert = max(
            (r for r in same if r["framework"] == "kbert"), key=lambda r: r["tokens_per_second"], default=None
        )
        best_peer = max(
            (r for r in same if r["framework"] != "kbert"), key=lambda r: r["tokens_per_second"], default=None
        )
        if best_kbert and best_peer:
            lines.append(
                f"\nseq {seq_len}: best: {label(best_kbert)} {best_kbert['dtype']} / best peer "
                f"{label(best_peer)} {best_peer['dtype']} = "
                f"{best_kbert['tokens_per_second'] / best_peer['tokens_per_second']:.2f}x"
            )
    return "\n".join(lines)


def train_chart(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    measured = [r for r in rows if r["tokens_per_second"]]
    figure, axes = pyplot.subplots(figsize=(10, 0.35 * len(measured) + 1.5))
    names = [f"{label(r)} seq {r['seq_len']} {r['dtype']}" for r in measured]
    colours = ["tab:blue" if r["framework"] == "kbert" else "tab:gray" for r in measured]
    axes.barh(names, [r["tokens_per_second"] for r in measured], color=colours)
    axes.invert_yaxis()
    axes.set_xlabel("pretraining tokens/s (median step; higher is better)")
    axes.set_title("kbert (blue) vs peers: BERT L4/H256 MLM step on this machine")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="seq 128, fp32, each backend once (~10 min)")
    parser.add_argument(
        "--only", choices=["train", "inference", "finetune", "tokenizer", "edge"], help="run one group"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="runs per configuration (default 1 quick, 3 full)"
    )
    parser.add_argument(
        "--seq-len",
        type=int,
        choices=(128, 512),
        help="train group: this sequence length only (default both)",
    )
    parser.add_argument(
        "--out", default=RESULTS, help="folder for the JSON files and charts (default bench/results)"
    )
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    groups = (
        [args.only]
        if args.only
        else (["train"] if args.quick else ["train", "inference", "finetune", "tokenizer", "edge"])
    )
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()}

    if "train" in groups:
        peaks = {}
        for dtype in ("fp32", "bf16"):
            peaks[dtype], per_library = matmul_peak_gflops(dtype=dtype)
            described = ", ".join(f"{k} {v:.0f}" for k, v in per_library.items())
            print(f"{dtype} matmul peak: {peaks[dtype]:.0f} GFLOP/s ({described})")
        rows = run_train(args.quick, args.repeats or (1 if args.quick else 3), peaks, args.seq_len)
        table = train_table(rows)
        print("\n" + table)
        path = write_json(
            {
                "machine": machine,
                "matmul_peak_gflops": peaks["fp32"],
                "bf16_matmul_peak_gflops": peaks["bf16"],
                "rows": rows,
                "table": table,
            },
            os.path.join(out, "train.json"),
        )
        train_chart(rows, os.path.join(out, "train.png"))
        print(f"wrote {path} and train.png")
    if "inference" in groups:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inference.py")
        subprocess.call([sys.executable, script, "--output", os.path.join(out, "inference.json")])
        output = os.path.join(out, "inference_corpus_pydocs.json")
        subprocess.call([sys.executable, script, "--job", "corpus", "--output", output])
    if "finetune" in groups:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "finetune.py")
        output = os.path.join(out, "finetune.json")
        subprocess.call(
            [
                sys.executable,
                script,
                *(["--limit", "3200", "--dev-limit", "3200"] if args.quick else []),
                "--output",
                output,
            ]
        )
    for group in ("tokenizer", "edge"):
        if group in groups:
            output = os.path.join(out, f"{group}.json")
            result = run_json(f"{group}.py", [*(["--quick"] if args.quick else []), "--output", output])
            print(f"\n{group}: " + ("failed\n" + result["error"] if "error" in result else output))


if __name__ == "__main__":
    main()
