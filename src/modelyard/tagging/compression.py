"""A token-classification run as `modelyard compress` sees it: its model and records, sample
sentences, per-piece logits and entity spans of any model of the run (PyTorch or an ONNX
graph), and entity F1 on the test sentences. Compression code calls these and never imports
this package; the API layer hands it a `TaggerParent`."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.errors import DataError
from modelyard.models.encoding import eval_batches
from modelyard.recipe import Recipe
from modelyard.tagging.data import Sentence, load_tagged, read_tagged, tag_order
from modelyard.tagging.encoding import collate_pieces, word_pieces
from modelyard.tagging.model import LoadedTagger, load_tagger
from modelyard.tagging.onnx_model import ONNX_TOKEN_CLASSIFIER, OnnxTokenModel
from modelyard.tagging.predict import predict_entities
from modelyard.tagging.training import evaluate_sentences

Span = tuple[str, int, int]  # label, start, end (characters)


@dataclass
class TaggerParent:
    """A loaded token-classification run and what compressing it needs (data read on first use)."""

    run: LoadedTagger
    onnx_kind: str = ONNX_TOKEN_CLASSIFIER
    # the run's folder, PyTorch model, tokenizer, manifest and recipe, as compression reads them
    path: Path = field(init=False)
    model: Any = field(init=False)
    tokenizer: Any = field(init=False)
    manifest: dict[str, Any] = field(init=False)
    recipe: Recipe = field(init=False)
    _splits: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        run = self.run
        self.path, self.model, self.tokenizer = run.path, run.model, run.tokenizer
        self.manifest, self.recipe = run.manifest, run.recipe

    def manifest_extra(self) -> dict[str, Any]:
        """Return what a variant's manifest repeats of the parent's: task, tags and scheme."""
        return {k: self.manifest[k] for k in ("task", "tags", "scheme") if k in self.manifest}

    def _data(self) -> Any:
        if self._splits is None:
            self._splits = load_tagged(self.recipe)
        return self._splits

    def sample(self, n: int, seed: int) -> list[list[str]]:
        """Return the words of a seeded sample of at most `n` training sentences.

        Raises DataError when the run's training data cannot be read any more.
        """
        train: list[Sentence] = self._data().train
        chosen = random.Random(seed).sample(train, min(n, len(train)))
        return [s.tokens for s in chosen]

    def test_sentences(self, data: Path | None) -> tuple[list[Sentence], str]:
        """Return the tagged sentences to score on (the file `data`, else the run's test split,
        else its dev split) and where they come from. Raises DataError when there are none or
        a tag is unknown to the model."""
        if data is not None:
            cfg = self.recipe.data
            fmt = cfg.format if cfg.format in ("jsonl", "conll") else "auto"
            rows = read_tagged(Path(data), fmt, cfg.text_column, cfg.label_column)
            tag_order({t for s in rows for t in s.tags}, self.run.tags, f"the tags of {self.path}")
            return rows, str(data)
        splits = self._data()
        if splits.test:
            return splits.test, str(self.recipe.data.test or "the run's test split")
        if splits.dev:
            return splits.dev, "the run's dev split"
        raise DataError(f"the recipe of {self.path} holds no test or dev split; pass --data FILE")

    def graph_model(self, graph: Path, threads: int | None) -> OnnxTokenModel:
        """Return an ONNX graph of this run as a model the functions below accept."""
        return OnnxTokenModel(graph, threads)

    def load_model(self, path: Path) -> Any:
        """Return the model of the verified artifact at `path` (this run or one of its variants)."""
        return load_tagger(path).model

    def piece_logits(self, model: Any, sentences: list[list[str]]) -> np.ndarray:
        """Return the logits of every word piece of `sentences` (special tokens included, no
        padding), concatenated into one (pieces, tags) array."""
        encoded = word_pieces(self.tokenizer, sentences, self.run.max_length)
        ids = [list(x) for x in encoded["input_ids"]]
        rows: list[np.ndarray] = [np.zeros((0, len(self.run.tags)), dtype=np.float32)] * len(ids)
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        pad = int(self.tokenizer.pad_token_id or 0)
        with torch.inference_mode():
            for index in eval_batches(lengths, 32):
                logits = model(**collate_pieces(ids, index, pad)).logits.float().numpy()
                for row, i in enumerate(index):
                    rows[i] = logits[row, : lengths[i]]
        return np.concatenate(rows) if rows else np.zeros((0, len(self.run.tags)))

    def spans(self, model: Any, texts: list[str]) -> list[list[Span]]:
        """Return the entity spans (label, start, end) the model finds in each raw text."""
        answers = predict_entities(model, self.tokenizer, self.run.tags, texts, self.run.max_length)
        return [[(e["label"], e["start"], e["end"]) for e in a["entities"]] for a in answers]

    def score(self, model: Any, sentences: list[Sentence]) -> dict[str, Any]:
        """Return the entity-level metrics (f1, precision, recall, macro_f1, ...) on `sentences`."""
        return evaluate_sentences(
            model, self.tokenizer, self.run.tags, sentences, self.run.max_length
        )


def tagger_parent(path: str | Path) -> TaggerParent:
    """Return the verified token-classification run at `path` ready to be compressed."""
    return TaggerParent(load_tagger(path))
