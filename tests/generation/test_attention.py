"""Row-by-row decode attention gives what masked SDPA over the padded batch gives."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from modelyard.generation import attention
from modelyard.generation.attention import ragged_attention_forward


def case(starts: list[int], width: int = 12) -> tuple[torch.Tensor, ...]:
    """Return a decode step's query (6 heads), keys and values (2 heads) and its padding mask."""
    generator = torch.Generator().manual_seed(0)
    rows = len(starts)
    query = torch.randn((rows, 6, 1, 8), generator=generator)
    key = torch.randn((rows, 2, width, 8), generator=generator)
    value = torch.randn((rows, 2, width, 8), generator=generator)
    mask = torch.tensor([[[[c >= s for c in range(width)]]] for s in starts])
    return query, key, value, mask


def test_row_by_row_attention_equals_masked_sdpa_when_padding_dominates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = SimpleNamespace(num_key_value_groups=3, is_causal=True)
    query, key, value, mask = case([10, 9, 0, 11])
    used: list[int] = []
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **k: used.append(1))
    ragged, _ = ragged_attention_forward(module, query, key, value, mask, scaling=0.35)  # type: ignore[arg-type]
    assert not used  # the row-by-row path ran
    monkeypatch.undo()
    padded, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.35)  # type: ignore[arg-type]
    assert ragged.shape == padded.shape == (4, 1, 6, 8)
    assert torch.allclose(ragged, padded, atol=1e-5)


def test_little_padding_keeps_one_padded_call(monkeypatch: pytest.MonkeyPatch) -> None:
    module = SimpleNamespace(num_key_value_groups=3, is_causal=True)
    query, key, value, mask = case([0, 1, 2, 0])
    used: list[int] = []
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **k: used.append(1))
    ragged_attention_forward(module, query, key, value, mask)  # type: ignore[arg-type]
    assert used
