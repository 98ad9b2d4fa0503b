"""Seeded character- and word-level noise, and robustness figures of any classifier."""

from __future__ import annotations

import random

import numpy as np
import pytest

from modelyard.data import Split
from modelyard.evaluation import NOISES, perturb, robustness_metrics
from modelyard.evaluation.robustness import case, word_deletion, word_swap

TEXTS = [f"the parcel number {i} arrived late again, please help me." for i in range(50)]


@pytest.mark.parametrize("noise", sorted(NOISES))
def test_noise_is_seeded_and_changes_text(noise: str) -> None:
    a, b = perturb(TEXTS, noise, 0.2, seed=1), perturb(TEXTS, noise, 0.2, seed=1)
    assert a == b
    assert a != perturb(TEXTS, noise, 0.2, seed=2)
    changed = sum(x != y for x, y in zip(a, TEXTS, strict=True))
    assert 0.3 * len(TEXTS) < changed
    assert perturb(TEXTS, noise, 1e-9, seed=1) == TEXTS


def test_word_noise_keeps_the_words() -> None:
    rng = random.Random(0)
    text = "one two three four five six"
    swapped = word_swap(text, rng, 0.5)
    assert sorted(swapped.split()) == sorted(text.split()) and swapped != text
    assert word_deletion(text, rng, 1.0) == "one"
    assert set(word_deletion(text, rng, 0.5).split()) <= set(text.split())


def test_case_noise_only_flips_case() -> None:
    noisy = case("Hello World", random.Random(0), 1.0)
    assert noisy == "hELLO wORLD"


def test_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="noise rate must be in"):
        robustness_metrics(None, None, rate=0)  # type: ignore[arg-type]


class _LowercaseOnly:
    """Right on lowercase texts, wrong once any letter is upper case."""

    name = "fake"

    def __init__(self) -> None:
        self.labels = ["ok", "shouting"]

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        upper = np.array([any(c.isupper() for c in t) for t in texts], dtype=float)
        return np.stack([1 - upper, upper], axis=1), [False] * len(texts)


def test_robustness_of_any_classifier() -> None:
    split = Split(texts=TEXTS[:20], labels=[0] * 20)
    report = robustness_metrics(_LowercaseOnly(), split, seed=3, rate=0.2)
    assert report["clean_accuracy"] == 1.0
    assert report["noise"]["case"]["accuracy"] < 0.5  # case flips fool it
    assert report["noise"]["word_swap"]["accuracy"] == 1.0
    for value in report["noise"].values():
        assert value["drop"] == pytest.approx(1.0 - value["accuracy"])
    assert robustness_metrics(_LowercaseOnly(), split, seed=3, rate=0.2) == report
