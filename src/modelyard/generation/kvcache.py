"""The KV cache of a running batch: rows of different lengths, left-padded to one width.

`BatchCache` wraps a transformers `DynamicCache` whose layers keep their keys and values
in buffers with spare room (`GrowingLayer`), so a decode step writes one column in place
instead of copying the whole cache, as `DynamicLayer`'s concatenation does. Rows join
(their caches padded on the left to a common width) and leave (selected out) between two
steps; columns that are padding in every row are trimmed away.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

_SPARE = 64


class GrowingLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views of buffers that grow geometrically."""

    def __init__(self) -> None:
        super().__init__()
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self.length = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new keys and values; return all of them (views of the buffers)."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        if self._k is None or self.length + new > self._k.shape[-2]:
            self._reserve(key_states, value_states, self.length + new)
        assert self._k is not None and self._v is not None
        self._k[:, :, self.length : self.length + new] = key_states
        self._v[:, :, self.length : self.length + new] = value_states
        self.length += new
        self._expose()
        return self.keys, self.values  # type: ignore[return-value]

    def _reserve(self, keys: torch.Tensor, values: torch.Tensor, needed: int) -> None:
        capacity = max(needed + _SPARE, 2 * (self._k.shape[-2] if self._k is not None else 0))
        k = keys.new_zeros((*keys.shape[:2], capacity, keys.shape[-1]))
        v = values.new_zeros((*values.shape[:2], capacity, values.shape[-1]))
        if self._k is not None and self._v is not None:
            k[:, :, : self.length] = self._k[:, :, : self.length]
            v[:, :, : self.length] = self._v[:, :, : self.length]
        self._k, self._v = k, v

    def _expose(self) -> None:
        assert self._k is not None and self._v is not None
        self.keys = self._k[:, :, : self.length]
        self.values = self._v[:, :, : self.length]

    def set(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Replace the contents with `keys` and `values` (copied into fresh buffers)."""
        self._k = self._v = None
        self.length = 0
        self._reserve(keys, values, keys.shape[-2])
        assert self._k is not None and self._v is not None
        self._k[:, :, : keys.shape[-2]] = keys
        self._v[:, :, : keys.shape[-2]] = values
        self.length = keys.shape[-2]
        self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows `indices`."""
        if self._k is not None and self._v is not None:
            self._k, self._v = self._k[indices], self._v[indices]
            self._expose()

    def trim_left(self, columns: int) -> None:
        """Drop the first `columns` positions (padding in every row)."""
        if columns and self.keys is not None and self.values is not None:
            self.set(self.keys[:, :, columns:], self.values[:, :, columns:])


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
            assert a.keys is not None and a.values is not None
            assert b.keys is not None and b.values is not None
            keys = torch.cat(
                [_pad_left(a.keys, width - mine, 2), _pad_left(b.keys, width - theirs, 2)]
            )
            values = torch.cat(
                [_pad_left(a.values, width - mine, 2), _pad_left(b.values, width - theirs, 2)]
            )
            a.set(keys, values)
        self.mask = torch.cat(
            [_pad_left(self.mask, width - mine, 1), _pad_left(other.mask, width - theirs, 1)]
        )
        return self

    def select(self, rows: list[int]) -> None:
        """Keep only `rows`, then drop the columns that are padding in every remaining row."""
        index = torch.tensor(rows)
        for layer in self.layers:
            layer.batch_select_indices(index)
        self.mask = self.mask[index]
        used = self.mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first:
            for layer in self.layers:
                layer.trim_left(first)
            self.mask = self.mask[:, first:]
