"""Using a saved token-classification run: predict entity spans, evaluate on a tagged file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.fsutil import atomic_write_json, atomic_write_text
from modelyard.tagging.data import read_tagged, tag_order
from modelyard.tagging.model import LoadedTagger, load_tagger
from modelyard.tagging.predict import predict_entities
from modelyard.tagging.report import entity_table
from modelyard.tagging.training import evaluate_sentences


def predict_loaded(
    tagger: LoadedTagger, texts: list[str], batch_size: int = 32
) -> list[dict[str, Any]]:
    """Return the entity spans (and word tags) of each raw text for a loaded run."""
    return predict_entities(
        tagger.model, tagger.tokenizer, tagger.tags, texts, tagger.max_length, batch_size
    )


def predict_run(path: Path, texts: list[str], batch_size: int = 32) -> list[dict[str, Any]]:
    """Return the entity spans of each raw text for the run at `path` (see `predict_entities`)."""
    return predict_loaded(load_tagger(path), texts, batch_size)


def evaluate_tagger_file(path: Path, data: Path, output: Path | None = None) -> dict[str, Any]:
    """Return the entity-level metrics of the run at `path` on a tagged JSONL or CoNLL file,
    written to `output` (default `RUN/evaluations/<file stem>/`) as metrics.json and report.md.

    Raises DataError for an unreadable file or a tag the model does not know.
    """
    tagger = load_tagger(path)
    cfg = tagger.recipe.data
    fmt = cfg.format if cfg.format in ("jsonl", "conll") else "auto"
    sentences = read_tagged(data, fmt, cfg.text_column, cfg.label_column)
    tag_order({t for s in sentences for t in s.tags}, tagger.tags, f"the tags of {path}")
    metrics = evaluate_sentences(
        tagger.model, tagger.tokenizer, tagger.tags, sentences, tagger.max_length
    )
    metrics["data"] = str(data)
    out = output or path / "evaluations" / data.stem
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(
        out / "report.md", f"# {path.name} on {data.name}\n\n{entity_table(metrics)}\n"
    )
    return metrics
