"""Token buckets and request-size checks."""

from __future__ import annotations

import threading

import anyio
import pytest

from modelyard.serve.errors import InvalidRequestError, OverloadedError, RateLimitedError
from modelyard.serve.limits import RateLimiter, WorkQueue, check_texts, clean_text, clean_texts


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("k")
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("k")
    assert caught.value.status == 429 and caught.value.headers == {"Retry-After": "1"}
    clock.now += 0.5  # one token at 2/s
    limiter.check("k")
    with pytest.raises(RateLimitedError):
        limiter.check("k")


def test_callers_have_their_own_buckets() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=Clock())
    limiter.check("a")
    limiter.check("b")
    with pytest.raises(RateLimitedError):
        limiter.check("a")


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    limiter = RateLimiter(rate=0.25, burst=1, clock=Clock())
    limiter.check("k")
    with pytest.raises(RateLimitedError, match="retry after 4.00 s") as caught:
        limiter.check("k")
    assert caught.value.headers == {"Retry-After": "4"}


def test_no_rate_means_no_limit() -> None:
    limiter = RateLimiter(rate=None, burst=1)
    for _ in range(1000):
        limiter.check("k")


def test_tracked_callers_stay_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=Clock(), max_tracked=10)
    for i in range(100):
        limiter.check(str(i))
    assert len(limiter._buckets) == 10
    limiter.check("0")  # forgotten long ago: a fresh bucket


def test_check_texts_limits() -> None:
    check_texts(["a", "bb"], max_texts=2, max_chars=2)
    with pytest.raises(InvalidRequestError, match="no texts"):
        check_texts([], 2, 2)
    with pytest.raises(InvalidRequestError, match="at most 2 texts per request, got 3; split"):
        check_texts(["a"] * 3, 2, 2)
    with pytest.raises(InvalidRequestError, match="text 1 has 3 characters; at most 2"):
        check_texts(["a", "abc"], 2, 2)


def test_a_zero_cost_check_only_peeks_and_charge_spends() -> None:
    limiter = RateLimiter(rate=1.0, burst=2, clock=Clock())
    for _ in range(5):
        limiter.check("k", cost=0)
    limiter.charge("k")
    limiter.charge("k")
    with pytest.raises(RateLimitedError):
        limiter.check("k", cost=0)


def test_texts_are_normalised_to_nfc_and_lone_surrogates_refused_by_item() -> None:
    assert clean_text("cafe\u0301") == "caf\u00e9"
    assert clean_texts(["a", "\u212b"]) == ["a", "\u00c5"]
    with pytest.raises(
        InvalidRequestError, match=r"text 1: .*lone surrogate \(U\+D800\) at character 3"
    ):
        clean_texts(["fine", "hi \ud800"])


def test_the_work_queue_refuses_beyond_its_bound() -> None:
    queue = WorkQueue(running=1, waiting=1, what="explanations")
    release = threading.Event()

    async def main() -> list[str]:
        outcomes: list[str] = []

        async def one() -> None:
            try:
                await queue.run(release.wait)
                outcomes.append("done")
            except OverloadedError as exc:
                outcomes.append(str(exc))

        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(one)
                await anyio.sleep(0.05)
            release.set()
        return outcomes

    outcomes = anyio.run(main)
    assert outcomes.count("done") == 2 and "too many explanations in progress" in outcomes[0]


def test_an_abandoned_job_answers_at_once_but_never_overlaps_the_next() -> None:
    queue = WorkQueue(running=1, waiting=1, what="explanations")
    stuck = threading.Event()
    order: list[str] = []

    def slow() -> None:
        stuck.wait()
        order.append("abandoned job returned")

    async def main() -> None:
        with anyio.move_on_after(0.05):
            await queue.run(slow)
        order.append("its caller answered")

        async def release() -> None:
            await anyio.sleep(0.1)
            stuck.set()

        async with anyio.create_task_group() as group:
            group.start_soon(release)
            await queue.run(lambda: order.append("next job ran"))

    anyio.run(main)
    assert order == ["its caller answered", "abandoned job returned", "next job ran"]
