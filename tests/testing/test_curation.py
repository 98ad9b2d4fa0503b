"""The query-strategy sweep, and the strategy check failing on deliberately broken strategies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelyard.curation.active import QueryContext
from modelyard.testing import BoundCheck, check_strategy, parametrize_with_checks


@parametrize_with_checks("query-strategy")
def test_strategy_keeps_its_contract(entry: str, check: BoundCheck) -> None:
    check()


def top_with_repeats(ctx: QueryContext, k: int) -> np.ndarray:
    return np.zeros(k, dtype=np.int64)


def counts_the_labelled_rows_too(ctx: QueryContext, k: int) -> np.ndarray:
    # indices into labelled + pool instead of into the pool
    done = 0 if ctx.labelled is None else len(ctx.labelled)
    return np.argsort(ctx.probs.max(axis=1))[:k] + done


def global_random(ctx: QueryContext, k: int) -> np.ndarray:
    return np.random.permutation(len(ctx.probs))[:k]


def float_indices(ctx: QueryContext, k: int) -> np.ndarray:
    return np.arange(k, dtype=np.float64)


def sorts_in_place(ctx: QueryContext, k: int) -> np.ndarray:
    ctx.probs.sort(axis=1)
    return np.arange(k)


def one_short(ctx: QueryContext, k: int) -> np.ndarray:
    return np.arange(k - 1)


def needs_labelled_rows(ctx: QueryContext, k: int) -> np.ndarray:
    return np.arange(k) + 0 * len(ctx.labelled)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("strategy", "clause"),
    [
        (top_with_repeats, "indices are distinct"),
        (counts_the_labelled_rows_too, "never past it"),
        (global_random, "picks the same rows for the same seed"),
        (float_indices, "indices are integers"),
        (sorts_in_place, "leaves the context's arrays alone"),
        (one_short, "returns k indices"),
    ],
)
def test_a_broken_strategy_fails_naming_the_clause(strategy: Any, clause: str) -> None:
    with pytest.raises(AssertionError, match=f"'{strategy.__name__}' breaks .*{clause}"):
        check_strategy(strategy)


def test_a_strategy_that_needs_labelled_rows_fails_before_any_are_labelled() -> None:
    with pytest.raises(AssertionError, match="works before any row is labelled.*TypeError"):
        check_strategy(needs_labelled_rows)
