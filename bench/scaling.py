"""Scaling on paper: an ESTIMATE of data-parallel pretraining on N hosts, from the model's size and a step's FLOPs.

    python bench/scaling.py [--mfu 0.5] [--peak-tflops 312] [--batch-per-host 256]

Nothing is measured here. The step's compute time is its FLOPs at a model-FLOPs utilisation (default 0.5: kbert's
JAX step measures 49-54 % of the matmul peak on CPU, README "Pretraining step") on one host of `--peak-tflops`
(default 312: an A100's bf16 peak); the gradient all-reduce of data parallelism moves, per host and step,

    bytes = 2 (N - 1) / N x parameters x 4        (a ring all-reduce of float32 gradients)

and takes bytes / bandwidth. With no overlap of the two, a step on N hosts takes compute + all-reduce, and the
efficiency is compute / (compute + all-reduce); accumulating k batches per update divides the all-reduce's share by k.
Model FLOPs per token: 6 x (non-embedding parameters) + 12 x layers x seq x width (attention), as in the Chinchilla
and PaLM appendices.
"""

import argparse

# (layers, width), BERT's vocabulary, feed-forward 4 x width, 512 positions.
SIZES = {"base": (12, 768), "large": (24, 1024)}
VOCABULARY, POSITIONS = 30522, 512
BANDWIDTHS = {"100 Gb/s Ethernet": 12.5e9, "400 Gb/s InfiniBand": 50e9, "TPU v4 ICI (~4 x 50 GB/s)": 200e9}
HOSTS = (2, 8, 32)


def parameters(layers, width):
    """`(all, non-embedding)` parameters of BERT with its MLM and NSP heads (the weights a step updates)."""
    intermediate = 4 * width
    embeddings = (VOCABULARY + POSITIONS + 2) * width + 2 * width
    block = 4 * width * width + 4 * width + 2 * width * intermediate + intermediate + width + 4 * width
    heads = width * width + width + width * width + 3 * width + VOCABULARY + 2 * width + 2  # pooler, MLM, NSP
    total = embeddings + layers * block + heads
    return total, total - embeddings


def flops_per_token(layers, width, sequence):
    _, non_embedding = parameters(layers, width)
    return 6 * non_embedding + 12 * layers * sequence * width


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mfu", type=float, default=0.5, help="model-FLOPs utilisation of one host's step")
    parser.add_argument("--peak-tflops", type=float, default=312.0, help="one host's peak, TFLOP/s")
    parser.add_argument("--batch-per-host", type=int, default=256, help="sequences per host and step")
    args = parser.parse_args()
    print(f"ESTIMATE: {args.batch_per_host} sequences a host a step, MFU {args.mfu}, {args.peak_tflops} TFLOP/s a host")
    print("| model | seq | params | compute s/step | network | hosts | all-reduce s | efficiency | k for 90 % |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for name, (layers, width) in SIZES.items():
        total, _ = parameters(layers, width)
        for sequence in (128, 512):
            tokens = args.batch_per_host * sequence
            compute = tokens * flops_per_token(layers, width, sequence) / (args.peak_tflops * 1e12 * args.mfu)
            for network, bandwidth in BANDWIDTHS.items():
                for hosts in HOSTS:
                    communication = 2 * (hosts - 1) / hosts * total * 4 / bandwidth
                    efficiency = compute / (compute + communication)
                    # accumulation steps k with k x compute / (k x compute + communication) >= 0.9
                    needed = max(1, -(-9 * communication // compute))
                    print(
                        f"| {name} | {sequence} | {total / 1e6:.0f} M | {compute:.3f} | {network} | {hosts} | "
                        f"{communication:.3f} | {efficiency:.0%} | {needed:.0f} |"
                    )


if __name__ == "__main__":
    main()
