"""A job's processes: started in a session (and process group) of their own, stopped as a group.

The job's first process dies with the worker (Linux parent-death signal), so a worker
killed with kill -9 leaves no job running unwatched; what the job started itself in its
group is killed by the next worker when it re-queues the job.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

_PR_SET_PDEATHSIG = 1


@dataclass
class Started:
    """A launched job process: pid (also its group id), its start stamp and an exit notifier."""

    pid: int
    create_time: float
    popen: subprocess.Popen[bytes]
    pidfd: int | None
    log: IO[bytes]
    monotonic: float


@dataclass(frozen=True)
class Exit:
    """How a process ended: exit code (negative: killed by that signal) and CPU seconds used."""

    code: int
    cpu_seconds: float


def _die_with_parent(parent: int) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

    def setup() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the worker died before the signal was armed
            os._exit(70)

    return setup


def launch(
    argv: Sequence[str], cwd: str, env: dict[str, str], log_path: Path, header: str
) -> Started:
    """Start `argv` in a new session with stdout and stderr appended to `log_path`.

    Raises OSError when the program cannot be started (the caller records it).
    """
    log = open(log_path, "ab")  # noqa: SIM115 - the worker closes it when the job ends
    log.write(header.encode("utf-8"))
    log.flush()
    try:
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),  # the worker is single-threaded
        )
    except OSError:
        log.close()
        raise
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        create_time = 0.0
    pidfd = None
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(popen.pid)
    return Started(popen.pid, create_time, popen, pidfd, log, time.monotonic())


def reap(started: Started) -> Exit | None:
    """Return how the process ended, or None while it runs (never blocks).

    What the job left running in its process group is killed before the job's first
    process is reaped: until then its pid, which is the group id, cannot be reused.
    """
    try:
        if os.waitid(os.P_PID, started.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return None
        signal_group(started.pid, signal.SIGKILL)
        _, status, usage = os.wait4(started.pid, 0)
    except ChildProcessError:
        return Exit(-signal.SIGKILL, 0.0)  # reaped elsewhere: report it as killed
    code = os.waitstatus_to_exitcode(status)
    started.popen.returncode = code  # so Popen does not wait on a pid it no longer owns
    if started.pidfd is not None:
        os.close(started.pidfd)
    started.log.close()
    return Exit(code, usage.ru_utime + usage.ru_stime)


def wait_for_exit(running: Sequence[Started], timeout: float) -> None:
    """Sleep until one of `running` exits or `timeout` seconds pass."""
    fds = [s.pidfd for s in running if s.pidfd is not None]
    if fds:
        select.select(fds, [], [], max(0.0, timeout))
    else:
        time.sleep(max(0.0, timeout))


def group_members(pgid: int) -> list[int]:
    """Return the live (not zombie) processes of process group `pgid`."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return members


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to every process of group `pgid` (nothing if it is gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_group_gone(pgid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for group `pgid` to have no live process; return True if so."""
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def is_same_process(pid: int, create_time: float) -> bool:
    """Return True when `pid` is alive and is the process started at `create_time`."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - create_time) < 0.5
    except psutil.Error:
        return False


def kill_stale_group(
    pgid: int | None, leader_create_time: float | None, timeout: float = 5.0
) -> None:
    """Kill what is left of a dead worker's job group, unless the id now names someone else.

    A group id cannot be reused while any process of the group lives, so a group with live
    members whose leader pid was reused by an unrelated process leader is left alone.
    """
    if pgid is None:
        return
    try:
        leader = psutil.Process(pgid)
        reused = (
            leader_create_time is not None and abs(leader.create_time() - leader_create_time) >= 0.5
        )
    except psutil.Error:
        reused = False
    if reused:
        return
    signal_group(pgid, signal.SIGKILL)
    wait_group_gone(pgid, timeout)
