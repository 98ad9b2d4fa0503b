"""Forward-only methods: leave-one-word-out occlusion and a sampling Shapley estimate.

Both see the model only through `Backend.predict_proba` on texts with words removed, so they
explain PyTorch, ONNX or any other backend alike. captum drives the perturbations over a
binary word mask (1 = word kept); the forward function turns each mask into a text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from modelyard.explainability.cancel import check_cancelled
from modelyard.explainability.methods import Attribution, method, proba_score
from modelyard.explainability.subject import Subject
from modelyard.explainability.words import Words
from modelyard.plugins import require
from modelyard.recipe import ExplainConfig


def mask_forward(
    subject: Subject, words: Words, target: int, score: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return f(masks of shape (B, n_words)) -> the explained score (log-odds or probability).

    Texts already scored are remembered, since sampled coalitions repeat (every
    permutation starts from the empty text and ends at the full one).
    """
    seen: dict[str, float] = {}

    def forward(masks: torch.Tensor) -> torch.Tensor:
        check_cancelled()
        texts = [words.compose((row > 0.5).tolist()) for row in masks]
        new = sorted({t for t in texts if t not in seen})
        if new:
            scores = proba_score(subject.proba(new), target, score)
            seen.update(zip(new, scores.tolist(), strict=True))
        return torch.tensor([seen[t] for t in texts], dtype=torch.float64)

    return forward


# perturbed texts per forward call: bounds memory, and a cancelled explanation stops between
_PER_EVAL = 32


def _ones(words: Words) -> torch.Tensor:
    return torch.ones((1, len(words)), dtype=torch.float64)


@method("occlusion", needs_gradients=False, summary="leave one word out (forward pass only)")
def occlusion(subject: Subject, words: Words, target: int, cfg: ExplainConfig) -> Attribution:
    """Return, per word, how much the explained score drops when that word is removed."""
    attr_mod: Any = require("captum.attr", extra="explain")
    ablation = attr_mod.FeatureAblation(mask_forward(subject, words, target, cfg.score))
    scores = ablation.attribute(
        _ones(words), baselines=0.0, perturbations_per_eval=min(len(words), _PER_EVAL)
    )
    return Attribution(word_scores=scores[0].numpy().astype(np.float64))


@method("shapley", needs_gradients=False, summary="sampled Shapley values over words")
def shapley(subject: Subject, words: Words, target: int, cfg: ExplainConfig) -> Attribution:
    """Return Shapley value estimates from `cfg.samples` random word orders (seeded)."""
    attr_mod: Any = require("captum.attr", extra="explain")
    sampler = attr_mod.ShapleyValueSampling(mask_forward(subject, words, target, cfg.score))
    # captum draws orders from the global RNG; fork it so the seed stays local
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        scores = sampler.attribute(
            _ones(words),
            baselines=0.0,
            n_samples=cfg.samples,
            perturbations_per_eval=min(len(words) + 1, _PER_EVAL),
        )
    return Attribution(word_scores=scores[0].numpy().astype(np.float64))
