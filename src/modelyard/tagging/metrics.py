"""Entity-level metrics of tag sequences through seqeval (the CoNLL evaluation): an entity
counts as found only when its type and its exact extent both match."""

from __future__ import annotations

import warnings
from typing import Any


def entities_of(tags: list[str]) -> list[tuple[str, int, int]]:
    """Return the entities of one tag sequence as (type, first word, last word), BIO or BIOES."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [(str(k), int(a), int(b)) for k, a, b in get_entities(list(tags))]


def entity_metrics(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, Any]:
    """Return entity-level `precision`, `recall`, `f1` (micro over entities), `macro_f1`
    (the mean over entity types), `token_accuracy`, `per_type` figures and entity counts.

    `gold` and `predicted` hold one tag sequence per sentence, of equal lengths.
    """
    from seqeval.metrics import classification_report

    with warnings.catch_warnings():
        # a type never predicted has an undefined precision; seqeval counts it 0 and warns
        warnings.simplefilter("ignore")
        report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    micro = report.get("micro avg", {})
    macro = report.get("macro avg", {})
    per_type = {
        str(kind): {
            "precision": round(float(v["precision"]), 6),
            "recall": round(float(v["recall"]), 6),
            "f1": round(float(v["f1-score"]), 6),
            "support": int(v["support"]),
        }
        for kind, v in report.items()
        if not kind.endswith(" avg")
    }
    tokens = sum(len(s) for s in gold)
    right = sum(
        g == p for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True)
    )
    return {
        "precision": round(float(micro.get("precision", 0.0)), 6),
        "recall": round(float(micro.get("recall", 0.0)), 6),
        "f1": round(float(micro.get("f1-score", 0.0)), 6),
        "macro_f1": round(float(macro.get("f1-score", 0.0)), 6),
        "token_accuracy": round(right / max(tokens, 1), 6),
        "entities": int(micro.get("support", 0)),
        "predicted_entities": sum(len(entities_of(p)) for p in predicted),
        "sentences": len(gold),
        "per_type": per_type,
    }
