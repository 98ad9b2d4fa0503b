"""The token-classification objective of the fine-tuning loop: cross-entropy over the first
piece of every word; on dev, the loss, token accuracy and entity-level F1."""

from __future__ import annotations

import numpy as np
import torch

from modelyard.models.device import autocast
from modelyard.models.encoding import eval_batches
from modelyard.tagging.encoding import IGNORE, TagData, collate_pieces
from modelyard.tagging.metrics import entity_metrics


class TokenObjective:
    """Cross-entropy over labelled pieces, each weighing the same whatever its batch; dev
    `loss`, `accuracy` (of the word tags), `macro_f1` (entity-level, the mean over entity
    types) and `f1` (entity-level, micro)."""

    def __init__(self, pad_id: int, metric: str, tags: list[str], batch_size: int) -> None:
        self.pad_id, self.metric, self.tags, self.batch_size = pad_id, metric, tags, batch_size

    def _batch(
        self, data: TagData, index: np.ndarray, device: torch.device
    ) -> dict[str, torch.Tensor]:
        batch = collate_pieces(data.input_ids, index, self.pad_id, data.labels)
        return {k: v.to(device) for k, v in batch.items()}

    def loss(
        self,
        model: torch.nn.Module,
        data: TagData,
        index: np.ndarray,
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> torch.Tensor:
        """Return the cross-entropy summed over the labelled pieces of sentences `index`,
        divided by the labelled pieces that many sentences of `data` hold on average.

        Not the batch's own mean: length-grouped batches of short sentences hold a few
        labelled pieces, batches of long ones ten times as many, and a per-batch mean gives
        each piece of a short batch that much more weight. On 1,000 CoNLL-2003 sentences,
        those of at most 5 words (5.5 % of the words) got 21 % of the loss that way. With a
        fixed divisor every labelled piece weighs the same whichever batch it lands in; on
        random batches it is close to the batch's mean.
        """
        batch = self._batch(data, index, device)
        labels = batch.pop("labels")
        with autocast(device, dtype):
            logits = model(**batch).logits
        total = torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum"
        )
        return total / max(len(index) * data.labelled_per_sentence, 1e-9)

    def evaluate(
        self, model: torch.nn.Module, data: TagData, device: torch.device, dtype: torch.dtype | None
    ) -> dict[str, float]:
        """Return the dev loss, word-tag accuracy, entity macro-F1 and entity micro-F1."""
        model.eval()
        total, count = 0.0, 0
        gold: list[list[str]] = [[] for _ in range(len(data))]
        predicted: list[list[str]] = [[] for _ in range(len(data))]
        with torch.inference_mode(), autocast(device, dtype):
            for index in eval_batches(data.lengths(), self.batch_size):
                batch = self._batch(data, index, device)
                labels = batch.pop("labels")
                logits = model(**batch).logits.float()
                keep = labels != IGNORE
                total += float(
                    torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="sum")
                )
                count += int(keep.sum())
                best = logits.argmax(-1)
                for row, i in enumerate(index):
                    mask = keep[row]
                    gold[i] = [self.tags[t] for t in labels[row][mask].tolist()]
                    predicted[i] = [self.tags[t] for t in best[row][mask].tolist()]
        figures = entity_metrics(gold, predicted)
        return {
            "loss": total / max(count, 1),
            "accuracy": figures["token_accuracy"],
            "macro_f1": figures["macro_f1"],
            "f1": figures["f1"],
        }
