"""Packing: blocks respect the context, keep every example, and isolate examples exactly."""

from __future__ import annotations

from pathlib import Path

import torch

from modelyard.generation.objective import causal_nll
from modelyard.generation.packing import IGNORE, Example, collate_rows, pack


def _examples(lengths: list[int]) -> list[Example]:
    out = []
    for n, length in enumerate(lengths):
        ids = [(n * 7 + i) % 50 + 3 for i in range(length)]
        out.append(Example(ids, ids))
    return out


def test_pack_keeps_every_example_within_the_context() -> None:
    examples = _examples([30, 5, 17, 64, 2, 40, 11, 23, 9])
    blocks = pack(examples, 64)
    assert all(sum(len(e.input_ids) for e in b) <= 64 for b in blocks)
    assert sorted(id(e) for b in blocks for e in b) == sorted(id(e) for e in examples)
    assert len(blocks) == 4  # 201 tokens need at least 4 blocks of 64


def test_positions_restart_and_first_tokens_carry_no_loss() -> None:
    a, b = _examples([3, 4])
    batch = collate_rows([[a, b]], pad_id=0)
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert batch["labels"][0, 0] == IGNORE and batch["labels"][0, 3] == IGNORE
    padded = collate_rows([[a], [a, b]], pad_id=0)
    assert padded["position_ids"][0].tolist() == [
        0,
        1,
        2,
        0,
        1,
        2,
        3,
    ]  # padding is its own sequence
    assert (padded["labels"][0, 3:] == IGNORE).all()


def test_packed_loss_equals_each_example_alone(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama), use_safetensors=True).eval()
    examples = _examples([9, 14, 6])
    with torch.no_grad():
        packed, n_packed = causal_nll(model, collate_rows([examples], pad_id=0))
        alone = [causal_nll(model, collate_rows([[e]], pad_id=0)) for e in examples]
    assert n_packed == sum(n for _, n in alone) == (9 - 1) + (14 - 1) + (6 - 1)
    # nothing leaks across example boundaries: attention and positions restart
    assert torch.allclose(packed, sum(loss for loss, _ in alone), rtol=1e-4)


def test_selective_head_matches_the_models_own_loss(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama), use_safetensors=True).eval()
    ex = _examples([12])[0]
    ex.labels = [IGNORE] * 5 + ex.labels[5:]
    batch = collate_rows([[ex]], pad_id=0)
    with torch.no_grad():
        total, n = causal_nll(model, batch)
        reference = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    assert n == 7 and torch.allclose(total / n, reference, rtol=1e-4)
