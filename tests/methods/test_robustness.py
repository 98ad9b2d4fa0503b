"""Seeded character- and word-level noise, and `evaluate --robustness`."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

import modelyard
from modelyard.methods.robustness import NOISES, case, perturb, word_deletion, word_swap
from modelyard.recipe import build_recipe

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
    from modelyard.methods.robustness import robustness_metrics

    with pytest.raises(ValueError, match="noise rate must be in"):
        robustness_metrics(None, None, rate=0)  # type: ignore[arg-type]


def test_evaluate_with_robustness_reports_clean_and_noisy_accuracy(
    method_recipe: dict, split_files: tuple[Path, Path]
) -> None:
    result: Any = modelyard.train(build_recipe(method_recipe), progress=False)
    metrics = modelyard.evaluate(result.run_dir, split_files[1], robustness=True)
    report = metrics["robustness"]
    assert report["clean_accuracy"] == pytest.approx(metrics["accuracy"])
    assert set(report["noise"]) == set(NOISES)
    for value in report["noise"].values():
        assert value["drop"] == pytest.approx(report["clean_accuracy"] - value["accuracy"])
    assert (Path(metrics["report_dir"]) / "robustness.md").read_text().count("|") > 20
