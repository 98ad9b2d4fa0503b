"""Recipe sections of what follows training: evaluate, explain, serve and compress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from modelyard.recipe.base import Section


class EvaluateConfig(Section):
    """What `modelyard evaluate` (and the end of training) measures beyond the metrics."""

    ece_bins: int = Field(
        15,
        ge=2,
        le=100,
        description="Equal-width confidence bins of the expected calibration error.",
    )
    speed: bool = Field(True, description="Measure latency at batch 1 and throughput at batch 32.")
    speed_samples: int = Field(64, ge=8, description="Texts used for the latency measurement.")


class ExplainConfig(Section):
    """Defaults of `modelyard explain`; command-line options override them."""

    method: str = Field(
        "ig",
        description="Attribution method for texts and files: ig, gxi, occlusion or shapley "
        "(ig and gxi need a PyTorch run).",
    )
    steps: int | None = Field(
        None,
        ge=2,
        le=1000,
        description="Integrated-gradients integration steps; unset, they are chosen per text: "
        "24, then more until the completeness error is at most `completeness_error`.",
    )
    completeness_error: float = Field(
        0.01,
        gt=0,
        le=1,
        description="Integrated gradients' largest accepted completeness error when `steps` is "
        "unset: |sum of attributions - (f(text) - f(baseline))| over |f(text) - f(baseline)|.",
    )
    max_steps: int = Field(
        128,
        ge=2,
        le=1000,
        description="Most integration steps the automatic choice tries per text (it reports the "
        "error it reached when that is not enough).",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "fp32",
        description="Precision of integrated gradients' path gradients (fp32 by default: a bf16 "
        "path is about 1.8x faster a step, but its rounding makes more texts miss a 1% "
        "completeness error and be redone in fp32). auto: bf16 on a CPU "
        "with native bf16 (AMX or AVX-512-BF16), on a bf16 copy of the model kept beside it, "
        "fp32 elsewhere. The ends f(text) and "
        "f(baseline), and so the completeness error, are always fp32; a text whose bf16 "
        "path misses `completeness_error` is redone in fp32.",
    )
    score: Literal["log-odds", "probability"] = Field(
        "log-odds",
        description="What scores explain: the class's log-odds log(p/(1-p)), which does not "
        "saturate on confident models, or its probability.",
    )
    samples: int = Field(
        10, ge=1, le=1000, description="Random permutations for the Shapley sampling estimate."
    )
    top_k_percent: tuple[Annotated[float, Field(gt=0, le=100)], ...] = Field(
        (1.0, 5.0, 10.0, 20.0, 50.0),
        min_length=1,
        description="Shares of words (in %) removed or kept by the faithfulness metrics (ERASER bins).",
    )
    global_top: int = Field(
        10, ge=1, description="Words per class in the global view (highest mean attribution)."
    )
    global_min_count: int = Field(
        2, ge=1, description="Words seen fewer times than this are left out of the global view."
    )
    seed: int = Field(0, ge=0, description="Seed of Shapley sampling and the random baseline.")


class ServeConfig(Section):
    """Defaults of `modelyard serve`: binding, batching, limits and security."""

    host: str = Field(
        "127.0.0.1", min_length=1, description="Address to bind; a public one needs auth on."
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0: any free port).")
    workers: int = Field(1, ge=1, le=64, description="Server processes on this machine.")
    backend: Literal["local", "ray"] = Field(
        "local", description="local: uvicorn processes here; ray: a Ray Serve deployment."
    )
    auth: bool = Field(True, description="Require an API key on every route but health.")
    max_batch_size: int = Field(
        32, ge=1, le=1024, description="Most texts run through the model at once."
    )
    max_wait_ms: float = Field(
        5.0, ge=0, le=10_000, description="How long a batch waits for more texts to arrive."
    )
    max_queue: int = Field(
        512, ge=1, description="Texts waiting per model; more are refused with 503."
    )
    inference_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="How much lower than the server's the scheduling priority of the inference "
        "threads is (Linux nice steps; 0: the same). Meant to let the event loop that admits "
        "and refuses requests run first when models keep every core busy; an overload A/B "
        "showed no clear effect, so it is off by default.",
    )
    request_timeout_s: float = Field(
        10.0, gt=0, le=600, description="Per-request deadline; a late answer becomes 504."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Larger request bodies are refused with 413."
    )
    max_texts: int = Field(64, ge=1, description="Most texts per request (422 beyond).")
    max_chars: int = Field(10_000, ge=1, description="Most characters per text (422 beyond).")
    rate_limit: float | None = Field(
        50.0, gt=0, description="Requests per second per API key (token bucket); null: no limit."
    )
    rate_burst: int = Field(100, ge=1, description="Requests a key may send at once (bucket size).")
    num_threads: int | None = Field(
        None, gt=0, description="Inference threads per worker; null: the cores / workers."
    )
    watch_aliases_s: float | None = Field(
        5.0,
        gt=0,
        description="Check served aliases this often and swap to their new version; null: never.",
    )
    drain_timeout_s: float = Field(
        30.0, gt=0, description="On SIGTERM, wait this long for in-flight requests."
    )
    access_log: bool = Field(True, description="Log one line per request (uvicorn's access log).")
    max_new_tokens: int = Field(
        512,
        ge=1,
        description="Generation models: the largest max_tokens a request may ask for (and the default).",
    )
    generation_timeout_s: float = Field(
        300.0,
        gt=0,
        le=3600,
        description="Generation models: a request still generating after this long is stopped (504).",
    )
    token_rate_limit: float | None = Field(
        None,
        gt=0,
        description="Generation models: prompt and completion tokens per second per API key; null: no limit.",
    )
    token_burst: int = Field(
        20_000, ge=1, description="Generation models: tokens a key may spend at once (bucket size)."
    )
    generation_precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Generation models: weights' precision; auto: bf16 where the CPU has native "
        "bf16 math (AVX-512-BF16, AMX), else fp32.",
    )


class QuantizeConfig(Section):
    """Options of the ONNX export and the int8 methods of `modelyard compress`."""

    opset: int = Field(17, ge=17, le=23, description="ONNX opset of the exported graph.")
    parity_tolerance: float = Field(
        1e-3, gt=0, description="Largest allowed max-abs logit gap between ONNX fp32 and PyTorch."
    )
    parity_samples: int = Field(
        32, ge=1, description="Test texts compared between ONNX fp32 and PyTorch."
    )
    calibration_samples: int = Field(
        256,
        ge=1,
        description="Training texts that calibrate static int8 activations and int8 smoothing.",
    )
    per_channel: bool = Field(
        True,
        description="int8 (ONNX): one weight scale per output channel (usually more accurate).",
    )
    smooth_alpha: float = Field(
        0.9,
        ge=0,
        le=1,
        description="int8-dynamic of a token-classification run: SmoothQuant migration "
        "strength (0: off). Each matrix product's input channels are divided by "
        "max|x|^alpha / max|w|^(1-alpha), calibrated on calibration_samples training texts, "
        "and its weight rows multiplied by the same; see docs/compress.md.",
    )


class PruneConfig(Section):
    """Options of the pruning methods of `modelyard compress`."""

    scope: Literal["global", "layer"] = Field(
        "global",
        description="Magnitude pruning: one threshold over all layers, or the same sparsity per layer.",
    )
    importance_samples: int = Field(
        256, ge=1, description="Training texts that score heads and neurons for structured pruning."
    )
    recovery_steps: int = Field(100, ge=0, description="Fine-tuning steps after pruning (0: none).")
    recovery_lr: float = Field(2e-5, gt=0, lt=1, description="Learning rate of the recovery steps.")


class DistillConfig(Section):
    """Options of `distill:N` (keep N layers of the teacher) and `distill:BACKBONE`."""

    epochs: float = Field(3, gt=0, description="Passes over the training (plus unlabelled) texts.")
    batch_size: int = Field(32, gt=0, description="Texts per optimizer step.")
    lr: float = Field(
        1e-4, gt=0, lt=1, description="Peak learning rate (warmup then linear decay)."
    )
    temperature: float = Field(2.0, gt=0, description="Softens teacher and student distributions.")
    alpha: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Weight of the soft-target loss; 1 - alpha weighs the hard labels.",
    )
    hidden_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of the hidden-state MSE to the teacher's layers (layer students only).",
    )
    unlabelled: Path | None = Field(
        None,
        description="Extra texts (a file with the data text column) taught by soft targets only.",
    )
    max_unlabelled: int | None = Field(
        None, gt=0, description="Use at most this many unlabelled texts (seeded sample)."
    )


class CompressConfig(Section):
    """Defaults of `modelyard compress`; command-line options override them."""

    methods: list[str] = Field(
        default_factory=lambda: [
            "onnx",
            "int8-dynamic",
            "int8-static",
            "prune-heads:0.3",
            "distill:3",
        ],
        min_length=1,
        description="Methods to run (see `modelyard compress --list`), e.g. prune-heads:0.3.",
    )
    price_per_cpu_hour: float = Field(
        0.05, ge=0, description="Dollars per CPU-hour, for the cost per million predictions."
    )
    threads: int | None = Field(
        None,
        gt=0,
        description="Threads for PyTorch and ONNX Runtime while measuring; null: all cores.",
    )
    max_accuracy_drop: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Pick the fastest variant within this accuracy drop (a fraction).",
    )
    speed_samples: int = Field(256, ge=8, description="Test texts used for latency and throughput.")
    latency_runs: int = Field(50, ge=1, description="Batch-1 calls timed per round.")
    rounds: int = Field(
        3, ge=1, description="Timing rounds; variants are interleaved and medians reported."
    )
    isolate_memory: bool = Field(
        True,
        description="Measure each variant's memory in a fresh process (a few seconds each); "
        "false: an in-process estimate.",
    )
    quantize: QuantizeConfig = Field(
        default_factory=QuantizeConfig, description="ONNX export and int8 options."
    )
    prune: PruneConfig = Field(default_factory=PruneConfig, description="Pruning options.")
    distill: DistillConfig = Field(
        default_factory=DistillConfig, description="Distillation options."
    )
