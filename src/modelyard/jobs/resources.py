"""What this machine has: usable CPU cores, memory, GPUs, and memory free right now."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from modelyard.jobs.spec import Resources

_NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


def gpu_count() -> int:
    """Return the GPUs a job could use: CUDA_VISIBLE_DEVICES if set, else what torch sees.

    torch is imported only when the NVIDIA driver is present, so a CPU machine's worker
    starts in a fraction of a second.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if not _NVIDIA_PROC.is_dir():
        return 0
    import torch

    return int(torch.cuda.device_count())


def machine_capacity() -> Resources:
    """Return the cores this process may run on, total memory and GPUs of the machine."""
    return Resources(
        float(len(os.sched_getaffinity(0))), int(psutil.virtual_memory().total), gpu_count()
    )


def available_memory() -> int:
    """Return the bytes of memory free for new processes now (page cache counts as free)."""
    return int(psutil.virtual_memory().available)
