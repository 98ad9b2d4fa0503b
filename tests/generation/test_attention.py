"""Bucketed decode attention gives what masked SDPA over the padded batch gives."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from modelyard.generation import attention
from modelyard.generation.attention import plan_buckets, ragged_attention_forward

MODULE = SimpleNamespace(num_key_value_groups=3, is_causal=True)


def case(starts: list[int], width: int = 12) -> tuple[torch.Tensor, ...]:
    """Return a decode step's query (6 heads), keys and values (2 heads) and its padding mask."""
    generator = torch.Generator().manual_seed(0)
    rows = len(starts)
    query = torch.randn((rows, 6, 1, 8), generator=generator)
    key = torch.randn((rows, 2, width, 8), generator=generator)
    value = torch.randn((rows, 2, width, 8), generator=generator)
    mask = torch.tensor([[[[c >= s for c in range(width)]]] for s in starts])
    return query, key, value, mask


@pytest.mark.parametrize(
    "starts", [[10, 9, 0, 11], [0, 10, 1, 11, 10, 2], [5, 5, 0, 0], [11, 11, 11, 0]]
)
def test_bucketed_attention_equals_masked_sdpa(
    monkeypatch: pytest.MonkeyPatch, starts: list[int]
) -> None:
    monkeypatch.setattr(attention, "CALL_COST", 1)  # split wherever it saves a column
    query, key, value, mask = case(starts)
    used: list[int] = []
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **k: used.append(1))
    bucketed, _ = ragged_attention_forward(MODULE, query, key, value, mask, scaling=0.35)  # type: ignore[arg-type]
    assert not used  # the bucketed path ran
    monkeypatch.undo()
    padded, _ = sdpa_attention_forward(MODULE, query, key, value, mask, scaling=0.35)  # type: ignore[arg-type]
    assert bucketed.shape == padded.shape == (len(starts), 1, 6, 8)
    assert torch.allclose(bucketed, padded, atol=1e-5)


def test_little_padding_keeps_one_padded_call(monkeypatch: pytest.MonkeyPatch) -> None:
    query, key, value, mask = case([0, 1, 2, 0])
    used: list[int] = []
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **k: used.append(1))
    ragged_attention_forward(MODULE, query, key, value, mask)  # type: ignore[arg-type]
    assert used


def test_long_and_short_rows_attend_in_separate_buckets() -> None:
    plan = plan_buckets([0, 400, 2, 410, 405], 460, call_cost=64)
    assert plan is not None and len(plan) == 2
    long, short = plan
    assert torch.equal(torch.as_tensor(long.rows), torch.tensor([0, 2]))
    assert long.start == 0 and long.mask is not None
    assert long.mask[:, 0, 0, :2].tolist() == [[True, True], [False, False]]
    assert short.start == 400 and short.mask is not None
    assert short.mask.shape == (3, 1, 1, 60)
    assert torch.equal(torch.as_tensor(short.rows), torch.tensor([1, 3, 4]))
    # rows of one length share one call, and a batch without padding needs no plan
    assert plan_buckets([0, 0, 0], 50, call_cost=64) is None
    same = plan_buckets([0, 300, 300], 310, call_cost=64)
    assert same is not None and same[1].rows == slice(1, 3) and same[1].mask is None


def test_the_plan_is_worked_out_once_for_all_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attention, "CALL_COST", 1)
    query, key, value, mask = case([10, 9, 0, 11])
    planned: list[int] = []
    original = attention._plan_of
    monkeypatch.setattr(
        attention, "_plan_of", lambda rows, m: planned.append(rows) or original(rows, m)
    )
    for _ in range(3):  # three layers of one forward share its mask
        ragged_attention_forward(MODULE, query, key, value, mask)  # type: ignore[arg-type]
    assert planned == [4]
    ragged_attention_forward(MODULE, query, key, value, mask.clone())  # type: ignore[arg-type]
    assert planned == [4, 4]
