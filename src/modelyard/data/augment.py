"""Offline, seeded text augmentation (EDA) of the training split only.

EDA (Wei and Zou, 2019) makes new training texts by random swap, deletion, insertion and
synonym replacement. Synonyms come from the backbone itself: the nearest neighbours of a
word in its input-embedding table, so nothing is downloaded. Neighbours are related words,
which now and then means an antonym (good / bad): keep `alpha` small for tasks where one
word flips the label.
"""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path

import numpy as np

from modelyard.data.splits import DataBundle, Split
from modelyard.recipe import AugmentConfig

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "nor",
        "not",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "too",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)
_WORD = re.compile(r"[a-z]{3,}")


class SynonymSource:
    """Nearest neighbours of whole words in a word-embedding table (cosine, unit rows)."""

    def __init__(
        self, words: list[str], vectors: np.ndarray, k: int, min_similarity: float
    ) -> None:
        keep = [i for i, w in enumerate(words) if _WORD.fullmatch(w) and w not in _STOPWORDS]
        self.words = [words[i] for i in keep]
        matrix = vectors[keep].astype(np.float32)
        self.matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.k, self.min_similarity = k, min_similarity
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_backbone(cls, folder: Path, k: int = 5, min_similarity: float = 0.55) -> SynonymSource:
        """Return the synonym source of the backbone in `folder` (its vocabulary and input embeddings).

        Raises BackboneError when the folder holds no loadable model or tokenizer.
        """
        from modelyard.models import load_tokenizer
        from modelyard.models.encoder import load_encoder

        vocab = load_tokenizer(folder).get_vocab()
        words = [""] * len(vocab)
        for word, i in vocab.items():
            if i < len(words):
                words[i] = word
        table = load_encoder(folder).get_input_embeddings().weight.detach().float().numpy()
        return cls(words[: len(table)], table[: len(words)], k, min_similarity)

    def __call__(self, word: str) -> list[str]:
        """Return up to k neighbours of `word` (lower-cased) above the similarity floor."""
        word = word.lower()
        if word not in self._cache:
            self._cache[word] = self._neighbours(word)
        return self._cache[word]

    def _neighbours(self, word: str) -> list[str]:
        at = self.index.get(word)
        if at is None:
            return []
        sims = self.matrix @ self.matrix[at]
        sims[at] = -1.0
        best = np.argsort(-sims, kind="stable")[: self.k]
        return [self.words[i] for i in best if sims[i] >= self.min_similarity]


class Eda:
    """Applies one EDA operation per call; `synonyms` maps a word to its synonyms."""

    def __init__(self, cfg: AugmentConfig, synonyms: SynonymSource | None = None) -> None:
        self.cfg = cfg
        self.synonyms = synonyms

    def _changes(self, words: list[str]) -> int:
        return max(1, int(self.cfg.alpha * len(words)))

    def _lookup(self, word: str) -> list[str]:
        return self.synonyms(word) if self.synonyms is not None else []

    def swap(self, words: list[str], rng: random.Random) -> list[str]:
        """Return `words` with random pairs of positions swapped."""
        out = list(words)
        for _ in range(self._changes(words) if len(words) > 1 else 0):
            i, j = rng.sample(range(len(out)), 2)
            out[i], out[j] = out[j], out[i]
        return out

    def delete(self, words: list[str], rng: random.Random) -> list[str]:
        """Return `words` with each word dropped with probability alpha (one always stays)."""
        kept = [w for w in words if rng.random() >= self.cfg.alpha]
        return kept or [rng.choice(words)]

    def insert(self, words: list[str], rng: random.Random) -> list[str]:
        """Return `words` with synonyms of random words inserted at random positions."""
        out = list(words)
        for _ in range(self._changes(words)):
            options = self._lookup(rng.choice(words))
            if options:
                out.insert(rng.randint(0, len(out)), rng.choice(options))
        return out

    def synonym(self, words: list[str], rng: random.Random) -> list[str]:
        """Return `words` with some words replaced by one of their synonyms."""
        out = list(words)
        order = rng.sample(range(len(out)), len(out))
        replaced = 0
        for i in order:
            options = self._lookup(out[i])
            if options and replaced < self._changes(words):
                out[i] = rng.choice(options)
                replaced += 1
        return out

    def __call__(self, text: str, rng: random.Random) -> str:
        """Return one augmented version of `text` (possibly equal to it when nothing applies)."""
        words = text.split()
        if not words:
            return text
        operation = getattr(self, rng.choice(self.cfg.operations))
        return " ".join(operation(words, rng))


def augment_split(split: Split, eda: Eda, n: int, seed: int) -> tuple[Split, int]:
    """Return `split` followed by up to `n` new versions of each row, and how many were added.

    A version identical to its source text or to another added text is not added.
    The result is the same for the same seed.
    """
    rng = random.Random(seed)
    seen = set(split.texts)
    texts, labels, pairs, rows = [], [], [], []
    for i, text in enumerate(split.texts):
        for _ in range(n):
            new = eda(text, rng)
            if new in seen:
                continue
            seen.add(new)
            texts.append(new)
            labels.append(split.labels[i])
            pairs.append(split.pairs[i] if split.pairs is not None else "")
            rows.append(split.rows[i] if split.rows is not None else 0)
    merged = dataclasses.replace(
        split,
        texts=split.texts + texts,
        labels=split.labels + labels,
        pairs=split.pairs + pairs if split.pairs is not None else None,
        rows=split.rows + rows if split.rows is not None else None,
    )
    return merged, len(texts)


def augment_bundle(
    bundle: DataBundle, cfg: AugmentConfig | None, backbone: Path, seed: int
) -> DataBundle:
    """Return `bundle` with augmented copies added to its training split only (dev and test
    are untouched), counting the added rows in its report; unchanged when `cfg` is None.

    Raises BackboneError when synonyms are asked for and the backbone cannot be read.
    """
    if cfg is None:
        return bundle
    needs_synonyms = bool({"insert", "synonym"} & set(cfg.operations))
    source = (
        SynonymSource.from_backbone(backbone, cfg.synonyms, cfg.min_similarity)
        if needs_synonyms
        else None
    )
    train, added = augment_split(bundle.train, Eda(cfg, source), cfg.n, seed)
    bundle.report.augmented_rows = added
    return dataclasses.replace(bundle, train=train)
