"""The inference engine: a worker thread that owns a backend and batches requests.

Requests from many connections land in one queue. The worker takes the oldest request,
waits up to `max_wait_ms` for more texts until `max_batch_size` are pending, sorts the
texts by length (so each forward pass pads little) and runs them through the backend.
The queue is bounded in texts: a full queue refuses at once instead of queueing
unbounded latency. A new backend can be swapped in between two batches, so a hot
reload never drops a request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from modelyard.backends import Backend
from modelyard.serve.errors import DeadlineExceededError, OverloadedError

log = logging.getLogger("modelyard.serve")


@dataclass
class Prediction:
    """Class probabilities and truncation flags for one request, with the version that answered."""

    probs: np.ndarray
    truncated: list[bool]
    labels: list[str]
    version: str


@dataclass
class _Job:
    texts: list[str]
    deadline: float
    future: Future[Prediction] = field(default_factory=Future)


@dataclass(frozen=True)
class BatchStats:
    """What one forward pass did: how many texts, how long it took, how many were cut."""

    size: int
    seconds: float
    truncated: int


class Predictor:
    """Dynamic batching in front of one Backend; thread-safe `submit`, async `predict`."""

    def __init__(
        self,
        backend: Backend,
        version: str = "1",
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 512,
        on_batch: Callable[[BatchStats], None] | None = None,
        nice: int = 0,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.nice = nice
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._backend, self._version = backend, version
        self._jobs: deque[_Job] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._flush = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="modelyard-predictor", daemon=True)
        self._thread.start()

    @property
    def backend(self) -> Backend:
        """Return the backend the next batch will run on."""
        return self._backend

    @property
    def version(self) -> str:
        """Return the version of the backend the next batch will run on."""
        return self._version

    @property
    def depth(self) -> int:
        """Return the number of texts waiting (not yet in a forward pass)."""
        return self._pending

    @property
    def full(self) -> bool:
        """Return True when a one-text request would be refused now (queue full or closing)."""
        return self._closing or self._pending >= self.max_queue

    def submit(self, texts: list[str], timeout_s: float) -> Future[Prediction]:
        """Queue `texts`; return a Future of their Prediction.

        Raises OverloadedError at once when the queue cannot take them or the predictor
        is closing.
        """
        job = _Job(list(texts), time.monotonic() + timeout_s)
        with self._cond:
            if self._closing:
                raise OverloadedError("the server is shutting down; retry on another instance")
            if self._pending + len(texts) > self.max_queue:
                raise OverloadedError(
                    f"the queue is full ({self._pending} texts waiting, limit {self.max_queue}); retry later"
                )
            self._jobs.append(job)
            self._pending += len(texts)
            self._cond.notify()
        return job.future

    async def predict(self, texts: list[str], timeout_s: float) -> Prediction:
        """Return the Prediction for `texts`; raise DeadlineExceededError after `timeout_s`.

        Raises OverloadedError when the queue is full.
        """
        future = self.submit(texts, timeout_s)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except TimeoutError:
            future.cancel()
            raise DeadlineExceededError(
                f"no answer within the {timeout_s:g} s deadline; the server is busy, retry later"
            ) from None

    def swap(self, backend: Backend, version: str) -> None:
        """Make the next batch run on `backend`; batches already running finish on the old one."""
        with self._cond:
            self._backend, self._version = backend, version

    def drain(self) -> None:
        """Stop waiting for batches to fill: run what is queued at once (used on shutdown)."""
        with self._cond:
            self._flush = True
            self._cond.notify_all()

    def close(self, timeout_s: float = 30.0) -> None:
        """Refuse new requests, answer the queued ones, and stop the worker thread."""
        with self._cond:
            self._closing = self._flush = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        # before the first forward pass: the thread pool it starts inherits this priority
        lower_priority(self.nice)
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            self._answer(jobs)

    def _next_batch(self) -> list[_Job] | None:
        with self._cond:
            while not self._jobs:
                if self._closing:
                    return None
                self._cond.wait()
            window_end = time.monotonic() + self.max_wait_s
            while self._pending < self.max_batch_size and not self._flush:
                remaining = window_end - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._take()

    def _take(self) -> list[_Job]:
        jobs: list[_Job] = []
        taken = 0
        while self._jobs and (not jobs or taken + len(self._jobs[0].texts) <= self.max_batch_size):
            job = self._jobs.popleft()
            jobs.append(job)
            taken += len(job.texts)
        self._pending -= taken
        return jobs

    def _answer(self, jobs: list[_Job]) -> None:
        now = time.monotonic()
        live = []
        for job in jobs:
            if not job.future.set_running_or_notify_cancel():
                continue  # the caller gave up (deadline): skip the work
            if now > job.deadline:
                job.future.set_exception(
                    DeadlineExceededError("the request waited past its deadline")
                )
                continue
            live.append(job)
        if live:
            self._run_jobs(live)

    def _run_jobs(self, jobs: list[_Job]) -> None:
        backend, version = self._backend, self._version
        texts = [t for job in jobs for t in job.texts]
        try:
            probs, cut = self._forward(backend, texts)
        except Exception as exc:
            if len(jobs) == 1:
                log.error("inference failed on a request of %d texts", len(texts), exc_info=exc)
                jobs[0].future.set_exception(exc)
                return
            # one bad text must not fail the other clients' requests: run each one alone
            log.warning(
                "inference failed on a batch of %d requests; retrying each alone", len(jobs)
            )
            for job in jobs:
                self._run_jobs([job])
            return
        start = 0
        for job in jobs:
            stop = start + len(job.texts)
            job.future.set_result(
                Prediction(probs[start:stop], cut[start:stop], backend.labels, version)
            )
            start = stop

    def _forward(self, backend: Backend, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        probs = np.zeros((len(texts), len(backend.labels)), dtype=np.float32)
        cut = [False] * len(texts)
        for start in range(0, len(order), self.max_batch_size):
            index = order[start : start + self.max_batch_size]
            began = time.perf_counter()
            chunk_probs, chunk_cut = backend.predict_proba([texts[i] for i in index])
            probs[index] = chunk_probs
            for i, flag in zip(index, chunk_cut, strict=True):
                cut[i] = bool(flag)
            if self.on_batch is not None:
                self.on_batch(BatchStats(len(index), time.perf_counter() - began, sum(chunk_cut)))
        return probs, cut


def lower_priority(steps: int) -> bool:
    """Lower the calling thread's scheduling priority by `steps` nice levels (Linux; threads
    it starts later inherit it); return whether it was lowered.

    An unprivileged thread may always lower its own priority; where threads have no priority
    of their own (other systems) or `steps` is 0, nothing changes.
    """
    if steps <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except OSError:  # a sandbox that forbids it: serve anyway, at the same priority
        return False
    return True
