"""Scores of generated text against references: ROUGE-L and exact match."""

from __future__ import annotations

import re
import string

from modelyard.plugins import require

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalise(text: str) -> str:
    """Return `text` lower-cased, without punctuation and with single spaces (for exact match)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def exact_match(predictions: list[str], references: list[str]) -> float:
    """Return the share of predictions equal to their reference after normalisation."""
    if not references:
        return 0.0
    hits = sum(normalise(p) == normalise(r) for p, r in zip(predictions, references, strict=True))
    return hits / len(references)


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Return the mean ROUGE-L F-measure of predictions against references (rouge-score package)."""
    if not references:
        return 0.0
    rouge = require("rouge_score.rouge_scorer", extra="llm")
    scorer = rouge.RougeScorer(["rougeL"], use_stemmer=False)  # type: ignore[attr-defined]
    scores = [
        scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)
    ]
    return sum(scores) / len(scores)
