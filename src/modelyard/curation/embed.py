"""Fast sentence embeddings: the backbone's mean-pooled last hidden states, L2-normalised.

The audit, active learning and near-duplicate search all work on these vectors: they
cost one forward pass per text and no training, and all-MiniLM-L6-v2 was trained for
exactly this pooling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from modelyard.models import load_tokenizer, resolve_backbone
from modelyard.models.device import autocast, select_dtype
from modelyard.models.encoder import load_encoder, mean_pool
from modelyard.models.encoding import collate, encode_texts, eval_batches
from modelyard.recipe import DEFAULT_MAX_LENGTH


class Embedder:
    """Mean-pooled, L2-normalised text embeddings from a backbone (name or folder) or a model.

    `encoder` is any transformers model whose output has `last_hidden_state` (a bare
    encoder, or the `base_model` of a classifier). `precision` is auto (bf16 where the CPU
    has it), fp32 or bf16.
    """

    def __init__(
        self,
        encoder: Any,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int = DEFAULT_MAX_LENGTH,
        precision: str = "auto",
    ) -> None:
        self.encoder = encoder.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.dtype = select_dtype(precision, torch.device("cpu"))

    @classmethod
    def from_backbone(
        cls, backbone: str | Path, max_length: int = DEFAULT_MAX_LENGTH, precision: str = "auto"
    ) -> Embedder:
        """Return an Embedder on a registered backbone or local model folder.

        Raises BackboneError when the backbone cannot be resolved or loaded offline.
        """
        folder = resolve_backbone(str(backbone))
        return cls(load_encoder(folder), load_tokenizer(folder), max_length, precision)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Return a float32 array (len(texts), hidden) of unit-length embeddings, in input order."""
        hidden = int(self.encoder.config.hidden_size)
        out = np.zeros((len(texts), hidden), dtype=np.float32)
        if not texts:
            return out
        ids, types, _ = encode_texts(self.tokenizer, texts, None, self.max_length)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode(), autocast(torch.device("cpu"), self.dtype):
            for index in eval_batches(lengths, batch_size):
                batch = collate(ids, types, index, pad)
                states = self.encoder(**batch).last_hidden_state.float()
                out[index] = mean_pool(states, batch["attention_mask"]).numpy()
        return normalise(out)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Return `vectors` scaled to unit L2 norm row by row (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
