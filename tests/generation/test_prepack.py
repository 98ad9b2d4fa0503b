"""Packed bf16 linear layers: same logits and tokens as plain ones, and refused where they
cannot apply."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from modelyard.generation.engine import GenerationEngine, GenerationRequest
from modelyard.generation.prepack import PackedLinear, can_prepack, prepack_linears
from tests.generation.conftest import save_tiny_llama

needs_onednn = pytest.mark.skipif(
    not can_prepack(torch.nn.Linear(2, 2).to(torch.bfloat16)), reason="no oneDNN in this build"
)


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The varied tiny Llama in bf16, and its tokenizer."""
    folder: Path = save_tiny_llama(tmp_path_factory.mktemp("prepack-llama"), varied=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), use_safetensors=True)
    return model.eval().to(torch.bfloat16), AutoTokenizer.from_pretrained(str(folder))


@needs_onednn
def test_packed_linear_matches_linear_on_any_leading_shape() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 24).to(torch.bfloat16)
    packed = PackedLinear(linear)
    for shape in [(5, 48), (2, 3, 48), (1, 1, 48)]:
        x = torch.randn(*shape, dtype=torch.bfloat16)
        want = linear(x).float()
        got = packed(x)
        assert got.shape == want.shape
        assert torch.allclose(got.float(), want, atol=3e-2, rtol=3e-2)


@needs_onednn
def test_prepack_replaces_the_layers_but_not_the_head_and_keeps_logits(
    lm: tuple[Any, Any],
) -> None:
    model, tok = lm
    packed = copy.deepcopy(model)
    replaced = prepack_linears(packed)
    # 2 layers x (q, k, v, o, gate, up, down)
    assert replaced == 14
    assert type(packed.lm_head) is torch.nn.Linear
    assert sum(isinstance(m, PackedLinear) for m in packed.modules()) == 14
    ids = torch.tensor([tok("the blue bird sees the horse.")["input_ids"]])
    with torch.inference_mode():
        want, got = model(input_ids=ids).logits.float(), packed(input_ids=ids).logits.float()
    assert torch.allclose(got, want, atol=5e-2, rtol=5e-2)
    assert torch.equal(got.argmax(-1), want.argmax(-1))


@needs_onednn
def test_engine_on_a_packed_model_answers_as_on_the_plain_one(lm: tuple[Any, Any]) -> None:
    model, tok = lm
    prompts = ["the red cat", "what colour is the dog?", "the"]
    answers = []
    for pack in (False, True):
        m = copy.deepcopy(model)  # a packed model cannot be deep-copied: oneDNN tensors
        assert not pack or prepack_linears(m) > 0
        engine = GenerationEngine(m, tok, max_batch_size=4)
        try:
            seqs = [engine.submit(GenerationRequest(list(tok(p)["input_ids"]), 6)) for p in prompts]
            answers.append(
                [
                    [d.token_id for d in s.deltas(timeout_s=60) if d.token_id is not None]
                    for s in seqs
                ]
            )
        finally:
            engine.close(5)
    assert answers[0] == answers[1]
    assert all(len(a) > 0 for a in answers[0])


def test_prepack_leaves_fp32_models_alone(lm: tuple[Any, Any]) -> None:
    fp32 = copy.deepcopy(lm[0]).float()
    assert not can_prepack(fp32)
    assert prepack_linears(fp32) == 0
    assert not any(isinstance(m, PackedLinear) for m in fp32.modules())


def test_prepack_refuses_when_the_operator_disagrees(
    lm: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = copy.deepcopy(lm[0])
    if not can_prepack(model):
        pytest.skip("no oneDNN in this build")

    def zeros(self: PackedLinear, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*x.shape[:-1], self.out_features, dtype=x.dtype)

    monkeypatch.setattr(PackedLinear, "forward", zeros)
    assert prepack_linears(model) == 0
    assert not any(isinstance(m, PackedLinear) for m in model.modules())
