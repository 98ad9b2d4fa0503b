"""The secure random source: right distributions, and a fresh key on every instance."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.privacy.rng import SecureRandom

pytest.importorskip("cryptography")


def test_uniforms_are_in_the_open_unit_interval_and_flat() -> None:
    u = SecureRandom().uniform(200_000)
    assert u.dtype == np.float64 and u.min() > 0 and u.max() < 1
    assert u.mean() == pytest.approx(0.5, abs=0.005)
    counts, _ = np.histogram(u, bins=10, range=(0, 1))
    assert counts.min() > 0.95 * 20_000 and counts.max() < 1.05 * 20_000


def test_every_instance_has_its_own_stream() -> None:
    assert not np.array_equal(SecureRandom().uniform(16), SecureRandom().uniform(16))


def test_bernoulli_rate() -> None:
    assert SecureRandom().bernoulli(100_000, 0.03).mean() == pytest.approx(0.03, abs=0.002)


@pytest.mark.parametrize("method", ["normal", "dp_noise"])
def test_gaussians_have_the_asked_std(method: str) -> None:
    draw = getattr(SecureRandom(), method)((301, 333), 2.5)
    assert tuple(draw.shape) == (301, 333)
    assert draw.mean().item() == pytest.approx(0.0, abs=0.03)
    assert draw.std().item() == pytest.approx(2.5, rel=0.01)
    # Gaussian tails, not a uniform or a clipped shape
    assert (draw.abs() > 2 * 2.5).double().mean().item() == pytest.approx(0.0455, abs=0.003)
