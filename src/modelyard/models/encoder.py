"""The bare sentence encoder of a backbone and its mean pooling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel

from modelyard.errors import BackboneError
from modelyard.models.build import quiet_transformers


def load_encoder(folder: Path) -> Any:
    """Return the bare encoder (no task head) stored in `folder`, in eval mode.

    Raises BackboneError when the folder holds no loadable safetensors model.
    """
    try:
        with quiet_transformers():  # a classifier folder has head weights the encoder skips
            return AutoModel.from_pretrained(
                str(folder), local_files_only=True, use_safetensors=True
            ).eval()
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot load an encoder from {folder}: {exc}") from None


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return the mean of `states` (batch, tokens, hidden) over the tokens `mask` marks."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
