from __future__ import annotations

import itertools

import numpy as np

from modelyard.models.encoding import collate, epoch_batches, eval_batches, length_groups


def test_epoch_batches_cover_every_index_once_and_are_seeded() -> None:
    lengths = np.random.default_rng(0).integers(3, 60, size=503)
    a = epoch_batches(lengths, 16, seed=1, epoch=0, group_by_length=True)
    assert sorted(np.concatenate(a).tolist()) == list(range(503))
    same = epoch_batches(lengths, 16, seed=1, epoch=0, group_by_length=True)
    assert all(np.array_equal(x, y) for x, y in zip(a, same, strict=True))
    other = epoch_batches(lengths, 16, seed=1, epoch=1, group_by_length=True)
    assert not all(np.array_equal(x, y) for x, y in zip(a, other, strict=False))


def test_grouping_reduces_padding() -> None:
    lengths = np.random.default_rng(0).integers(3, 60, size=1600)

    def padded(batches: list[np.ndarray]) -> int:
        return int(sum(lengths[b].max() * len(b) for b in batches))

    grouped = padded(epoch_batches(lengths, 32, 0, 0, group_by_length=True))
    shuffled = padded(epoch_batches(lengths, 32, 0, 0, group_by_length=False))
    assert grouped < 0.8 * shuffled


def test_a_window_of_two_batches_splits_each_pair_of_random_batches_by_length() -> None:
    lengths = np.random.default_rng(0).integers(3, 60, size=160)
    rng = np.random.default_rng([5, 0])
    order = rng.permutation(160)
    grouped = epoch_batches(lengths, 16, seed=5, epoch=0, group_by_length=True, window=2)
    assert sorted(np.concatenate(grouped).tolist()) == list(range(160))
    # each window is two random batches' worth of rows, its shorter and its longer half
    for start in range(0, 160, 32):
        window = order[start : start + 32]
        halves = [b for b in grouped if set(b.tolist()) <= set(window.tolist())]
        assert len(halves) == 2
        short, long = sorted(halves, key=lambda b: lengths[b].max())
        assert lengths[short].max() <= lengths[long].min()
    wide = epoch_batches(lengths, 16, seed=5, epoch=0, group_by_length=True, window=10)
    assert sum(lengths[b].max() * 16 for b in wide) < sum(lengths[b].max() * 16 for b in grouped)


def test_eval_batches_sorted_by_length() -> None:
    lengths = np.array([3, 9, 1, 7])
    assert np.concatenate(eval_batches(lengths, 2)).tolist() == [1, 3, 0, 2]


def _cost(lengths: np.ndarray, groups: list[np.ndarray], call_tokens: int) -> int:
    return int(sum(lengths[g].max() * len(g) + call_tokens for g in groups))


def test_length_groups_cut_a_batch_where_padding_outweighs_a_call() -> None:
    lengths = np.array([5, 60, 6, 58, 4, 61])
    groups = length_groups(lengths, 6, call_tokens=20)
    assert [sorted(g.tolist()) for g in groups] == [[1, 3, 5], [0, 2, 4]]
    # a call dearer than the padding it saves: one batch, as eval_batches gives
    [whole] = length_groups(lengths, 6, call_tokens=1000)
    assert whole.tolist() == eval_batches(lengths, 6)[0].tolist()


def test_length_groups_cover_each_batch_once_at_the_least_cost() -> None:
    lengths = np.random.default_rng(3).integers(2, 50, size=7)
    groups = length_groups(lengths, 7, call_tokens=12)
    assert sorted(np.concatenate(groups).tolist()) == list(range(7))
    order = eval_batches(lengths, 7)[0]
    # every way of cutting the sorted batch into runs costs at least as much
    for cuts in itertools.product([False, True], repeat=6):
        edges = [0, *(i + 1 for i, c in enumerate(cuts) if c), 7]
        runs = [order[a:b] for a, b in itertools.pairwise(edges)]
        assert _cost(lengths, groups, 12) <= _cost(lengths, runs, 12)
    assert max(len(g) for g in length_groups(lengths, 3, call_tokens=0)) <= 3


def test_collate_pads_to_longest_in_batch() -> None:
    ids = [[1, 5, 2], [1, 2], [1, 6, 7, 8, 2]]
    types = [[0, 0, 0], [0, 0], [0, 0, 1, 1, 1]]
    batch = collate(ids, types, np.array([0, 1]), pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 5, 2], [1, 2, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["token_type_ids"].shape == (2, 3)
