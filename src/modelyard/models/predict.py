"""Batched, length-sorted forward passes that return logits in the caller's order."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from modelyard.models.device import autocast
from modelyard.models.encoding import CALL_TOKENS, Encoded, collate, length_groups

# a GPU computes a few thousand padded tokens in the time one call's launches take
_GPU_CALL_TOKENS = 2048


def predict_logits(
    model: Any,
    data: Encoded,
    pad_id: int,
    device: torch.device,
    dtype: torch.dtype | None,
    batch_size: int = 64,
) -> np.ndarray:
    """Return fp32 logits for every example of `data`, in its original order.

    Each batch of `batch_size` length-sorted rows is cut into runs of similar length where
    that computes fewer padded tokens (`length_groups`); the cuts never change a logit
    beyond float rounding.
    """
    model.eval()
    call_tokens = CALL_TOKENS if device.type == "cpu" else _GPU_CALL_TOKENS
    out = np.zeros((len(data), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode(), autocast(device, dtype):
        for index in length_groups(data.lengths(), batch_size, call_tokens):
            batch = {
                k: v.to(device)
                for k, v in collate(data.input_ids, data.token_type_ids, index, pad_id).items()
            }
            out[index] = model(**batch).logits.float().cpu().numpy()
    return out
