"""How much of the machine's arithmetic a piece of work uses: a GEMM peak probe per number
format and a FLOP counter for transformer encoders and decoders.

Model FLOP utilisation (MFU) is the model FLOPs of the real tokens processed per second over the
peak the same thread count reaches on large matrix products in the same format (a square one
and those of a transformer layer, whichever is fastest). Padding is
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
# (rows, inner, columns) of the products a transformer layer runs on a batch of tokens: on an
# AMX CPU these beat the square product (bf16 4096x384x1536 reached 1.48x the 2048 square,
# int8 4096x2048x512 1.2x), and a peak that the model's own products exceed is no peak
_LAYER_SHAPES = ((4096, 384, 1536), (4096, 1536, 384), (4096, 1024, 1024), (4096, 2048, 512))


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


def _operands(fmt: str, m: int, k: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    if fmt == "int8":
        a = torch.randint(-64, 64, (m, k), dtype=torch.int8, generator=gen)
        # torch._int_mm wants its second operand column-major
        b = torch.randint(-64, 64, (n, k), dtype=torch.int8, generator=gen).t()
        return a, b
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[fmt]
    return torch.randn(m, k, generator=gen).to(dtype), torch.randn(k, n, generator=gen).to(dtype)


def _matmul(fmt: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch._int_mm(a, b) if fmt == "int8" else a @ b


def probe_shapes(fmt: str) -> list[tuple[int, int, int]]:
    """Return the (rows, inner, columns) products the peak probe times for `fmt`: a square
    one and the shapes of a transformer layer's products. Raises ValueError for a format
    other than fp32, bf16 or int8."""
    if fmt not in _PROBE_SIZES:
        raise ValueError(f"unknown number format '{fmt}'; use one of: {', '.join(_PROBE_SIZES)}")
    n = _PROBE_SIZES[fmt]
    return [(n, n, n), *_LAYER_SHAPES]


def gemm_peak_gflops(
    fmt: str,
    threads: int | None = None,
    repeats: int = 5,
    shapes: list[tuple[int, int, int]] | None = None,
) -> float:
    """Return the best GFLOP/s (GOP/s for int8) of the products in `shapes` (default
    `probe_shapes(fmt)`) in `fmt`.

    The best of `repeats` timed products of each shape after one warm-up: a peak, so a noisy
    neighbour lowers it least. Raises ValueError for a format other than fp32, bf16 or int8.
    """
    best_rate = 0.0
    with torch_threads(threads), torch.inference_mode():
        for m, k, n in shapes or probe_shapes(fmt):
            a, b = _operands(fmt, m, k, n)
            _matmul(fmt, a, b)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                _matmul(fmt, a, b)
                best = min(best, time.perf_counter() - start)
            best_rate = max(best_rate, 2.0 * m * k * n / best / 1e9)
    return best_rate


def peak_table(threads: int | None = None, formats: list[str] | None = None) -> dict[str, float]:
    """Return {format: peak GFLOP/s} for `formats` (default: every native format)."""
    return {f: round(gemm_peak_gflops(f, threads), 1) for f in formats or available_formats()}


def mfu(flops: float, seconds: float, peak_gflops: float) -> float:
    """Return the share of `peak_gflops` that `flops` done in `seconds` achieved (0..1)."""
    if seconds <= 0 or peak_gflops <= 0:
        raise ValueError("seconds and peak_gflops must be positive")
    return flops / seconds / (peak_gflops * 1e9)
