"""Start the processes of a data-parallel run with torch's elastic launcher (what torchrun uses).

One node: N processes on this machine meeting on 127.0.0.1. Several nodes: the same command
on each node with `--nnodes`, and `--rdzv-endpoint HOST:PORT` of a machine all can reach;
with `--node-rank R` the rendezvous is static (node 0 hosts it on that port, as torchrun's
`--master-addr/--master-port`), without it dynamic (torch's c10d rendezvous, ranks in order of
arrival). Each process is told its rank through the `env://` variables.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard import errors
from modelyard.errors import LaunchError, ModelyardError

_ELASTIC_LOGGER = "torch.distributed.elastic"


@dataclass(frozen=True)
class LaunchPlan:
    """How many processes to start where, and where they meet."""

    nproc: int
    nnodes: int = 1
    node_rank: int | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None

    def check(self, cores: int, gpus: int) -> None:
        """Raise LaunchError unless the plan can run on a node with `cores` CPU cores and
        `gpus` GPUs (0: the processes train on the CPU)."""
        if not isinstance(self.nproc, int) or self.nproc < 1:
            raise LaunchError(
                f"--nproc must be a whole number of processes, 1 or more; got {self.nproc!r}"
            )
        if gpus and self.nproc > gpus:
            raise LaunchError(
                f"--nproc {self.nproc}: this node has {gpus} GPU(s) and each process needs one; "
                f"use --nproc {gpus} or fewer"
            )
        if not gpus and self.nproc > cores:
            raise LaunchError(
                f"--nproc {self.nproc}: this node has {cores} CPU core(s) and each process needs "
                f"at least one; use --nproc {cores} or fewer (train.num_threads sets threads a process)"
            )
        if self.nnodes < 1:
            raise LaunchError(f"--nnodes must be 1 or more; got {self.nnodes}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise LaunchError(
                f"--nnodes {self.nnodes} needs --rdzv-endpoint HOST:PORT, an address every node "
                "can reach (the node of rank 0 with --node-rank)"
            )
        if self.node_rank is not None and not 0 <= self.node_rank < self.nnodes:
            raise LaunchError(
                f"--node-rank {self.node_rank} is outside 0..{self.nnodes - 1} (--nnodes {self.nnodes})"
            )
        if self.rdzv_endpoint is not None:
            host, _, port = self.rdzv_endpoint.rpartition(":")
            if not host or not port.isdigit():
                raise LaunchError(
                    f"--rdzv-endpoint must be HOST:PORT (e.g. 10.0.0.1:29500); got {self.rdzv_endpoint!r}"
                )


def config(plan: LaunchPlan, run_id: str, log_dir: Path) -> Any:
    """Return torch's LaunchConfig for `plan` (the workers' output goes to this console)."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig

    common: dict[str, Any] = {
        "min_nodes": plan.nnodes,
        "max_nodes": plan.nnodes,
        "nproc_per_node": plan.nproc,
        "max_restarts": 0,  # a failed rank fails the run; --resume continues it
        "start_method": "spawn",
        "logs_specs": DefaultLogsSpecs(log_dir=str(log_dir)),
    }
    if plan.nnodes == 1 and plan.rdzv_endpoint is None:
        # one machine: meet on the loopback address, on a port the rendezvous picks
        return LaunchConfig(
            **common,
            run_id=uuid.uuid4().hex,
            rdzv_backend="c10d",
            rdzv_endpoint="127.0.0.1:0",
            local_addr="127.0.0.1",
        )
    run = plan.rdzv_id or run_id
    if plan.node_rank is not None:
        return LaunchConfig(
            **common,
            run_id=run,
            rdzv_backend="static",
            rdzv_endpoint=plan.rdzv_endpoint or "",
            rdzv_configs={"rank": plan.node_rank},
        )
    return LaunchConfig(
        **common, run_id=run, rdzv_backend="c10d", rdzv_endpoint=plan.rdzv_endpoint or ""
    )


@contextmanager
def _worker_environment(plan: LaunchPlan, threads: int) -> Iterator[None]:
    """Set what the workers inherit for the launch: OpenMP threads, and on one machine the
    loopback interface for gloo (else it resolves the host name to a network address)."""
    wanted = {"OMP_NUM_THREADS": str(threads)}
    if plan.nnodes == 1 and any(name == "lo" for _, name in socket.if_nameindex()):
        wanted["GLOO_SOCKET_IFNAME"] = "lo"
    saved = {key: os.environ.get(key) for key in wanted}
    for key, value in wanted.items():
        os.environ.setdefault(key, value)  # a user's own setting wins
    logger = logging.getLogger(_ELASTIC_LOGGER)
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # failures are reported as a ModelyardError instead
    try:
        yield
    finally:
        logger.setLevel(level)
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def launch(
    plan: LaunchPlan, args: list[str], work_dir: Path, run_id: str, threads: int
) -> set[int]:
    """Run `python ARGS` as every local process of `plan`, wait for all, and return the global
    ranks that ran on this node.

    Raises the ModelyardError a process recorded in `work_dir` (see `record_error`), or
    LaunchError when a process failed otherwise or a signal stopped the launch.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    launcher = elastic_launch(config(plan, run_id, work_dir / "logs"), sys.executable)
    try:
        with _worker_environment(plan, threads):
            results = launcher(*args)
    except ChildFailedError as exc:
        raise _failure(work_dir, exc.failures) from None
    except SignalException as exc:  # Ctrl-C or a scheduler's SIGTERM: the processes were stopped
        raise LaunchError(
            f"training was stopped ({exc.sigval.name}); continue it with --resume"
        ) from None
    return set(results)


def record_error(work_dir: Path, rank: int, exc: ModelyardError) -> None:
    """Write a process's user error where `launch` finds it, so the launching command raises
    it with its own class and message."""
    path = work_dir / f"error-rank-{rank:05d}.json"
    payload = {"type": type(exc).__name__, "message": str(exc)}
    path.write_text(json.dumps(payload), encoding="utf-8")


def _failure(work_dir: Path, failures: dict[int, Any]) -> ModelyardError:
    """Return the error of the lowest rank that recorded one, else a LaunchError naming the
    ranks that failed and their exit codes."""
    for path in sorted(work_dir.glob("error-rank-*.json")):
        recorded = json.loads(path.read_text(encoding="utf-8"))
        kind = getattr(errors, recorded["type"], LaunchError)
        if not (isinstance(kind, type) and issubclass(kind, ModelyardError)):
            kind = LaunchError
        return kind(recorded["message"])
    codes = ", ".join(f"rank {r} exit code {f.exitcode}" for r, f in sorted(failures.items()))
    return LaunchError(f"a training process failed ({codes}); its traceback is printed above")
