"""The same jobs on a Ray cluster, through Ray's Job Submission API (the dashboard's HTTP port).

Ray's jobs API runs any shell command it is sent: an open one is remote code execution for
whoever can reach it (the ShadowRay attacks of 2024). So this client sends a token when one
is configured (Ray's own token authentication, Ray 2.52 and later: `RAY_AUTH_MODE=token`
on the cluster) and refuses to talk to an address that is not on this machine without one,
unless it is told `insecure=True`. The token is looked up as Ray does: the `token_file`
given, `$RAY_AUTH_TOKEN`, the file `$RAY_AUTH_TOKEN_PATH`, then `~/.ray/auth_token`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import shlex
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from modelyard.jobs.errors import JobNotFoundError, JobsError
from modelyard.jobs.spec import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    JobSpec,
    Resources,
)
from modelyard.jobs.stages import job_argv
from modelyard.jobs.transitions import RetryPolicy
from modelyard.plugins import require

T = TypeVar("T")
_STATES = {"PENDING": QUEUED, "RUNNING": RUNNING, "SUCCEEDED": SUCCEEDED, "FAILED": FAILED,
           "STOPPED": CANCELLED}  # fmt: skip
_PREFIX = "modelyard."
_DEFAULT_TOKEN = Path("~/.ray/auth_token")


def normalize_address(address: str) -> str:
    """Return `address` with an http:// scheme and no trailing slash; raise JobsError if unusable."""
    address = address.strip().rstrip("/")
    if "://" not in address:
        address = f"http://{address}"
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobsError(
            f"a Ray jobs address looks like http://HOST:8265 (the dashboard port); got '{address}'"
        )
    return address


def is_local_address(address: str) -> bool:
    """Return True when the address names this machine (localhost or a loopback IP)."""
    host = urlsplit(normalize_address(address)).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_token(path: Path, source: str) -> str:
    try:
        token = path.expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise JobsError(
            f"cannot read the Ray token file {path} ({source}): {exc.strerror}"
        ) from None
    if not token:
        raise JobsError(f"the Ray token file {path} ({source}) is empty")
    return token


def find_token(token_file: str | Path | None = None) -> str | None:
    """Return the Ray auth token as Ray looks it up, or None when none is configured.

    Raises JobsError when a named token file cannot be read or is empty.
    """
    if token_file is not None:
        return _read_token(Path(token_file), "--token-file")
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip()
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return _read_token(Path(os.environ["RAY_AUTH_TOKEN_PATH"]), "$RAY_AUTH_TOKEN_PATH")
    default = _DEFAULT_TOKEN.expanduser()
    return _read_token(default, "Ray's default token file") if default.is_file() else None


def check_auth(address: str, token: str | None, insecure: bool) -> None:
    """Raise JobsError when `address` is another machine and no token is configured.

    `insecure=True` lifts the refusal (for a cluster whose jobs API is protected otherwise,
    e.g. behind an authenticating proxy on a private network).
    """
    if token is None and not insecure and not is_local_address(address):
        raise JobsError(
            f"refusing to send jobs to {address} without authentication: an open Ray jobs API "
            "runs any command for anyone who reaches it. Start the cluster with "
            "RAY_AUTH_MODE=token and give its token (--token-file FILE, $RAY_AUTH_TOKEN or "
            "`ray get-auth-token`), or pass --insecure if the cluster is protected another way"
        )


def _entrypoint(spec: JobSpec) -> str:
    command = shlex.join(job_argv(spec, rerun=False, python="python"))
    return f"cd {shlex.quote(spec.cwd)} && {command}"


def _spec(info: Any) -> JobSpec:
    meta = info.metadata or {}
    return JobSpec(
        stage=meta.get(f"{_PREFIX}stage", "command"),
        target=meta.get(f"{_PREFIX}target", info.entrypoint),
        args=tuple(json.loads(meta.get(f"{_PREFIX}args", "[]"))),
        cwd=meta.get(f"{_PREFIX}cwd", "."),
        # JobDetails does not echo the entrypoint resources: they travel in the metadata
        resources=Resources(
            float(meta.get(f"{_PREFIX}cpus", 0)),
            int(meta.get(f"{_PREFIX}memory", 0)),
            int(meta.get(f"{_PREFIX}gpus", 0)),
        ),
        priority=int(meta.get(f"{_PREFIX}priority", 0)),
        name=meta.get(f"{_PREFIX}name", ""),
        max_retries=0,
        max_crashes=0,
    )


