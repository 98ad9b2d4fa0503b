"""Opacus's DPOptimizer with the two things modelyard's loop needs on top.

Imported only after `require("opacus", ...)` succeeded: this module imports Opacus at the top.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from opacus.optimizers import DPOptimizer

from modelyard.privacy.rng import SecureRandom


class PoissonDPOptimizer(DPOptimizer):
    """DPOptimizer that steps on empty Poisson batches and can draw noise from SecureRandom.

    Poisson sampling sometimes draws no example; the step must still add noise for the
    accountant's guarantee to hold, but no forward pass ran, so no per-example gradient exists.
    """

    secure_random: SecureRandom | None = None

    @property
    def accumulated_iterations(self) -> int:
        """Return 1: the loop's backward passes between two steps are pieces of one Poisson batch.

        Opacus counts each backward pass as a whole batch of the expected size and divides
        the clipped sum by their number as well; for pieces that would shrink the step.
        """
        return 1

    def pre_step(self, closure: Callable[[], float] | None = None) -> bool | None:
        """Clip, accumulate and add noise; an empty batch gets zero-size per-example gradients."""
        if self.params and all(getattr(p, "grad_sample", None) is None for p in self.params):
            for p in self.params:
                p.grad_sample = p.new_zeros((0, *p.shape))
        for p in self.params:
            # under bf16 autocast the per-example gradients are bf16; their norms must be taken
            # on the very values that get summed, in the parameter's precision, or a rounded-down
            # norm lets an example exceed the clipping bound the accountant assumes
            if isinstance(p.grad_sample, torch.Tensor) and p.grad_sample.dtype != p.dtype:
                p.grad_sample = p.grad_sample.to(p.dtype)
        return super().pre_step(closure)

    def add_noise(self) -> None:
        """Add Gaussian noise of std noise_multiplier·C to the clipped sum of every parameter."""
        if self.secure_random is None:
            super().add_noise()
            return
        std = self.noise_multiplier * self.max_grad_norm
        for p in self.params:
            summed: torch.Tensor = p.summed_grad
            noise = self.secure_random.dp_noise(tuple(summed.shape), std)
            p.grad = (summed + noise.to(summed)).view_as(p)
