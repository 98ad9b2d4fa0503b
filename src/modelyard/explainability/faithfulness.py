"""Faithfulness of attributions: ERASER comprehensiveness and sufficiency, and their AOPC.

For a text x predicted as class c with probability p(c|x), and the top k% of its words by
attribution r:
  comprehensiveness@k = p(c|x) - p(c|x without r)   (higher: the words mattered)
  sufficiency@k       = p(c|x) - p(c|only r)        (lower: the words suffice)
AOPC (area over the perturbation curve) is the mean over the k bins (DeYoung et al., 2020).
Every method is scored next to a random ranking of the same words with the same k budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.errors import DataError
from modelyard.explainability.core import attribute
from modelyard.explainability.methods import get_method
from modelyard.explainability.results import relative_error
from modelyard.explainability.subject import Subject
from modelyard.explainability.words import Words, split_words
from modelyard.recipe import ExplainConfig

RANDOM = "random"


def removal_counts(n_words: int, k_percent: Iterable[float]) -> list[int]:
    """Return how many words each top-k% bin covers: ceil(k% of n), at least one word."""
    return [max(1, math.ceil(n_words * k / 100 - 1e-9)) for k in k_percent]


def perturbations(words: Words, order: np.ndarray, counts: list[int]) -> list[str]:
    """Return, per count m, the text without its top-m words, then each text of only those words."""
    removed, kept_only = [], []
    for m in counts:
        keep = np.ones(len(words), dtype=bool)
        keep[order[:m]] = False
        removed.append(words.compose(keep))
        kept_only.append(words.compose(~keep))
    return removed + kept_only


@dataclass
class MethodFaithfulness:
    """Mean comprehensiveness and sufficiency per k (with standard errors) and their AOPC."""

    method: str
    n: int
    comprehensiveness: dict[str, float]
    comprehensiveness_sem: dict[str, float]
    sufficiency: dict[str, float]
    sufficiency_sem: dict[str, float]
    comprehensiveness_aopc: float
    sufficiency_aopc: float
    ms_per_explanation: float | None
    median_relative_delta: float | None = None
    # integrated gradients: the share of texts within the completeness error asked for, and
    # the median steps it took
    within_completeness_error: float | None = None
    median_steps: float | None = None


@dataclass
class FaithfulnessReport:
    """Faithfulness of each method and of the random baseline on the same texts and budgets."""

    k_percent: list[float]
    n_texts: int
    skipped_empty: int
    methods: dict[str, MethodFaithfulness]

    def ratio(self, method: str, k: float | None = None) -> float:
        """Return the method's comprehensiveness over random's at `k`% (None: over the AOPC)."""
        ours, rand = self.methods[method], self.methods[RANDOM]
        if k is None:
            return _safe_ratio(ours.comprehensiveness_aopc, rand.comprehensiveness_aopc)
        key = _key(k)
        return _safe_ratio(ours.comprehensiveness[key], rand.comprehensiveness[key])

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data, with each method's ratios over random."""
        methods = {}
        for name, m in self.methods.items():
            row: dict[str, Any] = dict(vars(m))
            if name != RANDOM:
                row["comprehensiveness_ratio"] = {
                    _key(k): round(self.ratio(name, k), 4) for k in self.k_percent
                }
                row["comprehensiveness_aopc_ratio"] = round(self.ratio(name), 4)
            methods[name] = row
        return {
            "k_percent": self.k_percent,
            "n_texts": self.n_texts,
            "skipped_empty": self.skipped_empty,
            "methods": methods,
        }


def _key(k: float) -> str:
    return f"{k:g}"


def _safe_ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.inf if a > 0 else math.nan


@dataclass
class _Scores:
    comp: list[np.ndarray] = field(default_factory=list)
    suff: list[np.ndarray] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    deltas: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    def summary(
        self, name: str, ks: list[float], timed: bool, error: float | None = None
    ) -> MethodFaithfulness:
        """Return the means, standard errors and AOPC of the texts scored so far."""
        comp, suff = np.array(self.comp), np.array(self.suff)
        n = len(comp)
        return MethodFaithfulness(
            method=name,
            n=n,
            comprehensiveness=_by_k(ks, comp.mean(axis=0)),
            comprehensiveness_sem=_by_k(ks, _sem(comp)),
            sufficiency=_by_k(ks, suff.mean(axis=0)),
            sufficiency_sem=_by_k(ks, _sem(suff)),
            comprehensiveness_aopc=round(float(comp.mean()), 6),
            sufficiency_aopc=round(float(suff.mean()), 6),
            ms_per_explanation=round(1000 * float(np.median(self.seconds)), 2) if timed else None,
            median_relative_delta=round(float(np.median(self.deltas)), 6) if self.deltas else None,
            within_completeness_error=(
                round(float(np.mean(np.array(self.deltas) <= error)), 4)
                if self.deltas and error is not None
                else None
            ),
            median_steps=float(np.median(self.steps)) if self.steps else None,
        )


