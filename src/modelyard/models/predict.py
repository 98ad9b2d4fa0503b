"""Batched, length-sorted forward passes that return logits in the caller's order."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from modelyard.models.device import autocast
from modelyard.models.encoding import Encoded, collate, eval_batches


def predict_logits(
    model: Any,
    data: Encoded,
    pad_id: int,
    device: torch.device,
    dtype: torch.dtype | None,
    batch_size: int = 64,
) -> np.ndarray:
    """Return fp32 logits for every example of `data`, in its original order."""
    model.eval()
    out = np.zeros((len(data), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode(), autocast(device, dtype):
        for index in eval_batches(data.lengths(), batch_size):
            batch = {
                k: v.to(device)
                for k, v in collate(data.input_ids, data.token_type_ids, index, pad_id).items()
            }
            out[index] = model(**batch).logits.float().cpu().numpy()
    return out
