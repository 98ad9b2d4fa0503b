"""Batched prediction with a loaded run: probabilities, label names, files in and out."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modelyard.data import read_table
from modelyard.errors import DataError
from modelyard.models.encoding import Encoded, encode_texts
from modelyard.models.predict import predict_logits
from modelyard.registry.run import LoadedRun

# the names of 0.1's prediction records, still answered (with a warning) by PredictionRecord
_OLD_FIELDS = {"label": "predicted_label", "score": "predicted_score"}


class PredictionRecord(dict[str, Any]):
    """One text's prediction: `predicted_label`, `predicted_score`, `truncated` and
    `probabilities` (label -> probability, most probable first).

    The old keys `label`, `score` and `prob_<label>` still answer, with a DeprecationWarning.
    """

    def __missing__(self, key: str) -> Any:
        if key in _OLD_FIELDS:
            new = _OLD_FIELDS[key]
            warnings.warn(
                f"prediction['{key}'] is deprecated; use ['{new}']", DeprecationWarning, 2
            )
            return self[new]
        if isinstance(key, str) and key.startswith("prob_"):
            warnings.warn(
                f"prediction['{key}'] is deprecated; use ['probabilities']['{key[5:]}']",
                DeprecationWarning,
                2,
            )
            return self["probabilities"][key[5:]]
        raise KeyError(key)


def ranked_probabilities(
    label_names: list[str], row: np.ndarray, top_k: int | None = None
) -> dict[str, float]:
    """Return label -> probability (rounded to 6 places), most probable first, the first
    `top_k` only (every class when `top_k` is None or 0)."""
    order = np.argsort(-row, kind="stable")[: top_k or None]
    return {label_names[i]: round(float(row[i]), 6) for i in order}


@dataclass
class Predictions:
    """Predicted label names and class probabilities for a list of texts."""

    labels: list[str]
    probs: np.ndarray
    label_names: list[str]
    truncated: list[bool]

    def records(self, top_k: int | None = None) -> list[PredictionRecord]:
        """Return one PredictionRecord per text, its probabilities sorted and cut to `top_k`."""
        return [
            PredictionRecord(
                predicted_label=label,
                predicted_score=round(float(p.max()), 6),
                truncated=cut,
                probabilities=ranked_probabilities(self.label_names, p, top_k),
            )
            for label, p, cut in zip(self.labels, self.probs, self.truncated, strict=True)
        ]

    def table_rows(self) -> list[dict[str, object]]:
        """Return one flat row per text for a file: the record's fields, then `prob_<label>`
        for every class in the model's label order."""
        rows: list[dict[str, object]] = []
        for record, p in zip(self.records(), self.probs, strict=True):
            row = {k: v for k, v in record.items() if k != "probabilities"}
            row.update(
                {f"prob_{n}": round(float(v), 6) for n, v in zip(self.label_names, p, strict=True)}
            )
            rows.append(row)
        return rows


def predict_proba(
    run: LoadedRun, texts: list[str], pairs: list[str] | None = None, batch_size: int = 32
) -> Predictions:
    """Return predictions for `texts` (and optional second texts) in their original order,
    with probabilities softmax(logits / run.temperature)."""
    ids, types, cut = encode_texts(run.tokenizer, texts, pairs, run.max_length)
    encoded = Encoded(ids, types, [0] * len(ids), sum(cut))
    if not texts:
        return Predictions([], np.zeros((0, len(run.labels))), run.labels, [])
    device = next(run.model.parameters()).device
    logits = predict_logits(
        run.model, encoded, run.tokenizer.pad_token_id or 0, device, None, batch_size
    )
    # the run's calibration temperature (1.0 when it has none) never changes the argmax
    temperature = float(getattr(run, "temperature", 1.0))
    probs = torch.softmax(torch.from_numpy(logits) / temperature, dim=-1).numpy()
    names = [run.labels[i] for i in probs.argmax(axis=1)]
    return Predictions(names, probs, run.labels, cut)


def backend_predictions(backend: Any, texts: list[str]) -> Predictions:
    """Return the predictions of an inference backend (`modelyard.backends.Backend`) for `texts`."""
    probs, cut = backend.predict_proba(texts)
    names = [backend.labels[i] for i in probs.argmax(axis=1)] if len(texts) else []
    return Predictions(names, probs, backend.labels, list(cut))


def predict_file(
    run: Any, source: Path, output: Path, text_column: str = "text", batch_size: int = 32
) -> Path:
    """Predict every row of a CSV/TSV/JSONL/Parquet file and write CSV or JSONL to `output`.

    `run` is a LoadedRun or an inference backend (`modelyard.backends.load_backend`).
    The input columns are kept and `predicted_label`, `predicted_score`, `truncated` and one
    `prob_<label>` column per class are appended. Raises DataError on a bad
    input file, a missing text column or an output format that is not .csv or .jsonl.
    """
    if output.suffix.lower() not in {".csv", ".jsonl"}:
        raise DataError(f"--output must end in .csv or .jsonl, got '{output.name}'")
    table = read_table(source)
    if text_column not in table.columns:
        raise DataError(
            f"{source}: no column '{text_column}'; columns are: {', '.join(map(str, table.columns))}. "
            "Pass --text-column NAME."
        )
    texts = [str(t) for t in table[text_column]]
    if isinstance(run, LoadedRun):
        preds = predict_proba(run, texts, batch_size=batch_size)
    else:  # a backend: ONNX or another artifact kind
        preds = backend_predictions(run, texts)
    # the fields are prefixed so they never collide with the input's own `label` column
    predicted = pd.DataFrame(preds.table_rows())
    result = pd.concat([table.reset_index(drop=True), predicted], axis=1)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".csv":
        result.to_csv(output, index=False)
    else:
        with open(output, "w", encoding="utf-8") as handle:
            for row in result.to_dict(orient="records"):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return output
