"""Several devices on JAX: 4 CPU devices in a subprocess started here (XLA_FLAGS set before JAX starts).

A data-parallel step and a model-parallel step (encoder weights sharded by `encoder_layout_map`) give the loss and
the weights of a single-device step on the same global batch, and the pretraining entry point runs with
`data_parallel`. Runs once (backend_independent), on JAX whatever the pass's backend.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.backend_independent

FOUR_DEVICES = textwrap.dedent(
    """
    import contextlib, json, sys
    import jax, keras, numpy as np
    import kbert
    from kbert.training import create_optimizer
    from kbert.training.distribution import data_parallel, model_parallel
    from kbert.training.pretraining import PretrainingConfig, pretrain

    assert len(jax.devices()) == 4, jax.devices()
    config = dict(vocabulary_size=97, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
                  max_sequence_length=24, dropout=0.0, attention_dropout=0.0)
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, 97, (8, 16)).astype("int32"),
        "segment_ids": np.repeat([[0] * 8 + [1] * 8], 8, axis=0).astype("int32"),
        "padding_mask": np.ones((8, 16), "int32"),
        "mask_positions": rng.integers(0, 16, (8, 4)).astype("int32"),
    }
    y = {
        "mlm_ids": rng.integers(1, 97, (8, 4)).astype("int32"),
        "mlm_weights": np.ones((8, 4), "float32"),
        "pair_label": rng.integers(0, 2, (8,)).astype("int32"),
    }

    def train(distribution, weights=None):
        keras.utils.set_random_seed(0)
        with distribution.scope() if distribution else contextlib.nullcontext():
            model = kbert.BertPretrainer(kbert.BertBackbone(**config))
            model.compile(optimizer=create_optimizer("adamw", 1e-2), jit_compile=True)
            if weights is not None:
                model.set_weights(weights)
            start = model.get_weights()
            losses = [float(model.train_on_batch(x, y, return_dict=True)["loss"]) for _ in range(2)]
        return model, start, losses

    single, start, single_losses = train(None)
    report = {"single_losses": single_losses}
    for name, distribution in [("data", data_parallel()), ("model", model_parallel(2))]:
        model, _, losses = train(distribution, start)
        report[name + "_losses"] = losses
        report[name + "_weight_difference"] = max(
            float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), model.get_weights())
        )
        variables = {variable.path: variable.value for variable in model.weights}
        query = variables["encoder_block_0/attention/query/kernel"]
        embedding = variables["embeddings/token_embedding/embeddings"]
        report[name + "_query_shard"] = list(query.sharding.shard_shape(query.shape))
        report[name + "_embedding_replicated"] = embedding.sharding.is_fully_replicated

    metrics = pretrain(PretrainingConfig(
        corpus=[sys.argv[1]], vocab=sys.argv[2], config=sys.argv[3], seq_len=32, batch_size=8,
        max_predictions=5, steps=4, warmup_steps=1, eval_batches=1, out=sys.argv[4], data_parallel=True))
    report["pretrain_losses"] = [metrics["initial_mlm_loss"], metrics["final_mlm_loss"]]
    print("REPORT " + json.dumps(report))
    """
)


@pytest.mark.slow  # a JAX subprocess compiling 4 programs: about a minute
def test_data_and_model_parallel_steps_equal_a_single_device_step(tmp_path):
    from kbert.data import builtin_corpus
    from kbert.text import learn_vocabulary

    documents = builtin_corpus(max_files=10)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(document) for document in documents) + "\n", encoding="utf-8")
    vocabulary = learn_vocabulary((s for document in documents for s in document), vocabulary_size=300)
    (tmp_path / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    model_config = dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=32)
    (tmp_path / "tiny.json").write_text(json.dumps({"vocabulary_size": 300, **model_config}))

    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
        TF_CPP_MIN_LOG_LEVEL="3",
        CI="1",
    )
    arguments = [corpus, tmp_path / "vocab.txt", tmp_path / "tiny.json", tmp_path / "runs"]
    result = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES, *map(str, arguments)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    report = json.loads(result.stdout.split("REPORT ", 1)[1])

    for name in ("data", "model"):
        assert report[name + "_losses"] == pytest.approx(report["single_losses"], abs=1e-5), name
        assert report[name + "_weight_difference"] < 1e-5, name
        assert report[name + "_embedding_replicated"], name
    assert report["data_query_shard"] == [32, 32]  # replicated
    assert report["model_query_shard"] == [32, 16]  # split by output column over the 2-device "model" axis
    initial, final = report["pretrain_losses"]  # the entry point with data_parallel=True
    assert final < initial
