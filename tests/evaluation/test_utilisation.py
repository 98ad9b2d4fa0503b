"""The FLOP counter and the GEMM peak probe behind every MFU figure."""

from __future__ import annotations

import pytest
from transformers import BertConfig, LlamaConfig

from modelyard.evaluation.utilisation import (
    TransformerShape,
    available_formats,
    decode_flops,
    gemm_peak_gflops,
    mfu,
    model_flops,
    probe_shapes,
)

MINILM = BertConfig(
    hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
)


def test_minilm_flops_match_the_hand_count() -> None:
    shape = TransformerShape.from_config(MINILM)
    # 6 layers x (8·d² + 4·d·ff + 4·T·d) x T, the figures NOTES.md gives (1.40 / 2.87 GFLOP)
    assert shape.forward_flops(64) / 1e9 == pytest.approx(1.40, abs=0.01)
    assert shape.forward_flops(128) / 1e9 == pytest.approx(2.87, abs=0.01)


def test_grouped_query_attention_and_gated_mlp_are_counted() -> None:
    config = LlamaConfig(
        hidden_size=576,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        intermediate_size=1536,
    )
    shape = TransformerShape.from_config(config)
    assert shape.kv_hidden == 192 and shape.gated_mlp
    dense = TransformerShape(30, 576, 1536, 576, gated_mlp=True)
    assert shape.forward_flops(100) < dense.forward_flops(100)


def test_padding_is_not_work_and_training_costs_three_passes() -> None:
    shape = TransformerShape.from_config(MINILM)
    real = model_flops(shape, [10, 20])
    assert real == pytest.approx(shape.forward_flops(10) + shape.forward_flops(20))
    assert real < model_flops(shape, [20, 20])  # the same batch padded to its longest row
    assert model_flops(shape, [10, 20], training=True) == pytest.approx(3 * real)


@pytest.mark.parametrize("fmt", available_formats())
def test_peak_probe_measures_every_native_format(fmt: str) -> None:
    assert gemm_peak_gflops(fmt, threads=1, repeats=1) > 0


def test_the_peak_is_probed_on_a_square_and_on_a_layer_s_products() -> None:
    shapes = probe_shapes("bf16")
    assert any(m == k == n for m, k, n in shapes)
    # the tall products of a layer on a batch of tokens: on AMX they beat the square one
    assert any(m > 2 * max(k, n) for m, k, n in shapes)
    assert gemm_peak_gflops("fp32", threads=1, repeats=1, shapes=[(64, 32, 16)]) > 0
    with pytest.raises(ValueError, match="fp32"):
        probe_shapes("fp8")


def test_probe_and_mfu_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="fp32"):
        gemm_peak_gflops("int3")
    with pytest.raises(ValueError):
        mfu(1e9, 0.0, 100.0)
    assert mfu(50e9, 1.0, 100.0) == pytest.approx(0.5)


def test_a_decoded_token_costs_one_token_of_the_stack_plus_its_context_and_head() -> None:
    shape = TransformerShape(layers=2, hidden=8, intermediate=32, kv_hidden=4, gated_mlp=True)
    per_layer = 2 * (2 * 64 + 2 * 32) + 2 * 8 * 32 * 3
    assert decode_flops(shape, 0) == 2 * per_layer
    # each cached token adds a score and a weighted value per layer
    assert decode_flops(shape, 10) - decode_flops(shape, 0) == 2 * (4 * 10 * 8)
    assert decode_flops(shape, 0, vocab=100) - decode_flops(shape, 0) == 2 * 8 * 100
    # one token with no cache is what the forward counter says a 1-token sequence costs
    assert decode_flops(shape, 1) == shape.forward_flops(1)
