"""What the multi-label and regression heads learn and how they are scored: the training
objective, per-label thresholds tuned on dev, and the metrics of each task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modelyard.models.device import autocast
from modelyard.models.encoding import collate, encode_texts, eval_batches

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


def targets_tensor(task: str, targets: list[Any], labels: list[str]) -> np.ndarray:
    """Return the targets as floats: a 0/1 row per text (multi-label) or one value (regression)."""
    if task == "regression":
        return np.asarray(targets, dtype=np.float32).reshape(-1, 1)
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(targets), len(labels)), dtype=np.float32)
    for row, ts in enumerate(targets):
        out[row, [index[t] for t in ts]] = 1.0
    return out


@dataclass
class HeadData:
    """Encoded texts (unpadded token ids) and their float targets, one row a text."""

    input_ids: list[list[int]]
    y: np.ndarray
    truncated: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        """Return the token length of every text."""
        return np.array([len(ids) for ids in self.input_ids], dtype=np.int64)


def encode_rows(tokenizer: Any, texts: list[str], y: np.ndarray, max_length: int) -> HeadData:
    """Return `texts` tokenised to at most `max_length` tokens, with their targets `y`."""
    ids, _, cut = encode_texts(tokenizer, texts, None, max_length)
    return HeadData(ids, y, sum(cut))


def head_outputs(
    model: torch.nn.Module,
    data: HeadData,
    pad_id: int,
    device: torch.device,
    dtype: torch.dtype | None,
    batch_size: int = 32,
) -> np.ndarray:
    """Return the head's raw outputs (logits or values) for every row of `data`, in order."""
    out: np.ndarray | None = None
    model.eval()
    with torch.inference_mode(), autocast(device, dtype):
        for index in eval_batches(data.lengths(), batch_size):
            batch = {
                k: v.to(device) for k, v in collate(data.input_ids, None, index, pad_id).items()
            }
            values = model(**batch).logits.float().cpu().numpy()
            if out is None:
                out = np.zeros((len(data), values.shape[1]), dtype=np.float32)
            out[index] = values
    return out if out is not None else np.zeros((0, 1), dtype=np.float32)


class HeadObjective:
    """Binary cross-entropy per label (multi-label) or mean squared error (regression)."""

    def __init__(self, task: str, pad_id: int, metric: str) -> None:
        self.task, self.pad_id, self.metric = task, pad_id, metric

    def _loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "regression":
            return torch.nn.functional.mse_loss(outputs, y)
        return torch.nn.functional.binary_cross_entropy_with_logits(outputs, y)

    def loss(
        self,
        model: torch.nn.Module,
        data: HeadData,
        index: np.ndarray,
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> torch.Tensor:
        """Return the mean loss of rows `index`."""
        batch = {
            k: v.to(device) for k, v in collate(data.input_ids, None, index, self.pad_id).items()
        }
        y = torch.from_numpy(data.y[index]).to(device)
        with autocast(device, dtype):
            outputs = model(**batch).logits
        return self._loss(outputs.float(), y)

    def evaluate(
        self,
        model: torch.nn.Module,
        data: HeadData,
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> dict[str, float]:
        """Return the dev loss and the task's figures (see `task_metrics`)."""
        outputs = head_outputs(model, data, self.pad_id, device, dtype)
        y = data.y
        figures = task_metrics(self.task, outputs, y, None)
        loss = float(self._loss(torch.from_numpy(outputs), torch.from_numpy(y)))
        if self.task == "regression":
            return {"loss": loss, "mae": figures["mae"]}
        return {
            "loss": loss,
            "accuracy": figures["subset_accuracy"],
            "macro_f1": figures["macro_f1"],
        }


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Return the logistic function of `x`."""
    return 1.0 / (1.0 + np.exp(-x))


def tune_thresholds(probs: np.ndarray, y: np.ndarray) -> list[float]:
    """Return, for each label, the threshold on its probability with the best F1 on these rows
    (0.5 when the rows hold no positive of it: nothing to tune on)."""
    out = []
    for j in range(y.shape[1]):
        if y[:, j].sum() == 0:
            out.append(0.5)
            continue
        scores = [_f1(probs[:, j] >= t, y[:, j] > 0.5) for t in THRESHOLDS]
        out.append(float(THRESHOLDS[int(np.argmax(scores))]))
    return out


def _f1(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = float((pred & gold).sum())
    denominator = float(pred.sum() + gold.sum())
    return 2 * tp / denominator if denominator else 0.0


def task_metrics(
    task: str,
    outputs: np.ndarray,
    y: np.ndarray,
    thresholds: list[float] | None,
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """Return the task's metrics from raw head outputs and targets.

    Multi-label: micro and macro F1, subset accuracy (every label right), Hamming loss and,
    with `labels`, per-label precision, recall, F1 and support, at `thresholds` (0.5 when
    None). Regression: MSE, RMSE, MAE, Pearson and Spearman correlations.
    """
    if task == "regression":
        return regression_metrics(outputs[:, 0], y[:, 0])
    cut = np.asarray(thresholds if thresholds is not None else [0.5] * y.shape[1])
    pred = sigmoid(outputs) >= cut
    gold = y > 0.5
    tp = (pred & gold).sum(axis=0).astype(float)
    fp = (pred & ~gold).sum(axis=0).astype(float)
    fn = (~pred & gold).sum(axis=0).astype(float)
    per_f1 = np.divide(
        2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0
    )
    micro_d = 2 * tp.sum() + fp.sum() + fn.sum()
    out: dict[str, Any] = {
        "micro_f1": round(float(2 * tp.sum() / micro_d) if micro_d else 0.0, 6),
        "macro_f1": round(float(per_f1.mean()), 6),
        "subset_accuracy": round(float((pred == gold).all(axis=1).mean()), 6),
        "hamming_loss": round(float((pred != gold).mean()), 6),
        "rows": len(y),
    }
    if labels is not None:
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
        out["per_label"] = {
            label: {
                "precision": round(float(precision[j]), 6),
                "recall": round(float(recall[j]), 6),
                "f1": round(float(per_f1[j]), 6),
                "support": int(gold[:, j].sum()),
                "threshold": float(cut[j]),
            }
            for j, label in enumerate(labels)
        }
    return out


def regression_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Return MSE, RMSE, MAE, and the Pearson and Spearman correlations (None for constant data)."""
    from scipy.stats import pearsonr, spearmanr

    err = pred - y
    constant = len(y) < 2 or np.ptp(y) == 0 or np.ptp(pred) == 0
    return {
        "mse": round(float(np.mean(err**2)), 6),
        "rmse": round(float(np.sqrt(np.mean(err**2))), 6),
        "mae": round(float(np.mean(np.abs(err))), 6),
        "pearson": None if constant else round(float(pearsonr(pred, y)[0]), 6),
        "spearman": None if constant else round(float(spearmanr(pred, y)[0]), 6),
        "rows": len(y),
    }
