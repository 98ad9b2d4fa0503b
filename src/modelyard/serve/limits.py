"""Per-key token buckets and request-size checks, applied before any heavy work."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, TypeVar

import anyio
from pydantic import AfterValidator

from modelyard.serve.errors import InvalidRequestError, OverloadedError, RateLimitedError

T = TypeVar("T")

_MAX_TRACKED = 10_000


class TokenBucket:
    """Holds up to `burst` tokens, refilled at `rate` per second; each request takes one."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last call, up to `burst`."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take `cost` tokens and return 0.0, or return the seconds until one token is available."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= cost
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per caller (an API key id, or a client address with auth off).

    Buckets of callers not seen for a while are forgotten (least recently used first), so
    the table stays bounded however many callers there are.
    """

    def __init__(
        self,
        rate: float | None,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = _MAX_TRACKED,
        unit: str = "requests",
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.unit = unit
        self.clock = clock
        self.max_tracked = max_tracked
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, caller: str, now: float) -> TokenBucket:
        assert self.rate is not None
        bucket = self._buckets.pop(caller, None) or TokenBucket(self.rate, self.burst, now)
        self._buckets[caller] = bucket
        if len(self._buckets) > self.max_tracked:
            self._buckets.popitem(last=False)
        return bucket

    def check(self, caller: str, cost: float = 1.0) -> None:
        """Take `cost` tokens for `caller` (0: only check one is left).

        Raises RateLimitedError (with Retry-After) when the bucket holds less than one token.
        """
        if self.rate is None:
            return
        with self._lock:
            now = self.clock()
            wait = self._bucket(caller, now).take(now, cost)
        if wait > 0:
            raise RateLimitedError(
                f"rate limit of {self.rate:g} {self.unit}/s (burst {self.burst}) reached; "
                f"retry after {wait:.2f} s or ask for a higher limit",
                retry_after_s=max(1, math.ceil(wait)),
            )

    def refund(self, caller: str, amount: float) -> None:
        """Give `amount` tokens back to `caller` (reserved, then not spent), up to the burst."""
        if self.rate is None or amount <= 0:
            return
        with self._lock:
            now = self.clock()
            bucket = self._bucket(caller, now)
            bucket.refill(now)
            bucket.tokens = min(float(self.burst), bucket.tokens + amount)

    def charge(self, caller: str) -> None:
        """Take one token from `caller`'s bucket even if that empties it (never raises)."""
        if self.rate is None:
            return
        with self._lock:
            now = self.clock()
            bucket = self._bucket(caller, now)
            bucket.refill(now)
            bucket.tokens = max(bucket.tokens - 1.0, -float(self.burst))


def clean_text(text: str) -> str:
    """Return `text` in Unicode NFC; raise ValueError when it is not valid Unicode.

    A lone surrogate (JSON allows `"\\ud800"`) cannot be encoded, and a tokenizer raises on
    it: it is refused here, at the edge, so it never reaches a batch shared with others.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"the text holds a lone surrogate (U+{ord(text[exc.start]):04X}) at character "
            f"{exc.start}; send valid Unicode text"
        ) from None
    return unicodedata.normalize("NFC", text)


def clean_texts(texts: list[str]) -> list[str]:
    """Return `texts` in NFC; raise InvalidRequestError naming the first invalid one."""
    cleaned = []
    for i, text in enumerate(texts):
        try:
            cleaned.append(clean_text(text))
        except ValueError as exc:
            raise InvalidRequestError(f"text {i}: {exc}") from None
    return cleaned


# a request body's text: valid Unicode, normalised (pydantic names the item when it is not)
Text = Annotated[str, AfterValidator(clean_text)]


def check_texts(texts: list[str], max_texts: int, max_chars: int) -> None:
    """Raise InvalidRequestError when there are no texts, too many, or one is too long."""
    if not texts:
        raise InvalidRequestError("the request holds no texts; send at least one")
    if len(texts) > max_texts:
        raise InvalidRequestError(
            f"at most {max_texts} texts per request, got {len(texts)}; split the request"
        )
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            raise InvalidRequestError(
                f"text {i} has {len(text)} characters; at most {max_chars} are accepted, "
                "shorten it (the model reads only its first tokens anyway)"
            )


class WorkQueue:
    """Runs heavy jobs in worker threads: `running` at once, `waiting` more queued, beyond: 503.

    A job whose caller is cancelled (deadline, disconnect) is abandoned at once: the caller
    answers without waiting. Its thread still holds its running slot until it returns, so
    jobs never overlap on a shared model; the job must stop at its next step (a
    cancellation flag) to free the slot soon.
    """

    def __init__(self, running: int, waiting: int, what: str) -> None:
        self.running, self.waiting, self.what = running, waiting, what
        self._admitted = 0
        self._slots = threading.BoundedSemaphore(running)

    async def run(self, work: Callable[[], T]) -> T:
        """Return work() from a worker thread; raise OverloadedError when the queue is full."""
        if self._admitted >= self.running + self.waiting:
            raise OverloadedError(
                f"too many {self.what} in progress ({self._admitted}); retry in a moment"
            )

        def in_slot() -> T:
            with self._slots:  # held by the thread itself, so an abandoned job keeps it
                return work()

        self._admitted += 1
        try:
            return await anyio.to_thread.run_sync(in_slot, abandon_on_cancel=True)
        finally:
            self._admitted -= 1


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    return trim if callable(trim) else None


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Hand freed heap pages back to the OS (glibc's malloc_trim), so RSS drops again.

    Explanations allocate hundreds of MB of short-lived tensors and strings; without the
    trim glibc keeps the pages and the process stays at its peak. It takes milliseconds.
    (No gc.collect here: a finalizer run from it could wait on the event loop.) Returns None.
    """
    if _TRIM is not None:
        _TRIM(0)
