"""Adversarial training: FGM and PGD perturbations of the word-embedding output.

A forward hook on the input embeddings adds a zero tensor that requires grad during the
clean training pass, so the backward pass yields the gradient of the loss with respect
to the embedding output. After it, the loop hook builds a perturbation along that
gradient (one normalised step for FGM; several projected steps for PGD), runs the batch
again with it, and back-propagates that loss too. Evaluation passes are left untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from modelyard.recipe import AdversarialConfig


def _unit(grad: torch.Tensor) -> torch.Tensor:
    # per-example L2 normalisation, so long and short texts get the same budget
    norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / norm.view(-1, *([1] * (grad.dim() - 1)))


def _project(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = (epsilon / norm).clamp(max=1.0)
    return delta * scale.view(-1, *([1] * (delta.dim() - 1)))


class EmbeddingAttack:
    """A TrainingHook that adds FGM or PGD adversarial loss to every training batch."""

    def __init__(self, embeddings: torch.nn.Module, cfg: AdversarialConfig) -> None:
        self.cfg = cfg
        self.probe: torch.Tensor | None = None
        self.delta: torch.Tensor | None = None
        self.handle = embeddings.register_forward_hook(self._forward_hook)

    def _forward_hook(self, module: torch.nn.Module, args: Any, output: torch.Tensor) -> Any:
        if self.delta is not None:
            return output + self.delta
        if module.training and torch.is_grad_enabled():
            self.probe = torch.zeros_like(output, requires_grad=True)
            return output + self.probe
        return output

    def adjust_loss(self, model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
        """Return the clean loss unchanged."""
        return loss

    def after_backward(
        self, model: torch.nn.Module, compute_loss: Callable[[], torch.Tensor], accum: int
    ) -> None:
        """Back-propagate the loss of the batch under the adversarial perturbation."""
        probe, self.probe = self.probe, None
        if probe is None or probe.grad is None:
            return
        delta = self.cfg.epsilon * _unit(probe.grad.detach())
        if self.cfg.method == "pgd":
            delta = self._pgd(compute_loss, delta)
        self.delta = delta.detach()
        try:
            (compute_loss() / accum).backward()
        finally:
            self.delta = None

    def _pgd(self, compute_loss: Callable[[], torch.Tensor], start: torch.Tensor) -> torch.Tensor:
        step = self.cfg.step_size or 1.5 * self.cfg.epsilon / self.cfg.steps
        delta = _project(start * (step / self.cfg.epsilon), self.cfg.epsilon)
        for _ in range(self.cfg.steps - 1):
            leaf = delta.detach().requires_grad_(True)
            self.delta = leaf
            (grad,) = torch.autograd.grad(compute_loss(), leaf)
            delta = _project(leaf.detach() + step * _unit(grad), self.cfg.epsilon)
        self.delta = None
        return delta

    def remove(self) -> None:
        """Detach the forward hook from the embeddings."""
        self.handle.remove()


def adversarial_hook(model: Any, cfg: AdversarialConfig) -> EmbeddingAttack:
    """Return the loop hook that trains `model` against `cfg`'s perturbations of its input embeddings."""
    return EmbeddingAttack(model.get_input_embeddings(), cfg)
