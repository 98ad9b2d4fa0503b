"""Training objectives for the fine-tuning loop: causal LM and masked LM.

The causal objective runs the model's body once and its output layer only at positions
that carry loss: with a vocabulary of tens of thousands, the logits of prompt and padding
tokens would be a large share of the compute for nothing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from modelyard.generation.packing import IGNORE, LMData, collate_rows
from modelyard.models.device import autocast
from modelyard.models.encoding import eval_batches


def unwrap(model: Any) -> Any:
    """Return the transformers model inside a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _selective_ok(lm: Any) -> bool:
    # a final soft-cap or logit scaling would be skipped by calling the output layer directly
    config = lm.config
    return (
        not getattr(config, "final_logit_softcapping", None)
        and getattr(config, "logit_scale", None) is None
    )


def causal_nll(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Return the summed next-token loss of the batch and the number of tokens it covers."""
    labels = batch["labels"]
    targets = labels[:, 1:]
    keep = targets != IGNORE
    count = int(keep.sum())
    if count == 0:
        return torch.zeros((), device=labels.device), 0
    lm = unwrap(model)
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    if _selective_ok(lm):
        hidden = lm.get_decoder()(**inputs, use_cache=False).last_hidden_state
        logits = lm.get_output_embeddings()(hidden[:, :-1][keep])
    else:
        logits = model(**inputs, use_cache=False).logits[:, :-1][keep]
    loss = torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum")
    return loss, count


class CausalObjective:
    """Next-token cross-entropy on the labelled tokens; dev loss and perplexity."""

    metric = "loss"

    def __init__(self, pad_id: int, batch_size: int) -> None:
        self.pad_id, self.batch_size = pad_id, batch_size

    def loss(
        self,
        model: Any,
        data: LMData,
        index: np.ndarray,
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> torch.Tensor:
        """Return the next-token loss summed over the labelled tokens of rows `index`, divided
        by the labelled tokens that many rows of `data` hold on average.

        Not the batch's own mean: with length-grouped batches, or assistant-only loss on
        conversations, a batch may hold a few labelled tokens or many times as many, and a
        per-batch mean gives each token of a sparse batch that much more weight (the token
        classifier's loss had the same bias, see modelyard.tagging.objective). With a fixed
        divisor every labelled token weighs the same whichever batch it lands in; a batch
        without one gives 0.
        """
        batch = {
            k: v.to(device)
            for k, v in collate_rows([data.rows[i] for i in index], self.pad_id).items()
        }
        with autocast(device, dtype):
            total, _ = causal_nll(model, batch)
        return total.float() / max(len(index) * data.loss_tokens_per_row(), 1e-9)

    def evaluate(
        self, model: Any, data: LMData, device: torch.device, dtype: torch.dtype | None
    ) -> dict[str, float]:
        """Return the mean loss per labelled token and its perplexity over all rows of `data`."""
        total, count = 0.0, 0
        model.eval()
        with torch.inference_mode(), autocast(device, dtype):
            for index in eval_batches(data.lengths(), self.batch_size):
                rows = [data.rows[i] for i in index]
                batch = {k: v.to(device) for k, v in collate_rows(rows, self.pad_id).items()}
                nll, n = causal_nll(model, batch)
                total, count = total + float(nll), count + n
        loss = total / max(count, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": float(count)}


class MaskedObjective:
    """Masked-token cross-entropy (BERT-style 80/10/10 masking); dev masks are fixed by a seed."""

    metric = "loss"

    def __init__(self, tokenizer: Any, probability: float, batch_size: int, seed: int) -> None:
        from transformers import DataCollatorForLanguageModeling

        self.collator = DataCollatorForLanguageModeling(
            tokenizer, mlm=True, mlm_probability=probability, return_tensors="pt"
        )
        self.batch_size, self.seed = batch_size, seed

    def _batch(
        self, data: LMData, index: np.ndarray, device: torch.device
    ) -> dict[str, torch.Tensor]:
        features = [{"input_ids": data.rows[i][0].input_ids} for i in index]
        return {k: v.to(device) for k, v in self.collator(features).items()}

    def loss(
        self,
        model: Any,
        data: LMData,
        index: np.ndarray,
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> torch.Tensor:
        """Return the mean loss over the masked tokens of rows `index` (masks drawn afresh)."""
        batch = self._batch(data, index, device)
        with autocast(device, dtype):
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
        return torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE
        )

    def evaluate(
        self, model: Any, data: LMData, device: torch.device, dtype: torch.dtype | None
    ) -> dict[str, float]:
        """Return the masked-token loss and pseudo-perplexity, with the same masks on every call."""
        total, count = 0.0, 0
        model.eval()
        with torch.random.fork_rng(devices=[]), torch.inference_mode(), autocast(device, dtype):
            torch.manual_seed(self.seed)
            for index in eval_batches(data.lengths(), self.batch_size):
                batch = self._batch(data, index, device)
                logits = model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits
                labels = batch["labels"].flatten()
                total += float(
                    torch.nn.functional.cross_entropy(
                        logits.float().flatten(0, 1), labels, ignore_index=IGNORE, reduction="sum"
                    )
                )
                count += int((labels != IGNORE).sum())
        loss = total / max(count, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": float(count)}
