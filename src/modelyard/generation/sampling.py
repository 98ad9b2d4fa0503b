"""Choosing the next token of every row of a batch, each row with its own settings and seed."""

from __future__ import annotations

import torch


def top_p_filter(logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Return `logits` (rows x vocab) with the tokens outside each row's nucleus set to -inf.

    The nucleus of a row is the smallest set of most probable tokens whose probabilities sum
    to at least its `top_p`; the most probable token is always kept.
    """
    ordered, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
    # drop a token when the tokens before it already reach top_p
    drop = (cumulative - ordered.softmax(dim=-1)) >= top_p.unsqueeze(1)
    drop[:, 0] = False
    ordered = ordered.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(1, order, ordered)


def choose_tokens(
    logits: torch.Tensor,
    temperature: list[float],
    top_p: list[float],
    generators: list[torch.Generator | None],
) -> list[int]:
    """Return the next token of each row: argmax at temperature 0, else a seeded nucleus sample.

    Each sampled row draws from its own generator, so a request's tokens depend on its seed
    and not on which other requests share the batch.
    """
    # `max` finds the first largest value like `argmax`, in half its time on a wide vocabulary;
    # widening bf16 to fp32 is exact, so the greedy choice needs no copy of the logits
    chosen = logits.max(dim=-1).indices.tolist()
    sampled = [i for i, t in enumerate(temperature) if t > 0]
    if not sampled:
        return chosen
    rows = torch.tensor(sampled)
    scaled = logits[rows].float() / torch.tensor([temperature[i] for i in sampled]).unsqueeze(1)
    nucleus = top_p_filter(scaled, torch.tensor([top_p[i] for i in sampled]))
    probs = nucleus.softmax(dim=-1)
    for k, i in enumerate(sampled):
        chosen[i] = int(torch.multinomial(probs[k], 1, generator=generators[i]).item())
    return chosen
