"""The start-up heap is frozen out of garbage collection before the server accepts."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from modelyard.serve.server import settle_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_settle_heap_freezes_what_survives_a_collection(unfrozen: None) -> None:
    kept = [{"row": i} for i in range(5000)]
    frozen = settle_heap()
    # other threads of the test process (servers of earlier tests winding down) may free a
    # few frozen objects in between, never freeze more
    assert frozen - 100 <= gc.get_freeze_count() <= frozen
    assert frozen >= len(kept)
    # a frozen object is no longer among those the collector tracks per generation
    tracked = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
    assert id(kept[0]) not in tracked


def test_garbage_made_after_settling_is_still_collected(unfrozen: None) -> None:
    settle_heap()

    class Node:
        def __init__(self) -> None:
            self.me = self

    Node()  # a reference cycle only the collector can free
    assert gc.collect() >= 1
