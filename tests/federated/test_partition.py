"""Client shards: seeded, disjoint, covering; Dirichlet skews labels; a column names clients."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import RecipeError
from modelyard.federated.partition import (
    column_partition,
    dirichlet_partition,
    iid_partition,
    parse_partition,
)


def _check_cover(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == n and set(joined.tolist()) == set(range(n))


def test_iid_is_seeded_disjoint_and_covering() -> None:
    parts = iid_partition(103, 5, seed=1)
    _check_cover(parts, 103)
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    assert all(
        np.array_equal(a, b) for a, b in zip(parts, iid_partition(103, 5, seed=1), strict=True)
    )
    assert not all(
        np.array_equal(a, b) for a, b in zip(parts, iid_partition(103, 5, seed=2), strict=True)
    )


def test_dirichlet_skews_labels_more_at_small_alpha() -> None:
    labels = [i % 2 for i in range(1000)]

    def skew(alpha: float) -> float:
        parts = dirichlet_partition(labels, 5, alpha, seed=3)
        _check_cover(parts, 1000)
        return float(np.mean([abs(np.mean([labels[i] for i in p]) - 0.5) for p in parts]))

    assert skew(0.1) > skew(100.0)
    assert skew(100.0) < 0.1


def test_column_gives_one_client_per_value() -> None:
    values = ["a", "b", "a", "c", "b", "c", "a"]
    parts = column_partition(values, 3)
    _check_cover(parts, 7)
    assert [sorted({values[i] for i in p}) for p in parts] == [["a"], ["b"], ["c"]]
    with pytest.raises(RecipeError, match="--clients 3"):
        column_partition(values, 2)


@pytest.mark.parametrize(
    "spec", ["dirichlet", "dirichlet:-1", "dirichlet:x", "column:", "iid:2", "x"]
)
def test_bad_partition_spec_is_refused(spec: str) -> None:
    with pytest.raises(RecipeError, match="iid, dirichlet:ALPHA"):
        parse_partition(spec)


def test_parse_partition_reads_arguments() -> None:
    assert parse_partition("iid") == ("iid", None)
    assert parse_partition("dirichlet:0.5") == ("dirichlet", 0.5)
    assert parse_partition("column:site") == ("column", "site")


def test_too_many_clients_is_refused() -> None:
    with pytest.raises(RecipeError, match="cannot split 3 training rows over 5 clients"):
        iid_partition(3, 5, seed=0)
