"""The robustness-noise sweep, and the noise check failing on deliberately broken noises."""

from __future__ import annotations

import random
from typing import Any

import pytest

from modelyard.testing import BoundCheck, check_noise, parametrize_with_checks


@parametrize_with_checks("robustness-noise")
def test_noise_keeps_its_contract(entry: str, check: BoundCheck) -> None:
    check()


def shouting(text: str, rng: random.Random, rate: float) -> str:
    # draws from the global generator instead of `rng`
    return "".join(c.upper() if random.random() < rate else c for c in text)


def always_shouting(text: str, rng: random.Random, rate: float) -> str:
    return text.upper()


def silent(text: str, rng: random.Random, rate: float) -> str:
    return text


@pytest.mark.parametrize(
    ("noise", "clause"),
    [
        (shouting, "the same seed gives the same text"),
        (always_shouting, "a vanishing rate leaves texts alone"),
        (silent, "rate 1 changes the texts"),
    ],
)
def test_a_broken_noise_fails_naming_the_clause(noise: Any, clause: str) -> None:
    with pytest.raises(AssertionError, match=f"noise '{noise.__name__}' breaks .*{clause}"):
        check_noise(noise)
