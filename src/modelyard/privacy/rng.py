"""A cryptographically strong random source for DP-SGD's batch sampling and noise.

Opacus's secure mode needs the archived `torchcsprng` package, which has no build for current
PyTorch. This source reads a ChaCha20 keystream keyed from `os.urandom` (the `cryptography`
library) and turns it into uniforms, Bernoulli draws and Gaussians.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from modelyard.plugins import require

_MANTISSA = 2.0**-53


class SecureRandom:
    """Random numbers from a ChaCha20 keystream with a fresh key from the OS on every instance."""

    def __init__(self) -> None:
        require("cryptography", extra="privacy")
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

        cipher = Cipher(algorithms.ChaCha20(os.urandom(32), os.urandom(16)), mode=None)
        self._stream = cipher.encryptor()

    def uniform(self, n: int) -> np.ndarray:
        """Return `n` float64 uniforms in the open interval (0, 1), 53 random bits each."""
        raw = np.frombuffer(self._stream.update(bytes(8 * n)), dtype=np.uint64)
        return ((raw >> np.uint64(11)).astype(np.float64) + 0.5) * _MANTISSA

    def bernoulli(self, n: int, p: float) -> np.ndarray:
        """Return a boolean mask of `n` independent draws that are True with probability `p`."""
        return self.uniform(n) < p

    def normal(self, shape: tuple[int, ...], std: float) -> torch.Tensor:
        """Return float64 Gaussian noise N(0, std²) of `shape` (Box–Muller on secure uniforms)."""
        n = math.prod(shape)
        half = (n + 1) // 2
        u1, u2 = self.uniform(half), self.uniform(half)
        radius = np.sqrt(-2.0 * np.log(u1))
        both = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])
        return torch.from_numpy(both[:n] * std).reshape(shape)

    def dp_noise(self, shape: tuple[int, ...], std: float) -> torch.Tensor:
        """Return N(0, std²) noise as half the sum of four N(0, std²) draws, as Opacus does.

        Summing several Gaussians hides the low-order bits that floating-point attacks on
        DP noise read (Opacus's secure mode, after Holohan and Braghin, 2021).
        """
        total = torch.zeros(shape, dtype=torch.float64)
        for _ in range(4):
            total += self.normal(shape, std)
        return total / 2
