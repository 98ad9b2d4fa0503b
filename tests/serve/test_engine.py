"""The batching engine on the tiny real model: merging, ordering, bounds, deadlines, swaps."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

from modelyard.backends import Backend, load_backend
from modelyard.serve.engine import BatchStats, Prediction, Predictor, lower_priority
from modelyard.serve.errors import DeadlineExceededError, OverloadedError
from tests.conftest import make_rows

TEXTS = [text for text, _ in make_rows(12, seed=3)]


class Recording:
    """Delegates to a real backend and records the texts of every forward pass."""

    def __init__(self, backend: Backend) -> None:
        self.inner = backend
        self.name, self.labels, self.max_length, self.path = (
            backend.name,
            backend.labels,
            backend.max_length,
            backend.path,
        )
        self.calls: list[list[str]] = []

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        self.calls.append(list(texts))
        return self.inner.predict_proba(texts)


@pytest.fixture(scope="module")
def backends(tiny_runs: list[Path]) -> list[Backend]:
    return [load_backend(run) for run in tiny_runs]


def _results(futures: list[Future[Prediction]]) -> list[Prediction]:
    return [f.result(timeout=30) for f in futures]


def test_concurrent_requests_share_one_batch_and_keep_their_answers(
    backends: list[Backend],
) -> None:
    sizes: list[int] = []
    predictor = Predictor(
        backends[0], max_batch_size=8, max_wait_ms=10_000, on_batch=lambda s: sizes.append(s.size)
    )
    try:
        futures = [predictor.submit([t], timeout_s=60) for t in TEXTS[:8]]
        results = _results(futures)
    finally:
        predictor.close()
    assert sizes == [8]  # the batch left its window early because it was full
    expected, _ = backends[0].predict_proba(TEXTS[:8])
    got = np.concatenate([r.probs for r in results])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert all(r.version == "1" and r.labels == backends[0].labels for r in results)


def test_texts_are_run_length_sorted_in_batches_and_answered_in_order(
    backends: list[Backend],
) -> None:
    spy = Recording(backends[0])
    texts = ["a", "my parcel is late again today", "bill", "reset my password please now", "card"]
    predictor = Predictor(spy, max_batch_size=2, max_wait_ms=0)
    try:
        result = predictor.submit(texts, timeout_s=60).result(timeout=30)
    finally:
        predictor.close()
    assert [len(c) for c in spy.calls] == [2, 2, 1]
    flat = [t for call in spy.calls for t in call]
    assert [len(t) for t in flat] == sorted(len(t) for t in texts)
    expected, _ = backends[0].predict_proba(texts)
    np.testing.assert_allclose(result.probs, expected, atol=1e-5)


def test_truncation_is_reported_per_text(backends: list[Backend]) -> None:
    long_text = " ".join(["invoice"] * 40)
    predictor = Predictor(backends[0], max_wait_ms=0)
    try:
        result = predictor.submit(["short one", long_text], timeout_s=60).result(timeout=30)
    finally:
        predictor.close()
    assert result.truncated == [False, True]


def test_a_full_queue_refuses_at_once_and_queued_work_still_finishes(
    backends: list[Backend],
) -> None:
    predictor = Predictor(backends[0], max_batch_size=64, max_wait_ms=60_000, max_queue=4)
    queued = [predictor.submit([t], timeout_s=60) for t in TEXTS[:4]]
    assert predictor.depth == 4 and predictor.full
    with pytest.raises(
        OverloadedError, match=r"queue is full \(4 texts waiting, limit 4\)"
    ) as caught:
        predictor.submit(["one more"], timeout_s=60)
    assert caught.value.status == 503
    predictor.close()  # flushes the open batch instead of waiting a minute
    assert all(r.probs.shape == (1, 3) for r in _results(queued))
    assert predictor.depth == 0 and predictor.full  # closing refuses too
    with pytest.raises(OverloadedError, match="shutting down"):
        predictor.submit(["late"], timeout_s=60)


def test_a_request_past_its_deadline_gets_504_and_is_not_computed(backends: list[Backend]) -> None:
    stats: list[BatchStats] = []
    predictor = Predictor(backends[0], max_batch_size=64, max_wait_ms=60_000, on_batch=stats.append)

    async def ask() -> Prediction:
        return await predictor.predict(["my invoice"], timeout_s=0.05)

    try:
        with pytest.raises(DeadlineExceededError, match="deadline") as caught:
            asyncio.run(ask())
        assert caught.value.status == 504
    finally:
        predictor.close()
    assert stats == []


def test_swap_takes_effect_for_the_next_batch(backends: list[Backend]) -> None:
    predictor = Predictor(backends[0], version="1", max_wait_ms=0)
    try:
        before = predictor.submit(TEXTS[:2], timeout_s=60).result(timeout=30)
        predictor.swap(backends[1], "2")
        after = predictor.submit(TEXTS[:2], timeout_s=60).result(timeout=30)
    finally:
        predictor.close()
    assert (before.version, after.version) == ("1", "2")
    np.testing.assert_allclose(after.probs, backends[1].predict_proba(TEXTS[:2])[0], atol=1e-5)
    assert not np.allclose(before.probs, after.probs, atol=1e-5)


def test_a_failing_backend_fails_the_requests_not_the_worker(backends: list[Backend]) -> None:
    class Broken(Recording):
        def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
            raise RuntimeError("kernel exploded")

    predictor = Predictor(Broken(backends[0]), max_wait_ms=0)
    try:
        with pytest.raises(RuntimeError, match="kernel exploded"):
            predictor.submit(["x"], timeout_s=60).result(timeout=30)
        predictor.swap(backends[0], "2")
        assert predictor.submit(["x"], timeout_s=60).result(timeout=30).version == "2"
    finally:
        predictor.close()


def test_a_failing_text_fails_only_its_own_request_in_a_shared_batch(
    backends: list[Backend],
) -> None:
    class Poisoned(Recording):
        def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
            self.calls.append(list(texts))
            if any("POISON" in t for t in texts):
                raise ValueError("the tokenizer choked")
            return self.inner.predict_proba(texts)

    backend = Poisoned(backends[0])
    predictor = Predictor(backend, max_batch_size=4, max_wait_ms=10_000)
    try:
        futures = [predictor.submit([t], timeout_s=60) for t in (TEXTS[0], "POISON", *TEXTS[1:3])]
        with pytest.raises(ValueError, match="choked"):
            futures[1].result(timeout=30)
        answered = [f.result(timeout=30) for f in (futures[0], *futures[2:])]
    finally:
        predictor.close()
    assert len(backend.calls[0]) == 4  # they did share a batch
    expected, _ = backends[0].predict_proba([TEXTS[0], *TEXTS[1:3]])
    got = np.concatenate([r.probs for r in answered])
    np.testing.assert_allclose(got, expected, atol=1e-5)


class PriorityProbe(Recording):
    """Records the nice value of the thread each forward pass runs in."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self.nices: list[int] = []

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        self.nices.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return super().predict_proba(texts)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_inference_runs_at_a_lower_priority_than_the_server(backends: list[Backend]) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    if base > 19 - 5:
        pytest.skip("the test process is already at the lowest priority")
    probe = PriorityProbe(backends[0])
    predictor = Predictor(probe, max_wait_ms=0, nice=5)
    try:
        predictor.submit(TEXTS[:2], timeout_s=60).result(timeout=30)
    finally:
        predictor.close()
    assert probe.nices == [base + 5]
    # the caller's thread keeps its priority
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base


def test_lower_priority_by_zero_changes_nothing() -> None:
    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    assert lower_priority(0) is False
    assert os.getpriority(os.PRIO_PROCESS, tid) == before
