"""Data-parallel fine-tuning across processes (torch.distributed, DistributedDataParallel).

Every process (rank) runs the same loop on the same plan. Each global batch of the
single-process loop (`train.batch_size` rows) is split across the ranks, so the optimizer steps,
the learning-rate schedule and the data order are those of one process at the same batch; the
gradients are averaged by DDP with weights that make the step the gradient of the whole batch's
mean loss. Rank 0 alone evaluates, saves the best weights and the checkpoints, logs and writes
the run folder; after each step it sends the loop state (where to stop, the cool-down, the
time budget) to the other ranks as JSON, so every rank stops at the same step.

A process is a rank when a launcher (`modelyard train --nproc N`, or torchrun) set the
`env://` variables: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from modelyard.trainer.checkpoint import (
    TrainingState,
    _join_optimizer_state,
    _split_optimizer_state,
)
from modelyard.trainer.loop import FineTuner, TrainData, TrainResult, _Run

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_RANK_SEED = 1_000_003  # spaces the dropout streams of ranks 1.. apart from rank 0's


def launched() -> bool:
    """Return True when this process was started as one rank by a launcher (env:// set)."""
    return all(key in os.environ for key in ENV)


def usable_cores() -> int:
    """Return the CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Parallel:
    """This process's place among the ranks, and the backend they talk through."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    backend: str
    device: torch.device

    @property
    def leader(self) -> bool:
        """Whether this is rank 0: the one that evaluates, logs and writes."""
        return self.rank == 0

    def threads(self, asked: int | None) -> int:
        """Return torch's intra-op threads for this rank: `asked`, else the node's cores shared
        out evenly among its ranks (at least one)."""
        return asked if asked is not None else max(1, usable_cores() // self.local_world)

    def summary(self, threads: int) -> dict[str, Any]:
        """Return the figures a run's metrics record about its processes."""
        return {
            "world_size": self.world,
            "processes_per_node": self.local_world,
            "nodes": max(1, self.world // self.local_world),
            "backend": self.backend,
            "threads_per_process": threads,
        }


@contextmanager
def process_group(device: torch.device) -> Iterator[Parallel]:
    """Join the launcher's process group (gloo on the CPU, nccl on CUDA GPUs, one GPU a rank)
    for the body, and leave it afterwards; yield this process's Parallel."""
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    try:
        yield Parallel(
            rank=dist.get_rank(),
            world=dist.get_world_size(),
            local_rank=local_rank,
            local_world=int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())),
            backend=backend,
            device=device,
        )
    finally:
        dist.destroy_process_group()


def shard(index: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Return this rank's rows of a global batch: every `world`-th row from `rank` on, so a
    length-sorted batch gives each rank rows of every length."""
    return index[rank::world]


def rank_seed(seed: int, rank: int, step: int) -> int:
    """Return the torch seed of rank `rank` (1..) from optimizer step `step` on: a function of
    where the run is, so a resumed run draws the same dropout masks as an uninterrupted one."""
    return seed + _RANK_SEED * rank + step


class DistributedFineTuner(FineTuner):
    """The fine-tuning loop as one rank of a data-parallel run; `fit` as FineTuner's.

    Only rank 0 evaluates, keeps the best weights, writes checkpoints and shows progress
    (give the other ranks `progress=False` and no listeners); their `fit` returns the same
    steps and stop reason but no history, and leaves their weights as trained.
    """

    def __init__(self, *args: Any, parallel: Parallel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parallel = parallel
        self.ddp: DistributedDataParallel | None = None

    def fit(self, train: TrainData, dev: TrainData, resume: bool = False) -> TrainResult:
        """Train as one rank; see FineTuner.fit. Every rank must call it with the same data."""
        self.model.to(self.device)
        self._reseed(0)
        ids = [self.device.index] if self.device.type == "cuda" else None
        # wrapping broadcasts rank 0's weights, so every rank starts from the same ones
        self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        return super().fit(train, dev, resume)

    # -- training steps -------------------------------------------------------------------

    def _backward(self, train: TrainData, index: np.ndarray, accum: int) -> float:
        assert self.ddp is not None
        world = self.parallel.world
        rows = shard(index, self.parallel.rank, world)
        # DDP averages the ranks' gradients; weighting each rank's mean loss by its share of
        # the batch makes that average the gradient of the whole batch's mean loss
        weight = len(rows) * world / max(len(index), 1)
        # a rank without rows (a batch smaller than the world) still joins the all-reduce
        piece = rows if len(rows) else index[:1]
        loss = self.objective.loss(self.ddp, train, piece, self.device, self.dtype)
        (loss * weight / accum).backward()
        total = torch.tensor(
            [float(loss.detach()) * len(rows)], dtype=torch.float64, device=self._comm_device()
        )
        dist.all_reduce(total)
        return float(total.item()) / max(len(index), 1)

    def _after_step(self, run: _Run) -> None:
        if self.parallel.leader:
            super()._after_step(run)
        self._share_decisions(run)
        every = self.cfg.checkpoint_every
        if every and run.state.step % every == 0:
            self._reseed(run.state.step)

    def _end_of_epoch(self, run: _Run) -> None:
        if self.parallel.leader:
            super()._end_of_epoch(run)
        self._share_decisions(run)
        self._reseed(run.state.step)  # rank 0 wrote a checkpoint

    # -- rank 0 alone evaluates and writes ----------------------------------------------

    def _evaluate(self, run: _Run, decide: bool = True) -> None:
        if self.parallel.leader:
            super()._evaluate(run, decide)
        else:
            run.state.last_eval_step = run.state.step

    def _settle_final(self, run: _Run) -> None:
        if self.parallel.leader:
            super()._settle_final(run)

    def _restore_best(self) -> None:
        if self.parallel.leader:
            super()._restore_best()

    def _start(
        self, optimizer: Any, scheduler: Any, resume: bool
    ) -> tuple[TrainingState, int | None]:
        if self.parallel.leader:
            state, resumed = super()._start(optimizer, scheduler, resume)
        else:
            state, resumed = TrainingState(history=[]), None
        if not resume:
            return state, resumed
        state = self._share_checkpoint(optimizer, scheduler, state)
        self._reseed(state.step)
        return state, state.step

    # -- what rank 0 sends --------------------------------------------------------------

    def _share_decisions(self, run: _Run) -> None:
        """Give every rank rank 0's loop state and schedule."""
        state, schedule = run.state, run.schedule
        payload = None
        if self.parallel.leader:
            payload = {
                "state": {k: v for k, v in vars(state).items() if k != "history"},
                "decay": [schedule.decay_start, schedule.decay_end],
            }
        payload = self._broadcast_json(payload)
        if not self.parallel.leader:
            for key, value in payload["state"].items():
                setattr(state, key, value)
            schedule.decay_start, schedule.decay_end = payload["decay"]

    def _share_checkpoint(self, optimizer: Any, scheduler: Any, state: TrainingState) -> Any:
        """Return the loop state rank 0 resumed, after copying its weights, optimizer and
        schedule to every rank (the checkpoint need not be on every node's disk)."""
        meta = None
        tensors: dict[str, torch.Tensor] = {}
        if self.parallel.leader:
            tensors, opt_meta = _split_optimizer_state(optimizer.state_dict())
            meta = {
                "loop": vars(state),
                "scheduler": scheduler.state_dict(),
                "optimizer": opt_meta,
                "tensors": {k: [list(v.shape), str(v.dtype)] for k, v in tensors.items()},
            }
        meta = self._broadcast_json(meta)
        self._broadcast_weights()
        device = self._comm_device()
        shared: dict[str, torch.Tensor] = {}
        for key, (shape, dtype) in sorted(meta["tensors"].items()):
            kind = getattr(torch, dtype.removeprefix("torch."))
            value = tensors[key].to(device) if key in tensors else torch.empty(shape, dtype=kind)
            value = value.to(device)
            dist.broadcast(value, 0)
            shared[key] = value
        if not self.parallel.leader:
            optimizer.load_state_dict(_join_optimizer_state(shared, meta["optimizer"]))
            scheduler.load_state_dict(meta["scheduler"])
            return TrainingState(**meta["loop"])
        return state

    def _broadcast_weights(self) -> None:
        with torch.no_grad():
            for value in self.model.state_dict().values():
                dist.broadcast(value, 0)

    def _broadcast_json(self, payload: Any) -> Any:
        """Return rank 0's `payload` on every rank (JSON, never pickle)."""
        device = self._comm_device()
        data = json.dumps(payload).encode() if self.parallel.leader else b""
        size = torch.tensor([len(data)], dtype=torch.int64, device=device)
        dist.broadcast(size, 0)
        buffer = (
            torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)
            if self.parallel.leader
            else torch.empty(int(size.item()), dtype=torch.uint8, device=device)
        )
        dist.broadcast(buffer, 0)
        return json.loads(buffer.cpu().numpy().tobytes().decode())

    def _comm_device(self) -> torch.device:
        # nccl moves CUDA tensors only; gloo CPU ones
        return self.device if self.parallel.backend == "nccl" else torch.device("cpu")

    def _reseed(self, step: int) -> None:
        """Give ranks 1.. their own dropout stream (rank 0 keeps the single-process one and
        saves it in each checkpoint; the others restart theirs at each checkpoint)."""
        if not self.parallel.leader:
            torch.manual_seed(rank_seed(self.seed, self.parallel.rank, step))
