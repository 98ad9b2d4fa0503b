"""The random-source check on SecureRandom and on deliberately broken sources."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from modelyard.privacy.rng import SecureRandom
from modelyard.testing import check_random_source


def test_secure_random_keeps_its_contract() -> None:
    check_random_source(SecureRandom)


class FixedKey:
    """Seeded numpy, the same stream in every instance: what secure mode must never be."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def uniform(self, n: int) -> np.ndarray:
        return self.rng.uniform(size=n)

    def bernoulli(self, n: int, p: float) -> np.ndarray:
        return self.uniform(n) < p

    def normal(self, shape: tuple[int, ...], std: float) -> torch.Tensor:
        return torch.from_numpy(self.rng.normal(0.0, std, size=shape))

    def dp_noise(self, shape: tuple[int, ...], std: float) -> torch.Tensor:
        return self.normal(shape, std)


class ClosedInterval(FixedKey):
    def uniform(self, n: int) -> np.ndarray:
        u = super().uniform(n)
        u[0] = 0.0  # log(0) in Box-Muller
        return u


class SinglePrecision(FixedKey):
    def normal(self, shape: tuple[int, ...], std: float) -> torch.Tensor:
        return super().normal(shape, std).float()


class HalfNoise(FixedKey):
    def dp_noise(self, shape: tuple[int, ...], std: float) -> torch.Tensor:
        return self.normal(shape, std / 2)


@pytest.mark.parametrize(
    ("source", "clause"),
    [
        (FixedKey, "two sources draw different numbers"),
        (ClosedInterval, r"open interval \(0, 1\)"),
        (SinglePrecision, "normal draws float64 noise"),
        (HalfNoise, "dp_noise noise has std std"),
    ],
)
def test_a_broken_random_source_fails_naming_the_clause(source: Any, clause: str) -> None:
    with pytest.raises(
        AssertionError, match=f"random source '{source.__name__}' breaks .*{clause}"
    ):
        check_random_source(source)
