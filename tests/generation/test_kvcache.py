"""The batch KV cache: rows join left-padded, leave in place, and padding columns drop away."""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache

from modelyard.generation.kvcache import BatchCache, GrowingLayer, PackedPrompts


def filled(rows: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return random keys and values of `rows` rows, 2 heads, `width` columns, head size 4."""
    generator = torch.Generator().manual_seed(seed)
    shape = (rows, 2, width, 4)
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)


def layer_of(keys: torch.Tensor, values: torch.Tensor) -> GrowingLayer:
    """Return a layer holding `keys` and `values`, as after a prefill."""
    layer = GrowingLayer()
    layer.update(keys, values)
    return layer


def kv(layer: GrowingLayer) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the keys and values the layer exposes."""
    assert layer.keys is not None and layer.values is not None
    return layer.keys, layer.values


def padded(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Return `tensor` with zero columns added on the left up to `width`."""
    pad = tensor.new_zeros((*tensor.shape[:2], width - tensor.shape[2], tensor.shape[3]))
    return torch.cat([pad, tensor], dim=2)


def test_rows_join_left_padded_whichever_side_is_wider() -> None:
    for mine, theirs in [(5, 3), (3, 7), (4, 4)]:
        k1, v1 = filled(2, mine, 0)
        k2, v2 = filled(3, theirs, 1)
        layer = layer_of(k1, v1)
        layer.append_rows(k2, v2)
        width = max(mine, theirs)
        assert torch.equal(kv(layer)[0], torch.cat([padded(k1, width), padded(k2, width)]))
        assert torch.equal(kv(layer)[1], torch.cat([padded(v1, width), padded(v2, width)]))


def test_leaving_rows_and_trimmed_columns_do_not_copy_the_buffers() -> None:
    keys, values = filled(4, 6, 0)
    layer = layer_of(keys, values)
    buffer = kv(layer)[0].data_ptr()
    layer.keep_rows([1, 3])
    layer.trim_left(2)
    assert torch.equal(kv(layer)[0], keys[[1, 3], :, 2:])
    assert torch.equal(kv(layer)[1], values[[1, 3], :, 2:])
    assert kv(layer)[0].data_ptr() == buffer + 2 * keys.shape[-1] * keys.element_size()
    # a reused spare row starts clean and the next column lands after the kept ones
    k2, v2 = filled(1, 2, 1)
    layer.append_rows(k2, v2)
    step_k, step_v = filled(3, 1, 2)
    layer.update(step_k, step_v)
    expected = torch.cat([keys[[1, 3], :, 2:], padded(k2, 4)])
    assert torch.equal(kv(layer)[0], torch.cat([expected, step_k], dim=2))


def test_the_batch_cache_keeps_its_mask_in_step_with_its_layers() -> None:
    cache = BatchCache.empty(torch.tensor([[0, 1, 1], [1, 1, 1]]))
    cache.cache.update(*filled(2, 3, 0), 0)
    other = BatchCache.empty(torch.tensor([[1, 1, 1, 1, 1]]))
    other.cache.update(*filled(1, 5, 1), 0)
    cache.join(other)
    assert cache.mask.tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert kv(cache.layers[0])[0].shape[2] == 5
    cache.select([0, 1])  # the widest row left: its padding columns go too
    assert cache.mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert kv(cache.layers[0])[0].shape[:3] == (2, 2, 3)
    assert cache.positions(1).tolist() == [[1], [2]]


def test_packed_prompts_restart_positions_and_attend_only_within_themselves() -> None:
    packed = PackedPrompts.of([[7, 8, 9], [4], [5, 6]])
    assert packed.ids.tolist() == [[7, 8, 9, 4, 5, 6]]
    assert packed.positions.tolist() == [[0, 1, 2, 0, 0, 1]]
    assert packed.last.tolist() == [2, 3, 5]
    assert packed.mask.shape == (1, 1, 6, 6) and packed.mask.dtype == torch.bool
    expected = [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1, 1],
    ]
    assert packed.mask[0, 0].int().tolist() == expected


def test_a_packed_prefill_cache_becomes_left_padded_rows() -> None:
    lengths = [3, 1, 2]
    keys, values = filled(1, sum(lengths), 0)
    packed = DynamicCache()
    packed.update(keys, values, 0)
    packed.update(values, keys, 1)
    batch = BatchCache.from_packed(packed, lengths)
    assert batch.mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]
    assert batch.positions(3).tolist() == [[0, 1, 2], [0, 0, 0], [0, 0, 1]]
    for layer, (k, v) in zip(batch.layers, [(keys, values), (values, keys)], strict=True):
        got_k, got_v = kv(layer)
        assert torch.equal(got_k[0], k[0, :, 0:3])
        assert torch.equal(got_k[1, :, 2:], k[0, :, 3:4])
        assert torch.equal(got_k[2, :, 1:], k[0, :, 4:6])
        assert torch.equal(got_v[2, :, 1:], v[0, :, 4:6])
        assert torch.isfinite(got_k).all()