def to_job(info: Any, prices: RetryPolicy) -> Job:
    """Return the Job for a Ray JobDetails record (times from ms to s, cost from wall time)."""
    spec = _spec(info)
    start = info.start_time / 1000 if info.start_time else None
    end = info.end_time / 1000 if info.end_time else None
    wall = (end - start) if start is not None and end is not None else 0.0
    return Job(
        id=str(info.submission_id or info.job_id),
        spec=spec,
        state=_STATES.get(str(getattr(info.status, "value", info.status)), RUNNING),
        submitted_at=start or 0.0,
        attempts=1,
        started_at=start,
        finished_at=end,
        exit_code=getattr(info, "driver_exit_code", None),
        message=info.message or "",
        wall_seconds=wall,
        cost=prices.cost(spec.resources, wall),
        backend="ray",
        extra={"ray_job_id": info.job_id, "entrypoint": info.entrypoint},
    )


class RayJobs:
    """Submit, list, read, stop and re-run jobs on the Ray cluster at `address`."""

    def __init__(
        self,
        address: str,
        token_file: str | Path | None = None,
        insecure: bool = False,
        prices: RetryPolicy | None = None,
    ) -> None:
        self.address = normalize_address(address)
        token = find_token(token_file)
        check_auth(self.address, token, insecure)
        self.prices = prices or RetryPolicy()
        module: Any = require("ray.job_submission", extra="ray")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.client = self._call(lambda: module.JobSubmissionClient(self.address, headers=headers))

    def _call(self, fn: Callable[[], T], job_id: str | None = None) -> T:
        from ray.exceptions import AuthenticationError

        try:
            return fn()
        except AuthenticationError:
            raise JobsError(
                f"the Ray cluster at {self.address} refused the token (or wants one): give the "
                "cluster's token with --token-file FILE or $RAY_AUTH_TOKEN"
            ) from None
        except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if job_id is not None and "404" in text:
                raise JobNotFoundError(
                    f"no job '{job_id}' on the Ray cluster at {self.address}"
                ) from None
            raise JobsError(f"the Ray cluster at {self.address} answered: {text}") from None

    def submit(self, spec: JobSpec) -> Job:
        """Submit `spec` as a Ray job whose entrypoint holds its cores, memory and GPUs."""
        threads = str(max(1, math.ceil(spec.resources.cpus)))
        metadata = {
            f"{_PREFIX}stage": spec.stage, f"{_PREFIX}target": spec.target,
            f"{_PREFIX}args": json.dumps(list(spec.args)), f"{_PREFIX}cwd": spec.cwd,
            f"{_PREFIX}priority": str(spec.priority), f"{_PREFIX}name": spec.name,
            f"{_PREFIX}cpus": f"{spec.resources.cpus:g}", f"{_PREFIX}memory": str(spec.resources.memory),
            f"{_PREFIX}gpus": str(spec.resources.gpus),
        }  # fmt: skip
        submission_id = self._call(
            lambda: self.client.submit_job(
                entrypoint=_entrypoint(spec),
                submission_id=f"modelyard-{uuid.uuid4().hex[:12]}",
                entrypoint_num_cpus=spec.resources.cpus,
                entrypoint_num_gpus=spec.resources.gpus,
                entrypoint_memory=spec.resources.memory or None,
                metadata=metadata,
                runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}},
            )
        )
        return self.get(submission_id)

    def get(self, job_id: str) -> Job:
        """Return the job `job_id`; raise JobNotFoundError if the cluster has none."""
        return to_job(self._call(lambda: self.client.get_job_info(job_id), job_id), self.prices)

    def list(self, state: str | None = None, limit: int | None = None) -> list[Job]:
        """Return the cluster's jobs, newest first, optionally only those in `state`."""
        infos = self._call(self.client.list_jobs)
        jobs = sorted((to_job(i, self.prices) for i in infos), key=lambda j: -(j.submitted_at or 0))
        jobs = [j for j in jobs if state is None or j.state == state]
        return jobs[:limit] if limit is not None else jobs

    def logs(self, job_id: str, tail: int | None = None) -> str:
        """Return the job's output (its last `tail` lines if given)."""
        text = str(self._call(lambda: self.client.get_job_logs(job_id), job_id))
        if tail is None:
            return text
        return "\n".join(text.splitlines()[-tail:]) if tail > 0 else ""

    def cancel(self, job_id: str) -> Job:
        """Stop the job (Ray sends SIGTERM, then SIGKILL, to its entrypoint) and return it."""
        job = self.get(job_id)
        if job.state in (SUCCEEDED, FAILED, CANCELLED):
            raise JobsError(f"job {job_id} has already {job.state}; there is nothing to cancel")
        self._call(lambda: self.client.stop_job(job_id), job_id)
        return self.get(job_id)

    def retry(self, job_id: str) -> Job:
        """Submit a failed or stopped job again (Ray jobs run once); return the new job."""
        job = self.get(job_id)
        if job.state not in (FAILED, CANCELLED):
            raise JobsError(
                f"job {job_id} is {job.state}; only failed or cancelled jobs can be retried"
            )
        return self.submit(job.spec)
