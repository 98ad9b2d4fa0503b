"""Embedding classifiers: a sentence encoder, mean pooling, L2 normalisation and a linear head.

Zero-shot (head rows = label-description embeddings) and SetFit-style few-shot (head =
logistic regression) both produce this model. Its artifact (kind `embedding-classifier`)
holds `model.safetensors` (encoder and head), the encoder's `config.json`,
`embedding_head.json`, the tokenizer and `labels.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from transformers import AutoConfig, AutoModel
from transformers.modeling_outputs import SequenceClassifierOutput

from modelyard.errors import ArtifactError
from modelyard.models import load_tokenizer
from modelyard.models.build import quiet_transformers
from modelyard.models.encoder import load_encoder, mean_pool
from modelyard.registry.records import LABELS, read_labels, read_recipe
from modelyard.registry.run import LoadedRun

HEAD_CONFIG = "embedding_head.json"
WEIGHTS = "model.safetensors"


class EmbeddingClassifier(torch.nn.Module):
    """Encoder + mean pooling + L2 normalisation + linear head; returns logits like a HF classifier."""

    # the name that marks the backbone for the freezing methods (as in transformers' models)
    base_model_prefix = "encoder"

    def __init__(self, encoder: Any, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.config.hidden_size, num_labels)
        self.config = encoder.config
        self.config.num_labels = num_labels
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def embed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return unit-length mean-pooled sentence embeddings."""
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        pooled = mean_pool(hidden.last_hidden_state, attention_mask)
        return torch.nn.functional.normalize(pooled.float(), dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        """Return the head's logits for the batch."""
        return SequenceClassifierOutput(
            logits=self.head(self.embed(input_ids, attention_mask, token_type_ids))
        )

    def get_input_embeddings(self) -> torch.nn.Module:
        """Return the encoder's word-embedding layer."""
        return self.encoder.get_input_embeddings()

    def activation_checkpointing_enable(self, **kwargs: Any) -> None:
        """Turn on activation recomputation in the encoder."""
        from modelyard.models.build import enable_gradient_checkpointing

        enable_gradient_checkpointing(self.encoder)


def build_embedding_classifier(folder: Path, labels: list[str], recipe: Any = None) -> Any:
    """Return an EmbeddingClassifier on the backbone in `folder` with a zero head for `labels`."""
    return EmbeddingClassifier(load_encoder(folder), len(labels))


def is_embedding_classifier(model: Any) -> bool:
    """Return True when `model`, or the base under its peft wrapper, is an EmbeddingClassifier."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return isinstance(base, EmbeddingClassifier)


def save_embedding_files(run_dir: Path, model: Any, tokenizer: Any, labels: list[str]) -> None:
    """Write the encoder and head weights, the encoder config, the head config, tokenizer and labels."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, str(run_dir / WEIGHTS))
    model.encoder.config.save_pretrained(str(run_dir))
    head = {"pooling": "mean", "normalize": True, "num_labels": len(labels)}
    (run_dir / HEAD_CONFIG).write_text(json.dumps(head, indent=2) + "\n", encoding="utf-8")
    tokenizer.save_pretrained(str(run_dir))
    (run_dir / LABELS).write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")


def load_embedding_run(run_dir: Path, manifest: dict[str, Any], device: str = "cpu") -> LoadedRun:
    """Return a LoadedRun for an embedding-classifier artifact whose manifest is already verified.

    Raises ArtifactError when its weights or configs cannot be read or do not fit together.
    """
    labels = read_labels(run_dir)
    recipe = read_recipe(run_dir)
    try:
        with quiet_transformers():
            encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(run_dir)))
        model = EmbeddingClassifier(encoder, len(labels))
        load_model(model, str(run_dir / WEIGHTS))
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise ArtifactError(f"cannot load the embedding classifier in {run_dir}: {exc}") from None
    model.to(device).eval()
    return LoadedRun(run_dir, model, load_tokenizer(run_dir), labels, manifest, recipe)
