"""What a job is: the stage it runs, the resources it asks for, and its record in the queue."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from modelyard.jobs.errors import JobsError

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})
# a job that exits with EX_TEMPFAIL (sysexits.h) asks to be retried after a back-off
EXIT_RETRYABLE = 75

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_memory(value: str | int) -> int:
    """Return a memory size in bytes from `4G`, `512M`, `1.5GiB` or a plain byte count.

    Raises JobsError for anything else.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise JobsError(f"memory must be 0 or more bytes; got {value}")
        return value
    match = _MEMORY.match(str(value))
    if match is None:
        raise JobsError(f"memory must look like 4G, 512M, 1.5GiB or a byte count; got '{value}'")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.upper()])


def format_memory(size: int) -> str:
    """Return `size` bytes as a short human figure (e.g. 4.0G)."""
    for unit in ("T", "G", "M", "K"):
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:.1f}{unit}"
    return f"{size}B"


@dataclass(frozen=True)
class Resources:
    """What a job asks for, or what a machine has: CPU cores, bytes of memory, GPUs."""

    cpus: float
    memory: int
    gpus: int = 0

    def fits_in(self, free: Resources) -> bool:
        """Return True when every amount asked for is at most what `free` holds."""
        return (
            self.cpus <= free.cpus + 1e-9 and self.memory <= free.memory and self.gpus <= free.gpus
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpus - other.cpus, self.memory - other.memory, self.gpus - other.gpus)

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.memory + other.memory, self.gpus + other.gpus)


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to run a job: stage, target, arguments, folder, resources, limits."""

    stage: str
    target: str
    args: tuple[str, ...] = ()
    cwd: str = "."
    resources: Resources = field(default_factory=lambda: Resources(1, 1024**3, 0))
    priority: int = 0
    name: str = ""
    max_retries: int = 3
    max_crashes: int = 3

    def check(self) -> None:
        """Raise JobsError when a resource or limit is out of range."""
        r = self.resources
        problems = [
            f"cpus must be more than 0; got {r.cpus}" if r.cpus <= 0 else "",
            f"gpus must be 0 or more; got {r.gpus}" if r.gpus < 0 else "",
            f"max_retries must be 0 or more; got {self.max_retries}"
            if self.max_retries < 0
            else "",
            f"max_crashes must be 0 or more; got {self.max_crashes}"
            if self.max_crashes < 0
            else "",
        ]
        if any(problems):
            raise JobsError("; ".join(p for p in problems if p))


@dataclass(frozen=True)
class Job:
    """A job as the queue (or a Ray cluster) knows it; times are Unix seconds."""

    id: str
    spec: JobSpec
    state: str
    submitted_at: float
    attempts: int = 0
    retries: int = 0
    crashes: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    worker: str | None = None
    message: str = ""
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    cost: float = 0.0
    backend: str = "local"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_hours(self) -> float:
        """Return CPU-hours held: cores asked for × seconds run, over every attempt."""
        return self.spec.resources.cpus * self.wall_seconds / 3600

    @property
    def gpu_hours(self) -> float:
        """Return GPU-hours held over every attempt."""
        return self.spec.resources.gpus * self.wall_seconds / 3600

    def cost_line(self) -> str:
        """Return one line: CPU and GPU hours held, CPU time used, and their price."""
        return (
            f"{self.cpu_hours:.4f} CPU-h, {self.gpu_hours:.4f} GPU-h held "
            f"({self.cpu_seconds:.1f} s CPU used) = ${self.cost:.4f}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the job as plain JSON-ready values (the resources flattened)."""
        spec = asdict(self.spec)
        resources = spec.pop("resources")
        out = {k: v for k, v in asdict(self).items() if k not in ("spec", "extra")}
        out.update(spec)
        out.update(resources)
        out["args"] = list(self.spec.args)
        out["cpu_hours"], out["gpu_hours"] = self.cpu_hours, self.gpu_hours
        out["cost_line"] = self.cost_line()
        out.update(self.extra)
        return out
