"""DP-SGD through Opacus, around modelyard's own fine-tuning loop.

`DPPolicy` is the loop's `StepPolicy`: it attaches Opacus's per-example gradient sampler to
the model, wraps the optimizer in Opacus's DPOptimizer (per-example clipping plus Gaussian
noise calibrated so the planned steps spend at most the recipe's epsilon) and draws
Poisson-sampled batches. Opacus's accountant is the source of every epsilon reported.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from modelyard.errors import RecipeError
from modelyard.plugins import require
from modelyard.recipe import PrivacyConfig, Recipe

EXTRA = "privacy"
# broadcast over the batch, so Opacus cannot split their gradient per example (see NOTES)
BROADCAST_EMBEDDINGS = ("position_embeddings", "token_type_embeddings")
_EPSILON_TOLERANCE = 0.01


def auto_delta(n_train: int) -> float:
    """Return the largest power of ten that is at most 1/(10·n_train)."""
    return 10.0 ** math.floor(math.log10(0.1 / n_train))


def resolve_delta(cfg: PrivacyConfig, n_train: int) -> float:
    """Return the run's delta: `auto_delta(n_train)` or the recipe's value.

    Raises RecipeError when a given delta is not below 1/N, which would let a mechanism
    publish whole training examples and still meet the bound.
    """
    if cfg.delta == "auto":
        return auto_delta(n_train)
    if cfg.delta >= 1.0 / n_train:
        raise RecipeError(
            f"privacy.delta {cfg.delta:g} is not below 1/N = {1.0 / n_train:.2g} for the "
            f"{n_train} training rows; use delta: auto (here {auto_delta(n_train):g}) or a smaller value"
        )
    return float(cfg.delta)


def epsilon_spent(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str
) -> float:
    """Return the epsilon Opacus's accountant gives `steps` Poisson-sampled noisy steps."""
    if steps == 0:
        return 0.0
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        return float(acc.get_epsilon(delta=delta))


def calibrate_noise(
    target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str
) -> float:
    """Return the smallest noise multiplier (to 0.01 in epsilon) that keeps `steps` within budget.

    Raises RecipeError when no noise level below Opacus's cap reaches the budget.
    """
    require("opacus", extra=EXTRA)
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the")
            return float(
                get_noise_multiplier(
                    target_epsilon=target_epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    steps=steps,
                    accountant=accountant,
                    epsilon_tolerance=_EPSILON_TOLERANCE,
                )
            )
    except ValueError as exc:
        raise RecipeError(
            f"privacy.target_epsilon {target_epsilon:g} cannot be reached over {steps} steps "
            f"at sampling rate {sample_rate:.3g} ({exc}); raise the budget or train fewer steps"
        ) from None


def freeze_broadcast_embeddings(model: torch.nn.Module) -> list[str]:
    """Freeze position and token-type embeddings; return the names of the frozen parameters."""
    frozen = []
    for name, param in model.named_parameters():
        if param.requires_grad and any(part in name for part in BROADCAST_EMBEDDINGS):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


