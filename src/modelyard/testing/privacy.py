"""The contract of DP-SGD's secure random source (`modelyard.privacy.rng.SecureRandom`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from modelyard.testing.contract import Contract

# 20,000 draws: the mean of uniforms has standard error 0.002 (bernoulli(0.3): 0.003), and
# the std of Gaussians a relative one of 0.005; the tolerances are 6-10 standard errors wide
_N = 20_000
_MEAN_TOL = 0.02
_STD_RTOL = 0.05


def check_random_source(factory: Callable[[], Any]) -> None:
    """Check a random source like SecureRandom, made by `factory` (a class or function).

    `uniform(n)` returns n float64 values in the open interval (0, 1) with mean 1/2;
    `bernoulli(n, p)` n booleans true about p of the time; `normal(shape, std)` and
    `dp_noise(shape, std)` float64 tensors of that shape with mean 0 and standard deviation
    std; two sources never draw the same numbers (each is keyed afresh). The tolerances
    are six to ten standard errors wide. Returns None; raises AssertionError naming the clause.
    """
    c = Contract("random source", getattr(factory, "__name__", "source"))
    source = factory()
    u = np.asarray(source.uniform(_N))
    c.require(u.shape == (_N,) and u.dtype == np.float64, "uniform(n) gives n float64 values")
    c.require(((u > 0) & (u < 1)).all(), "uniforms lie in the open interval (0, 1)")
    c.require(abs(u.mean() - 0.5) < _MEAN_TOL, "uniforms have mean 1/2", f"mean {u.mean():.4f}")
    b = np.asarray(source.bernoulli(_N, 0.3))
    c.require(b.shape == (_N,) and b.dtype == np.bool_, "bernoulli(n, p) gives n booleans")
    c.require(abs(b.mean() - 0.3) < _MEAN_TOL, "bernoulli draws are true at rate p")
    for method in ("normal", "dp_noise"):
        noise = getattr(source, method)((100, 200), 2.0)
        c.require(
            isinstance(noise, torch.Tensor) and noise.shape == (100, 200),
            f"{method}(shape, std) gives a tensor of that shape",
        )
        c.require(noise.dtype == torch.float64, f"{method} draws float64 noise")
        std = float(noise.std())
        # ten standard errors of the mean of 20,000 draws of std 2
        mean_tol = 10 * 2.0 / np.sqrt(noise.numel())
        c.require(abs(float(noise.mean())) < mean_tol, f"{method} noise has mean 0")
        c.require(abs(std / 2.0 - 1) < _STD_RTOL, f"{method} noise has std std", f"std {std:.4f}")
    other = np.asarray(factory().uniform(64))
    c.require(
        not np.array_equal(other, np.asarray(factory().uniform(64))),
        "two sources draw different numbers (a fresh key each)",
    )
