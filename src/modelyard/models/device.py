"""Device and numeric-precision selection for training and inference."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import torch

from modelyard.errors import RecipeError


@functools.cache
def cpu_info() -> tuple[str, frozenset[str]]:
    """Return the CPU's model name and instruction-set flags from /proc/cpuinfo (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "", frozenset()
    model, flags = "", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, frozenset(flags)


def cpu_supports_fast_bf16() -> bool:
    """Return True when the CPU has native bf16 math (AVX-512-BF16 or AMX), where bf16 pays off."""
    return bool(cpu_info()[1] & {"avx512_bf16", "amx_bf16"})


def select_device(name: str) -> torch.device:
    """Return the torch device for `auto`, `cpu`, `cuda` or `cuda:N`; raise RecipeError if unavailable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RecipeError(
            f"train.device: unknown device '{name}'; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RecipeError(
            "train.device: cuda was asked for but no CUDA GPU is visible; use auto or cpu"
        )
    return device


def select_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Return the autocast dtype for `precision` on `device`, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "fp16":
        if device.type != "cuda":
            raise RecipeError("train.precision: fp16 needs a CUDA GPU; on the CPU use bf16 or auto")
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_fast_bf16() else None


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[None]:
    """Return an autocast context for `dtype`, or a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the body with `n` intra-op threads (None keeps the current setting)."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
