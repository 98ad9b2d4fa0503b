"""The KV cache of a running batch: rows of different lengths, left-padded to one width.

`BatchCache` wraps a transformers `DynamicCache` whose layers keep their keys and values
in buffers with spare rows and columns (`GrowingLayer`), so a decode step writes one column
in place instead of copying the whole cache, as `DynamicLayer`'s concatenation does. Rows
join (their caches padded on the left to a common width) and leave between two steps, and
columns that are padding in every row are dropped, mostly without copying the cache.

Prompts are prefilled packed: whole prompts end to end in one row, each attending only to
itself (`PackedPrompts`), so a prefill computes no padding; `BatchCache.from_packed` then
lays their keys and values out as left-padded rows for the running batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

_SPARE = 64


class GrowingLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views of buffers with spare rows and columns.

    The rows in use are the first `rows` of the buffers, the columns in use `start:length`.
    A decode step writes one column in place; rows join into spare rows (right-aligned, the
    left padding masked), rows leave by moving the later rows up in place, and leading
    padding columns are dropped by moving `start`: none of these copies the whole cache,
    which at 25 rows of 1,900 columns cost 0.5 s a time. Buffers start zeroed, so padding
    keys and values are always finite (masked out, they must not turn into NaN).
    """

    def __init__(self) -> None:
        super().__init__()
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self.rows = 0
        self.start = 0
        self.length = 0

    @property
    def width(self) -> int:
        """Return the number of columns in use."""
        return self.length - self.start

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new keys and values; return all of them (views of the buffers)."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        if self._k is None:
            self.rows = key_states.shape[0]
        if self._k is None or self.length + new > self._k.shape[-2]:
            self._move(key_states, self.rows, self.width, new)
        assert self._k is not None and self._v is not None
        self._k[: self.rows, :, self.length : self.length + new] = key_states
        self._v[: self.rows, :, self.length : self.length + new] = value_states
        self.length += new
        self._expose()
        return self.keys, self.values  # type: ignore[return-value]

    def _move(self, like: torch.Tensor, rows: int, width: int, room: int) -> None:
        """Copy the rows in use into fresh zeroed buffers for `rows` rows whose columns in use
        are `0:width` (the old ones right-aligned in them), with room for `room` more."""
        old_rows = self._k.shape[0] if self._k is not None else 0
        spare_rows = old_rows if rows <= old_rows else max(rows, 2 * old_rows)
        columns = max(width + room + _SPARE, 2 * self.width)
        k = like.new_zeros((spare_rows, like.shape[1], columns, like.shape[-1]))
        v = like.new_zeros((spare_rows, like.shape[1], columns, like.shape[-1]))
        if self._k is not None and self._v is not None:
            used = slice(self.start, self.length)
            k[: self.rows, :, width - self.width : width] = self._k[: self.rows, :, used]
            v[: self.rows, :, width - self.width : width] = self._v[: self.rows, :, used]
        self._k, self._v = k, v
        self.start, self.length = 0, width

    def _expose(self) -> None:
        assert self._k is not None and self._v is not None
        self.keys = self._k[: self.rows, :, self.start : self.length]
        self.values = self._v[: self.rows, :, self.start : self.length]

    def append_rows(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Add rows below the rows in use, padded on the left to the common width."""
        assert self._k is not None
        theirs, rows = keys.shape[-2], self.rows + keys.shape[0]
        width = max(self.width, theirs)
        if width > self.width or rows > self._k.shape[0]:
            # the rows in use shift right by the padding the wider newcomers need
            self._move(keys, rows, width, 0)
        assert self._k is not None and self._v is not None
        self._k[self.rows : rows, :, self.start : self.length] = 0
        self._v[self.rows : rows, :, self.start : self.length] = 0
        self._k[self.rows : rows, :, self.length - theirs : self.length] = keys
        self._v[self.rows : rows, :, self.length - theirs : self.length] = values
        self.rows = rows
        self._expose()

    def keep_rows(self, rows: list[int]) -> None:
        """Keep only `rows` (ascending), moving each up in place into the first places."""
        assert self._k is not None and self._v is not None
        used = slice(self.start, self.length)
        for place, row in enumerate(rows):
            if place != row:
                self._k[place, :, used] = self._k[row, :, used]
                self._v[place, :, used] = self._v[row, :, used]
        self.rows = len(rows)
        self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows `indices` (ascending)."""
        if self._k is not None:
            self.keep_rows([int(i) for i in indices])

    def trim_left(self, columns: int) -> None:
        """Drop the first `columns` positions (padding in every row)."""
        if columns and self._k is not None:
            self.start += columns
            self._expose()


def _pad_left(tensor: torch.Tensor, columns: int, dim: int) -> torch.Tensor:
    if columns == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = columns
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class BatchCache:
    """A batch's KV cache and its attention mask (1: a real token, 0: left padding).

    The mask always covers the cached positions plus the tokens of the next forward pass.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask
        self.cache = DynamicCache()
        self.cache.layer_class_to_replicate = GrowingLayer

    @classmethod
    def empty(cls, mask: torch.Tensor) -> BatchCache:
        """Return an empty cache for a prefill of prompts whose mask is `mask`."""
        return cls(mask)

    @classmethod
    def from_packed(cls, packed: DynamicCache, lengths: list[int]) -> BatchCache:
        """Return a cache of one left-padded row per prompt from the cache of a packed prefill
        (one row holding the prompts of `lengths` end to end)."""
        width = max(lengths)
        starts = [sum(lengths[:i]) for i in range(len(lengths))]
        # each row gathers its prompt's columns, right-aligned; padding reads column 0 of
        # the packed row (finite, and masked out)
        gather = torch.tensor(
            [
                [0] * (width - n) + list(range(s, s + n))
                for s, n in zip(starts, lengths, strict=True)
            ]
        )
        mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths])
        batch = cls(mask)
        for index, layer in enumerate(packed.layers):
            if not isinstance(layer, DynamicLayer) or layer.keys is None or layer.values is None:
                raise TypeError(f"cache layer {index} holds no keys and values to lay out")
            keys = layer.keys[0][:, gather].transpose(0, 1)
            values = layer.values[0][:, gather].transpose(0, 1)
            batch.cache.update(keys, values, index)
        return batch

    @property
    def layers(self) -> list[GrowingLayer]:
        """Return the cache layers."""
        return [layer for layer in self.cache.layers if isinstance(layer, GrowingLayer)]

    def positions(self, width: int) -> torch.Tensor:
        """Return the position ids of the last `width` columns (each row counts its own tokens)."""
        return (self.mask.cumsum(dim=1) - 1).clamp(min=0)[:, -width:]

    def extend(self) -> None:
        """Add one mask column for the token every row feeds next."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)

    def join(self, other: BatchCache) -> BatchCache:
        """Append the rows of `other` below this cache's rows (both left-padded to one width)."""
        mine, theirs = self.mask.shape[1], other.mask.shape[1]
        width = max(mine, theirs)
        for a, b in zip(self.layers, other.layers, strict=True):
            assert b.keys is not None and b.values is not None
            a.append_rows(b.keys, b.values)
        self.mask = torch.cat(
            [_pad_left(self.mask, width - mine, 1), _pad_left(other.mask, width - theirs, 1)]
        )
        return self

    def select(self, rows: list[int]) -> None:
        """Keep only `rows`, then drop the columns that are padding in every remaining row."""
        for layer in self.layers:
            layer.keep_rows(rows)
        self.mask = self.mask[torch.tensor(rows)]
        used = self.mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first:
            for layer in self.layers:
                layer.trim_left(first)
            self.mask = self.mask[:, first:]


@dataclass(frozen=True)
class PackedPrompts:
    """Prompts end to end in one row: token ids, position ids, attention mask, last tokens.

    `mask` is a 4D boolean mask (1 x 1 x tokens x tokens), causal within each prompt and
    closed between prompts, which transformers passes to the attention as it is; each
    prompt's positions restart at 0, so every prompt computes what it would alone.
    """

    ids: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor
    lengths: list[int]

    @classmethod
    def of(cls, prompts: list[list[int]]) -> PackedPrompts:
        """Return the packing of `prompts` (each non-empty), in order."""
        lengths = [len(p) for p in prompts]
        total = sum(lengths)
        segment = torch.repeat_interleave(torch.arange(len(prompts)), torch.tensor(lengths))
        starts = torch.tensor([0, *lengths[:-1]]).cumsum(0)
        positions = torch.arange(total) - starts[segment]
        column = torch.arange(total)
        mask = (segment[:, None] == segment[None, :]) & (column[:, None] >= column[None, :])
        ids = torch.tensor([token for prompt in prompts for token in prompt])
        last = starts + torch.tensor(lengths) - 1
        return cls(ids[None], positions[None], mask[None, None], last, lengths)