def _sem(values: np.ndarray) -> np.ndarray:
    n = len(values)
    return values.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(values.shape[1])


def _by_k(ks: list[float], values: np.ndarray) -> dict[str, float]:
    return {_key(k): round(float(v), 6) for k, v in zip(ks, values, strict=True)}


class FaithfulnessRun:
    """Accumulates faithfulness scores text by text; `report()` summarises them."""

    def __init__(self, subject: Subject, methods: list[str], cfg: ExplainConfig) -> None:
        for name in methods:
            get_method(name, subject)  # fail before any work, not on the first text
        self.subject, self.methods, self.cfg = subject, methods, cfg
        self.ks = [float(k) for k in cfg.top_k_percent]
        self.scores = {m: _Scores() for m in [*methods, RANDOM]}
        self.rng = np.random.default_rng(cfg.seed)
        self.skipped = 0

    def add(self, text: str) -> None:
        """Score every method and the random baseline on one text (texts without words are counted)."""
        if not text.strip():
            self.skipped += 1
            return
        words = split_words(text)
        start = time.perf_counter()
        base = self.subject.proba([text])[0]
        predict_s = time.perf_counter() - start
        target = int(np.argmax(base))
        orders = {RANDOM: self.rng.permutation(len(words))}
        orders.update({name: self._rank(words, name, target, predict_s) for name in self.methods})
        self._score(words, orders, base[target], target)

    def _rank(self, words: Words, name: str, target: int, predict_s: float) -> np.ndarray:
        """Return word indices by the method's attribution, highest first; record time and delta."""
        start = time.perf_counter()
        raw = attribute(self.subject, words, name, target, self.cfg)
        scores = self.scores[name]
        scores.seconds.append(predict_s + time.perf_counter() - start)
        if raw.delta is not None and raw.piece_scores is not None:
            scores.deltas.append(relative_error(float(raw.piece_scores.sum()), raw.delta))
        if raw.steps is not None:
            scores.steps.append(raw.steps)
        return np.argsort(-raw.word_scores, kind="stable")

    def _score(self, words: Words, orders: dict[str, np.ndarray], p0: float, target: int) -> None:
        counts = removal_counts(len(words), self.ks)
        names = list(orders)
        texts = [t for name in names for t in perturbations(words, orders[name], counts)]
        probs = self.subject.proba(texts)[:, target].reshape(len(names), 2, len(counts))
        for name, (removed, kept) in zip(names, probs, strict=True):
            self.scores[name].comp.append(p0 - removed)
            self.scores[name].suff.append(p0 - kept)

    def report(self) -> FaithfulnessReport:
        """Return the summary of every text added so far; raise DataError if there was none."""
        if not self.scores[RANDOM].comp:
            raise DataError(
                f"no text to evaluate explanations on ({self.skipped} empty text(s) skipped)"
            )
        summaries = {
            name: scores.summary(
                name, self.ks, timed=name != RANDOM, error=self.cfg.completeness_error
            )
            for name, scores in self.scores.items()
        }
        n = len(self.scores[RANDOM].comp)
        return FaithfulnessReport(self.ks, n, self.skipped, summaries)


def evaluate_faithfulness(
    subject: Subject,
    texts: Iterable[str],
    methods: list[str],
    cfg: ExplainConfig,
    on_text: Callable[[], None] | None = None,
) -> FaithfulnessReport:
    """Return the faithfulness of each method (and of random) over `texts`.

    Texts without any word are skipped and counted. Raises the errors of `attribute` for an
    unknown or unusable method.
    """
    run = FaithfulnessRun(subject, methods, cfg)
    for text in texts:
        run.add(text)
        if on_text is not None:
            on_text()
    return run.report()
