"""Held-out evaluation of a language model: loss and perplexity, and for chat models the
answers it generates scored against the references (ROUGE-L, exact match), with samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from modelyard.generation.examples import causal_examples, chat_examples, masked_examples
from modelyard.generation.generate import SamplingOptions, chat
from modelyard.generation.objective import CausalObjective, MaskedObjective
from modelyard.generation.packing import LMData, as_rows
from modelyard.generation.scoring import exact_match, rouge_l
from modelyard.recipe import GenerationConfig


@dataclass
class LMTask:
    """What is trained: the task, the backbone kind, the context length and packing."""

    task: str
    kind: str
    max_length: int
    packing: bool
    seed: int

    @property
    def is_chat(self) -> bool:
        """Return True for instruction fine-tuning (conversations, assistant-only loss)."""
        return self.task == "generation"


def encode_items(tokenizer: Any, items: list[Any], spec: LMTask, counts: dict[str, int]) -> LMData:
    """Return documents or conversations as loop rows (packed as `spec` says), counting cuts."""
    if spec.is_chat:
        examples = chat_examples(tokenizer, items, spec.max_length, counts)
    elif spec.kind == "decoder":
        examples = causal_examples(tokenizer, items, spec.max_length, counts)
    else:
        examples = masked_examples(tokenizer, items, spec.max_length, counts)
    data = as_rows(examples, spec.max_length, spec.packing)
    data.counts = counts
    return data


def make_objective(tokenizer: Any, spec: LMTask, cfg: GenerationConfig, batch_size: int) -> Any:
    """Return the loop objective of the task: causal LM for decoders, masked LM for encoders."""
    if spec.kind == "decoder":
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return CausalObjective(pad, batch_size)
    return MaskedObjective(tokenizer, cfg.mlm_probability, batch_size, spec.seed)


def split_reference(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str]:
    """Return the conversation before its last assistant turn, and that turn's content."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def score_generations(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], cfg: GenerationConfig
) -> dict[str, Any]:
    """Return ROUGE-L, exact match, generation speed and sample answers on up to `eval_max_rows` conversations."""
    rows = conversations[: cfg.eval_max_rows]
    prompts, references = (
        zip(*(split_reference(m) for m in rows), strict=True) if rows else ((), ())
    )
    options = SamplingOptions(cfg.max_new_tokens, cfg.temperature, cfg.top_p, 0)
    generated = chat(model, tokenizer, list(prompts), options)
    answers, speed = generated.texts, generated.speed
    samples = [
        {"prompt": p[-1]["content"], "reference": r, "generated": a}
        for p, r, a in list(zip(prompts, references, answers, strict=True))[: cfg.eval_samples]
    ]
    return {
        "rougeL": rouge_l(answers, list(references)),
        "exact_match": exact_match(answers, list(references)),
        "generation_rows": len(rows),
        **speed,
        "samples": samples,
    }


def evaluate_lm(
    model: Any,
    tokenizer: Any,
    items: list[Any],
    spec: LMTask,
    cfg: GenerationConfig,
    device: torch.device,
    generate: bool = True,
) -> dict[str, Any]:
    """Return held-out loss and perplexity of `items` (and generation scores for chat models)."""
    counts: dict[str, int] = {}
    data = encode_items(tokenizer, items, spec, counts)
    objective = make_objective(tokenizer, spec, cfg, 8)
    metrics: dict[str, Any] = {"n": len(items), **objective.evaluate(model, data, device, None)}
    metrics["tokens"] = int(metrics["tokens"])
    metrics.update({f"eval_{k}": v for k, v in counts.items()})
    if spec.is_chat and generate:
        metrics.update(score_generations(model, tokenizer, items, cfg))
    return metrics
