"""Cross-section rules of the training recipe: options that fit the chosen method, and what
DP-SGD cannot honour. Plain checks over the recipe and the method table; they raise ValueError,
which the recipe loader reports with the key path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard.recipe.methods import (
    CLASSIFIER,
    METHOD_SPECS,
    MethodSpec,
    method_spec,
    option_sections,
)

if TYPE_CHECKING:
    from modelyard.recipe.training import TrainConfig


def check_method_options(cfg: TrainConfig) -> None:
    """Raise ValueError when `cfg.method` is unknown or the options do not fit the method."""
    spec = method_spec(cfg.method)
    _check_sections(cfg)
    _check_combinations(cfg, spec)


def _check_sections(cfg: TrainConfig) -> None:
    for section, owner in option_sections().items():
        if getattr(cfg, section, None) is not None and owner != cfg.method:
            raise ValueError(
                f"train.{section} holds options of method '{owner}' but train.method is "
                f"'{cfg.method}'; set train.method={owner} or remove train.{section}"
            )
    ia3 = cfg.ia3
    if ia3 is not None and ia3.feedforward_modules and ia3.target_modules is not None:
        extra = sorted(set(ia3.feedforward_modules) - set(ia3.target_modules))
        if extra:
            raise ValueError(
                "train.ia3.feedforward_modules must be a subset of target_modules; "
                f"not targets: {', '.join(extra)}"
            )


def _check_combinations(cfg: TrainConfig, spec: MethodSpec) -> None:
    if cfg.adversarial is not None and spec.own_procedure:
        raise ValueError(
            f"train.adversarial needs a method trained by the fine-tuning loop; '{cfg.method}' "
            "has its own procedure. Remove train.adversarial or pick another method."
        )
    if spec.kind != CLASSIFIER and (cfg.memory.fisher or cfg.continual is not None):
        raise ValueError(
            "train.memory.fisher and train.continual need a method that saves a whole classifier "
            f"(full, bitfit, linear-probe); '{cfg.method}' saves a '{spec.kind}'"
        )


def check_private_training(train: TrainConfig) -> None:
    """Raise ValueError naming every training option that DP-SGD cannot honour."""
    problems = []
    if train.grad_accum != 1:
        problems.append(
            "train.grad_accum must be 1 (one Poisson batch is one noisy step); "
            "raise train.batch_size instead"
        )
    if train.adversarial is not None:
        problems.append(
            "train.adversarial adds a second backward pass that is not clipped per example"
        )
    if train.continual is not None and train.continual.strategy == "ewc":
        problems.append(
            "train.continual.strategy ewc adds a penalty that is not clipped per example"
        )
    if train.gradient_checkpointing:
        problems.append(
            "train.gradient_checkpointing re-runs the forward pass under Opacus's hooks"
        )
    spec = METHOD_SPECS.get(train.method)
    if spec is not None and spec.own_procedure:
        problems.append(
            f"train.method {train.method} has its own training procedure; use full or lora"
        )
    if problems:
        raise ValueError("privacy cannot be combined with: " + "; ".join(problems))