class DPPolicy:
    """The fine-tuning loop's step policy for DP-SGD (see the module docstring)."""

    def __init__(self, cfg: PrivacyConfig, n_train: int, batch_size: int, seed: int) -> None:
        if batch_size >= n_train:
            raise RecipeError(
                f"train.batch_size {batch_size} must be below the {n_train} training rows for "
                "Poisson sampling; lower it or add data"
            )
        self.cfg, self.n_train, self.batch_size, self.seed = cfg, n_train, batch_size, seed
        self.sample_rate = batch_size / n_train
        self.physical_batch_size = cfg.max_physical_batch_size
        self.delta = resolve_delta(cfg, n_train)
        self.noise_multiplier_: float | None = None
        self.planned_steps_: int | None = None
        self.frozen_: list[str] = []
        self._sampler: Any = None
        self._secure: Any = None

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Freeze what Opacus cannot handle and check the rest; return `model`.

        Raises RecipeError listing the layers Opacus cannot compute per-example gradients for.
        """
        require("opacus", extra=EXTRA)
        from opacus.validators import ModuleValidator

        self.frozen_ = freeze_broadcast_embeddings(model)
        model.train()  # the validator (and the per-example hooks) work in training mode only
        errors = ModuleValidator.validate(model, strict=False)
        if errors:
            raise RecipeError(
                "privacy: Opacus cannot train this model privately: "
                + "; ".join(str(e) for e in errors)
            )
        return model

    def wrap_optimizer(self, model: torch.nn.Module, optimizer: Any, total_steps: int) -> Any:
        """Attach per-example gradients, calibrate the noise to the budget; return the DP optimizer."""
        from opacus import GradSampleModule

        from modelyard.privacy.optimizer import PoissonDPOptimizer

        self.planned_steps_ = total_steps
        self.noise_multiplier_ = calibrate_noise(
            self.cfg.target_epsilon, self.delta, self.sample_rate, total_steps, self.cfg.accountant
        )
        model.train()
        # frozen embeddings feed no input gradient; torch warns once per run that hooks still fire
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        self._sampler = GradSampleModule(model, loss_reduction="mean")
        dp = PoissonDPOptimizer(
            optimizer,
            noise_multiplier=self.noise_multiplier_,
            max_grad_norm=self.cfg.max_grad_norm,
            expected_batch_size=self.batch_size,
            loss_reduction="mean",
        )
        if self.cfg.secure_rng:
            from modelyard.privacy.rng import SecureRandom

            self._secure = SecureRandom()
            dp.secure_random = self._secure
        return dp

    def steps_per_epoch(self) -> int:
        """Return the Poisson batches per epoch, as many as the loop plans for one epoch."""
        return math.ceil(self.n_train / self.batch_size)

    def batches(self, epoch: int) -> list[np.ndarray]:
        """Return one epoch of Poisson batches: each row is in each batch with probability q."""
        rng = np.random.default_rng([self.seed, epoch, 0xD5])
        masks = (
            self._secure.bernoulli(self.n_train, self.sample_rate)
            if self._secure is not None
            else rng.random(self.n_train) < self.sample_rate
            for _ in range(self.steps_per_epoch())
        )
        return [np.flatnonzero(mask) for mask in masks]

    def finish(self, steps: int) -> dict[str, Any]:
        """Detach Opacus from the model; return the privacy record of the `steps` taken."""
        if self._sampler is not None:
            self._sampler.to_standard_module()
            self._sampler = None
        sigma = self.noise_multiplier_ or 0.0
        import opacus

        return {
            "mechanism": "DP-SGD (Opacus), Poisson sampling, per-example clipping",
            "epsilon": round(
                epsilon_spent(sigma, self.sample_rate, steps, self.delta, self.cfg.accountant), 4
            ),
            "target_epsilon": self.cfg.target_epsilon,
            "delta": self.delta,
            "delta_auto": self.cfg.delta == "auto",
            "accountant": self.cfg.accountant,
            "noise_multiplier": round(sigma, 6),
            "sample_rate": round(self.sample_rate, 8),
            "expected_batch_size": self.batch_size,
            "steps": steps,
            "planned_steps": self.planned_steps_,
            "max_grad_norm": self.cfg.max_grad_norm,
            "training_rows": self.n_train,
            "secure_rng": self.cfg.secure_rng,
            "max_physical_batch_size": self.physical_batch_size,
            "frozen_parameters": self.frozen_,
            "opacus_version": opacus.__version__,
        }


def private_policy(recipe: Recipe, model: torch.nn.Module, n_train: int) -> DPPolicy | None:
    """Return the DP-SGD policy of the recipe with `model` prepared for it, or None without privacy.

    Raises RecipeError for a budget or delta that cannot work, or a model Opacus cannot train.
    """
    if recipe.privacy is None:
        return None
    policy = DPPolicy(recipe.privacy, n_train, recipe.train.batch_size, recipe.run.seed)
    policy.prepare(model)
    return policy
