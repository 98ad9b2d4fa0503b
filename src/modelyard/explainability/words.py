"""Words of a text, word-level perturbations, and word-piece -> word aggregation.

A word is a run of letters/digits or a single punctuation mark, the same cut BERT-style
pre-tokenizers make, so every method (gradient or forward-only, PyTorch or ONNX) scores the
same units and the faithfulness metrics remove the same units whatever the method.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelyard.errors import DataError

_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Words:
    """A text cut into words; `spans[i]` is the (start, end) character range of word i."""

    text: str
    spans: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.spans)

    @property
    def tokens(self) -> list[str]:
        """Return the words as strings."""
        return [self.text[a:b] for a, b in self.spans]

    def compose(self, keep: Sequence[bool] | np.ndarray) -> str:
        """Return the text with only the words where `keep` is true.

        Kept neighbours keep the original characters between them; where a word was removed
        a single space separates the survivors, so no two words fuse into a new one.
        """
        out: list[str] = []
        previous = -2
        for i, (start, end) in enumerate(self.spans):
            if not keep[i]:
                continue
            if out:
                out.append(self.text[self.spans[previous][1] : start] if previous == i - 1 else " ")
            out.append(self.text[start:end])
            previous = i
        return "".join(out)


def split_words(text: str) -> Words:
    """Return the words of `text`; raise DataError when it holds none."""
    spans = tuple(m.span() for m in _WORD.finditer(text))
    if not spans:
        raise DataError(
            f"cannot explain {text!r}: it holds no words (letters, digits or punctuation)"
        )
    return Words(text, spans)


def piece_to_word(
    offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> list[int | None]:
    """Return, for each word piece, the index of the first word its characters overlap.

    Special tokens (empty offsets) and pieces outside every word map to None.
    """
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])
    owners: list[int | None] = []
    for start, end in offsets:
        if end <= start:
            owners.append(None)
            continue
        # overlap, not containment: some tokenizers' offsets include the leading space
        hit = np.nonzero((starts < end) & (ends > start))[0]
        owners.append(int(hit[0]) if len(hit) else None)
    return owners


def aggregate(
    piece_scores: Sequence[float] | np.ndarray, owners: Sequence[int | None], n_words: int
) -> np.ndarray:
    """Return per-word scores: the sum of the scores of each word's pieces.

    A sum keeps completeness: word scores add up to the same total as their pieces.
    Words with no pieces (cut off by truncation) score 0.
    """
    scores = np.zeros(n_words, dtype=np.float64)
    for score, owner in zip(piece_scores, owners, strict=True):
        if owner is not None:
            scores[owner] += float(score)
    return scores
