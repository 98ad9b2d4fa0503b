"""Explain one text with one method: predict, attribute, package a typed Explanation."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from modelyard.errors import RecipeError
from modelyard.explainability import gradient, perturbation  # noqa: F401  (register methods)
from modelyard.explainability.cancel import check_cancelled
from modelyard.explainability.methods import Attribution, ExplainError, get_method
from modelyard.explainability.results import Explanation, TokenScore, WordScore
from modelyard.explainability.subject import Subject
from modelyard.explainability.words import Words, split_words
from modelyard.inference import ranked_probabilities
from modelyard.recipe import ExplainConfig


def resolve_config(subject: Subject, **overrides: Any) -> ExplainConfig:
    """Return the run's `explain` recipe section with the given non-None overrides applied.

    Raises RecipeError listing every invalid option.
    """
    recipe = subject.recipe
    base = recipe.explain.model_dump() if recipe is not None else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return ExplainConfig.model_validate({**base, **given})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise RecipeError(f"invalid explain options: {problems}") from None


def target_index(subject: Subject, probs: np.ndarray, target: str | None) -> int:
    """Return the class index to explain: `target` if given, else the predicted class.

    Raises ExplainError for a label the model does not know.
    """
    if target is None:
        return int(np.argmax(probs))
    if target not in subject.labels:
        raise ExplainError(
            f"target label '{target}' is not one of the model's labels: {', '.join(subject.labels)}"
        )
    return subject.labels.index(target)


def attribute(
    subject: Subject, words: Words, name: str, target: int, cfg: ExplainConfig
) -> Attribution:
    """Return the raw attribution of `words` toward class `target` by method `name`.

    Raises UnknownPluginError or ExplainError when the method is unknown or unusable here.
    """
    spec = get_method(name, subject)
    if spec.needs_gradients:
        with torch.enable_grad():
            return spec.fn(subject, words, target, cfg)
    with torch.no_grad():
        return spec.fn(subject, words, target, cfg)


def _tokenizer(subject: Subject) -> Any:
    run_tokenizer = getattr(subject.run, "tokenizer", None)
    return run_tokenizer or getattr(subject.backend, "tokenizer", None)


def fit_text(subject: Subject, text: str) -> tuple[str, int]:
    """Return the part of `text` the model reads (whole words) and how many words were cut.

    A model reads at most `max_length` tokens; words past them cannot change its output,
    and explaining them would cost a perturbed forward pass each for nothing. So the text
    is cut first, at the last word the tokenizer keeps (without a fast tokenizer: after
    `max_length` words, since a word is at least one token). Raises DataError for a text
    without words.
    """
    words = split_words(text)
    limit = int(subject.backend.max_length)
    tokenizer = _tokenizer(subject)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, truncation=True, max_length=limit, return_offsets_mapping=True)
        end = max((b for a, b in enc["offset_mapping"] if b > a), default=0)
        kept = sum(1 for a, _ in words.spans if a < end)
    else:
        kept = min(len(words), limit)
    kept = max(kept, 1)
    if kept == len(words):
        return text, 0
    return text[: words.spans[kept - 1][1]], len(words) - kept


def explain_text(
    subject: Subject,
    text: str,
    name: str,
    cfg: ExplainConfig,
    target: str | None = None,
) -> Explanation:
    """Return the explanation of `text` by method `name`, timed end to end.

    Only the words the model reads are explained (`fit_text`); the Explanation counts the
    words cut off. Raises DataError for a text without words, and the errors of `attribute`.
    """
    check_cancelled()  # a job cancelled while it waited for its turn does no work
    start = time.perf_counter()
    text, cut = fit_text(subject, text)
    words = split_words(text)
    probs_b, truncated = subject.backend.predict_proba([text])
    probs = np.asarray(probs_b, dtype=np.float64)[0]
    index = target_index(subject, probs, target)
    raw = attribute(subject, words, name, index, cfg)
    return Explanation(
        text=text,
        method=name,
        label=subject.labels[index],
        probabilities=ranked_probabilities(list(subject.labels), probs),
        words=[
            WordScore(text[a:b], a, b, float(s))
            for (a, b), s in zip(words.spans, raw.word_scores, strict=True)
        ],
        units=cfg.score,
        tokens=_tokens(raw),
        delta=raw.delta,
        steps=raw.steps,
        truncated=bool(truncated[0]) or cut > 0,
        words_cut=cut,
        seconds=time.perf_counter() - start,
    )


def _tokens(raw: Attribution) -> list[TokenScore]:
    if raw.piece_scores is None:
        return []
    return [
        TokenScore(piece, float(score), owner)
        for piece, score, owner in zip(raw.pieces, raw.piece_scores, raw.owners, strict=True)
    ]
