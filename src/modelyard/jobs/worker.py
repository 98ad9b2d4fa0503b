"""The worker: one loop that places queued jobs on this machine and watches them to the end.

Each turn it reaps finished jobs, stops cancelled ones, beats its heartbeat, re-queues the
jobs of workers that died, and starts what fits in the cores, memory and GPUs left free.
It is single-threaded on purpose: jobs are forked from the one thread that watches them.
SIGTERM or Ctrl-C stops it in order: its jobs get SIGTERM, then SIGKILL after the grace
period, and are queued again to resume.
"""

from __future__ import annotations

import math
import os
import secrets
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil

from modelyard.errors import ModelyardError
from modelyard.jobs import transitions as tx
from modelyard.jobs.process import Exit, Started, launch, reap, signal_group, wait_for_exit
from modelyard.jobs.queue import CHAOS_ENV, JobQueue
from modelyard.jobs.resources import available_memory, machine_capacity
from modelyard.jobs.scheduler import Policy, plan
from modelyard.jobs.spec import Job, Resources
from modelyard.jobs.stages import job_argv

EXIT_NOT_STARTED = 127


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs: its resource budget (None: the machine's), timing, and policies."""

    cpus: float | None = None
    memory: int | None = None
    gpus: int | None = None
    poll_s: float = 0.5
    heartbeat_s: float = 2.0
    recover_s: float = 5.0
    lease_s: float = 30.0
    grace_s: float = 10.0
    exit_when_idle: bool = False
    max_seconds: float | None = None
    schedule: Policy = field(default_factory=Policy)
    retry: tx.RetryPolicy = field(default_factory=tx.RetryPolicy)


@dataclass
class _Slot:
    job: Job
    started: Started
    gpu_ids: list[str]
    kill_at: float | None = None


def job_env(job: Job, gpu_ids: list[str]) -> dict[str, str]:
    """Return the environment of a job: the worker's, with thread counts set to its cores."""
    env = {k: v for k, v in os.environ.items() if k != CHAOS_ENV}
    threads = str(max(1, math.ceil(job.spec.resources.cpus)))
    env.update(
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        PYTHONUNBUFFERED="1",
        CUDA_VISIBLE_DEVICES=",".join(gpu_ids),
        MODELYARD_JOB_ID=job.id,
        MODELYARD_JOB_ATTEMPT=str(job.attempts),
    )
    return env


def _gpu_names(count: int) -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [d.strip() for d in visible.split(",") if d.strip()] if visible else []
    return names[:count] if names else [str(i) for i in range(count)]


class Worker:
    """Runs the jobs of `queue` on this machine until stopped (or idle, if asked)."""

    def __init__(
        self,
        queue: JobQueue,
        options: WorkerOptions | None = None,
        free_memory: Callable[[], int] = available_memory,
    ) -> None:
        self.queue, self.options = queue, options or WorkerOptions()
        machine = machine_capacity()
        o = self.options
        self.capacity = Resources(
            machine.cpus if o.cpus is None else o.cpus,
            machine.memory if o.memory is None else o.memory,
            machine.gpus if o.gpus is None else o.gpus,
        )
        self.id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._free_memory = free_memory
        self._free_gpus = _gpu_names(self.capacity.gpus)
        self._running: dict[int, _Slot] = {}
        self._stopping = False
        self.stats = {"started": 0, "finished": 0, "recovered": 0}

    def stop(self, *_: Any) -> None:
        """Ask the loop to stop after this turn (also the SIGTERM and SIGINT handler)."""
        self._stopping = True

    def run(self) -> dict[str, Any]:
        """Run until stopped; return what this worker did. Installs signal handlers in the main thread."""
        o = self.options
        previous = self._install_handlers()
        create = psutil.Process().create_time()
        tx.register_worker(self.queue, self.id, os.getpid(), create, self.capacity, time.time())
        began, beat, recovered = time.monotonic(), 0.0, 0.0
        try:
            while not self._stopping:
                clock = time.monotonic()
                if clock - recovered >= o.recover_s:
                    self.stats["recovered"] += len(
                        tx.recover(self.queue, o.retry, time.time(), o.lease_s)
                    )
                    recovered = clock
                if clock - beat >= o.heartbeat_s:
                    tx.heartbeat(self.queue, self.id, time.time())
                    beat = clock
                changed = self._reap() | self._cancel() | self._schedule()
                if self._done(clock - began):
                    break
                if not changed:
                    wait_for_exit([s.started for s in self._running.values()], o.poll_s)
        finally:
            self._shutdown()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return {"worker": self.id, **self.stats}

    def _install_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _done(self, elapsed: float) -> bool:
        o = self.options
        if o.max_seconds is not None and elapsed >= o.max_seconds:
            return True
        return o.exit_when_idle and not self._running and not tx.runnable(self.queue, self.capacity)

    def _free(self) -> Resources:
        used = Resources(0.0, 0, 0)
        for slot in self._running.values():
            used = used + slot.job.spec.resources
        free = self.capacity - used
        return Resources(free.cpus, min(free.memory, self._free_memory()), free.gpus)

    def _schedule(self) -> bool:
        now = time.time()
        chosen = plan(
            tx.waiting(self.queue, now), self._free(), self.capacity, now, self.options.schedule
        )
        started = False
        for waiting in chosen:
            job = tx.claim(self.queue, waiting.id, self.id, time.time())
            if job is not None:
                self._start(job)
                started = True
        return started

    def _start(self, job: Job) -> None:
        gpu_ids = [self._free_gpus.pop(0) for _ in range(job.spec.resources.gpus)]
        log_path = self.queue.log_path(job.id)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            argv = job_argv(job.spec, rerun=job.attempts > 1, python=sys.executable)
            header = f"=== attempt {job.attempts} on {self.id} at {stamp}: {shlex.join(argv)}\n"
            started = launch(argv, job.spec.cwd, job_env(job, gpu_ids), log_path, header)
        except (OSError, ModelyardError) as exc:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(
                    f"=== attempt {job.attempts} on {self.id} at {stamp} could not start: {exc}\n"
                )
            self._free_gpus.extend(gpu_ids)
            outcome = tx.Outcome(EXIT_NOT_STARTED, 0.0, 0.0)
            tx.finish(self.queue, job, outcome, self.options.retry, time.time())
            return
        tx.record_process(self.queue, job, started.pid, started.create_time)
        self._running[int(job.id)] = _Slot(job, started, gpu_ids)
        self.stats["started"] += 1

    def _collect(self, job_id: int, result: Exit) -> tx.Outcome:
        slot = self._running.pop(job_id)
        self._free_gpus.extend(slot.gpu_ids)
        wall = time.monotonic() - slot.started.monotonic
        return tx.Outcome(result.code, wall, result.cpu_seconds, cancelled=slot.kill_at is not None)

    def _reap(self) -> bool:
        reaped = False
        for job_id, slot in list(self._running.items()):
            result = reap(slot.started)
            if result is None:
                continue
            outcome = self._collect(job_id, result)
            tx.finish(self.queue, slot.job, outcome, self.options.retry, time.time())
            self.stats["finished"] += 1
            reaped = True
        return reaped

    def _cancel(self) -> bool:
        clock = time.monotonic()
        for job_id in tx.cancel_requests(self.queue, self.id) & self._running.keys():
            slot = self._running[job_id]
            if slot.kill_at is None:
                slot.kill_at = clock + self.options.grace_s
                signal_group(slot.started.pid, signal.SIGTERM)
        for slot in self._running.values():
            if slot.kill_at is not None and clock >= slot.kill_at:
                signal_group(slot.started.pid, signal.SIGKILL)
        return False

    def _shutdown(self) -> None:
        for slot in self._running.values():
            signal_group(slot.started.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.options.grace_s
        while self._running:
            for job_id, slot in list(self._running.items()):
                result = reap(slot.started)
                if result is not None:
                    self._finish_on_shutdown(job_id, slot, result)
            if time.monotonic() >= deadline:
                for slot in self._running.values():
                    signal_group(slot.started.pid, signal.SIGKILL)
            if self._running:
                wait_for_exit([s.started for s in self._running.values()], 0.1)
        tx.stop_worker(self.queue, self.id)

    def _finish_on_shutdown(self, job_id: int, slot: _Slot, result: Exit) -> None:
        outcome = self._collect(job_id, result)
        now = time.time()
        if result.code == 0 or outcome.cancelled:
            tx.finish(self.queue, slot.job, outcome, self.options.retry, now)
        else:
            tx.interrupt(self.queue, slot.job, outcome.wall_seconds, outcome.cpu_seconds,
                         self.options.retry, now)  # fmt: skip
