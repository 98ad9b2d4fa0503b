"""Tagged words to word pieces: each word's tag goes on its first piece; the other pieces,
the special tokens and the padding are IGNORE, so the loss and the metrics skip them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

from modelyard.errors import BackboneError
from modelyard.models.encoding import collate
from modelyard.tagging.data import Sentence

IGNORE = -100  # the label cross-entropy skips (torch's default ignore_index)


@dataclass
class TagData:
    """Encoded sentences: word-piece ids, aligned label ids, and each piece's word index."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    word_ids: list[list[int | None]]
    truncated: int = 0  # sentences that lost words to the maximum length

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        """Return the number of word pieces of every sentence."""
        return np.array([len(ids) for ids in self.input_ids], dtype=np.int64)

    @cached_property
    def labelled_per_sentence(self) -> float:
        """Return the mean number of labelled pieces (first pieces of words) a sentence has."""
        labelled = sum(sum(label != IGNORE for label in row) for row in self.labels)
        return labelled / max(len(self.labels), 1)


def word_pieces(tokenizer: Any, words: list[list[str]], max_length: int) -> Any:
    """Return the tokenizer's encoding of pre-split sentences (truncated, not padded).

    Raises BackboneError when the tokenizer cannot map pieces back to words (a slow tokenizer).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise BackboneError(
            "token classification needs a fast tokenizer (tokenizer.json) to map word pieces "
            "back to words; the backbone's tokenizer is a slow one"
        )
    return tokenizer(
        words, is_split_into_words=True, truncation=True, max_length=max_length, verbose=False
    )


def align(word_ids: list[int | None], tag_ids: list[int]) -> list[int]:
    """Return one label a piece: the word's tag id on its first piece, IGNORE elsewhere."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(IGNORE if word is None or word == previous else tag_ids[word])
        previous = word
    return labels


def encode_sentences(
    tokenizer: Any, sentences: list[Sentence], tags: list[str], max_length: int
) -> TagData:
    """Return `sentences` encoded for training or dev evaluation with labels aligned to pieces."""
    index = {t: i for i, t in enumerate(tags)}
    if not sentences:
        return TagData([], [], [])
    encoded = word_pieces(tokenizer, [s.tokens for s in sentences], max_length)
    ids, labels, words, truncated = [], [], [], 0
    for i, sentence in enumerate(sentences):
        word_ids = encoded.word_ids(i)
        ids.append(list(encoded["input_ids"][i]))
        labels.append(align(word_ids, [index[t] for t in sentence.tags]))
        words.append(word_ids)
        seen = {w for w in word_ids if w is not None}
        truncated += bool(sentence.tokens) and (max(seen, default=-1) + 1 < len(sentence.tokens))
    return TagData(ids, labels, words, truncated)


def collate_pieces(
    input_ids: list[list[int]],
    index: np.ndarray,
    pad_id: int,
    labels: list[list[int]] | None = None,
) -> dict[str, torch.Tensor]:
    """Return padded `input_ids`, `attention_mask` (and `labels`, padded with IGNORE) of rows `index`."""
    batch = collate(input_ids, None, index, pad_id)
    if labels is not None:
        out = torch.full(batch["input_ids"].shape, IGNORE, dtype=torch.long)
        for j, i in enumerate(index):
            out[j, : len(labels[i])] = torch.tensor(labels[i], dtype=torch.long)
        batch["labels"] = out
    return batch
