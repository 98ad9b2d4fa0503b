"""Typed results of an explanation: per-word and per-piece scores, probabilities, delta."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def relative_error(total: float, delta: float) -> float:
    """Return IG's completeness error |delta| / |f(text) - f(baseline)|, where `total` is the
    sum of the attributions (so f(text) - f(baseline) = total - delta)."""
    return abs(delta) / max(abs(total - delta), 1e-12)


@dataclass(frozen=True)
class WordScore:
    """One word of the text, its character range, and its attribution toward the label."""

    word: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class TokenScore:
    """One word piece as the model saw it, its attribution, and the word it belongs to."""

    token: str
    score: float
    word: int | None


@dataclass
class Explanation:
    """Why the model gave `text` the class `label`, according to one attribution method.

    Scores are in `units`: the label's log-odds log(p/(1-p)) or its probability:
    positive words pushed the model toward `label`, negative ones away. `tokens` is filled by gradient methods only (forward-only
    methods perturb whole words). `delta` is the integrated-gradients convergence delta:
    sum of attributions minus the output difference to the baseline (None for other methods),
    and `steps` the integration steps it took.
    `words_cut` counts the words past the model's maximum length, left out (and not in
    `text`): `truncated` is then true.
    """

    text: str
    method: str
    label: str
    probabilities: dict[str, float]
    words: list[WordScore]
    units: str = "log-odds"
    tokens: list[TokenScore] = field(default_factory=list)
    delta: float | None = None
    steps: int | None = None
    truncated: bool = False
    words_cut: int = 0
    seconds: float = 0.0

    def top_words(self, n: int = 5) -> list[WordScore]:
        """Return the `n` words with the highest attribution, highest first."""
        return sorted(self.words, key=lambda w: -w.score)[:n]

    def relative_delta(self) -> float | None:
        """Return |delta| over |f(text) - f(baseline)|, the IG integration error, or None."""
        if self.delta is None or not self.tokens:
            return None
        return relative_error(sum(t.score for t in self.tokens), self.delta)

    def to_dict(self) -> dict[str, Any]:
        """Return the explanation as plain JSON-ready data."""
        return asdict(self)
