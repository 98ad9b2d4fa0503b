"""Generation models on a server: a language-model run loaded into a continuous-batching engine.

A registry entry whose manifest kind is a causal language model (`causal-lm`,
`adapter-causal-lm`) is served by a `GenerationEngine` instead of a classifier predictor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.generation.artifacts import CAUSAL, LM_KINDS, load_lm_run
from modelyard.generation.chat import render
from modelyard.generation.engine import GenerationEngine, StepStats
from modelyard.generation.prepack import prepack_linears
from modelyard.models.device import select_dtype
from modelyard.registry.manifest import read_manifest
from modelyard.registry.store import ModelRef, ResolvedModel
from modelyard.serve.errors import BadRequestError
from modelyard.serve.metrics import ServeMetrics
from modelyard.serve.settings import ServeSettings


def is_generation_artifact(path: Path) -> bool:
    """Return True when the artifact at `path` is a causal language model (it generates)."""
    kind = str(read_manifest(path).get("kind", ""))
    return kind in LM_KINDS and kind.endswith(CAUSAL)


@dataclass
class ServedGenerator:
    """A generation model being served: its reference, version, engine and chat settings."""

    ref: ModelRef
    resolved: ResolvedModel
    engine: GenerationEngine
    tokenizer: Any
    system_prompt: str | None
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def name(self) -> str:
        """Return the model name."""
        return self.ref.name

    @property
    def version(self) -> str:
        """Return the version being served."""
        return str(self.resolved.version)

    def encode(self, text: str) -> list[int]:
        """Return the token ids of a plain-text prompt (with the tokenizer's special tokens)."""
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def chat_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        """Return the token ids of a conversation up to the assistant's answer.

        The run's system prompt goes first when the conversation has none. Raises
        BadRequestError when the tokenizer has no chat template.
        """
        if not getattr(self.tokenizer, "chat_template", None):
            raise BadRequestError(
                f"model '{self.name}' has no chat template (it was not instruction-tuned); "
                "use /v1/completions with a plain-text prompt"
            )
        if self.system_prompt and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        text = render(self.tokenizer, messages, True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def load_generator(
    ref: ModelRef, resolved: ResolvedModel, settings: ServeSettings, metrics: ServeMetrics
) -> ServedGenerator:
    """Load the language-model run `resolved` into an engine, warm it, and wire its metrics.

    Raises ArtifactError when the run fails verification or cannot be loaded.
    """
    loaded = load_lm_run(resolved.path)
    model = loaded.model
    dtype = select_dtype(settings.generation_precision, model.device)
    if dtype is not None:
        # whole bf16 weights, not autocast: no cast per operation, half the bytes per step
        model = model.to(dtype)
    prepack_linears(model)
    count = metrics.generation.step_hook(ref.name)

    def on_step(stats: StepStats) -> None:
        count(stats.tokens)

    engine = GenerationEngine(
        model,
        loaded.tokenizer,
        max_batch_size=settings.max_batch_size,
        max_queue=settings.max_queue,
        on_step=on_step,
    )
    metrics.generation.watch(ref.name, lambda: engine.active, lambda: engine.waiting)
    metrics.version.labels(ref.name).set(resolved.version)
    system = loaded.recipe.generation.system_prompt
    served = ServedGenerator(ref, resolved, engine, loaded.tokenizer, system)
    _warm(served)
    return served


def _warm(served: ServedGenerator) -> None:
    # the first forward passes allocate and pick kernels; pay that before traffic arrives
    from modelyard.generation.engine import GenerationRequest

    prompt = served.encode("warm up") or [0]
    for _ in served.engine.submit(GenerationRequest(prompt, 2)).deltas(timeout_s=600):
        pass
