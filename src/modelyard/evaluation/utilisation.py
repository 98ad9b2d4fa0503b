"""How much of the machine's arithmetic a piece of work uses: a GEMM peak probe per number
format and a FLOP counter for transformer encoders and decoders.

Model FLOP utilisation (MFU) is the model FLOPs of the real tokens processed per second over the
peak the same thread count reaches on a large matrix product in the same format. Padding is
not useful work, so the counter takes each sequence's real length.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from modelyard.models.device import cpu_info, torch_threads

# training is a forward pass and a backward pass that costs about two forward passes
TRAINING_FLOPS_FACTOR = 3.0
_PROBE_SIZES = {"fp32": 1024, "bf16": 2048, "int8": 2048}


@dataclass(frozen=True)
class TransformerShape:
    """What the FLOP count of a transformer stack depends on."""

    layers: int
    hidden: int
    intermediate: int
    kv_hidden: int  # hidden size of the key/value projections (smaller with grouped queries)
    gated_mlp: bool = False  # LLaMA-style MLPs have three projections, not two

    @classmethod
    def from_config(cls, config: Any) -> TransformerShape:
        """Return the shape of a Hugging Face model config (BERT-like or LLaMA-like)."""
        hidden = int(config.hidden_size)
        heads = int(config.num_attention_heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        gated = getattr(config, "hidden_act", "") == "silu" and hasattr(
            config, "num_key_value_heads"
        )
        return cls(
            layers=int(config.num_hidden_layers),
            hidden=hidden,
            intermediate=int(config.intermediate_size),
            kv_hidden=hidden * kv_heads // heads,
            gated_mlp=gated,
        )

    def forward_flops(self, length: int) -> float:
        """Return the forward FLOPs of one sequence of `length` real tokens (2 per multiply-add)."""
        d, t = self.hidden, length
        projections = 2 * t * (2 * d * d + 2 * d * self.kv_hidden)  # Q and O, then K and V
        mlp = 2 * t * d * self.intermediate * (3 if self.gated_mlp else 2)
        attention = 2 * 2 * t * t * d  # scores Q·Kᵀ and the weighted sum of V
        return float(self.layers * (projections + mlp + attention))


def model_flops(shape: TransformerShape, lengths: Iterable[int], training: bool = False) -> float:
    """Return the model FLOPs of processing sequences of the given real `lengths`.

    Embedding lookups and the task head are left out (they are a rounding error); training
    counts forward and backward passes.
    """
    total = sum(shape.forward_flops(int(n)) for n in lengths)
    return total * (TRAINING_FLOPS_FACTOR if training else 1.0)


def decode_flops(shape: TransformerShape, context: float, vocab: int = 0) -> float:
    """Return the FLOPs of generating one token with a KV cache after `context` tokens.

    The new token goes through every projection and the MLP, attends over the `context`
    cached keys and values (scores and weighted sum at the query heads' full width), and,
    with `vocab` given, through the output head: for a small language model the head is a
    large share of the work (SmolLM2-135M: about a fifth), so it is counted here.
    """
    d = shape.hidden
    projections = 2 * (2 * d * d + 2 * d * shape.kv_hidden)
    mlp = 2 * d * shape.intermediate * (3 if shape.gated_mlp else 2)
    attention = 2 * 2 * context * d
    return float(shape.layers * (projections + mlp + attention) + 2 * d * vocab)


def available_formats() -> list[str]:
    """Return the number formats this CPU multiplies natively: fp32, bf16 and int8 where present."""
    _, flags = cpu_info()
    formats = ["fp32"]
    if {"avx512_bf16", "amx_bf16"} & flags:
        formats.append("bf16")
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & flags:
        formats.append("int8")
    return formats


def _operands(fmt: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if fmt == "int8":
        gen = torch.Generator().manual_seed(0)
        a = torch.randint(-64, 64, (n, n), dtype=torch.int8, generator=gen)
        return a, a.t().contiguous()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[fmt]
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(0)).to(dtype)
    return a, a.t().contiguous()


def _matmul(fmt: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch._int_mm(a, b) if fmt == "int8" else a @ b


def gemm_peak_gflops(fmt: str, threads: int | None = None, repeats: int = 5) -> float:
    """Return the best GFLOP/s (GOP/s for int8) of a square matrix product in `fmt`.

    The best of `repeats` timed products after one warm-up: a peak, so a noisy neighbour
    lowers it least. Raises ValueError for a format other than fp32, bf16 or int8.
    """
    if fmt not in _PROBE_SIZES:
        raise ValueError(f"unknown number format '{fmt}'; use one of: {', '.join(_PROBE_SIZES)}")
    n = _PROBE_SIZES[fmt]
    a, b = _operands(fmt, n)
    best = float("inf")
    with torch_threads(threads), torch.inference_mode():
        _matmul(fmt, a, b)
        for _ in range(repeats):
            start = time.perf_counter()
            _matmul(fmt, a, b)
            best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def peak_table(threads: int | None = None, formats: list[str] | None = None) -> dict[str, float]:
    """Return {format: peak GFLOP/s} for `formats` (default: every native format)."""
    return {f: round(gemm_peak_gflops(f, threads), 1) for f in formats or available_formats()}


def mfu(flops: float, seconds: float, peak_gflops: float) -> float:
    """Return the share of `peak_gflops` that `flops` done in `seconds` achieved (0..1)."""
    if seconds <= 0 or peak_gflops <= 0:
        raise ValueError("seconds and peak_gflops must be positive")
    return flops / seconds / (peak_gflops * 1e9)
