"""The benchmark helpers: the FLOP formula behind MFU, medians and ratios (timings are never asserted)."""

import os
import sys

import pytest

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench")
)

from common import median, ratio, training_flops_per_step  # noqa: E402

pytestmark = pytest.mark.backend_independent


def test_flops_of_a_known_config():
    # One layer, H=2, I=4, S=3, V=5, batch 1, one prediction, no pair head, worked by hand:
    # encoder per token 2*(4*4 + 2*2*4) + 4*3*2 = 64 + 24 = 88; 3 tokens -> 264
    # MLM 2*(4 + 10) = 28; pooler 2*4 = 8; forward 300; training 3x -> 900
    assert training_flops_per_step(1, 2, 4, 5, 1, 3, 1, pair_head=False) == 900
    # The pair head adds 2*2*H per sequence to the forward pass.
    assert training_flops_per_step(1, 2, 4, 5, 1, 3, 1, pair_head=True) == 900 + 3 * 8


def test_flops_scale_with_batch_and_layers():
    one = training_flops_per_step(4, 256, 1024, 30522, 16, 128, 20)
    assert training_flops_per_step(4, 256, 1024, 30522, 32, 128, 20) == 2 * one
    # L4/H256 at seq 128, batch 16, 20 predictions: 14.0 GFLOP encoder + 5.0 GFLOP MLM forward, x3 -> ~57 GFLOP.
    assert 5.6e10 < one < 5.8e10


def test_median_and_ratio():
    assert median([3.0, 1.0, 2.0, 100.0, 2.5]) == 2.5
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None and ratio(1.0, 0) is None and ratio(1.0, None) is None


def test_inference_table_states_speed_ups_against_the_same_backend_and_hf():
    import inference

    def row(framework, backend, ms1, ms32, compile_model=False):
        return {"framework": framework, "backend": backend, "compile": compile_model,
                "latency_ms": {"1": ms1, "32": ms32}}

    rows = [row("kbert", "jax", 10.0, 400.0), row("kerashub", "jax", 15.0, 500.0), row("kbert", "torch", 20.0, 800.0),
            row("kerashub", "torch", 30.0, 600.0), row("hf", "torch", 40.0, 400.0), row("hf", "torch", 1.0, 1.0, True)]
    lines = inference.table(rows).splitlines()
    # KerasHub / kbert on the same backend, then HF eager (not the compiled row) / kbert: > 1 means kbert is faster.
    assert lines[2] == "| kbert (jax) | 10.0 | 400.0 | 1.50x, 1.25x | 4.00x, 1.00x |"
    assert lines[4] == "| kbert (torch) | 20.0 | 800.0 | 1.50x, 0.75x | 2.00x, 0.50x |"
    assert lines[7] == "| HF transformers (torch, torch.compile) | 1.0 | 1.0 |  |  |"
