"""Text generation from a causal LM: batched, greedy or sampled, seeded."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from modelyard.generation.chat import prompt_ids


@dataclass(frozen=True)
class SamplingOptions:
    """How answers are drawn: greedy at temperature 0, else nucleus sampling, seeded."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


def _stop_ids(tokenizer: Any, model: Any) -> list[int]:
    ids = {tokenizer.eos_token_id}
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(config_eos if isinstance(config_eos, list) else [config_eos])
    return sorted(i for i in ids if i is not None)


def generate_ids(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    options: SamplingOptions,
    batch_size: int = 8,
) -> tuple[list[list[int]], dict[str, float]]:
    """Return the new token ids for each prompt (ids), and tokens generated per second.

    Prompts are left-padded in batches of similar length; generation stops at the end-of-turn
    token or `max_new_tokens`.
    """
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampling: dict[str, Any] = {"do_sample": False}
    if options.temperature > 0:
        sampling = {"do_sample": True, "temperature": options.temperature, "top_p": options.top_p}
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[list[int]] = [[] for _ in prompts]
    generated, start = 0, time.perf_counter()
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(options.seed)
        for at in range(0, len(order), batch_size):
            index = order[at : at + batch_size]
            width = max(len(prompts[i]) for i in index)
            ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in index])
            mask = torch.tensor(
                [[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in index]
            )
            result = model.generate(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                max_new_tokens=options.max_new_tokens,
                pad_token_id=pad,
                eos_token_id=_stop_ids(tokenizer, model),
                **sampling,
            )
            for row, i in enumerate(index):
                new = result[row, width:].tolist()
                out[i] = _until_stop(new, _stop_ids(tokenizer, model))
                generated += len(out[i])
    seconds = time.perf_counter() - start
    return out, {
        "generated_tokens": generated,
        "generation_tokens_per_s": round(generated / max(seconds, 1e-9), 2),
    }


def _until_stop(ids: list[int], stops: list[int]) -> list[int]:
    for k, token in enumerate(ids):
        if token in stops:
            return ids[:k]
    return ids


@dataclass
class Generated:
    """Generated texts, the number of tokens each took, and the generation speed."""

    texts: list[str]
    tokens: list[int]
    speed: dict[str, float]


def chat(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], options: SamplingOptions
) -> Generated:
    """Return the assistant's next answer to each conversation."""
    prompts = [prompt_ids(tokenizer, messages) for messages in conversations]
    ids, speed = generate_ids(model, tokenizer, prompts, options)
    texts = [tokenizer.decode(x, skip_special_tokens=True).strip() for x in ids]
    return Generated(texts, [len(x) for x in ids], speed)


def complete(model: Any, tokenizer: Any, texts: list[str], options: SamplingOptions) -> Generated:
    """Return the continuation of each plain text (no chat template)."""
    prompts = [list(tokenizer(t, add_special_tokens=True)["input_ids"]) for t in texts]
    ids, speed = generate_ids(model, tokenizer, prompts, options)
    decoded = [tokenizer.decode(x, skip_special_tokens=True) for x in ids]
    return Generated(decoded, [len(x) for x in ids], speed)
