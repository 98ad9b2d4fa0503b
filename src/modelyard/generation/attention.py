"""Decode-step attention over the columns rows really use, for batches whose left padding is wide.

The running batch's cache is left-padded to its longest row: one 1,800-token prompt among
short ones makes every row's decode step attend over 1,800 columns, masked but still read
(SDPA took 11 ms a layer for 25 rows at that width on this CPU, against 0.6 ms at 150
columns). This attention splits a decode step's rows into buckets of similar length (rows
sorted by their first used column, cut where it lowers the columns read plus a fixed cost a
call) and runs one SDPA call a bucket over the columns its rows use. Running every row
alone instead cost 30 layers x 32 rows = 960 calls a step; a batch with little padding stays
one call, transformers' own SDPA attention, as prefills do.

The plan depends only on the mask, which is one tensor for all the layers of a forward, so it
is worked out once a forward.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

RAGGED = "modelyard_ragged"
# what one SDPA call costs beyond its work, in row-columns of keys read (a call's dispatch is
# a few microseconds, reading one row-column of bf16 keys and values a few nanoseconds)
CALL_COST = 256


@dataclass(frozen=True)
class Bucket:
    """Rows of a decode step that attend together over the columns from `start` on.

    `rows` is a slice when the rows are adjacent (views, nothing copied), else an index
    tensor; `mask` (rows x 1 x 1 x columns) hides the columns some of them do not use, None
    when all of them use every column from `start`.
    """

    rows: slice | torch.Tensor
    start: int
    mask: torch.Tensor | None


def plan_buckets(
    starts: list[int], width: int, call_cost: int | None = None
) -> list[Bucket] | None:
    """Return the buckets that read the fewest row-columns (plus `call_cost`, by default
    CALL_COST, a bucket) for rows whose first used columns are `starts` in a batch `width`
    columns wide, or None when one call over the whole batch is cheapest.

    Buckets are runs of rows sorted by start, cut by dynamic programming (a batch has at most
    a few dozen rows).
    """
    call_cost = CALL_COST if call_cost is None else call_cost
    order = sorted(range(len(starts)), key=lambda r: starts[r])
    ordered = [starts[r] for r in order]
    n = len(order)
    best = [0] + [2**62] * n  # best[j]: cheapest cost of the first j sorted rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):
            cost = best[i] + call_cost + (j - i) * (width - ordered[i])
            if cost < best[j]:
                best[j], cut[j] = cost, i
    bounds = []
    j = n
    while j:
        bounds.append((cut[j], j))
        j = cut[j]
    if len(bounds) == 1:
        return None
    buckets = []
    for i, j in reversed(bounds):
        rows = sorted(order[i:j])
        start = ordered[i]
        same = all(starts[r] == start for r in rows)
        mask = None
        if not same:
            column = torch.arange(start, width)
            mask = (column[None, :] >= torch.tensor([starts[r] for r in rows])[:, None])[
                :, None, None, :
            ]
        adjacent = rows == list(range(rows[0], rows[-1] + 1))
        index: slice | torch.Tensor = (
            slice(rows[0], rows[-1] + 1) if adjacent else torch.tensor(rows)
        )
        buckets.append(Bucket(index, start, mask))
    return buckets


class _PlanCache(threading.local):
    mask: torch.Tensor | None = None
    plan: list[Bucket] | None = None


_cache = _PlanCache()


def ragged_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Return the attention output (batch, 1, heads, dim) of a decode step, and None."""
    plan = _plan(query, key, value, attention_mask, kwargs)
    if plan is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    rows, heads, _, dim = query.shape
    groups = key.shape[1]
    out = query.new_empty((rows, heads, 1, value.shape[-1]))
    for bucket in plan:
        # the query heads sharing a key head attend together (as transformers' pack_gqa)
        q = query[bucket.rows]
        q = q.reshape(q.shape[0], groups, heads // groups, dim)
        k = key[bucket.rows, :, bucket.start :]
        v = value[bucket.rows, :, bucket.start :]
        got = F.scaled_dot_product_attention(q, k, v, attn_mask=bucket.mask, scale=scaling)
        out[bucket.rows] = got.reshape(q.shape[0], heads, 1, -1)
    return out.transpose(1, 2).contiguous(), None


def _plan(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    kwargs: dict[str, Any],
) -> list[Bucket] | None:
    """Return the buckets of a decode step (worked out once per mask), or None for one call."""
    plain = kwargs.get("position_bias") is None and kwargs.get("softcap") is None
    if not plain or query.shape[2] != 1 or mask is None or mask.dtype != torch.bool:
        return None
    if mask.shape[-1] != key.shape[2] or query.shape[1] % key.shape[1] or mask.shape[1] != 1:
        return None
    # the same mask object serves every layer of a forward; holding it keeps its id unique
    if _cache.mask is mask:
        return _cache.plan
    plan = _plan_of(query.shape[0], mask)
    _cache.mask, _cache.plan = mask, plan
    return plan


def _plan_of(rows: int, mask: torch.Tensor) -> list[Bucket] | None:
    visible = mask[:, 0, -1, :].expand(rows, -1)
    width = visible.shape[-1]
    starts = visible.int().argmax(dim=-1)
    used = visible.sum(dim=-1)
    # left padding only: each row's columns are one run up to the end
    if not torch.equal(used, width - starts):
        return None
    return plan_buckets([int(s) for s in starts], width)


def use_ragged_attention(model: Any) -> None:
    """Switch `model` from SDPA to the bucketed decode attention (other kinds are left)."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) not in ("sdpa", RAGGED):
        return
    ALL_ATTENTION_FUNCTIONS.register(RAGGED, ragged_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(RAGGED, sdpa_mask)
    model.config._attn_implementation = RAGGED
