"""One pretraining-step measurement in this process: prints a JSON line with the step times.

    KERAS_BACKEND=jax python bench/train_step.py --framework kbert --seq-len 128 [--dtype bf16] [--steps 20]

Frameworks: kbert (BertPretrainer, MLM + NSP), kerashub (BertMaskedLM, MLM), hf (transformers BertForPreTraining,
MLM + NSP, PyTorch; --compile for torch.compile). kbert and KerasHub compile their Keras train step (XLA on
TensorFlow and JAX, torch.compile on PyTorch) unless --no-jit. Same config for all: L4/H256/A4/I1024, vocabulary
30522, batch 16, dropout 0.1, AdamW; the same synthetic batch every step (the input pipeline is not measured here).
"""

import argparse
import json
import os
import time

import numpy as np

CONFIG = dict(vocabulary_size=30522, num_layers=4, hidden_dim=256, num_heads=4, intermediate_dim=1024)


def synthetic_batch(batch_size, sequence_length, predictions, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1000, CONFIG["vocabulary_size"], size=(batch_size, sequence_length)).astype(
        "int32"
    )
    positions = np.sort(
        np.stack(
            [rng.choice(np.arange(1, sequence_length), predictions, replace=False) for _ in range(batch_size)]
        ),
        axis=1,
    ).astype("int32")
    x = {
        "token_ids": token_ids,
        "segment_ids": (np.arange(sequence_length)[None] >= sequence_length // 2)
        .repeat(batch_size, 0)
        .astype("int32"),
        "padding_mask": np.ones((batch_size, sequence_length), "int32"),
        "mask_positions": positions,
    }
    y = {
        "mlm_ids": np.take_along_axis(token_ids, positions, axis=1),
        "mlm_weights": np.ones((batch_size, predictions), "float32"),
        "pair_label": rng.integers(0, 2, size=(batch_size,)).astype("int32"),
    }
    return x, y


class StepTimes:
    def __init__(self):
        self.times = []
        self.last = None

    def tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.times.append(now - self.last)
        self.last = now


def keras_step_times(framework, x, y, steps, dtype, jit):
    import keras
    import tensorflow as tf

    if dtype == "bf16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    optimizer = keras.optimizers.AdamW(1e-4, weight_decay=0.01)
    if framework == "kbert":
        import kbert

        model = kbert.BertPretrainer(kbert.BertBackbone(**CONFIG, max_sequence_length=512), objective="nsp")
        model.compile(optimizer=optimizer, jit_compile=jit)
        data = tf.data.Dataset.from_tensors((x, y)).repeat()
    else:
        import keras_hub

        backbone = keras_hub.models.BertBackbone(**CONFIG, max_sequence_length=512)
        model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=["sparse_categorical_accuracy"],
            jit_compile=jit,
        )
        features = {key: x[key] for key in ("token_ids", "segment_ids", "padding_mask", "mask_positions")}
        data = tf.data.Dataset.from_tensors((features, y["mlm_ids"], y["mlm_weights"])).repeat()
    timer = StepTimes()
    callback = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: timer.tick())
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[callback])
    return timer.times


def hf_step_times(x, y, steps, dtype, compile_model):
    import torch
    import transformers

    config = transformers.BertConfig(
        vocab_size=CONFIG["vocabulary_size"],
        hidden_size=CONFIG["hidden_dim"],
        num_hidden_layers=CONFIG["num_layers"],
        num_attention_heads=CONFIG["num_heads"],
        intermediate_size=CONFIG["intermediate_dim"],
    )
    model = transformers.BertForPreTraining(config).train()
    if compile_model:
        model = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    labels = np.full(x["token_ids"].shape, -100, dtype="int64")
    np.put_along_axis(labels, x["mask_positions"], y["mlm_ids"], axis=1)
    inputs = {
        "input_ids": torch.tensor(x["token_ids"], dtype=torch.long),
        "token_type_ids": torch.tensor(x["segment_ids"], dtype=torch.long),
        "attention_mask": torch.tensor(x["padding_mask"], dtype=torch.long),
        "labels": torch.tensor(labels),
        "next_sentence_label": torch.tensor(y["pair_label"], dtype=torch.long),
    }
    timer = StepTimes()
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        timer.tick()
    return timer.times


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--framework", choices=["kbert", "kerashub", "hf"], required=True)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--no-jit",
        action="store_true",
        help="Keras frameworks: no XLA (TF/JAX), no torch.compile of the train step (PyTorch)",
    )
    parser.add_argument("--compile", action="store_true", help="hf only: torch.compile the model")
    args = parser.parse_args()
    predictions = max(1, round(0.15 * args.seq_len))
    predictions = min(predictions, 20 if args.seq_len <= 128 else 80)
    x, y = synthetic_batch(args.batch_size, args.seq_len, predictions)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if args.framework == "hf":
        times = hf_step_times(x, y, args.steps, args.dtype, args.compile)
        backend = "torch"
    else:
        # jit_compile=True: XLA on TF and JAX, torch.compile of Keras' train step on PyTorch (kbert 1.28x,
        # KerasHub 1.07x over eager here).
        times = keras_step_times(args.framework, x, y, args.steps, args.dtype, not args.no_jit)
    measured = times[3:] if len(times) > 6 else times  # the first steps compile
    print(
        json.dumps(
            {
                "framework": args.framework,
                "backend": backend,
                "dtype": args.dtype,
                "seq_len": args.seq_len,
                "batch_size": args.batch_size,
                "predictions": predictions,
                "step_seconds": measured,
                "compile": args.compile,
            }
        )
    )


if __name__ == "__main__":
    main()
