"""Methods that train a subset of the classifier's own weights: full, BitFit, linear probe."""

from __future__ import annotations

from typing import Any

import torch

from modelyard.methods.catalog import builtin, register_training_method


def head_prefixes(model: Any) -> tuple[str, ...]:
    """Return the parameter-name prefixes of the task head: every top-level module but the backbone."""
    backbone = getattr(model, "base_model_prefix", "")
    names = [
        name
        for name, child in model.named_children()
        if name != backbone and any(True for _ in child.parameters())
    ]
    return tuple(f"{name}." for name in names)


def freeze_except(model: torch.nn.Module, keep: Any) -> torch.nn.Module:
    """Set requires_grad to `keep(name)` for every parameter and return the model."""
    for name, param in model.named_parameters():
        param.requires_grad_(bool(keep(name)))
    return model


def prepare_full(model: Any, recipe: Any) -> Any:
    """Return the model unchanged: every weight trains."""
    return model


def prepare_bitfit(model: Any, recipe: Any) -> Any:
    """Return the model with only its biases and its task head trainable (BitFit)."""
    head = head_prefixes(model)
    return freeze_except(model, lambda name: name.endswith(".bias") or name.startswith(head))


def prepare_linear_probe(model: Any, recipe: Any) -> Any:
    """Return the model with the backbone frozen and only the task head trainable."""
    head = head_prefixes(model)
    return freeze_except(model, lambda name: name.startswith(head))


register_training_method(builtin("full", prepare_full))
register_training_method(builtin("bitfit", prepare_bitfit))
register_training_method(builtin("linear-probe", prepare_linear_probe))
