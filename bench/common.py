"""Helpers shared by the benchmarks: FLOP counts, medians and ratios, subprocess runs, the machine's matmul peak."""

import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(
    REPO, "bench", "results"
)  # the default of bench/run.py --out and of each script's --output


def training_flops_per_step(
    num_layers,
    hidden_dim,
    intermediate_dim,
    vocabulary_size,
    batch_size,
    sequence_length,
    predictions,
    pair_head=True,
):
    """Model FLOPs of one BERT pretraining step (forward + backward = 3 x forward), the formula MFU uses.

    Forward FLOPs, counting a multiply-add as 2:
      per token and layer: 2 * (4 H^2 + 2 H I)   Q, K, V, output projections and the feed-forward
                         + 2 * 2 * S * H           attention scores Q.K^T and the weighted sum of V
      per masked prediction: 2 * (H^2 + H V)      the MLM transform and the decoder (tied embedding)
      per sequence: 2 * H^2 (+ 2 * 2H with a pair head)   pooler and NSP/SOP head
    Embedding lookups, LayerNorm, softmax and GELU are left out (memory-bound, not FLOPs-bound).
    """
    H, I, S, V, L = hidden_dim, intermediate_dim, sequence_length, vocabulary_size, num_layers  # noqa: E741
    tokens = batch_size * sequence_length
    encoder = tokens * L * (2 * (4 * H * H + 2 * H * I) + 4 * S * H)
    mlm = batch_size * predictions * 2 * (H * H + H * V)
    pooler = batch_size * (2 * H * H + (4 * H if pair_head else 0))
    return 3 * (encoder + mlm + pooler)


def median(values):
    return statistics.median(values)


def ratio(numerator, denominator):
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator in (None, 0):
        return None
    return numerator / denominator


def run_json(script, args, env=None, timeout=900):
    """Runs `python bench/<script> args` in a fresh process and returns the JSON object of its last stdout line."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO, **(env or {}))
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench", script), *map(str, args)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode or not lines:
        return {"error": (result.stderr or result.stdout)[-2000:], "seconds": time.perf_counter() - start}
    return json.loads(lines[-1])


def matmul_peak_gflops(size=2048, repeats=7, dtype="fp32"):
    """The machine's matmul peak (GFLOP/s) and the figure of each library measured: fp32, the best median over
    NumPy's BLAS and PyTorch's (oneDNN/MKL); bf16, PyTorch's (NumPy has no bf16; XLA's CPU backend gains nothing
    from it here)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    if dtype == "bf16":
        ta, tb = ta.bfloat16(), tb.bfloat16()
        candidates = {"torch": lambda: torch.mm(ta, tb)}
    else:
        candidates = {"numpy": lambda: a @ b, "torch": lambda: torch.mm(ta, tb)}
    best = {}
    for name, multiply in candidates.items():
        multiply()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            multiply()
            times.append(time.perf_counter() - start)
        best[name] = 2 * size**3 / median(times) / 1e9
    return max(best.values()), best


def write_json(payload, path):
    """Writes `payload` as JSON to `path` (its folder created), replacing the file only once complete. As
    `kbert.files.write_json`, without importing Keras into the process that starts the benchmarks."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        json.dump(payload, file, indent=2)
    os.replace(path + ".tmp", path)
    return path
